"""The latent-variable families side by side, and generative against discriminative classification.

1. Test log-likelihood, the IWAE-5000 estimate of log p(x) in nats per image, of ``VAE``, ``ConvVAE``, ``HVAE``
   and ``GMVAE`` (each built with the zoo's defaults) on the binarised digits and, where Debian's files are
   installed, on a subset of binarised Fashion-MNIST, every family trained for the same number of epochs
   (ELBO, Adam, batch 128, lr 1e-3); the time of a training step as a ratio to the VAE's, the median of
   rounds in which every family takes its steps in turn, so that a shared machine's changing load falls
   on every family alike.
2. ``ppgen.GenerativeClassifier`` with a zoo density per class against scikit-learn's ``LogisticRegression``
   on the digits, accuracy and log loss on the 360 test images, as the number of labelled training images
   shrinks (stratified subsets, averaged over seeds).

Run by ``bench/run.py`` (``make bench``) or alone: ``python bench/latent_families.py [--quick]``; writes
``bench/latent_families.json``, which ``render.py`` quotes in ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import statistics

import numpy as np
import pyro
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import train_test_split

import ppgen
from ppgen import datasets, inference, models
from ppgen.data import as_batch
from ppgen.structure import inspect

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "latent_families.json"
FAMILIES = ("VAE", "ConvVAE", "HVAE", "GMVAE")
SEED = 0
#: interleaved rounds, and training steps a round, of the step-time ratio.
ROUNDS, STEPS = 7, 5


def family_table(train: torch.Tensor, test: torch.Tensor, epochs: int, k: int) -> list[dict]:
    """IWAE-k test log-likelihood and training wall time of each family; wall time as a ratio to the VAE's."""
    rows = []
    ppgen.fit(models.VAE(x_dim=train.shape[1]), train[:256], epochs=1, progress=False)  # warm-up, untimed
    for name in FAMILIES:
        pyro.set_rng_seed(SEED)
        model = getattr(models, name)(x_dim=train.shape[1])
        start = time.perf_counter()
        fit = ppgen.fit(model, train, epochs=epochs, batch_size=128, lr=1e-3, seed=SEED, progress=False)
        seconds = time.perf_counter() - start
        pyro.set_rng_seed(SEED)
        log_p = fit.log_prob(test, k=k).double()
        rows.append({"model": name, "config": model.config, "test_log_likelihood": log_p.mean().item(),
                     "standard_error": (log_p.std() / len(log_p) ** 0.5).item(),
                     "final_training_loss": fit.history[-1], "train_seconds": seconds})
        print(f"    {name}: {rows[-1]['test_log_likelihood']:.2f} nats, {seconds:.1f} s", flush=True)
    step_seconds = step_times(train)
    for row in rows:
        row["step_seconds"] = step_seconds[row["model"]]
        row["time_ratio_to_vae"] = row["step_seconds"] / step_seconds["VAE"]
    return rows


def step_times(train: torch.Tensor) -> dict[str, float]:
    """Median seconds of one training step (ELBO loss, backward, Adam step on a batch of 128) of each family,
    over :data:`ROUNDS` rounds in which the families take :data:`STEPS` steps each in turn."""
    batch, steps = as_batch(train[:128]), {}
    for name in FAMILIES:
        model = getattr(models, name)(x_dim=train.shape[1])
        steps[name] = (model, inspect(model, batch.head(2)), torch.optim.Adam(model.parameters(), lr=1e-3))
    seconds: dict[str, list[float]] = {name: [] for name in FAMILIES}
    with pyro.validation_enabled(False):  # as ppgen.fit trains
        for round_ in range(ROUNDS + 1):  # the first round warms up
            for name in FAMILIES if round_ % 2 else FAMILIES[::-1]:
                model, structure, optimizer = steps[name]
                start = time.perf_counter()
                for _ in range(STEPS):
                    loss = inference.ELBO().loss(model, structure, batch)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                if round_:
                    seconds[name].append((time.perf_counter() - start) / STEPS)
    return {name: statistics.median(values) for name, values in seconds.items()}


