"""bench/render.py and its sections (bench/sections/): the benchmarks page rendered from the JSON files of bench/."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture
def bench(monkeypatch):
    """``import`` for bench/'s renderer: bench/render.py and bench/sections/, which import nothing else of bench/."""
    monkeypatch.syspath_prepend(str(BENCH))
    return importlib.import_module


@pytest.fixture
def folder(bench, monkeypatch, tmp_path):
    """An empty folder that the sections read their JSON files from, as if no benchmark had run."""
    folder = tmp_path / "bench"
    folder.mkdir()
    monkeypatch.setattr(bench("sections.formatting"), "BENCH", folder)
    return folder


def _step_results(rows: list[dict]) -> dict:
    return {"date": "2026-12-05T01:00:00+00:00", "command": "python bench/step_table.py --quick", "mode": "quick",
            "repeats": 3, "seconds": 321.0, "rows": rows,
            "machine": {"cpu": "Some CPU @ 2.0GHz", "cpu_count": 2, "torch": "2.13.0", "pyro": "1.9.2",
                        "commit": "abc1234"},
            "numpyro": {"numpyro": "0.22.0", "jax": "0.10.2"},
            "load_average": {"min": 1.5, "max": 9.25, "median": 4.0, "cpu_count": 2},
            "data": {"small": "the digits", "large": "Fashion-MNIST"},
            "settings": {"xla_flags": "--xla_cpu_multi_thread_eigen=false"}}


def _step_row(network: str, bound: str, batch: int, ratios: list[float], check: bool = False) -> dict:
    row = {"network": network, "bound": bound, "batch": batch, "steps_per_run": 66,
           "ms_per_step": {"handwritten": 1.234},
           "ratio": dict(zip(["ppgen default", "ppgen compile=True", "Pyro SVI", "NumPyro jit"], ratios)),
           "ratio_ppgen_default_whole_fit": 2.5}
    if check:
        row["check"] = {"points": 128, "same_draws": {"handwritten": 45.3838, "pyro": 45.3838, "numpyro": 45.3838},
                        "monte_carlo": {"handwritten": {"mean": 45.386, "sd": 0.094, "seeds": 64},
                                        "numpyro": {"mean": 45.388, "sd": 0.106, "keys": 64}, "z": 0.08}}
    return row


def _results() -> dict:
    """``bench/results.json`` of a speed suite on one device, one bound: the least the page is rendered from."""
    figures = [{"device": "cpu", "figure": f"training step, {bound}", "ppgen_path": path, "unit": "ms/step",
                "ratio": ratio} for bound in ("ELBO, VAE 64-128-8", "MLE, MixtureOfBernoullis")
               for path, ratio in (("ppgen.fit", 2.3456), ("compiled step (compile=True) + step", 0.875))]
    figures.append({"device": "cpu", "figure": "peak memory, training ELBO", "ppgen_path": "ppgen.fit", "unit": "MiB",
                    "ratio": None, "method": "VmHWM"})
    return {"machine": {"cpu": "Some CPU @ 2.0GHz", "cpu_count": 2, "torch_threads": 1, "gpu": None,
                        "python": "3.11.7", "torch": "2.13.0", "pyro": "1.9.2", "ppgen": "0.1.0", "commit": "abc1234",
                        "date": "2026-12-05T02:00:00+00:00"},
            "command": "python bench/run.py --suite speed",
            "settings": {"network": "a VAE", "optimizer": "torch.optim.Adam(fused=True)", "lr": 0.001,
                         "data": "the digits", "epochs_per_run": 20, "batch_size": 128, "repeats": 7, "query_k": 1000,
                         "particle_points_per_pass": 32768, "verify_every": 200},
            "seconds": 654.3, "figures": figures, "skipped": {"cuda": "torch.cuda.is_available() is False"},
            "sanity": {"cpu": {"loss, ELBO": {"ppgen": 45.3135, "handwritten": 45.3135,
                                              "max_abs_grad_difference": 3e-08}}},
            "final_training_loss": {"cpu": {"ELBO": {"ppgen.fit": 17.98, "handwritten": 17.99}}}}


