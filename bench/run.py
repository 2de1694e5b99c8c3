"""``make bench``: ppgen's speed and memory as ratios against a hand-written PyTorch loop of the same network.

Measures, on each device available (CPU always, CUDA when ``torch.cuda.is_available()``):

1. the time of a training step of ``VAE(x_dim=64)`` on the binarised digits (batch 128, Adam, lr 1e-3)
   with ``inference.ELBO()`` and ``inference.IWAE(k=5)``, through ``ppgen.fit`` (wall time / steps) and
   through ``inference.loss`` + backward + step in a plain loop, against the hand-written loss and loop;
2. the time of ``fit.log_prob(test, k=1000)`` against a hand-written importance-sampled estimate;
3. the peak memory of each, one fresh process per workload;
4. the exact-likelihood families' test log-likelihood on the digits (``exact_families.py``);
5. the latent-variable families and generative against discriminative classification (``latent_families.py``);
6. the speed-up of ``fit(distributed=True)`` on two processes over one, against hand-written DDP (``distributed.py``);
7. ``log_prob`` at scale and its peak memory (``evaluate.py``), step time against batch size, width, K and N
   (``scale.py``, a picture), an epoch of Fashion-MNIST where it is installed (``fashion.py``), and on a GPU the
   step at batch 1024 under each divergence guard (``gpu.py``);
8. the choice of d: a generator fitted by JS, W1 and MMD and a flow by maximum likelihood on two moons and the ring of
   8 Gaussians, judged by sample metrics, and a convolutional generator against the VAEs on Fashion-MNIST where it
   is installed (``choice_of_d.py``);
9. energy models (score matching, NCE, contrastive divergence), a DDPM and a flow on the same data: log p(x), MMD
   and C2ST (``energy_score_diffusion.py``);
10. the step table of issue 25: CPU time per step of ppgen's default and ``compile=True`` paths, Pyro's SVI and
    NumPyro's jitted SVI (in a virtual environment of its own, created on the first run) against the hand-written loop,
    on both VAEs with the ELBO and IWAE(k=5) at batch 128 and 1024 (``step_table.py``; ``--skip-step-table`` keeps
    the last one);
11. ``fit(compile="auto")``, the default, against the plain, captured and compiled steps on fits of a few steps to a
    few thousand, and the costs behind its rule's break-even figures (``auto_compile.py``);
12. the speed-up of mapping the K particles of a program that does not broadcast over them by ``torch.func.vmap``,
    against one particle at a time (``mapped_particles.py``; ``--skip-mapped-particles`` keeps the last one);

checks that the hand-written losses equal ppgen's on the same weights and draws, then runs ``burda.py`` (the
structure of Burda et al.'s Table 1 and the encoder-gradient SNR of IWAE's estimators; ``--skip-burda`` keeps the
last one), writes everything to ``bench/results.json`` and renders ``docs/benchmarks.md`` from it. Timings are medians
of interleaved repeats after a warm-up run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import torch

import ppgen
from ppgen.program import fastpath
from ppgen.program.inputs import as_batch
from ppgen.program.structure import inspect

import auto_compile
import burda
import choice_of_d
import distributed as distributed_bench
import energy_score_diffusion as energy_bench
import evaluate as evaluate_bench
import exact_families
import fashion as fashion_bench
import gpu as gpu_bench
import handwritten
import latent_families
from machine import machine
import mapped_particles
import render
import scale as scale_bench
from sections.speed import table as speed_table
import step_table
from timing import timed
from workloads import (BATCH_SIZE, BOUNDS, LR, NETWORKS, PARTICLE_POINTS, QUERY_K, SEED, build, data_of, fit,
                       load_data, model_of, network)

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results.json"
DOCS = BENCH.parent / "docs" / "benchmarks.md"


def time_workloads(names: list[str], device: torch.device, epochs: int, repeats: int,
                   setup: dict[str, float] | None = None) -> tuple[dict[str, list[float]], dict[str, object]]:
    """Seconds per step of each workload in each of ``repeats`` interleaved rounds after a warm-up run; each
    workload's set-up seconds (capturing or compiling its step) go into ``setup``."""
    built = {name: build(name, device, epochs) for name in names}
    if setup is not None:
        setup.update({name: workload.setup_seconds for name, workload in built.items()})
    for workload in built.values():
        workload.run()
    seconds: dict[str, list[float]] = {name: [] for name in names}
    last: dict[str, object] = {}
    for round_ in range(repeats):
        for name in names if round_ % 2 == 0 else names[::-1]:
            elapsed, last[name] = timed(built[name].run, device=device)
            seconds[name].append(elapsed / built[name].steps)
    return seconds, last


