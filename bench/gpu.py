"""Issue 13's GPU figures: training throughput at batch 1024 against the hand-written loop, and what the divergence
guard's read-back of each step costs there.

For the two VAEs of ``workloads.NETWORKS`` with ``ELBO()`` and ``IWAE(k=5)``, batch 1024, fused Adam (lr 1e-3) on
every path, the same initial weights, on ``--points`` rows of generated binary data (Bernoulli(0.3) pixels, made on
the device: throughput does not depend on what the pixels show):

- ms per step of the hand-written loop (``handwritten.train``, which reads its loss back once an epoch);
- ms per step of ``ppgen.training.fitting.train``, the loop of ``ppgen.fit``, running the captured and the compiled step
  (set up beforehand, untimed), judged by each guard: :class:`ppgen.training.guard.Guard`, which reads each step's loss
  back, and :class:`ppgen.training.guard.DeviceGuard`, which reads back once an epoch;
- the host-device synchronisations per step of each path, counted in its untimed warm-up run
  (``torch.cuda.set_sync_debug_mode("warn")``, one warning each);
- seconds of a whole ``ppgen.fit`` (plain, capture, compiled: set-up, trace and compilation included) against the
  hand-written loop's, for ``--epochs`` epochs.

Paths interleaved, ``--repeats`` rounds, the median. Absolute times are labelled with the card and ratios are
against the hand-written loop in the same run. Needs CUDA: where ``torch.cuda.is_available()`` is False it says so
and writes nothing; ``--device cpu`` runs the same measurements on CPU (one thread), to check the script, and prints
them instead of writing ``bench/gpu.json``.

Run: ``python bench/gpu.py [--points N] [--epochs E] [--repeats R] [--device cpu]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from datetime import datetime, timezone
from functools import partial
from pathlib import Path

import torch

import handwritten  # bench/ is on sys.path when a script in it runs
import ppgen
import ppgen.training.guard
from ppgen.program.inputs import as_batch
from ppgen.training.loop import train
from ppgen.training.optimizers import adam
from timing import timed
from workloads import BOUNDS, LR, NETWORKS, SEED, captured, model_of

BENCH = Path(__file__).resolve().parent
BATCH_SIZE = 1024
#: the workloads: keys of ``workloads.BOUNDS`` (the enumerated mixture is issue 13's CPU row only).
GPU_BOUNDS = ("elbo", "iwae5", "elbo784", "iwae784")
#: ppgen's stepping paths: (the step's ``compile``, the devices on which the guard judges where the step ran).
STEPPED = {"captured, host guard": ("capture", ()), "captured, device guard": ("capture", ("cpu", "cuda")),
           "compiled, host guard": (True, ()), "compiled, device guard": (True, ("cpu", "cuda"))}
FITS = {"fit, plain": False, "fit, capture": "capture", "fit, compiled": True}


def generated(bound: str, points: int, device: torch.device) -> torch.Tensor:
    """``points`` rows of Bernoulli(0.3) pixels, as many as ``bound``'s network takes, made on ``device``."""
    width = NETWORKS[BOUNDS[bound].network].x_dim
    generator = torch.Generator(device=device).manual_seed(SEED)
    return torch.bernoulli(torch.full((points, width), 0.3, device=device), generator=generator)


def waits(fn: Callable[[], object], device: torch.device) -> int:
    """How many times ``fn()`` made the host wait for the device: CUDA's sync debug mode warns at each (0 on CPU,
    where nothing waits). Untimed: each warning costs the host time."""
    if device.type != "cuda":
        fn()
        return 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def stepping(bound: str, x: torch.Tensor, path: str, epochs: int) -> Callable[[], object]:
    """``epochs`` epochs of ``path``, a key of :data:`STEPPED` or ``"handwritten"``, set up (step captured or
    compiled for both batch shapes) before it is returned."""
    vae = model_of(bound, x)
    optimizer = adam(list(vae.parameters()), LR)
    generator = torch.Generator().manual_seed(SEED)
    if path == "handwritten":
        return partial(handwritten.train, partial(BOUNDS[bound].loss, vae), optimizer, x, epochs, BATCH_SIZE,
                       generator)
    compile, deferred = STEPPED[path]
    gradients = captured(vae, x, bound, compile, BATCH_SIZE)
    data = as_batch(x, name="data").to(x.device)  # the rows' index on the device too, as fit puts it

    def run() -> object:
        ppgen.training.guard.DEFERRED_DEVICES = deferred
        return train(gradients, optimizer, data, epochs, BATCH_SIZE, generator, progress=False)

    return run


