"""Every script in bench/ imports: a name moved in ppgen that a benchmark still imports from its old place breaks
``make bench`` before it measures anything (bench/distributed.py read ``adam`` from ``ppgen.training.fitting`` after it
moved to ``ppgen.training.optimizers``)."""

from __future__ import annotations

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
