"""Every script in bench/ imports: a name moved in ppgen that a benchmark still imports from its old place breaks
``make bench`` before it measures anything (bench/distributed.py read ``adam`` from ``ppgen.training.fitting`` after it
moved to ``ppgen.training.optimizers``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"


def test_every_benchmark_script_imports():
    scripts = sorted(path.stem for path in BENCH.glob("*.py"))
    assert "run" in scripts and "choice_of_d" in scripts
    # in a fresh process: the scripts' module names (evaluate, scale, ...) must not shadow anything here
    code = f"import sys; sys.path.insert(0, {str(BENCH)!r}); " + "; ".join(f"import {name}" for name in scripts)
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
