"""Where the time of one steady training step goes: ppgen's compiled step (``compile=True``: the loss, its gradient,
the guard's (loss, gradient norm) and the default Adam's update in one inductor graph, called by the training loop's
``step``, as ``bench/steady_step.py`` builds it) against the hand-written eager loop with fused Adam, batch 128.

In one process, one torch thread, process CPU time:

- the two steps timed in turn, ``--repeats`` rounds of ``--steps`` steps: the median ms per step and of the ratio;
- ``torch.profiler`` over ``--steps`` steps of each (ppgen's graph compiled a second time with inductor's kernel
  profiling on, so that each of its C++ kernels shows as an event, and with its call in Python, not in C++ as ppgen
  compiles it on the CPU, so that the matrix products show as aten ops): each event's own CPU time per step, put into
  the category of the innermost event around it that has one (:data:`CATEGORIES`: the matrix products, the Bernoulli
  log-likelihood, the update, ...), and inductor's generated ``call`` (its input asserts and buffer allocations, which
  the C++ call of ppgen's timed step makes without the interpreter) apart; what no event covers is the Python around
  the ops (the loop, the guard, autograd's engine);
- ppgen's kernels one by one, and a ``cProfile`` of its step: the Python functions with the most time of their own.

    python bench/profile_step.py [--bound elbo784] [--steps 40] [--repeats 7] [--out FILE]

writes bench/profile_step.json (with the command, the machine and the load average): figures under the profiler are
inflated by it, and are read as shares of a step, beside the timed ms per step.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import pyro
import torch

import steady_step  # bench/ is on sys.path when a script in it runs
import workloads
from machine import machine
from ppgen.program import fastpath

#: category -> what an event's name holds (a substring; the first category that matches names the event). Inductor
#: names a fused kernel after the operations it holds: Adam's lerp marks the update's kernels (which also sum the
#: bias gradients over the batch and the gradient norm), binary_cross_entropy the likelihood's.
CATEGORIES = {
    "matrix products (mm, addmm)": ("aten::mm", "aten::addmm", "aten::bmm"),
    "Bernoulli log-likelihood and its gradient": ("binary_cross_entropy", "BinaryCrossEntropy"),
    "update (Adam; in ppgen's graph with the gradient norm and bias-gradient sums)": (
        "lerp", "Optimizer.step", "Optimizer.zero_grad", "_fused_adam"),
    "draws of eps (normal_)": ("aten::normal", "aten::randn"),
    "the batch's rows (index)": ("aten::index", "aten::randperm"),
    "inductor's call: input asserts, buffer allocations": ("Call CompiledFxGraph",),
}
OTHER_KERNELS = "other kernels and ops (encoder's scale, z, Normal log-densities, relu)"
UNCOVERED = "Python outside any op (loop, guard, autograd's engine)"


def category(event: torch.autograd.profiler_util.FunctionEvent) -> str:
    """The category of ``event``: its own, or the innermost enclosing event's that has one."""
    while event is not None:
        for name, marks in CATEGORIES.items():
            if any(mark in event.name for mark in marks):
                return name
        event = event.cpu_parent
    return OTHER_KERNELS


def profiled(one: Callable[[], None], steps: int) -> tuple[dict[str, float], dict[str, float]]:
    """ms per step of each category under ``torch.profiler``, and of each event (by name, its own time). The
    profiler's times are wall-clock, which a loaded machine stretches: each is taken as its share of the loop's wall
    time, times the loop's process CPU time per step (the step's CPU time under the profiler, its last entry)."""
    with pyro.validation_enabled(False), torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) \
            as profiler:
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(steps):
            one()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    scale = cpu / wall * 1e3 / steps  # an event's wall seconds in all -> ms of CPU per step
    by_category = {name: 0.0 for name in [*CATEGORIES, OTHER_KERNELS]}
    by_event: dict[str, float] = {}
    for event in profiler.events():
        own = event.self_cpu_time_total / 1e6 * scale
        by_category[category(event)] += own
        by_event[event.name] = by_event.get(event.name, 0.0) + own
    by_category[UNCOVERED] = cpu * 1e3 / steps - sum(by_category.values())
    by_category["step under the profiler (CPU)"] = cpu * 1e3 / steps
    return by_category, by_event


