"""The step table of issue 25: process CPU time per training step of ppgen (its default path and ``compile=True``),
Pyro's SVI and NumPyro's jitted SVI, each as a ratio to a hand-written eager PyTorch loop of the same VAE with fused
Adam, side by side in one run.

Rows: ``VAE 64-128-8`` on the binarised digits and ``VAE 784-400-32`` on the first 1437 Fashion-MNIST training
images binarised (where Fashion-MNIST is not installed: a stand-in of the same shape, the digits' 8x8 images
resized to 28x28 and binarised, said so in the results), each with the ELBO and the 5-sample IWAE bound, at batch 128
and 1024; the data cut to a whole number of batches (1408 and 1024 points), so that every step is a full batch. Each
contender starts from the same weights (:mod:`step_contenders`; NumPyro's MLPs in jax.numpy, started from the PyTorch
weights: ``bench/numpyro_contender/svi.py``) and runs ``epochs`` epochs a timed run after an untimed warm-up run;
the contenders take turns within a round (the order reversed every other round), ``repeats`` rounds, and a figure is
the median over rounds of the contender's CPU seconds per step over the hand-written loop's in the same round.
``ppgen.fit`` runs twice the epochs and is timed over its second half (its set-up, trace and compilation before it);
its whole call is timed too. One torch thread, one XLA thread. NumPyro runs in its own virtual environment
(:mod:`numpyro_env`, created on the first run with pip), never in ppgen's.

Before timing, each bound is checked on the same initial weights: ppgen's backend and Pyro's ELBO against the
hand-written loss on the same draws (exactly, up to float32 rounding), NumPyro's on the same draws (z = loc + scale *
eps with the hand-written eps) and over fresh draws against the hand-written loss over as many (within Monte Carlo
error).

Run: ``python bench/step_table.py [--quick]`` (part of ``make bench``); writes ``bench/step_table.json`` and renders
``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import numpyro_env
import render
from machine import machine
from ppgen import datasets
from sections.step_table import step_table
from step_contenders import Fit, Handwritten, PyroSVI, draws, monte_carlo, network, same_draws, z_score
from workloads import FASHION_POINTS, LR, NETWORKS

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "step_table.json"
BATCHES = (128, 1024)
BOUNDS = {"elbo": "ELBO", "iwae5": "IWAE5"}
#: the contenders, in the order of the table's columns; "numpyro" runs in the worker.
CONTENDERS = ["ppgen default", "ppgen compile=True", "Pyro SVI", "NumPyro jit"]
#: steps a timed run aims at, per network (rounded up to whole epochs): full and quick modes.
STEPS = {"full": {"small": 220, "large": 22}, "quick": {"small": 66, "large": 8}}
#: the Monte Carlo check's draws, and the largest |z| that passes it.
CHECK_DRAWS, CHECK_Z = 64, 4.0
#: Pyro's and NumPyro's loss per point on the same draws agree with the hand-written one to this relative tolerance.
SAME_DRAWS_RTOL = 1e-4


def data(size: str) -> tuple[torch.Tensor, str]:
    """The training points of a network (``"small"`` or ``"large"``) and what they are."""
    if NETWORKS[size].data == "digits":
        return datasets.digits(binarize=True, split="train"), "the binarised digits' 1437 training points"
    try:
        images = datasets.fashion_mnist("train", binarize=True)[:FASHION_POINTS[0]]
        return images, f"the first {FASHION_POINTS[0]} Fashion-MNIST training images, binarised (pixels >= 0.5)"
    except FileNotFoundError:
        digits = datasets.digits(split="train").view(-1, 1, 8, 8)
        images = (F.interpolate(digits, size=(28, 28), mode="bilinear") >= 0.5).float().view(-1, 784)
        return images, ("a stand-in for Fashion-MNIST, which is not installed here: the 1437 digits' training images "
                        "resized to 28x28 and binarised (pixels >= 0.5)")


def inputs(vae: torch.nn.Module, x: torch.Tensor, folder: str) -> str:
    """The weights (``[in, out]``) and the data for the NumPyro worker, as an ``.npz`` file."""
    arrays = {"x": x.numpy()}
    for prefix, mlp in (("enc", vae.encoder), ("dec", vae.decoder)):
        linears = [layer for layer in mlp if isinstance(layer, torch.nn.Linear)]
        for i, layer in enumerate(linears):
            arrays[f"{prefix}_w{i}"] = layer.weight.detach().T.contiguous().numpy()
            arrays[f"{prefix}_b{i}"] = layer.bias.detach().numpy()
    path = os.path.join(folder, "inputs.npz")
    np.savez(path, **arrays)
    return path


def check(vae: torch.nn.Module, x: torch.Tensor, bound: str, worker: numpyro_env.Worker, folder: str) -> dict:
    """Each contender's bound against the hand-written one on the same weights; raises where one disagrees."""
    seed = 7
    ours = same_draws(vae, x, bound, seed)
    eps = os.path.join(folder, "eps.npy")
    np.save(eps, draws(vae, x, bound, seed).numpy())
    numpyro = worker.ask("check", eps=eps, keys=CHECK_DRAWS)
    reference = monte_carlo(vae, x, bound, CHECK_DRAWS)
    out = {"points": len(x), "same_draws": {**ours, "numpyro": numpyro["same_draws"]},
           "monte_carlo": {"handwritten": reference, "numpyro": {k: numpyro[k] for k in ("mean", "sd", "keys")},
                           "z": z_score(numpyro, reference)}}
    for name in ("ppgen", "pyro", "numpyro"):
        if not math.isclose(out["same_draws"][name], ours["handwritten"], rel_tol=SAME_DRAWS_RTOL):
            raise RuntimeError(f"{name}'s {bound} differs from the hand-written one on the same draws: {out}")
    if abs(out["monte_carlo"]["z"]) > CHECK_Z:
        raise RuntimeError(f"NumPyro's {bound} differs from the hand-written one beyond Monte Carlo error: {out}")
    return out