def whole_fit(bound: str, x: torch.Tensor, compile: bool | str, epochs: int) -> None:
    ppgen.training.guard.DEFERRED_DEVICES = ("cuda",)  # the default
    ppgen.fit(model_of(bound, x), x, inference=BOUNDS[bound].backend(), epochs=epochs, batch_size=BATCH_SIZE, lr=LR,
              seed=SEED, device=x.device, progress=False, compile=compile)


def measure(bound: str, device: torch.device, points: int, epochs: int, repeats: int) -> dict:
    """Every path's medians for one workload: ms per step (and syncs per step) of the stepping paths, seconds of the
    whole fits, and each as a ratio to the hand-written loop's."""
    x = generated(bound, points, device)
    steps = epochs * -(-points // BATCH_SIZE)
    runs = {path: stepping(bound, x, path, epochs) for path in ["handwritten", *STEPPED]}
    runs |= {path: partial(whole_fit, bound, x, compile, epochs) for path, compile in FITS.items()}
    runs["whole handwritten"] = stepping(bound, x, "handwritten", epochs)
    # the warm-up (inductor's cache for the fits' compilations, CUDA's kernels) counts each path's waits
    syncs = {path: waits(run, device) for path, run in runs.items()}
    times: dict[str, list[float]] = {path: [] for path in runs}
    for round_ in range(repeats):
        for path in runs if round_ % 2 == 0 else list(runs)[::-1]:
            times[path].append(timed(runs[path], device=device)[0])
    median = {path: statistics.median(values) for path, values in times.items()}
    rows = {}
    for path in ["handwritten", *STEPPED]:
        rows[path] = {"ms_per_step": 1e3 * median[path] / steps, "ratio": median[path] / median["handwritten"],
                      "syncs_per_step": syncs[path] / steps}
    for path in FITS:
        rows[path] = {"seconds": median[path], "ratio": median[path] / median["whole handwritten"]}
    rows["whole handwritten"] = {"seconds": median["whole handwritten"]}
    return {"workload": BOUNDS[bound].name, "steps_per_run": steps, "rows": rows}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=16384, help="rows of generated data (default 16384)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per timed run (default 3)")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds (default 3)")
    parser.add_argument("--device", default="cuda", help="cuda (default), or cpu to check the script")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("bench/gpu.py: torch.cuda.is_available() is False: no GPU figures measured", file=sys.stderr)
        return
    if device.type == "cpu":
        torch.set_num_threads(1)
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU, 1 thread"
    results = {"card": card, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "command": " ".join(["python bench/gpu.py", *sys.argv[1:]]),
               "settings": {"batch_size": BATCH_SIZE, "points": args.points, "epochs_per_run": args.epochs,
                            "repeats": args.repeats, "lr": LR, "optimizer": "torch.optim.Adam(fused=True)",
                            "torch": torch.__version__},
               "workloads": []}
    for bound in GPU_BOUNDS:
        start = time.perf_counter()
        results["workloads"].append(measure(bound, device, args.points, args.epochs, args.repeats))
        print(f"  {BOUNDS[bound].name} on {card}: {time.perf_counter() - start:.0f} s", flush=True)
        if device.type == "cuda":  # after each workload: a run cut short keeps what it measured
            (BENCH / "gpu.json").write_text(json.dumps(results, indent=2) + "\n")
    if device.type == "cpu":
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
