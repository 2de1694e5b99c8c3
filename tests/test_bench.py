"""Every script in bench/ imports: a name moved in ppgen that a benchmark still imports from its old place breaks
``make bench`` before it measures anything (bench/distributed.py read ``adam`` from ``ppgen.training.fitting`` after it
moved to ``ppgen.training.optimizers``)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"


def run_with_bench(code: str) -> None:
    """Run ``code`` in a fresh Python process with bench/ on its path (``code`` puts it there); its errors fail the
    test."""
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def test_every_benchmark_script_imports():
    scripts = sorted(path.stem for path in BENCH.glob("*.py"))
    assert "run" in scripts and "choice_of_d" in scripts
    # in a fresh process: the scripts' module names (evaluate, scale, ...) must not shadow anything here
    code = f"import sys; sys.path.insert(0, {str(BENCH)!r}); " + "; ".join(f"import {name}" for name in scripts)
    run_with_bench(code)


def _load(name: str):
    """A module of bench/ that imports nothing of bench/ (the renderers), loaded without putting bench/ on sys.path."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


def test_step_table_renders_every_column_of_each_row():
    render = _load("render_step_table")
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
    iwae = _step_row("VAE 64-128-8", "IWAE5", 128, [1.7, 0.6, 2.5, 0.6], check=True)
    iwae["check"]["monte_carlo"]["handwritten"] = {"mean": 44.786, "sd": 0.08, "seeds": 64}
    checks = render.checks(_step_results([rows[0], iwae])).splitlines()
    assert checks[-1].startswith("- the two bounds on VAE 64-128-8, hand-written, differ by 0.600 nats per point, 39 ")


def test_step_table_section_says_machine_command_date_and_mode(tmp_path, monkeypatch):
    render = _load("render_step_table")
    results = _step_results([_step_row("VAE 64-128-8", "ELBO", 128, [2.0, 0.7, 2.4, 0.4], check=True)])
    monkeypatch.setattr(render, "RESULTS", tmp_path / "step_table.json")
    assert render.step_table_section() == ""  # not measured yet: no section
    (tmp_path / "step_table.json").write_text(json.dumps(results))
    section = render.step_table_section()
    for text in ("Some CPU @ 2.0GHz (2 CPUs", "`python bench/step_table.py --quick`", "2026-12-05T01:00:00+00:00",
                 "**quick mode**", "load average was 1.5 to 9.2", "NumPyro 0.22.0", "jax 0.10.2",
                 "| 64-128-8 ELBO, batch 128 | 1.23 | 2.00 | 0.70 | 2.40 | 0.40 | 2.50 | 66 |"):
        assert text in section, text


def test_committed_step_table_has_every_row_and_is_on_the_benchmarks_page():
    results = json.loads((BENCH / "step_table.json").read_text())
    rows = {(row["network"], row["bound"], row["batch"]) for row in results["rows"]}
    assert rows == {(net, bound, batch) for net in ("VAE 64-128-8", "VAE 784-400-32") for bound in ("ELBO", "IWAE5")
                    for batch in (128, 1024)}
    for row in results["rows"]:
        assert set(row["ratio"]) == {"ppgen default", "ppgen compile=True", "Pyro SVI", "NumPyro jit"}
        assert all(value > 0 for value in row["ratio"].values())
    assert {"cpu", "cpu_count", "date"} <= set(results["machine"]) and results["command"].startswith("python bench/")
    page = (BENCH.parent / "docs" / "benchmarks.md").read_text()
    assert _load("render_step_table").step_table(results) in page


def test_numpyro_stays_out_of_ppgen():
    """NumPyro is a bench-only contender: its worker compiles, and nothing in the package imports it."""
    worker = BENCH / "numpyro_contender" / "svi.py"
    compile(worker.read_text(), str(worker), "exec")
    root = BENCH.parent
    for path in [path for package in ("ppgen", "models", "inference") for path in (root / package).rglob("*.py")]:
        source = path.read_text()
        assert "import numpyro" not in source and "from numpyro" not in source, path


def test_epoch_clock_marks_every_epoch_of_a_fit():
    """step_table.py times ppgen.fit's steady state between the ends of its epochs: the hook must see each one."""
    code = (f"import sys; sys.path.insert(0, {str(BENCH)!r}); import torch, ppgen; from ppgen import datasets; "
            "from step_contenders import epoch_clock, network; x = datasets.digits(binarize=True)[:256]\n"
            "with epoch_clock() as marks: ppgen.fit(network(64, 8, (16,)), x, epochs=3, batch_size=128, "
            "progress=False)\n"
            "assert len(marks) == 3 and marks == sorted(marks), marks")
    run_with_bench(code)


def test_pyro_and_ppgen_compute_the_hand_written_bounds_on_the_same_draws():
    """The step table's contenders train on the same bound: Pyro's own Trace_ELBO and RenyiELBO(alpha=0, 5 particles,
    vectorised), and ppgen's ELBO and IWAE(k=5), equal bench/handwritten.py's losses on the same weights and draws,
    and the two bounds differ (IWAE5 is the tighter)."""
    code = (f"import sys; sys.path.insert(0, {str(BENCH)!r}); import math; from ppgen import datasets; "
            "from step_contenders import network, same_draws\n"
            "vae, x = network(64, 8, (128,)), datasets.digits(binarize=True)[:128]\n"
            "loss = {bound: same_draws(vae, x, bound, seed=3) for bound in ('elbo', 'iwae5')}\n"
            "for values in loss.values():\n"
            "    assert all(math.isclose(v, values['handwritten'], rel_tol=1e-5) for v in values.values()), loss\n"
            "assert loss['iwae5']['handwritten'] < loss['elbo']['handwritten'] - 0.1, loss")
    run_with_bench(code)
