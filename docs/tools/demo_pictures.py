"""Regenerate the README's pictures: run the demo's ``ppgen fit`` and copy its sample grid and latent plot.

Usage (``make docs`` runs it with the demo's own arguments, ``DEMO`` in the Makefile)::

    python docs/tools/demo_pictures.py fit --model vae --data digits --inference iwae --k 5 --epochs 300

Writes ``docs/images/demo-samples.png``, ``docs/images/demo-latent.png`` and ``docs/images/demo.json``, which
records the arguments and the run's test log-likelihood; ``tests/test_site.py`` checks the record against the
Makefile and the pictures against a fresh run of the same code.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

from ppgen.cli import main

IMAGES = Path(__file__).resolve().parents[1] / "images"
PICTURES = {"samples.png": "demo-samples.png", "latent.png": "demo-latent.png"}


def make_pictures(args: list[str], out: Path) -> dict:
    """Run ``ppgen <args> --out RUN`` in a temporary folder and copy its pictures into ``out``.

    Returns:
        The run's metrics.json, as a dict.
    """
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        code = main([*args, "--out", str(run), "--no-progress"])
        if code != 0:
            raise SystemExit(f"ppgen {' '.join(args)} exited with {code}")
        out.mkdir(parents=True, exist_ok=True)
        for name, target in PICTURES.items():
            shutil.copyfile(run / name, out / target)
        return json.loads((run / "metrics.json").read_text())


if __name__ == "__main__":
    arguments = sys.argv[1:]
    metrics = make_pictures(arguments, IMAGES)
    # no timings: the record changes only when the pictures do
    record = {"args": arguments, "test_log_likelihood": metrics["test_log_likelihood"], "eval_k": metrics["eval_k"]}
    (IMAGES / "demo.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {', '.join(PICTURES.values())} and demo.json into {IMAGES}")
