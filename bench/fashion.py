"""Time per epoch on Fashion-MNIST's 60,000 training images: the 784-400-32 VAE through ``ppgen.fit`` (the plain
step, ``compile="capture"`` and ``compile=True``, their trace and compilation included) against the hand-written loop,
as ratios.

``VAE(x_dim=784, z_dim=32, hidden=(400,))`` on the binarised images (pixels >= 0.5), batch 128, fused Adam (lr 1e-3)
on both sides, the same initial weights for every run; after an untimed warm-up epoch of each path on the first 2048
images (imports, and inductor's cache of the compiled step, as a user's second run finds it), one epoch per run,
the paths interleaved, ``repeats`` rounds, the median, one torch thread. Reads the IDX files that Debian's
``dataset-fashion-mnist`` installs; where they are absent the script says so and writes nothing. Writes
``bench/fashion.json``.

Run: ``python bench/fashion.py [--repeats R]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import datetime, timezone
from functools import partial
from pathlib import Path

import torch

import handwritten  # bench/ is on sys.path when a script in it runs
import ppgen
from ppgen import datasets, inference
from ppgen.models import VAE
from ppgen.training.optimizers import adam
from workloads import BATCH_SIZE, LR, SEED

RESULTS = Path(__file__).resolve().parent / "fashion.json"
#: images of the warm-up epoch that each path runs, untimed, before the timed ones.
WARM_UP = 2048
#: ppgen's paths, by the value of ``fit(..., compile=...)`` each runs.
COMPILE = {"plain": False, "capture": "capture", "compiled": True}
BOUNDS = {"ELBO": (inference.ELBO, handwritten.elbo_loss),
          "IWAE(k=5)": (partial(inference.IWAE, k=5), partial(handwritten.iwae_loss, k=5))}


def network() -> VAE:
    torch.manual_seed(SEED)
    return VAE(x_dim=784, z_dim=32, hidden=(400,))


def epoch(path: str, bound: str, x: torch.Tensor) -> float:
    """Seconds of one epoch of ``path`` (``"plain"``, ``"capture"``, ``"compiled"`` or ``"handwritten"``); ppgen's
    set-up, trace and compilation included."""
    vae = network()
    backend, loss = BOUNDS[bound]
    if path == "handwritten":
        optimizer = adam(list(vae.parameters()), LR)  # ppgen.fit's default optimiser
        generator = torch.Generator().manual_seed(SEED)
        start = time.perf_counter()
        handwritten.train(partial(loss, vae), optimizer, x, 1, BATCH_SIZE, generator)
        return time.perf_counter() - start
    start = time.perf_counter()
    ppgen.fit(vae, x, inference=backend(), epochs=1, batch_size=BATCH_SIZE, lr=LR, seed=SEED, progress=False,
              compile=COMPILE[path])
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=1, help="interleaved epochs per path (default 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    try:
        x = (datasets.fashion_mnist(split="train") > 0.5).float()
    except (FileNotFoundError, OSError) as error:
        print(f"Fashion-MNIST is not installed here ({error}); nothing measured")
        return
    paths = (*COMPILE, "handwritten")
    rows = []
    for bound in BOUNDS:
        for path in paths:  # one-time costs (imports, inductor's cache of this step) out of the timed epochs
            epoch(path, bound, x[:WARM_UP])
        seconds = {path: [] for path in paths}
        for round_ in range(args.repeats):
            for path in paths if round_ % 2 == 0 else paths[::-1]:
                seconds[path].append(epoch(path, bound, x))
        median = {path: statistics.median(values) for path, values in seconds.items()}
        rows.append({"bound": bound, **{f"{path}_s": median[path] for path in paths},
                     **{f"{path}_ratio": median[path] / median["handwritten"] for path in COMPILE}})
        print(rows[-1], flush=True)
    RESULTS.write_text(json.dumps({"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                   "images": len(x), "repeats": args.repeats, "threads": 1, "rows": rows,
                                   "optimizer": "torch.optim.Adam(fused=True)",
                                   "command": "python bench/fashion.py" + (f" --repeats {args.repeats}"
                                                                           if args.repeats != 1 else "")},
                                  indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