def figure(device: torch.device, name: str, path: str, unit: str, scale: float, ppgen_runs: list[float],
           handwritten_runs: list[float]) -> dict:
    """One row of the results: medians of both sides, scaled to ``unit``, their ratio, and every run."""
    ours, theirs = statistics.median(ppgen_runs) * scale, statistics.median(handwritten_runs) * scale
    return {"device": device.type, "figure": name, "ppgen_path": path, "unit": unit, "ppgen": ours,
            "handwritten": theirs, "ratio": ours / theirs if theirs > 0 else None,
            "ppgen_runs": [r * scale for r in ppgen_runs], "handwritten_runs": [r * scale for r in handwritten_runs]}


def final_loss(out: object) -> float:
    """The last epoch's mean loss from a ``Fit`` or a hand-written history."""
    return out.history[-1] if isinstance(out, ppgen.Fit) else out[-1]


#: the ppgen side of each training figure: workload name (before the bound's key), and the path it times.
TRAINING_PATHS = {
    "ppgen-fit": "ppgen.fit",
    "ppgen-fit-capture": "ppgen.fit(compile='capture'), capture included",
    "ppgen-fit-compiled": "ppgen.fit(compile=True), compilation included",
    "ppgen-loss": "inference.loss + backward + step",
    "ppgen-capture": "captured step (compile='capture') + step",
    "ppgen-compiled": "compiled step (compile=True) + step",
}


def available(device: torch.device, skipped: dict[str, str]) -> list[str]:
    """The bounds whose data are here; each other one gets a line in ``skipped``."""
    keys = []
    for key, bound in BOUNDS.items():
        try:
            data_of(key, device)
            keys.append(key)
        except FileNotFoundError as error:
            skipped[bound.name] = f"its data set is not installed ({error})".replace("\n", " ")
    return keys


