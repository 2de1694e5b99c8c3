"""NumPyro for the benchmarks alone: its own virtual environment, created on demand, and a worker process in it.

NumPyro is never a dependency of ppgen, nor imported by it or its tests: :func:`environment` creates
``build/bench-numpyro-venv`` (git-ignored, as all of ``build/``) with ``pip install`` of :data:`REQUIREMENTS` from the
package registry the first time a benchmark asks for it, and :class:`Worker` runs
``bench/numpyro_contender/svi.py`` there, one JSON command and answer a line, so that its timed runs interleave
with the PyTorch contenders' in the same benchmark.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
VENV = BENCH.parent / "build" / "bench-numpyro-venv"
REQUIREMENTS = ["numpyro==0.22.0", "jax[cpu]"]
WORKER = BENCH / "numpyro_contender" / "svi.py"
#: one thread for XLA on CPU, as torch.set_num_threads(1) on the PyTorch side.
XLA_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def environment() -> Path:
    """The virtual environment's Python, created with NumPyro and jax (CPU) installed if it is not there yet."""
    python = VENV / "bin" / "python"
    if not (python.exists() and subprocess.run([python, "-c", "import numpyro, jax"], capture_output=True).returncode
            == 0):
        print(f"creating {VENV} with {' '.join(REQUIREMENTS)} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", VENV], check=True)
        subprocess.run([python, "-m", "pip", "install", "--quiet", *REQUIREMENTS], check=True)
    return python


class Worker:
    """The NumPyro worker process: :meth:`ask` sends a command and returns its answer."""

    def __init__(self) -> None:
        env = {**os.environ, "XLA_FLAGS": XLA_FLAGS, "JAX_PLATFORMS": "cpu", "OMP_NUM_THREADS": "1"}
        self.process = subprocess.Popen([environment(), WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True, env=env)

    def ask(self, cmd: str, **fields: object) -> dict:
        self.process.stdin.write(json.dumps({"cmd": cmd, **fields}) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the NumPyro worker stopped (exit status {self.process.wait()}) on {cmd!r}")
        return json.loads(line)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
            self.process.stdin.close()
            self.process.wait(timeout=60)

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
