"""log p(x) at scale: ``Fit.log_prob(x, k)`` against a hand-written chunked loop, throughput and peak memory.

For K in (100, 1000, 5000) particles and N in (1e3, 1e4, 1e5) points (the 360 test digits tiled to N rows), both
sides estimate log p(x_n) = log (1/K) sum_k p(x_n, z_k) / q(z_k|x_n) with the VAE of the speed figures, trained
one epoch, in passes of at most ``ppgen.queries.density.PARTICLE_POINTS_PER_PASS`` particles x points (the chunk
budget a user sets; peak memory follows it, not N or K). Throughput is particle-points per second, as a ratio to the
hand-written loop, interleaved, one torch thread; peak memory is the resident set's peak above the level before
each query (``VmHWM`` after ``/proc/self/clear_refs``). The largest configurations take long on a shared 2-core
machine: by default those with N * K above 1e7 are left out and listed as such (``--full`` runs them). ppgen's
``log_prob(compile=True)`` is timed beside the plain query twice: as a new fit's first query, its capture and
compilation counted (inductor's cache warm after the first configuration), and as a later query of a fit that keeps
the graphs. A second table measures the peak at three chunk budgets on one configuration. Writes
``bench/evaluate.json``.

Run: ``python bench/evaluate.py [--full] [--repeats R]``.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

import ppgen
import ppgen.queries.density
import handwritten  # bench/ is on sys.path when a script in it runs
from memory import start_cpu_peak
from workloads import fit, load_data, network

RESULTS = Path(__file__).resolve().parent / "evaluate.json"
KS = (100, 1000, 5000)
NS = (1_000, 10_000, 100_000)
#: N * K above which a configuration runs only with --full.
DEFAULT_LIMIT = 5 * 10**6
BUDGETS = (2**13, 2**15, 2**17)


def peak_and_seconds(query) -> tuple[float, float]:
    """Wall seconds of ``query()`` and the resident set's peak above its level before, MiB."""
    baseline, peak, _ = start_cpu_peak()
    start = time.perf_counter()
    query()
    return time.perf_counter() - start, peak() - baseline


def measure(model: ppgen.Fit, x: torch.Tensor, k: int, repeats: int, compiled: bool = True) -> dict:
    """Both sides on ``x`` with K = k, and with ``compiled`` ppgen's ``log_prob(compile=True)`` too, as the first query
    of a new fit of the same model (capture and compilation included) and as a later query of ``model``, whose graphs
    two first, untimed queries made; interleaved ``repeats`` times, the best time and the largest peak of each."""
    sides = {"ppgen": lambda: model.log_prob(x, k=k),
             "compiled_first": lambda: new_fit(model).log_prob(x, k=k, compile=True),
             "compiled": lambda: model.log_prob(x, k=k, compile=True),
             "handwritten": lambda: handwritten.log_prob(model.model, x, k,
                                                         ppgen.queries.density.PARTICLE_POINTS_PER_PASS)}
    if compiled:  # two queries: a shape met once in the first (its last chunk) is compiled in the second
        for _ in range(2):
            model.log_prob(x, k=k, compile=True)
    else:
        del sides["compiled_first"], sides["compiled"]
    seconds, peaks = {side: [] for side in sides}, {side: [] for side in sides}
    for round_ in range(repeats):
        for side in sides if round_ % 2 == 0 else list(sides)[::-1]:
            elapsed, peak = peak_and_seconds(sides[side])
            seconds[side].append(elapsed)
            peaks[side].append(peak)
    best = {side: min(values) for side, values in seconds.items()}
    row = {"n": len(x), "k": k, "ppgen_s": best["ppgen"], "handwritten_s": best["handwritten"],
           "throughput_ratio": best["handwritten"] / best["ppgen"],
           "ppgen_peak_mib": max(peaks["ppgen"]), "handwritten_peak_mib": max(peaks["handwritten"])}
    if compiled:
        row.update({f"{side}_s": best[side] for side in ("compiled_first", "compiled")})
        row.update({f"{side}_throughput_ratio": best["handwritten"] / best[side]
                    for side in ("compiled_first", "compiled")})
    return row


def new_fit(fit: ppgen.Fit) -> ppgen.Fit:
    """A new :class:`~ppgen.Fit` of the same trained model, which keeps no graphs yet."""
    return ppgen.Fit(fit.model, fit.structure, fit.inference, history=fit.history, example=fit.example)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help=f"also run N * K above {DEFAULT_LIMIT:.0e}")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved runs per configuration (default 2)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    train, test = load_data(torch.device("cpu"))
    model = fit(network(train.device, train.shape[1]), train, "elbo", 1)
    rows, skipped = [], []
    for n in NS:
        x = test.repeat(n // len(test) + 1, 1)[:n]
        for k in KS:
            if n * k > DEFAULT_LIMIT and not args.full:
                skipped.append({"n": n, "k": k})
                continue
            rows.append(measure(model, x, k, args.repeats if n * k <= 10**6 else 1))
            print(rows[-1], flush=True)
    budgets = []
    x = test.repeat(3, 1)[:1000]
    default = ppgen.queries.density.PARTICLE_POINTS_PER_PASS
    for budget in BUDGETS:
        ppgen.queries.density.PARTICLE_POINTS_PER_PASS = budget
        budgets.append({"particle_points_per_pass": budget, **measure(model, x, 1000, 1, compiled=False)})
        print(budgets[-1], flush=True)
    ppgen.queries.density.PARTICLE_POINTS_PER_PASS = default
    RESULTS.write_text(json.dumps({
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "threads": 1,
        "default_particle_points_per_pass": default, "rows": rows, "skipped": skipped, "budgets": budgets,
        "command": "python bench/evaluate.py" + (" --full" if args.full else ""),
    }, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
