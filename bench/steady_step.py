"""Steady-state time of one training step, ppgen's (the training loop's own step: loss, gradient, divergence guard,
update) against the hand-written eager loop with fused Adam, in one process, interleaved, on one thread.

Each contender runs on its own copy of the same network and data; after its warm-up (the trace of the batch shape,
and with ``compile=True`` its compilation) a repeat times ``--steps`` steps on random batches of 128 rows in process
CPU time; the repeats go round the contenders in turn, and the figure is the median over repeats, divided by the
hand-written loop's median. ``before`` contenders run the step as ppgen did before the update went in: the update
outside the graph (the guard's copy of every parameter, then ``torch.optim.Adam(fused=True).step()``), and with
``compile=True`` the graph compiled through ``torch.compile`` (dynamo's guards checked at every call).

    OMP_NUM_THREADS=1 python bench/steady_step.py [--steps 100] [--repeats 7] [--profile] [--out FILE]

writes its rows (and the command, the machine's torch and the date) to ``--out``, by default bench/steady_step.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import pyro
import torch

import workloads  # bench/ is on sys.path when a script in it runs
from ppgen.program import fastpath
from ppgen.program.inputs import Batch
from ppgen.program.structure import inspect
from ppgen.run.state import RunState
from ppgen.training.guard import Guard
from ppgen.training.loop import step
from ppgen.training.optimizers import adam
from ppgen.training.step import Gradients
from timing import timed
from workloads import BATCH_SIZE, BOUNDS, LR

#: contender -> (compile, update in the graph)
#: (the plain and the captured step apply the update as before: the guard's copy, then the fused Adam's step)
PPGEN = {"plain": (False, False), "capture": ("capture", False), "compiled before": (True, False),
         "compiled": (True, True)}


def batches(n: int, seed: int) -> Callable[[], torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return lambda: torch.randperm(n, generator=generator)[:BATCH_SIZE]


def ppgen_step(bound: str, train: torch.Tensor, compile: bool | str, in_graph: bool) -> Callable[[], None]:
    vae = workloads.model_of(bound, train)
    optimizer = adam(list(vae.parameters()), LR)
    gradients = Gradients(vae, inspect(vae, train[:2]), BOUNDS[bound].backend(), compile)
    state = RunState()
    guard = Guard(vae, optimizer, state, "raise", 100.0)
    guard.update = gradients.updating(optimizer if in_graph else None)
    if in_graph and guard.update is None:
        raise RuntimeError("the default Adam's update was not taken into the step")
    draw = batches(len(train), 1)
    vae.train()

    def one() -> None:
        rows = draw()
        step(gradients, guard, Batch((train[rows],), rows, len(train)), state)

    inductor = fastpath._inductor
    if not in_graph:
        fastpath._inductor = lambda graph, inputs: torch.compile(graph, dynamic=False)
    try:
        with pyro.validation_enabled(False):
            for _ in range(3):  # traced, compiled, replayed
                one()
    finally:
        fastpath._inductor = inductor
    if gradients.fallbacks or gradients.uncompiled:
        raise RuntimeError(f"not captured: {gradients.fallbacks or gradients.uncompiled}")
    return one


def handwritten_step(bound: str, train: torch.Tensor) -> Callable[[], None]:
    vae = workloads.model_of(bound, train)
    optimizer = adam(list(vae.parameters()), LR)
    loss_fn, draw = BOUNDS[bound].loss, batches(len(train), 1)

    def one() -> None:
        loss = loss_fn(vae, train[draw()])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    one()
    return one


def ms_per_step(one: Callable[[], None], steps: int) -> float:
    """Process CPU milliseconds per step over ``steps`` calls of ``one()``, Pyro's argument validation off."""
    with pyro.validation_enabled(False):
        return 1e3 * timed(one, steps, clock=time.process_time)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--bounds", nargs="*", default=["elbo", "iwae5", "elbo784", "iwae784"])
    parser.add_argument("--profile", action="store_true", help="profile 50 compiled steps of each bound")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_suffix(".json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore", DeprecationWarning)
    rows = []
    for bound in args.bounds:
        train, _ = workloads.data_of(bound, torch.device("cpu"))
        steps = {"handwritten": handwritten_step(bound, train)}
        steps.update({name: ppgen_step(bound, train, *how) for name, how in PPGEN.items()})
        times: dict[str, list[float]] = {name: [] for name in steps}
        for _ in range(args.repeats):
            for name, one in steps.items():
                times[name].append(ms_per_step(one, args.steps))
        median = {name: statistics.median(values) for name, values in times.items()}
        row = {"bound": BOUNDS[bound].name, "handwritten ms/step": round(median["handwritten"], 3),
               **{name: round(median[name] / median["handwritten"], 3) for name in PPGEN}}
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.profile:
            with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
                ms_per_step(steps["compiled"], 50)
            print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=15), flush=True)
    args.out.write_text(json.dumps({
        "command": "OMP_NUM_THREADS=1 python bench/steady_step.py " + " ".join(sys.argv[1:]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.processor() or platform.system()}, torch {torch.__version__}, "
                   "one thread, process CPU time",
        "unit": "median ms per step of each contender over the hand-written loop's; handwritten in ms/step",
        "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
