"""Regenerate the README's pictures: run the demo's ``ppgen fit`` and copy its sample grid and latent plot.

Usage (``make docs`` runs it with the demo's own arguments, ``DEMO`` in the Makefile)::

    OMP_NUM_THREADS=1 python docs/tools/demo_pictures.py fit --model vae --data digits --inference iwae --k 5 ...

Writes ``docs/images/demo-samples.png``, ``docs/images/demo-latent.png`` and ``docs/images/demo.json``, which
records the arguments, the run's test log-likelihood, the title of its sample picture (what the grid shows) and where
the pictures were drawn (torch's version and the CPU instructions its kernels used): the pictures are bitwise the same
on a rerun there. ``tests/test_site.py`` reruns the demo and compares the decoded pixels with the committed ones.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from ppgen.cli import main

IMAGES = Path(__file__).resolve().parents[1] / "images"
PICTURES = {"samples.png": "demo-samples.png", "latent.png": "demo-latent.png"}


def platform() -> dict:
    """Where a run is bitwise repeatable: torch's version and the CPU instruction set its kernels dispatch to."""
    import torch

    return {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def sample_title(run: Path) -> str:
    """The title of a run's sample picture, as ``ppgen fit`` draws it (decoder means or draws x ~ p(x))."""
    import ppgen
    from ppgen.cli import common

    return common.pictured_samples(ppgen.load(run / "fit.pt"), 1, image=True)[1]


def make_pictures(args: list[str], out: Path) -> dict:
    """Run ``ppgen <args> --out RUN`` in a temporary folder and copy its pictures into ``out``.

    Returns:
        The run's metrics.json, as a dict, with the sample picture's title under ``"samples_title"``.
    """
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        code = main([*args, "--out", str(run), "--no-progress"])
        if code != 0:
            raise SystemExit(f"ppgen {' '.join(args)} exited with {code}")
        out.mkdir(parents=True, exist_ok=True)
        for name, target in PICTURES.items():
            shutil.copyfile(run / name, out / target)
        metrics = json.loads((run / "metrics.json").read_text())
        return {**metrics, "samples_title": sample_title(run)}


def pixels(path: Path) -> np.ndarray:
    """A PNG decoded to its pixels, an array [height, width, channels] of floats in [0, 1]."""
    import matplotlib.image

    return matplotlib.image.imread(path)


if __name__ == "__main__":
    arguments = sys.argv[1:]
    metrics = make_pictures(arguments, IMAGES)
    # no timings: the record changes only when the pictures do
    record = {"args": arguments, "test_log_likelihood": metrics["test_log_likelihood"], "eval_k": metrics["eval_k"],
              "samples_title": metrics["samples_title"], "platform": platform()}
    (IMAGES / "demo.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {', '.join(PICTURES.values())} and demo.json into {IMAGES}")
