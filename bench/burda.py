"""The structure of Burda et al. (2015), Table 1, on the binarised digits, and the encoder-gradient SNR of IWAE's estimators.

1. One-stochastic-layer VAE, ``VAE(x_dim=64, z_dim=20, hidden=(100, 100))``, trained by the ELBO and by IWAE
   at k = 1, 5, 50, and by IWAE-DReG at k = 50, from the same initial weights, the same batches and the same
   number of epochs; each evaluated on the test split with ``fit.evaluate(test, k=5000)`` (IWAE_5000, the ELBO,
   and the PSIS k-hat of its weights), with Burda's count of active latent units beside it: unit u is active
   when Cov_x(E_q[z_u | x]) > 0.01.
2. The signal-to-noise ratio |E g| / std(g) of the encoder's gradient under the standard, DReG and STL estimators
   of IWAE_k at several k, on the ELBO-trained network (Rainforth et al., 2018: the standard estimator's falls as
   k grows): per parameter over repeated estimates on a fixed batch, the median over the encoder's parameters.

``python bench/burda.py`` writes the ``"burda"`` entry of ``bench/results.json`` and re-renders
``docs/benchmarks.md``; ``bench/run.py`` runs it after the speed figures.

References:
    Importance Weighted Autoencoders (Burda, Grosse and Salakhutdinov, 2015). https://arxiv.org/abs/1509.00519
    Tighter Variational Bounds are Not Necessarily Better (Rainforth et al., 2018). https://arxiv.org/abs/1802.04537
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import pyro
import torch

import ppgen
from ppgen.data import as_batch
from ppgen import datasets, inference
from ppgen.models import VAE
from ppgen.structure import inspect

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results.json"
DOCS = BENCH.parent / "docs" / "benchmarks.md"

NETWORK = {"x_dim": 64, "z_dim": 20, "hidden": (100, 100), "likelihood": "bernoulli"}
BATCH_SIZE, LR, SEED, EVAL_K = 100, 1e-3, 0, 5000
ACTIVE_THRESHOLD = 0.01
ROWS = {
    "ELBO": inference.ELBO(),
    "IWAE k=1": inference.IWAE(k=1),
    "IWAE k=5": inference.IWAE(k=5),
    "IWAE k=50": inference.IWAE(k=50),
    "IWAE-DReG k=50": inference.IWAE(k=50, estimator="dreg"),
}
SNR_K = (1, 4, 16, 64)
SNR_ESTIMATORS = ("standard", "dreg", "stl")


def network() -> VAE:
    """The benchmarked VAE with the same initial weights each call."""
    torch.manual_seed(SEED)
    return VAE(**NETWORK)


def active_units(fit: ppgen.Fit, x: torch.Tensor) -> int:
    """Burda's measure: the number of units u with Cov_x(E_q[z_u | x]) > 0.01."""
    return int((fit.encode(x).var(0) > ACTIVE_THRESHOLD).sum())


def table(train: torch.Tensor, test: torch.Tensor, epochs: int) -> list[dict]:
    """Train each row's objective, evaluate it with K=5000 on the test split."""
    rows = []
    for label, backend in ROWS.items():
        start = time.perf_counter()
        fit = ppgen.fit(network(), train, inference=backend, epochs=epochs, batch_size=BATCH_SIZE, lr=LR,
                        seed=SEED, progress=False)
        trained = time.perf_counter() - start
        pyro.set_rng_seed(SEED)
        with warnings.catch_warnings(record=True):  # k-hat is recorded beside the figure, not shouted
            warnings.simplefilter("always")
            report = fit.evaluate(test, k=EVAL_K)
        means = report.means()
        rows.append({"objective": label, "backend": repr(backend), "test_iwae_5000": means["iwae"],
                     "test_elbo": means["elbo"], "khat_mean": means["khat"], "khat_above_0.7": report.unreliable,
                     "active_units": active_units(fit, test), "final_training_loss": fit.history[-1],
                     "train_seconds": trained})
        print(f"  {label}: test log p(x) ~ {means['iwae']:.3f}, ELBO {means['elbo']:.3f}, "
              f"{rows[-1]['active_units']} active units, {trained:.0f} s", flush=True)
    return rows


def snr(train: torch.Tensor, test: torch.Tensor, epochs: int, repeats: int) -> list[dict]:
    """Median over the encoder's parameters of |mean| / std of ``repeats`` gradient estimates on 16 test points."""
    fit = ppgen.fit(network(), train, inference=inference.ELBO(), epochs=epochs, batch_size=BATCH_SIZE, lr=LR,
                    seed=SEED, progress=False)
    vae, batch = fit.model, test[:16]
    structure, encoder = inspect(vae, batch), list(vae.encoder.parameters())
    rows = []
    pyro.set_rng_seed(SEED)
    for k in SNR_K:
        for estimator in SNR_ESTIMATORS:
            backend = inference.IWAE(k=k, estimator=estimator)
            grads = torch.stack([torch.cat([g.flatten() for g in torch.autograd.grad(
                backend.loss(vae, structure, as_batch(batch)), encoder)]) for _ in range(repeats)])
            ratio = grads.mean(0).abs() / grads.std(0)
            rows.append({"k": k, "estimator": estimator, "median_snr": ratio.nanmedian().item()})
        print(f"  SNR at k={k}: " + ", ".join(f"{r['estimator']} {r['median_snr']:.3f}" for r in rows[-3:]),
              flush=True)
    return rows


def run(epochs: int, snr_repeats: int, threads: int) -> dict:
    """Everything above, with its settings."""
    torch.set_num_threads(threads)
    train = datasets.digits(binarize=True, split="train")
    test = datasets.digits(binarize=True, split="test")
    start = time.perf_counter()
    print("Burda et al. (2015) table, digits:", flush=True)
    rows = table(train, test, epochs)
    print("encoder-gradient SNR:", flush=True)
    snr_rows = snr(train, test, epochs, snr_repeats)
    return {"settings": {"network": f"ppgen.models.VAE({', '.join(f'{k}={v!r}' for k, v in NETWORK.items())})",
                         "data": "digits, binarised: 1437 training and 360 test points of 64 pixels",
                         "epochs": epochs, "batch_size": BATCH_SIZE, "lr": LR, "optimizer": "torch.optim.Adam",
                         "seed": SEED, "eval_k": EVAL_K, "active_threshold": ACTIVE_THRESHOLD,
                         "snr_repeats": snr_repeats, "snr_batch": 16, "torch_threads": threads},
            "table": rows, "snr": snr_rows, "seconds": round(time.perf_counter() - start, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=100, help="training epochs per objective (default 100)")
    parser.add_argument("--snr-repeats", type=int, default=100, help="gradient estimates per SNR (default 100)")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    args = parser.parse_args()
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results["burda"] = run(args.epochs, args.snr_repeats, args.threads)
    results["burda"]["date"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    tmp = RESULTS.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    tmp.replace(RESULTS)
    import render  # bench/ is on sys.path when a script in it runs

    DOCS.write_text(render.render(results))
    print(f"wrote {RESULTS.relative_to(BENCH.parent)} and {DOCS.relative_to(BENCH.parent)} in "
          f"{results['burda']['seconds']} s")


if __name__ == "__main__":
    main()