def _mapped_particles() -> dict:
    """``bench/mapped_particles.json`` as ``bench/mapped_particles.py`` writes it."""
    return {"command": "python bench/mapped_particles.py", "date": "2026-12-05T04:00:00+00:00", "seconds": 61.5,
            "machine": {"cpu": "Some CPU @ 2.0GHz", "cpu_count": 2, "torch": "2.13.0", "pyro": "1.9.2",
                        "commit": "abc1234"},
            "settings": {"repeats": 7, "steps": 5, "torch_threads": 1}, "load_average": {"min": 1.25, "max": 3.5},
            "rows": [{"program": "regression", "K": 50, "one at a time ms": 268.384, "mapped ms": 12.511,
                      "rewritten to broadcast ms": 8.947, "speed-up": 21.46}]}


def test_step_table_renders_every_column_of_each_row(bench):
    render = bench("sections.step_table")
    rows = [_step_row("VAE 64-128-8", "ELBO", 128, [2.384, 0.666, 2.544, 0.234], check=True),
            _step_row("VAE 784-400-32", "IWAE5", 1024, [1.031, 0.924, 1.105, 1.416])]
    lines = render.step_table(_step_results(rows)).splitlines()
    assert lines[0] == ("| workload | hand-written, ms/step | ppgen default | ppgen `compile=True`, steady | "
                        "Pyro SVI | NumPyro jit, steady | ppgen default, whole fit | steps a run |")
    assert lines[2] == "| 64-128-8 ELBO, batch 128 | 1.23 | 2.38 | 0.67 | 2.54 | 0.23 | 2.50 | 66 |"
    assert lines[3] == "| 784-400-32 IWAE5, batch 1024 | 1.23 | 1.03 | 0.92 | 1.10 | 1.42 | 2.50 | 66 |"
    assert len(lines) == 4
    checks = render.checks(_step_results(rows)).splitlines()
    assert len(checks) == 1 and "Pyro 45.3838" in checks[0] and "(z = 0.08)" in checks[0]
    assert "hand-written 45.386 +- 0.094, NumPyro 45.388 +- 0.106" in checks[0]
    iwae = _step_row("VAE 64-128-8", "IWAE5", 128, [1.7, 0.6, 2.5, 0.6], check=True)
    iwae["check"]["monte_carlo"]["handwritten"] = {"mean": 44.786, "sd": 0.08, "seeds": 64}
    checks = render.checks(_step_results([rows[0], iwae])).splitlines()
    assert checks[-1].startswith("- the two bounds on VAE 64-128-8, hand-written, differ by 0.600 nats per point, 39 ")


def test_step_table_section_says_machine_command_date_and_mode(bench, folder):
    render = bench("sections.step_table")
    results = _step_results([_step_row("VAE 64-128-8", "ELBO", 128, [2.0, 0.7, 2.4, 0.4], check=True)])
    assert render.step_table_section() == ""  # not measured yet: no section
    (folder / "step_table.json").write_text(json.dumps(results))
    section = render.step_table_section()
    for text in ("Some CPU @ 2.0GHz (2 CPUs", "`python bench/step_table.py --quick`", "2026-12-05T01:00:00+00:00",
                 "**quick mode**", "load average was 1.5 to 9.2", "NumPyro 0.22.0", "jax 0.10.2",
                 "| 64-128-8 ELBO, batch 128 | 1.23 | 2.00 | 0.70 | 2.40 | 0.40 | 2.50 | 66 |"):
        assert text in section, text


