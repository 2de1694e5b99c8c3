"""Energy, score and diffusion against a flow: the evaluation table of tutorial 12 over several seeds.

On two moons and the ring of 8 Gaussians (``datasets.ring``, standard deviation 0.02), 1000 training and 500 test
points, and with ``--digits`` on the dequantised digits (1437 and 360), each of

- ``RealNVP`` by ``inference.MLE()`` (the reference: exact log p(x));
- ``EnergyModel`` by ``inference.ScoreMatching(method="denoising", noise=0.1)``, by ``ScoreMatching(method="sliced")``,
  and ``EnergyModel(noise_conditional=True)`` by ``ScoreMatching(noise=(sigma_1, ..., sigma_L))``;
- ``EnergyModel`` by ``inference.NCE(ratio=4)``, and by ``inference.ContrastiveDivergence(alpha=0.1)`` (persistent
  chains);
- ``DDPM(steps=100, schedule="linear")`` by ``inference.ELBO(kl="analytic")``

is fitted with the same settings as the tutorial, once per seed, and scored on the test set: log p(x) where the model
has one (the flow's exact; the DDPM's ``fit.log_prob``, a lower bound; an energy's -E(x) - log Zhat, log Z by annealed
importance sampling from a Gaussian fitted to the training data, ``ppgen.queries.annealing.log_normalizer``), and as
many draws as test points (``fit.sample``; an energy's by Metropolis-adjusted Langevin, a noise-conditional one's by
annealed Langevin) scored by ``sample_quality(..., metrics=("mmd", "c2st"))``. Fit time is given as a ratio to the
flow's fit in the same run and seed. One torch thread. Writes ``bench/energy_score_diffusion.json``, which
``bench/render.py`` renders into ``docs/benchmarks.md``.

Run: ``python bench/energy_score_diffusion.py [--seeds 0 1 2] [--digits] [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

import ppgen
from ppgen import datasets, inference, models
from ppgen.datasets.dequantize import dequantize
from ppgen.objective.langevin import annealed_langevin, langevin
from ppgen.program.unnormalized import log_density
from ppgen.queries.annealing import gaussian_base, log_normalizer
from ppgen.queries.sample_quality import sample_quality

RESULTS = Path(__file__).resolve().parent / "energy_score_diffusion.json"
TWO_D = {"epochs": 300, "batch_size": 200, "hidden": (64, 64), "levels": (1.0, 0.46, 0.21, 0.1, 0.046, 0.02),
         "step_size": None, "temperatures": 200, "chains": 1000}
SETTINGS = {
    "moons": {**TWO_D, "step_size": 1e-2},
    "ring": {**TWO_D, "step_size": 2e-3},
    "digits": {"epochs": 60, "batch_size": 128, "hidden": (256, 256), "levels": (1.0, 0.47, 0.22, 0.1, 0.05),
               "step_size": 1e-3, "temperatures": 500, "chains": 500},
}
METHODS = ("flow, MLE", "energy, denoising SM", "energy, sliced SM", "noise-conditional energy, denoising SM",
           "energy, NCE", "energy, CD", "DDPM, ELBO")
#: the learning rate of each fit; the flow's is half the others': at 2e-3 a step on the ring diverged
LR = 2e-3
FLOW_LR = 1e-3
DDPM_STEPS = 100
SAMPLER_STEPS = 1000


def data(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The training and test points of a data set, as the tutorial draws them."""
    if name == "moons":
        return datasets.moons(1000, seed=0), datasets.moons(500, seed=1)
    if name == "ring":
        return datasets.ring(1000, seed=0), datasets.ring(500, seed=1)
    return (dequantize(datasets.digits(split="train"), 1 / 16, torch.Generator().manual_seed(0)),
            dequantize(datasets.digits(split="test"), 1 / 16, torch.Generator().manual_seed(1)))


def model_and_backend(method: str, x_dim: int, settings: dict):
    """The model and the objective of one row."""
    hidden, levels = settings["hidden"], settings["levels"]
    return {
        "flow, MLE": lambda: (models.RealNVP(x_dim=x_dim, hidden=hidden), inference.MLE()),
        "energy, denoising SM": lambda: (models.EnergyModel(x_dim=x_dim, hidden=hidden),
                                         inference.ScoreMatching(method="denoising", noise=0.1)),
        "energy, sliced SM": lambda: (models.EnergyModel(x_dim=x_dim, hidden=hidden),
                                      inference.ScoreMatching(method="sliced")),
        "noise-conditional energy, denoising SM": lambda: (
            models.EnergyModel(x_dim=x_dim, hidden=hidden, noise_conditional=True),
            inference.ScoreMatching(method="denoising", noise=levels)),
        "energy, NCE": lambda: (models.EnergyModel(x_dim=x_dim, hidden=hidden), inference.NCE(ratio=4)),
        "energy, CD": lambda: (models.EnergyModel(x_dim=x_dim, hidden=hidden),
                               inference.ContrastiveDivergence(alpha=0.1)),
        "DDPM, ELBO": lambda: (models.DDPM(x_dim=x_dim, steps=DDPM_STEPS, schedule="linear", hidden=hidden),
                               inference.ELBO(kl="analytic")),
    }[method]()