def row(size: str, bound: str, batch: int, mode: str, repeats: int, worker: numpyro_env.Worker, folder: str,
        loads: list[float]) -> tuple[dict, dict]:
    """One row: the contenders' CPU seconds per step in ``repeats`` interleaved rounds, and their ratios; and the
    NumPyro worker's set-up (compile time, versions)."""
    net = NETWORKS[size]
    full, _ = data(size)
    x = full[:batch * (len(full) // batch)]
    per_epoch = len(x) // batch
    epochs = math.ceil(STEPS[mode][size] / per_epoch)
    vae = network(net.x_dim, net.z_dim, net.hidden)
    setup = worker.ask("setup", inputs=inputs(vae, x, folder), bound=bound, batch=batch, epochs=epochs, lr=LR)
    checked = check(vae, x[:128], bound, worker, folder) if batch == BATCHES[0] else None
    contenders = {"handwritten": Handwritten(vae, x, bound, batch, epochs),
                  "ppgen default": Fit(vae, x, bound, batch, epochs),
                  "ppgen compile=True": Fit(vae, x, bound, batch, epochs, compile=True),
                  "Pyro SVI": PyroSVI(vae, x, bound, batch, epochs)}
    for contender in contenders.values():  # warm-up: imports, first calls, inductor's cache of this step
        contender.run()
    names = [*contenders, "NumPyro jit"]
    runs = {name: [] for name in names}
    for round_ in range(repeats):
        for name in names if round_ % 2 == 0 else names[::-1]:
            if name == "NumPyro jit":
                runs[name].append(worker.ask("run"))
            else:
                runs[name].append(vars(contenders[name].run()))
            loads.append(os.getloadavg()[0])
    ms = {name: [1e3 * r["cpu_s"] / r["steps"] for r in results] for name, results in runs.items()}
    whole = [1e3 * r["fit_cpu_s"] / r["fit_steps"] for r in runs["ppgen default"]]
    out = {"network": net.label, "bound": BOUNDS[bound], "batch": batch, "points": len(x), "epochs_per_run": epochs,
           "steps_per_run": epochs * per_epoch, "ms_per_step": {name: statistics.median(v) for name, v in ms.items()},
           "ratio": {name: statistics.median(a / b for a, b in zip(ms[name], ms["handwritten"])) for name in names
                     if name != "handwritten"},
           "ratio_ppgen_default_whole_fit": statistics.median(a / b for a, b in zip(whole, ms["handwritten"])),
           "runs_ms_per_step": ms, "final_loss": {name: results[-1]["final_loss"] for name, results in runs.items()},
           "numpyro_compile_cpu_s": setup["compile_cpu_s"]}
    if checked is not None:
        out["check"] = checked
    print(f"  {net.label} {BOUNDS[bound]} batch {batch}: " +
          ", ".join(f"{name} {value:.2f}" for name, value in out["ratio"].items()), flush=True)
    return out, setup


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"fewer steps a run ({STEPS['quick']} against {STEPS['full']}) and 3 rounds")
    parser.add_argument("--repeats", type=int, default=None, help="interleaved rounds (default 5; 3 with --quick)")
    parser.add_argument("--rows", nargs="*", default=None, metavar="NETWORK:BOUND:BATCH",
                        help="only these rows, e.g. small:elbo:128 large:iwae5:1024 (default: all eight)")
    args = parser.parse_args(argv)
    mode = "quick" if args.quick else "full"
    repeats = args.repeats or (3 if args.quick else 5)
    torch.set_num_threads(1)
    measured_on = machine(1)
    wanted = [(size, bound, batch) for size in NETWORKS if size in STEPS[mode] for bound in BOUNDS
              for batch in BATCHES]
    if args.rows:
        wanted = [r for r in wanted if f"{r[0]}:{r[1]}:{r[2]}" in args.rows]
    start, loads = time.perf_counter(), [os.getloadavg()[0]]
    rows = []
    with tempfile.TemporaryDirectory() as folder, numpyro_env.Worker() as worker:
        for size, bound, batch in wanted:
            result, setup = row(size, bound, batch, mode, repeats, worker, folder, loads)
            rows.append(result)
    versions = {k: setup[k] for k in ("numpyro", "jax", "jax_devices", "xla_flags")}
    results = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python bench/step_table.py", *(argv if argv is not None else sys.argv[1:])]),
        "mode": mode, "repeats": repeats, "seconds": round(time.perf_counter() - start, 1),
        "machine": measured_on, "numpyro": versions,
        "load_average": {"min": min(loads), "max": max(loads), "median": statistics.median(loads),
                         "cpu_count": os.cpu_count()},
        "data": {size: data(size)[1] for size in NETWORKS},
        "settings": {"lr": LR, "seed": 0, "torch_threads": 1, "xla_flags": numpyro_env.XLA_FLAGS,
                     "handwritten": "bench/handwritten.py's loss and loop, torch.optim.Adam(fused=True)",
                     "pyro": "pyro.infer.SVI, Trace_ELBO / RenyiELBO(alpha=0, num_particles=5, vectorized), "
                             "pyro.optim.Adam, Pyro's validation settings left as they are",
                     "numpyro": "numpyro.infer.SVI, Trace_ELBO / RenyiELBO(alpha=0, num_particles=5), "
                                "numpyro.optim.Adam, jax.jit(svi.update)",
                     "check_draws": CHECK_DRAWS},
        "rows": rows,
    }
    for entry in rows:
        entry.update(date=results["date"], command=results["command"], mode=mode)
    if args.rows and RESULTS.exists():  # a partial run replaces its rows in the last results, in the table's order
        order = [(NETWORKS[size].label, BOUNDS[bound], batch) for size in NETWORKS for bound in BOUNDS
                 for batch in BATCHES]
        merged = {(r["network"], r["bound"], r["batch"]): r for r in [*json.loads(RESULTS.read_text())["rows"], *rows]}
        results["rows"] = [merged[key] for key in order if key in merged]
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    docs = BENCH.parent / "docs" / "benchmarks.md"
    if (BENCH / "results.json").exists():
        render.main()
    print(step_table(results))
    print(f"wrote {RESULTS.relative_to(BENCH.parent)} and {docs.relative_to(BENCH.parent)} in {results['seconds']} s")


if __name__ == "__main__":
    main()