def test_committed_step_table_has_every_row_and_is_on_the_benchmarks_page(bench):
    results = json.loads((BENCH / "step_table.json").read_text())
    rows = {(row["network"], row["bound"], row["batch"]) for row in results["rows"]}
    assert rows == {(net, bound, batch) for net in ("VAE 64-128-8", "VAE 784-400-32") for bound in ("ELBO", "IWAE5")
                    for batch in (128, 1024)}
    for row in results["rows"]:
        assert set(row["ratio"]) == {"ppgen default", "ppgen compile=True", "Pyro SVI", "NumPyro jit"}
        assert all(value > 0 for value in row["ratio"].values())
    assert {"cpu", "cpu_count", "date"} <= set(results["machine"]) and results["command"].startswith("python bench/")
    page = (BENCH.parent / "docs" / "benchmarks.md").read_text()
    assert bench("sections.step_table").step_table(results) in page


def test_the_committed_page_is_the_render_of_the_committed_figures(bench):
    """docs/benchmarks.md is generated: a figure changed in bench/'s JSON files without re-rendering (``python
    bench/render.py``), or the page edited by hand, fails here."""
    results = json.loads((BENCH / "results.json").read_text())
    assert bench("render").render(results) == (BENCH.parent / "docs" / "benchmarks.md").read_text()


def headings(page: str) -> list[str]:
    return [line for line in page.splitlines() if line.startswith("## ")]


def test_the_page_from_fixture_figures_has_a_section_for_each_benchmark_run(bench, folder):
    render = bench("render")
    (folder / "results.json").write_text(json.dumps(_results()))
    (folder.parent / "docs").mkdir()
    render.main()  # the page in docs/ beside the figures' folder
    page = (folder.parent / "docs" / "benchmarks.md").read_text()
    assert page.startswith("# Benchmarks\n\n<!-- Generated by bench/render.py")
    assert "| cpu | training step, ELBO, VAE 64-128-8 | `ppgen.fit` | 2.35 (ms/step) |" in page
    assert "| cuda | skipped: torch.cuda.is_available() is False | | |" in page
    assert "(`VmHWM` on cpu)" in page and "by `python bench/run.py --suite speed`" in page
    assert "on the enumerated mixture it is 0.88 of it" in page
    # only the sections of results.json, and the GPU's saying that none was lent
    assert headings(page) == ["## The training step: plain, captured, compiled", "## On a GPU, batch 1024"]
    assert "No GPU was lent to this work yet" in page

    (folder / "step_table.json").write_text(json.dumps(_step_results([_step_row("VAE 64-128-8", "ELBO", 128,
                                                                               [2.0, 0.7, 2.4, 0.4])])))
    (folder / "mapped_particles.json").write_text(json.dumps(_mapped_particles()))
    page = render.render(_results())
    assert headings(page) == ["## The training step: plain, captured, compiled",
                              "## The training step against Pyro and NumPyro", "## On a GPU, batch 1024",
                              "## K particles of a program that does not broadcast over them"]
    section = page[page.index("## K particles"):]
    for text in ("`python bench/mapped_particles.py`", "2026-12-05T04:00:00+00:00 on Some CPU @ 2.0GHz (2 CPUs",
                 "ppgen at `abc1234`, in 62 s", "the median of 7 timings of 5 steps each",
                 "load average was between 1.2 and 3.5 during the run (on 2 cores)",
                 "| regression, `X @ w` | 50 | 268 | 12.5 | 8.95 | 21.5x |"):
        assert text in section, text


@pytest.mark.slow
def test_mapped_particles_script_writes_what_its_section_renders(bench, folder):
    """bench/mapped_particles.py, run with the least setting, writes the JSON its section of the page reads."""
    out = folder / "mapped_particles.json"
    done = subprocess.run([sys.executable, str(BENCH / "mapped_particles.py"), "--repeats", "1", "--steps", "1",
                           "--output", str(out)], capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    section = bench("sections.mapped_particles").mapped_particles_section()
    assert "--repeats 1 --steps 1" in section and "load average was between" in section
    rows = [line for line in section.splitlines() if line.startswith("| ") and line.endswith("x |")]
    assert [row.split(" | ")[1] for row in rows] == ["5", "50", "5", "50"]
    assert section.splitlines()[-len(rows) - 2:] == bench("sections.mapped_particles").table(
        json.loads(out.read_text())).splitlines()