def energy_draws(fit: ppgen.Fit, train: torch.Tensor, n: int, settings: dict, steps: int) -> tuple[torch.Tensor, float]:
    """n draws of an energy model from chains started at a Gaussian fitted to the training data, and MALA's acceptance
    (NaN for annealed Langevin, which accepts every step)."""
    x0 = gaussian_base(train).sample((n,))
    if fit.model.noise_conditional:
        levels = settings["levels"]
        return annealed_langevin(
            x0, levels, step_size=0.05 * levels[-1] ** 2, steps=max(1, steps // len(levels)),
            log_f=lambda x, sigma: log_density(fit.model, fit.structure, x, x.new_full((len(x),), sigma))), float("nan")
    chains = langevin(lambda x: log_density(fit.model, fit.structure, x), x0, step_size=settings["step_size"],
                      steps=steps, adjusted=True)
    return chains.x, float(chains.acceptance.mean())


def one_run(name: str, seed: int, quick: bool) -> list[dict]:
    """Every method on one data set with one seed: a row each."""
    train, test = data(name)
    settings = dict(SETTINGS[name])
    if quick:
        train, test = train[:128], test[:40]
        settings.update(epochs=2, temperatures=5, chains=20)
    rows, flow_seconds = [], None
    for method in METHODS:
        model, backend = model_and_backend(method, train.shape[1], settings)
        start = time.perf_counter()
        fit = ppgen.fit(model, train, inference=backend, epochs=settings["epochs"], batch_size=settings["batch_size"],
                        lr=FLOW_LR if method == "flow, MLE" else LR, progress=False, seed=seed)
        seconds = time.perf_counter() - start
        flow_seconds = flow_seconds or seconds
        torch.manual_seed(seed + 1)
        row = {"data": name, "method": method, "seed": seed, "fit_time_ratio_to_flow": seconds / flow_seconds}
        if fit.structure.unnormalized:
            log_f = lambda x, fit=fit: log_density(fit.model, fit.structure, x)
            log_z = log_normalizer(log_f, train, temperatures=settings["temperatures"], chains=settings["chains"],
                                   step_size=settings["step_size"])
            row.update(log_p=float(log_z.log_prob(log_f, test).values.mean()), log_p_kind="AIS estimate",
                       log_z=log_z.estimate, log_z_se=log_z.standard_error, ess=log_z.ess, chains=settings["chains"],
                       ais_acceptance=log_z.acceptance)
            if method == "energy, NCE":
                row["nce_log_normalizer"] = float(fit.model.log_normalizer)
            steps = 5 if quick else SAMPLER_STEPS
            samples, row["mala_acceptance"] = energy_draws(fit, train, len(test), settings, steps)
        else:
            row.update(log_p=float(fit.log_prob(test).mean()),
                       log_p_kind="lower bound" if getattr(fit.model, "log_prob_is_bound", False) else "exact")
            samples = fit.sample(len(test))
        scores = sample_quality(samples, test, metrics=("mmd", "c2st"), seed=seed).scores
        row.update(mmd=scores["mmd"].value, mmd_p=scores["mmd"].p_value, c2st=scores["c2st"].value)
        rows.append(row)
        print(f"{name} seed {seed} {method}: log p {row['log_p']:.3f} ({row['log_p_kind']}), MMD^2 {row['mmd']:.4f}, "
              f"C2ST {row['c2st']:.3f}, fit time / flow's {row['fit_time_ratio_to_flow']:.2f}", flush=True)
    return rows


def summary(rows: list[dict]) -> list[dict]:
    """Per data set and method: the mean and the sample standard deviation over seeds of each figure."""
    out = []
    for name in dict.fromkeys(row["data"] for row in rows):
        for method in METHODS:
            group = [row for row in rows if row["data"] == name and row["method"] == method]
            if not group:
                continue
            entry = {"data": name, "method": method, "seeds": len(group), "log_p_kind": group[0]["log_p_kind"]}
            for key in ("log_p", "mmd", "c2st", "fit_time_ratio_to_flow", "ess", "log_z", "nce_log_normalizer"):
                values = [row[key] for row in group if key in row]
                if values:
                    entry[key] = statistics.mean(values)
                    entry[f"{key}_sd"] = statistics.stdev(values) if len(values) > 1 else None
            out.append(entry)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of the fits (default 0 1 2)")
    parser.add_argument("--digits", action="store_true", help="the dequantised digits too (seed 0 alone)")
    parser.add_argument("--quick", action="store_true", help="tiny data, epochs and chains: a smoke test")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    start, rows = time.perf_counter(), []
    for name in ("moons", "ring"):
        for seed in args.seeds:
            rows += one_run(name, seed, args.quick)
    if args.digits:
        rows += one_run("digits", args.seeds[0], args.quick)
    command = " ".join(["python bench/energy_score_diffusion.py", *(argv if argv is not None else sys.argv[1:])])
    result = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "threads": 1, "command": command,
              "quick": args.quick, "seconds": round(time.perf_counter() - start, 1), "lr": LR, "flow_lr": FLOW_LR,
              "ddpm_steps": DDPM_STEPS, "sampler_steps": SAMPLER_STEPS, "settings": SETTINGS, "summary": summary(rows),
              "rows": rows}
    if args.quick:
        print(json.dumps(result["summary"], indent=1))
        return
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