def classifiers() -> dict:
    """The generative classifiers compared, by label: each a factory of one density model per class."""
    return {
        "GenerativeClassifier(GMM, 1 component, diagonal)": lambda c: models.GMM(x_dim=64, n_components=1,
                                                                               covariance="diag", reg_covar=1e-2),
        "GenerativeClassifier(GMM, 1 component, full)": lambda c: models.GMM(x_dim=64, n_components=1,
                                                                           covariance="full", reg_covar=1e-2),
    }


def labels_table(sizes: list[int], seeds: int) -> list[dict]:
    """Accuracy and log loss on the digits' test set against the number of labelled training images."""
    x, y = datasets.digits(return_labels=True)
    x_test, y_test = datasets.digits(split="test", return_labels=True)
    rows = []
    for n in sizes:
        scores: dict[str, list[tuple[float, float]]] = {}
        for seed in range(seeds):
            if n < len(x):
                idx, _ = train_test_split(np.arange(len(x)), train_size=n, stratify=y.numpy(), random_state=seed)
            else:
                idx = np.arange(len(x))
            xs, ys = x[idx].double(), y[idx]
            for label, make in classifiers().items():
                clf = ppgen.GenerativeClassifier(make, epochs=20, lr=1e-3, seed=seed, progress=False).fit(xs, ys)
                proba = clf.predict_proba(x_test.double()).numpy()
                scores.setdefault(label, []).append(score(proba, y_test.numpy()))
            lr = LogisticRegression(max_iter=5000).fit(xs.numpy(), ys.numpy())
            scores.setdefault("LogisticRegression (scikit-learn)", []).append(
                score(lr.predict_proba(x_test.double().numpy()), y_test.numpy()))
        for label, values in scores.items():
            accuracy, loss = np.mean(values, axis=0)
            rows.append({"n_labels": n, "classifier": label, "accuracy": accuracy, "log_loss": loss,
                         "seeds": len(values)})
        print(f"    {n} labels: done", flush=True)
    return rows


def score(proba: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Accuracy and log loss (probabilities clipped to [1e-15, 1], as scikit-learn does)."""
    return float((proba.argmax(1) == y).mean()), float(log_loss(y, np.clip(proba, 1e-15, 1), labels=range(10)))


def main(quick: bool = False) -> dict:
    """Measure everything and write :data:`RESULTS`; ``quick`` shrinks every budget to check the script runs."""
    torch.set_num_threads(1)
    epochs, k = (2, 50) if quick else (100, 5000)
    start = time.perf_counter()
    results: dict = {"settings": {"epochs": epochs, "k": k, "inference": "ELBO()", "batch_size": 128, "lr": 1e-3,
                                  "seed": SEED, "threads": 1}, "families": {}, "skipped": {}}
    print("  latent families on digits...", flush=True)
    train, test = datasets.digits(binarize=True), datasets.digits(split="test", binarize=True)
    results["families"]["digits"] = {"data": "digits, binarised: 1437 training, 360 test images of 8x8",
                                     "epochs": epochs, "rows": family_table(train, test, epochs, k)}
    try:
        fm_train = datasets.fashion_mnist("train", binarize=True)
        fm_test = datasets.fashion_mnist("test", binarize=True)
    except FileNotFoundError as error:
        results["skipped"]["fashion-mnist"] = str(error)
    else:
        n_train, n_test, fm_epochs = (500, 20, 1) if quick else (5000, 200, 10)
        print("  latent families on Fashion-MNIST...", flush=True)
        results["families"]["fashion-mnist"] = {
            "data": f"Fashion-MNIST, binarised: the first {n_train} training and first {n_test} test images of 28x28",
            "epochs": fm_epochs, "rows": family_table(fm_train[:n_train], fm_test[:n_test], fm_epochs, k)}
    print("  generative vs discriminative on digits...", flush=True)
    sizes, seeds = ([50, 1437], 1) if quick else ([20, 50, 100, 200, 500, 1437], 3)
    results["classification"] = {"data": "digits, grey levels in [0, 1]: stratified subsets of the 1437 training "
                                         "images, scored on the 360 test images", "rows": labels_table(sizes, seeds)}
    results["seconds"] = round(time.perf_counter() - start, 1)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny budgets, to check the script runs")
    main(parser.parse_args().quick)
