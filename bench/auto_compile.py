"""``fit(compile="auto")``, the default, against ``compile=False``, ``"capture"`` and ``True`` on fits from a few
steps to a few thousand, and the costs from which the rule of :mod:`ppgen.program.automatic` takes its break-even
figures. Every figure is CPU time, of the process and of the children it waited for (inductor's g++, inductor made to
compile in the process): on a shared machine it does not grow with the other jobs' load as wall time does.

1. Costs, for each workload in fresh processes (one torch thread): the plain step t_p, the first trace of the process
   T1 and a later one T2 (seconds beyond a plain step: the capture's own call runs the plain step to check the graph),
   the captured step t_c, a compilation C and the compiled step t_k (each step time the least of 20 calls), for the
   full batch of 128 (``Gradients`` as ``ppgen.fit`` builds it, the parameters held still). Twice over one empty
   inductor cache folder, after inductor's precompiled header was made in it: the first compiles the graph anew
   (cold), the second finds it (warm), as a user's second run of the same model. From them the break-even steps of a
   capture, T / (t_p - t_c), a cold compilation in traces, C_cold / T2, the warm one as a fraction of the cold one,
   and t_k / t_c.
2. Fits: ``ppgen.fit`` of each workload for each number of epochs (1437 points, batch 128: 12 steps an epoch, the last
   of 29 rows) under each ``compile``: each path in a fresh process of its own, which runs the fits of every length in
   turn, shortest first, the four processes side by side, ``--repeats`` rounds; each fit's time from the call to the
   return (set-up, trace and compilation included), the median ratio to ``compile=False``'s fit of the same length in
   the same round. Every fit of a workload shares one inductor cache folder, warmed first by one fit of each path, so
   ``compile=True`` and ``"auto"`` compile warm, as in a second run of the same model; the choices ``"auto"`` made
   (its INFO records) are kept. ``"auto"``'s first trace in its process is that of the first fit long enough to
   capture, as in a user's process that runs one fit; ``"capture"``'s and ``True``'s is that of their first fit, one
   epoch, whose ratio holds torch's one-time set-up of the trace.

Costs and fits run side by side, each measurement in processes of its own. Writes ``bench/auto_compile.json``. Run:
``python bench/auto_compile.py [--epochs 1 4 16 64 256] [--repeats 3] [--bounds elbo] [--cost-bounds elbo mixture]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyro
import torch

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "auto_compile.json"
#: ``fit(compile=...)`` by the name the figures give it.
PATHS = {"plain": False, "capture": "capture", "compiled": True, "auto": "auto"}
#: timed calls of each kind in the costs' measurement, the least taken.
CALLS = 20


def cpu() -> float:
    """Seconds of CPU this process and its waited-for children (inductor's g++) have used: on a shared machine a
    process's CPU time, unlike its wall time, does not grow with the other jobs' load."""
    times = os.times()
    return time.process_time() + times.children_user + times.children_system


def child_costs(bound: str) -> dict:
    """Part 1 in this process: the costs of ``bound``'s step for batches of 128 rows."""
    import torch._inductor.compile_fx  # noqa: F401 - inductor's imports, once per process, out of the timing

    from ppgen.program.inputs import Batch
    from ppgen.program.structure import inspect
    from ppgen.training.step import Gradients
    from workloads import BATCH_SIZE, BOUNDS, data_of, model_of

    train, _ = data_of(bound, torch.device("cpu"))
    model = model_of(bound, train)
    structure, backend = inspect(model, train[:2]), BOUNDS[bound].backend()
    batch = Batch((train[:BATCH_SIZE],), torch.arange(BATCH_SIZE), len(train))

    def least_call(step: Gradients) -> float:
        times = []
        for _ in range(CALLS):
            start = cpu()
            step(batch)
            times.append(cpu() - start)
        return min(times)

    def one_call(step: Gradients) -> float:
        start = cpu()
        step(batch)
        return cpu() - start

    model.train()
    with pyro.validation_enabled(False):
        plain = Gradients(model, structure, backend, False)
        one_call(plain)
        t_p = least_call(plain)
        first, later = Gradients(model, structure, backend, "capture"), Gradients(model, structure, backend, "capture")
        trace_1, trace_2 = one_call(first) - t_p, one_call(later) - t_p
        t_c = least_call(later)
        later.compile = True  # the shape's next call compiles its graph, as fit(compile=True)'s second call does
        compile_seconds = one_call(later) - t_c
        if later.uncompiled or later.fallbacks:
            raise RuntimeError(f"{bound}: not compiled: {later.uncompiled or later.fallbacks}")
        t_k = least_call(later)
    return {"plain_ms": t_p * 1e3, "first_trace_s": trace_1, "trace_s": trace_2, "captured_ms": t_c * 1e3,
            "compile_s": compile_seconds, "compiled_ms": t_k * 1e3}


def child_fits(bound: str, path: str, epochs: list[int]) -> list[dict]:
    """Part 2 in this process: CPU seconds of one ``ppgen.fit`` of ``bound`` under ``path`` for each number of
    ``epochs`` in turn, and the choices of ``"auto"`` in each."""
    import ppgen
    from workloads import BATCH_SIZE, BOUNDS, LR, SEED, data_of, model_of

    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    log = logging.getLogger("ppgen.program.automatic")
    log.setLevel(logging.INFO)
    log.addHandler(Keep())
    train, _ = data_of(bound, torch.device("cpu"))
    results = []
    for e in epochs:
        model = model_of(bound, train)
        records.clear()
        start = cpu()
        fit = ppgen.fit(model, train, inference=BOUNDS[bound].backend(), epochs=e, batch_size=BATCH_SIZE, lr=LR,
                        seed=SEED, progress=False, compile=PATHS[path])
        results.append({"seconds": cpu() - start, "loss": fit.history[-1], "auto": list(records)})
    return results


def child(argv: list[str]) -> None:
    torch.set_num_threads(1)
    pyro.set_rng_seed(0)
    if argv[0] == "header":  # inductor's precompiled header, made once per cache folder
        torch.compile(lambda x: x.sin() + 1)(torch.ones(3))
        result: dict = {}
    elif argv[0] == "costs":
        result = child_costs(argv[1])
    else:
        result = child_fits(argv[1], argv[2], [int(e) for e in argv[3:]])
    print(json.dumps(result))


def run_child(cache: str, *args: object) -> subprocess.Popen:
    """This script in a fresh process (``--child``), one torch thread, inductor compiling in that process (its g++
    waited for, so that its CPU time is counted), over the inductor cache folder ``cache``."""
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache, "OMP_NUM_THREADS": "1", "TORCHINDUCTOR_COMPILE_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--child", *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def result(child: subprocess.Popen) -> Any:
    out, err = child.communicate()
    if child.returncode != 0:
        raise RuntimeError(f"{child.args}: {err[-3000:]}")
    return json.loads(out.splitlines()[-1])


def costs(bound: str) -> dict:
    """Part 1 for ``bound``: cold, then warm, over one new cache folder."""
    with tempfile.TemporaryDirectory() as cache:
        result(run_child(cache, "header"))
        cold = result(run_child(cache, "costs", bound))
        warm = result(run_child(cache, "costs", bound))
    print(bound, "costs", json.dumps({"cold": cold, "warm": warm}), flush=True)
    saving = cold["plain_ms"] - cold["captured_ms"]
    return {"cold": cold, "warm": warm,
            "capture_break_even": {"first": 1e3 * cold["first_trace_s"] / saving,
                                   "later": 1e3 * cold["trace_s"] / saving},
            "cold_compile_traces": cold["compile_s"] / cold["trace_s"],
            "warm_of_cold": warm["compile_s"] / cold["compile_s"],
            "compiled_ratio": max(cold["compiled_ms"] / cold["captured_ms"], warm["compiled_ms"] / warm["captured_ms"])}


def fits(bound: str, epochs: list[int], repeats: int) -> list[dict]:
    """Part 2 for ``bound``: a row per number of epochs, the median CPU seconds and ratio to plain of each path."""
    from workloads import BATCH_SIZE, data_of

    train, _ = data_of(bound, torch.device("cpu"))
    per_epoch = -(-len(train) // BATCH_SIZE)
    rounds: list[dict[str, list[dict]]] = []
    with tempfile.TemporaryDirectory() as cache:
        result(run_child(cache, "header"))
        for path in PATHS:  # a run of each path before: the cache warm, as in a second run of the same model
            result(run_child(cache, "fits", bound, path, max(epochs)))
        for round_ in range(repeats):  # the paths side by side, each in its own process, all lengths in turn
            children = {path: run_child(cache, "fits", bound, path, *epochs) for path in PATHS}
            rounds.append({path: result(child) for path, child in children.items()})
            print(bound, round_, {p: [round(f["seconds"], 2) for f in r] for p, r in rounds[-1].items()}, flush=True)
    rows = []
    for i, e in enumerate(epochs):
        seconds = {p: [r[p][i]["seconds"] for r in rounds] for p in PATHS}
        ratios = {p: [r[p][i]["seconds"] / r["plain"][i]["seconds"] for r in rounds] for p in PATHS}
        rows.append({"epochs": e, "steps": e * per_epoch, **{f"{p}_s": statistics.median(seconds[p]) for p in PATHS},
                     **{f"{p}_ratio": statistics.median(ratios[p]) for p in PATHS},
                     "auto_max_ratio": max(ratios["auto"]), "auto_choices": rounds[-1]["auto"][i]["auto"]})
    return rows


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        child(argv[1:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, nargs="+", default=[1, 4, 16, 64, 256])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bounds", nargs="+", default=["elbo"], help="keys of workloads.BOUNDS: fits")
    parser.add_argument("--cost-bounds", nargs="+", default=["elbo", "mixture"],
                        help="keys of workloads.BOUNDS: costs (a workload whose data are not installed is left out)")
    args = parser.parse_args(argv)
    import ppgen.program.automatic as rule
    from workloads import BOUNDS

    from workloads import data_of

    started = time.perf_counter()
    bounds = []
    for bound in dict.fromkeys([*args.bounds, *args.cost_bounds]):
        try:
            data_of(bound, torch.device("cpu"))
            bounds.append(bound)
        except FileNotFoundError as error:
            print(f"{bound}: left out, its data are not installed ({error})")
    # every measurement in processes of its own, side by side: CPU times, which the others' load leaves alone
    with ThreadPoolExecutor(max_workers=2 * len(bounds)) as pool:
        measured = {bound: pool.submit(costs, bound) for bound in bounds}
        fitted = {bound: pool.submit(fits, bound, sorted(args.epochs), args.repeats) for bound in bounds
                  if bound in args.bounds}
        rows = [{"bound": BOUNDS[bound].name, "key": bound, "costs": measured[bound].result(),
                 "fits": fitted[bound].result() if bound in fitted else []} for bound in bounds]
    priors = {name: getattr(rule, name) for name in ("PROBES", "CAPTURE_BREAK_EVEN", "FIRST_CAPTURE_BREAK_EVEN",
                                                     "COLD_COMPILE_TRACES", "WARM_OF_COLD", "COMPILED_RATIO")}
    command = "python bench/auto_compile.py " + " ".join(argv) if argv else "python bench/auto_compile.py"
    RESULTS.write_text(json.dumps({"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                   "command": command.strip(), "threads": 1, "repeats": args.repeats,
                                   "torch": torch.__version__, "priors": priors, "rows": rows,
                                   "seconds": round(time.perf_counter() - started)}, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
