"""The exact-likelihood families on the digits: test log-likelihood in nats per image, size and training time.

``python bench/exact_families.py`` measures this table alone and merges it into ``bench/results.json``
(keeping the speed figures there) before re-rendering ``docs/benchmarks.md``; ``bench/run.py`` (``make
bench``) measures it after the speed figures. Every model gets the same budget: the same epochs, batch
size, learning rate, optimiser (Adam) and seed, one torch thread.

Two data sets, two tables, never compared across:

1. **binarised digits** (pixels in {0, 1}): the independent-Bernoulli baseline (closed-form maximum
   likelihood, add-one smoothed so that a pixel never on in training costs a finite amount in test),
   FVSBN, NADE, MADE (one and four orderings) by exact log p(x); the VAE and the flow-guide VAE by their
   IWAE-5000 estimate; the three flows dequantised (levels 2) by the ELBO E_u[log p(x + u)] (the bound the
   literature reports) and an IWAE-K estimate, both lower bounds on the discrete log P(x);
2. **digits at their 17 grey levels** (integers 0..16): the independent categorical baseline (add-one
   smoothed) and the three flows dequantised with levels 17, same bounds.

Training time is the wall time of ``ppgen.fit`` as a ratio to the VAE's in the same run (on a shared
machine: ratios, not seconds, are the figure).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

import ppgen
from ppgen import datasets, inference, models
from ppgen.objective.bounds import log_weights
from ppgen.program.inputs import as_batch

BENCH = Path(__file__).resolve().parent
BATCH_SIZE, LR, SEED = 128, 1e-3, 0
IWAE_K = 5000  # the VAEs' log p(x) estimate
FLOW_K = 200  # the dequantised flows' IWAE estimate (a spline flow is costly to evaluate K times)
ELBO_PARTICLES = 20  # draws of u per image for E_u[log p(x + u)]


def parameters(model: nn.Module) -> int:
    """The number of learnt numbers (masked-out weights of FVSBN and MADE count: they are stored)."""
    return sum(p.numel() for p in model.parameters())


def independent_baseline(train: Tensor, test: Tensor, levels: int) -> dict:
    """Each pixel its own categorical over 0..levels-1, add-one smoothed counts: log p(x) = sum_d log p_d(x_d)."""
    counts = torch.stack([(train == v).sum(0) for v in range(levels)]).double() + 1  # [L, D]
    log_p = (counts / counts.sum(0)).log()
    per_image = log_p.gather(0, test.long()).sum(1)
    return {"estimate": "exact", "nats": per_image.mean().item(), "parameters": (levels - 1) * train.shape[1],
            "seconds": None}


def exact(fit: ppgen.Fit, test: Tensor) -> dict:
    return {"estimate": "exact", "nats": fit.log_prob(test).mean().item()}


def iwae(fit: ppgen.Fit, test: Tensor, k: int) -> dict:
    return {"estimate": f"IWAE-{k}", "nats": fit.log_prob(test, k=k).mean().item()}


def dequantised(fit: ppgen.Fit, test: Tensor) -> dict:
    """ELBO = E_u[log p(x + u)] and the tighter IWAE-K estimate of the discrete log P(x)."""
    with torch.no_grad():
        elbo = torch.cat([log_weights(fit.model, fit.structure, as_batch(xb), ELBO_PARTICLES).mean(0)
                          for xb in test.split(64)]).mean().item()
    return {"estimate": f"ELBO E_u log p(x+u); IWAE-{FLOW_K}", "nats": fit.log_prob(test, k=FLOW_K).mean().item(),
            "elbo": elbo}


#: name -> (builder, objective or None for the default, how log p(x) of the test set is measured).
Entry = tuple[Callable[[int], nn.Module], inference.ELBO | None, Callable[[ppgen.Fit, Tensor], dict]]

BINARY: dict[str, Entry] = {
    "VAE (z_dim 8)": (lambda d: models.VAE(x_dim=d), inference.ELBO(), lambda f, t: iwae(f, t, IWAE_K)),
    "FVSBN": (lambda d: models.FVSBN(x_dim=d), None, exact),
    "NADE (500 hidden)": (lambda d: models.NADE(x_dim=d, hidden=500), None, exact),
    "MADE (one ordering)": (lambda d: models.MADE(x_dim=d, hidden=(500,)), None, exact),
    "MADE (4 orderings)": (lambda d: models.MADE(x_dim=d, hidden=(500,), orderings=4), None, exact),
    "FlowVAE (z_dim 8, 2 IAF layers)": (lambda d: models.FlowVAE(x_dim=d), inference.ELBO(),
                                        lambda f, t: iwae(f, t, IWAE_K)),
    **{f"{flow} dequantised": (lambda d, flow=flow: models.DequantizedFlow(x_dim=d, levels=2, flow=flow),
                               inference.ELBO(), dequantised) for flow in ("realnvp", "maf", "nsf")},
}
GREY: dict[str, Entry] = {
    f"{flow} dequantised": (lambda d, flow=flow: models.DequantizedFlow(x_dim=d, levels=17, flow=flow),
                            inference.ELBO(), dequantised) for flow in ("realnvp", "maf", "nsf")
}


def run_table(entries: dict[str, Entry], train: Tensor, test: Tensor, epochs: int) -> dict[str, dict]:
    rows = {}
    for name, (build, objective, measure) in entries.items():
        torch.manual_seed(SEED)
        model = build(train.shape[1])
        start = time.perf_counter()
        fit = ppgen.fit(model, train, inference=objective, epochs=epochs, batch_size=BATCH_SIZE, lr=LR, seed=SEED,
                        progress=False)
        seconds = time.perf_counter() - start
        rows[name] = {**measure(fit, test), "parameters": parameters(fit.model), "seconds": seconds,
                      "objective": repr(fit.inference), "final_training_loss": fit.history[-1]}
        print(f"  {name}: {rows[name]['nats']:.2f} nats ({seconds:.1f} s)", flush=True)
    return rows


def measure(epochs: int) -> dict:
    """Both tables, with training times as ratios to the VAE's."""
    binary_train, binary_test = datasets.digits(binarize=True), datasets.digits(binarize=True, split="test")
    ppgen.fit(models.VAE(x_dim=64), binary_train, epochs=1, progress=False)  # torch's one-time start, untimed
    grey_train = (datasets.digits() * 16).round()
    grey_test = (datasets.digits(split="test") * 16).round()
    binary = {"independent Bernoulli (add-one)": independent_baseline(binary_train, binary_test, 2),
              **run_table(BINARY, binary_train, binary_test, epochs)}
    grey = {"independent categorical (add-one)": independent_baseline(grey_train, grey_test, 17),
            **run_table(GREY, grey_train, grey_test, epochs)}
    vae_seconds = binary["VAE (z_dim 8)"]["seconds"]
    for row in [*binary.values(), *grey.values()]:
        row["time_ratio"] = None if row["seconds"] is None else row["seconds"] / vae_seconds
    autoregressive = {name: binary[name]["nats"] for name in ("FVSBN", "NADE (500 hidden)", "MADE (one ordering)")}
    return {
        "settings": {"epochs": epochs, "batch_size": BATCH_SIZE, "lr": LR, "seed": SEED, "optimizer": "Adam",
                     "iwae_k": IWAE_K, "flow_k": FLOW_K, "elbo_particles": ELBO_PARTICLES,
                     "data": "scikit-learn digits, 1437 training and 360 test images of 64 pixels"},
        "binary": binary,
        "grey": grey,
        "fvsbn_worst_of_autoregressive": min(autoregressive, key=autoregressive.get) == "FVSBN",
    }


def main() -> None:
    import render  # bench/ is on sys.path when a script in it runs
    from sections.exact import exact_table

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=30, help="epochs for every model (default 30)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    table = measure(args.epochs)
    table["seconds"] = round(time.perf_counter() - start, 1)
    results_path = BENCH / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    results["exact_families"] = table
    tmp = results_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    tmp.replace(results_path)
    if "figures" in results:
        render.main()
    print(exact_table(table))


if __name__ == "__main__":
    main()
