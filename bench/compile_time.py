"""Seconds that ``fit(compile=True)`` spends on its first step of each batch shape, in a fresh process:
``python bench/compile_time.py BOUND``, BOUND a key of ``workloads.BOUNDS``.

Prints one JSON line, ``{"bound": ..., "shapes": {"128": s, "29": s}}``: for the full batch (traced, compiled by
inductor and checked against the plain step) and the last, smaller batch of an epoch (traced and checked), the
seconds of that first step as ``Gradients.capture_seconds`` records them, inductor's one-time imports excluded.
Whether inductor finds its kernels already built depends on ``TORCHINDUCTOR_CACHE_DIR``: ``run.py`` runs this script
twice on one empty folder, so that the first run compiles from nothing and the second finds the first's cache, as a
user's second run of the same model on the same machine does.
"""

from __future__ import annotations

import json
import sys

import pyro
import torch
import torch._inductor.compile_fx  # noqa: F401 - inductor's imports, once per process, out of the timing

from workloads import BATCH_SIZE, BOUNDS, captured, data_of, model_of


def main() -> None:
    bound = sys.argv[1]
    torch.set_num_threads(1)
    pyro.set_rng_seed(0)
    train, _ = data_of(bound, torch.device("cpu"))
    gradients = captured(model_of(bound, train), train, bound, True)
    last = len(train) % BATCH_SIZE or BATCH_SIZE
    seconds = {str(key[1][0][0]): round(value, 2) for key, value in gradients.capture_seconds.items()}
    assert set(seconds) == {str(BATCH_SIZE), str(last)}, seconds
    print(json.dumps({"bound": BOUNDS[bound].name, "shapes": seconds}))


if __name__ == "__main__":
    main()