def python_profile(one: Callable[[], None], steps: int, top: int = 15) -> list[list]:
    """The ``top`` functions of ``cProfile`` by their own process CPU time: [function, ms per step, calls per step]."""
    profile = cProfile.Profile(time.process_time)
    with pyro.validation_enabled(False):
        profile.enable()
        for _ in range(steps):
            one()
        profile.disable()
    stats = pstats.Stats(profile).stats
    rows = sorted(stats.items(), key=lambda item: -item[1][2])[:top]
    return [[f"{Path(file).name}:{line}({name})" if file != "~" else name, round(own * 1e3 / steps, 4),
             round(calls / steps, 2)] for (file, line, name), (_, calls, own, _, _) in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bound", default="elbo784", choices=[b for b in workloads.BOUNDS
                                                                if workloads.BOUNDS[b].network is not None])
    parser.add_argument("--steps", type=int, default=40, help="steps a timed round, and profiled")
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_suffix(".json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore", DeprecationWarning)
    loads = [os.getloadavg()[0]]
    train, _ = workloads.data_of(args.bound, torch.device("cpu"))
    steps = {"handwritten": steady_step.handwritten_step(args.bound, train),
             "ppgen compile=True": steady_step.ppgen_step(args.bound, train, True, True)}
    options, fastpath.CPU_OPTIONS = fastpath.CPU_OPTIONS, {"cpp_wrapper": False, "cpp.enable_kernel_profile": True}
    try:
        kernels_seen = steady_step.ppgen_step(args.bound, train, True, True)
    finally:
        fastpath.CPU_OPTIONS = options
    times: dict[str, list[float]] = {name: [] for name in steps}
    for round_ in range(args.repeats):
        for name in steps if round_ % 2 == 0 else list(steps)[::-1]:
            times[name].append(steady_step.timed(steps[name], args.steps))
            loads.append(os.getloadavg()[0])
    ratio = statistics.median(a / b for a, b in zip(times["ppgen compile=True"], times["handwritten"]))
    profiles = {"handwritten": profiled(steps["handwritten"], args.steps),
                "ppgen compile=True": profiled(kernels_seen, args.steps)}
    loads.append(os.getloadavg()[0])
    kernels = {name[name.find("cpp_fused"):] if "cpp_fused" in name else name: ms for name, ms in
               profiles["ppgen compile=True"][1].items() if "cpp_fused" in name or name in ("aten::mm", "aten::addmm")}
    results = {
        "command": "python bench/profile_step.py " + " ".join(sys.argv[1:]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(1),
        "load_average": {"min": min(loads), "median": statistics.median(loads), "max": max(loads),
                         "cpu_count": os.cpu_count()},
        "workload": f"{workloads.BOUNDS[args.bound].name}, batch {workloads.BATCH_SIZE}",
        "unit": "ms of process CPU time per step, one torch thread",
        "timed": {"ms_per_step": {name: round(statistics.median(v), 3) for name, v in times.items()},
                  "ratio ppgen / handwritten": round(ratio, 3), "steps": args.steps, "repeats": args.repeats},
        "profiled": {name: {k: round(v, 4) for k, v in by_category.items()} for name, (by_category, _) in
                     profiles.items()},
        "ppgen_kernels": {k: round(v, 4) for k, v in sorted(kernels.items(), key=lambda item: -item[1])},
        "ppgen_python": python_profile(steps["ppgen compile=True"], args.steps),
    }
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps({k: results[k] for k in ("workload", "load_average", "timed", "profiled", "ppgen_kernels")},
                     indent=1))
    for row in results["ppgen_python"]:
        print(f"  {row[1]:8.4f} ms  {row[2]:6.2f} calls  {row[0]}")


if __name__ == "__main__":
    main()