def speed(device: torch.device, bounds: list[str], epochs: int, repeats: int) -> tuple[list[dict], dict, dict]:
    """The training-step timings of ``bounds`` and the query's, the final training losses of both sides, and the
    seconds spent capturing and compiling each bound's step (both batch shapes of an epoch)."""
    rows, losses, setup = [], {}, {}
    for key in bounds:
        bound = BOUNDS[key]
        names = [f"{side}-{key}" for side in TRAINING_PATHS] + [f"handwritten-{key}"]
        seconds, last = time_workloads(names, device, epochs, repeats, setup)
        print(f"  training {bound.name}: done", flush=True)
        for side, path in TRAINING_PATHS.items():
            rows.append(figure(device, f"training step, {bound.name}", path, "ms/step", 1e3,
                               seconds[f"{side}-{key}"], seconds[names[-1]]))
        losses[bound.name] = {"ppgen.fit": final_loss(last[names[0]]), "handwritten": final_loss(last[names[-1]])}
    seconds, _ = time_workloads(["ppgen-query", "handwritten-query"], device, 1, max(3, repeats // 2))
    test_points = len(load_data(device)[1])
    rows.append(figure(device, f"log p(x) of the {test_points} digits test points, k={QUERY_K}", "Fit.log_prob",
                       "ms/query", 1e3, seconds["ppgen-query"], seconds["handwritten-query"]))
    capture = {f"{BOUNDS[name.rsplit('-', 1)[1]].name}, {name.split('-')[1]}": round(value, 2)
               for name, value in setup.items() if value > 0}
    return rows, losses, capture


def compile_times(bounds: list[str]) -> list[dict]:
    """The first two steps of each batch shape under ``compile=True`` (trace, then compilation), each bound in a
    fresh process twice over one
    empty inductor cache: compiled anew (after inductor's precompiled header, timed apart), then found in that
    cache (see compile_time.py)."""
    rows = []
    for key in bounds:
        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
            runs = [json.loads(subprocess.run([sys.executable, str(BENCH / "compile_time.py"), key, *flags],
                                              env=env, capture_output=True, text=True,
                                              check=True).stdout.splitlines()[-1])
                    for flags in (["--header"], [])]
        rows.append({"bound": BOUNDS[key].name, "header_s": runs[0]["header_s"], "new": runs[0]["shapes"],
                     "cached": runs[1]["shapes"]})
        print(f"  compile time, {BOUNDS[key].name}: {rows[-1]}", flush=True)
    return rows


def memory(device: torch.device, bounds: list[str], threads: int) -> list[dict]:
    """Peak memory of each workload, each in a fresh process (see memory.py)."""
    rows = []
    pairs = [(f"peak memory, training {BOUNDS[key].name}", "ppgen.fit", f"ppgen-fit-{key}", f"handwritten-{key}")
             for key in bounds]
    pairs.append((f"peak memory, log p(x), k={QUERY_K}", "Fit.log_prob", "ppgen-query", "handwritten-query"))
    for name, path, ours, theirs in pairs:
        (peak, method), (reference, _) = (run_memory(workload, device, threads) for workload in (ours, theirs))
        rows.append({**figure(device, name, path, "MiB", 1.0, [peak], [reference]), "method": method})
    return rows


def run_memory(workload: str, device: torch.device, threads: int) -> tuple[float, str]:
    """Peak MiB of one workload, measured by memory.py in a subprocess, and how it was read."""
    out = subprocess.run([sys.executable, str(BENCH / "memory.py"), workload, str(device), str(threads)],
                         capture_output=True, text=True, check=True).stdout
    measured = json.loads(out.splitlines()[-1])
    return measured["peak_mib"], measured["method"]


def sanity(device: torch.device, bounds: list[str]) -> dict:
    """The hand-written losses, gradients and log p(x) against ppgen's, on the same weights and random draws."""
    checks = {}
    for key in bounds:
        bound, (train, _) = BOUNDS[key], data_of(key, device)
        xb = train[:BATCH_SIZE]
        batch = as_batch(xb)
        vae = model_of(key, train)
        structure = inspect(vae, train[:2])
        values, grads = [], []
        for loss, data in ((partial(bound.backend().loss, vae, structure), batch), (partial(bound.loss, vae), xb)):
            torch.manual_seed(SEED + 1)
            vae.zero_grad(set_to_none=True)
            value = loss(data)
            value.backward()
            values.append(value.item())
            grads.append(torch.cat([p.grad.flatten() for p in vae.parameters()]))
        checks[f"loss, {bound.name}"] = {"ppgen": values[0], "handwritten": values[1],
                                          "max_abs_grad_difference": (grads[0] - grads[1]).abs().max().item()}
    train, test = load_data(device)
    trained = fit(network(train.device, train.shape[1]), train, "elbo", 1)
    estimates = []
    for query in (partial(trained.log_prob, test, k=QUERY_K),
                  partial(handwritten.log_prob, trained.model, test, QUERY_K, PARTICLE_POINTS)):
        torch.manual_seed(SEED + 1)
        estimates.append(query())
    checks[f"mean log p(x), k={QUERY_K}"] = {"ppgen": estimates[0].mean().item(),
                                            "handwritten": estimates[1].mean().item(),
                                            "max_abs_difference": (estimates[0] - estimates[1]).abs().max().item()}
    return checks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    parser.add_argument("--epochs", type=int, default=20, help="epochs per timed training run (default 20)")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per training figure (default 7)")
    parser.add_argument("--exact-epochs", type=int, default=30,
                        help="epochs of every model in the exact-families table (default 30)")
    parser.add_argument("--suite", choices=["all", "speed", "latent"], default="all",
                        help="speed: the figures against the hand-written loop; latent: latent_families.py "
                             "(about 20 min on 2 cores); the other suite's last results are rendered as they are")
    parser.add_argument("--burda-epochs", type=int, default=None,
                        help="epochs per objective in burda.py (default: its own per data set)")
    parser.add_argument("--skip-burda", action="store_true", help="keep the last burda.py results")
    parser.add_argument("--skip-scaling", action="store_true",
                        help="keep the last results of evaluate.py (log p(x) at scale), scale.py (step time against "
                             "batch, width, K and N), fashion.py (an epoch of Fashion-MNIST) and gpu.py "
                             "(batch 1024 on a GPU)")
    parser.add_argument("--skip-step-table", action="store_true",
                        help="keep the last step_table.py results (ppgen, Pyro and NumPyro against the hand-written "
                             "loop)")
    parser.add_argument("--skip-distributed", action="store_true",
                        help="keep the last distributed.py results (two processes against one)")
    parser.add_argument("--skip-energy", action="store_true",
                        help="keep the last energy_score_diffusion.py results (energy models, a DDPM and a flow)")
    parser.add_argument("--skip-auto-compile", action="store_true",
                        help="keep the last auto_compile.py results (compile='auto' against the other paths)")
    parser.add_argument("--skip-mapped-particles", action="store_true",
                        help="keep the last mapped_particles.py results (K particles mapped by vmap against one at a "
                             "time)")
    parser.add_argument("--skip-choice-of-d", action="store_true",
                        help="keep the last choice_of_d.py results (the objectives judged by sample metrics)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    measured_on = machine(args.threads)  # before any figure is written: the commit as checked out, not "-dirty"
    if args.suite != "speed":
        latent_families.main()
    if args.suite == "latent":
        render.main()
        print(f"wrote {latent_families.RESULTS.relative_to(BENCH.parent)} and {DOCS.relative_to(BENCH.parent)}")
        return
    results = {
        "machine": measured_on,
        "command": " ".join(["python bench/run.py", *sys.argv[1:]]),
        "settings": {"data": "the digits, binarised: 1437 training and 360 test points of 64 pixels; for the "
                             "784-pixel VAE, the first 1437 training images of Fashion-MNIST, binarised "
                             "(pixels >= 0.5)",
                     "network": "\n" + "".join(
                         f"\n- {n.label}: `ppgen.models.VAE(x_dim={n.x_dim}, z_dim={n.z_dim}, hidden={n.hidden})`"
                         for n in NETWORKS.values()) + "\n- the enumerated mixture: "
                         "`ppgen.models.MixtureOfBernoullis(x_dim=64, n_components=10)`\n- the query and its "
                         "memory: `ppgen.models.VAE(x_dim=64, z_dim=8, hidden=(400,))`\n\nall with Bernoulli "
                         "likelihoods",
                     "batch_size": BATCH_SIZE, "lr": LR, "optimizer": "torch.optim.Adam(fused=True)", "seed": SEED,
                     "epochs_per_run": args.epochs, "repeats": args.repeats, "query_k": QUERY_K,
                     "particle_points_per_pass": PARTICLE_POINTS, "verify_every": fastpath.VERIFY_EVERY},
        "figures": [], "sanity": {}, "final_training_loss": {}, "capture_seconds": {}, "skipped": {},
    }
    devices = [torch.device("cpu")]
    if torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    else:
        results["skipped"]["cuda"] = "torch.cuda.is_available() is False"
    start = time.perf_counter()
    for device in devices:
        print(f"{device}:", flush=True)
        bounds = available(device, results["skipped"])
        results["sanity"][device.type] = sanity(device, bounds)
        rows, losses, capture = speed(device, bounds, args.epochs, args.repeats)
        results["final_training_loss"][device.type] = losses
        results["capture_seconds"][device.type] = capture
        print("  memory...", flush=True)
        results["figures"] += rows + memory(device, bounds, args.threads)
        if device.type == "cpu":
            results["compile_seconds"] = compile_times(bounds)
    results["seconds"] = round(time.perf_counter() - start, 1)
    if args.suite == "speed" and "exact_families" in previous:  # the speed suite alone keeps the last table
        results["exact_families"] = previous["exact_families"]
    else:
        print("exact-likelihood families (cpu):", flush=True)
        start = time.perf_counter()
        results["exact_families"] = exact_families.measure(args.exact_epochs)
        results["exact_families"]["seconds"] = round(time.perf_counter() - start, 1)
    if args.skip_burda or args.suite == "speed":
        if "burda" in previous:
            results["burda"] = previous["burda"]
    else:
        results["burda"] = burda.run(list(burda.NETWORKS), list(burda.CLASSES), args.burda_epochs,
                                     threads=args.threads, previous=previous.get("burda"))
    if not args.skip_distributed:
        distributed_bench.main([])
    if not args.skip_step_table:
        step_table.main([])
    if args.suite == "all" and not args.skip_energy:
        energy_bench.main(["--digits"])
    if not (args.skip_scaling or args.suite == "latent"):
        for bench in (evaluate_bench, scale_bench, fashion_bench, gpu_bench):  # each writes the JSON render reads
            bench.main([])
    if not (args.skip_choice_of_d or args.suite != "all"):
        choice_of_d.main([])
    if not (args.skip_auto_compile or args.suite == "latent"):
        auto_compile.main([])
    if not args.skip_mapped_particles:
        mapped_particles.main([])
    tmp = RESULTS.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    tmp.replace(RESULTS)
    render.main()
    print(speed_table(results))
    print(f"wrote {RESULTS.relative_to(BENCH.parent)} and {DOCS.relative_to(BENCH.parent)} "
          f"in {results['seconds']} s")


if __name__ == "__main__":
    main()
