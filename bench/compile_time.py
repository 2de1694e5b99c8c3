"""Seconds that ``fit(compile=True)`` spends capturing and compiling each batch shape, in a fresh process:
``python bench/compile_time.py BOUND [--header]``, BOUND a key of ``workloads.BOUNDS``.

Prints one JSON line, ``{"bound": ..., "header_s": ..., "shapes": {"128": s, "29": s}}``: for the full batch and the
last, smaller batch of an epoch, the seconds of the first two steps of that shape (traced and checked against the plain
step, then compiled by inductor and checked again) as ``Gradients.capture_seconds`` records them, inductor's one-time
imports excluded. Inductor builds C++ kernels against a precompiled header, which it makes once per cache folder
(``TORCHINDUCTOR_CACHE_DIR``); with ``--header`` a one-line function is compiled first, and timed as ``header_s``, so
that the shapes' seconds are those of a new model on a machine where inductor has run before. ``run.py`` runs this
script twice on one empty folder, with ``--header`` and then without: a new graph compiled, then the same graph found in
the cache, as in a user's second run of the same model.
"""

from __future__ import annotations

import json
import sys
import time

import pyro
import torch
import torch._inductor.compile_fx  # noqa: F401 - inductor's imports, once per process, out of the timing

from workloads import BATCH_SIZE, BOUNDS, captured, data_of, model_of


def main() -> None:
    bound = sys.argv[1]
    torch.set_num_threads(1)
    pyro.set_rng_seed(0)
    header = None
    if "--header" in sys.argv[2:]:
        start = time.perf_counter()
        torch.compile(lambda x: x.sin() + 1)(torch.ones(3))
        header = round(time.perf_counter() - start, 2)
    train, _ = data_of(bound, torch.device("cpu"))
    gradients = captured(model_of(bound, train), train, bound, True)
    last = len(train) % BATCH_SIZE or BATCH_SIZE
    seconds = {str(key[1][0][0]): round(value, 2) for key, value in gradients.capture_seconds.items()}
    assert set(seconds) == {str(BATCH_SIZE), str(last)}, seconds
    print(json.dumps({"bound": BOUNDS[bound].name, "header_s": header, "shapes": seconds}))


if __name__ == "__main__":
    main()
