"""The latent-variable families side by side, and generative against discriminative classification.

1. Test log-likelihood, the IWAE-5000 estimate of log p(x) in nats per image, of ``VAE``, ``ConvVAE``, ``HVAE``
   and ``GMVAE`` (each built with the zoo's defaults) on the binarised digits and, where Debian's files are
   installed, on a subset of binarised Fashion-MNIST, every family trained for the same number of epochs
   (ELBO, Adam, batch 128, lr 1e-3); the time of a training step as a ratio to the VAE's, the median of
   rounds in which every family takes its steps in turn, so that a shared machine's changing load falls
   on every family alike.
2. ``ppgen.GenerativeClassifier`` with a zoo density per class, and the semi-supervised ``SSVAE`` (which reads
   every training image, labelled or not, and classifies by its posterior p(y|x)), against scikit-learn's
   ``LogisticRegression``, on the digits and on a subset of Fashion-MNIST: accuracy and log loss on the test
   images as the number of labelled training images shrinks (stratified subsets, averaged over seeds).

Run by ``bench/run.py`` (``make bench``) or alone: ``python bench/latent_families.py [--quick] [--part ...]``; writes
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
from ppgen.program.inputs import as_batch
from ppgen.program.structure import inspect

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


#: the largest D for which the generative classifiers include a full-covariance Gaussian per class: on
#: Fashion-MNIST (D = 784) a 784 x 784 covariance per class takes about 30 s a class to fit on 500 images.
FULL_COVARIANCE_MAX_DIM = 64


def classifiers(x_dim: int) -> dict:
    """The generative classifiers compared, by label: each a factory of one density model per class."""
    chosen = {"GenerativeClassifier(GMM, 1 component, diagonal)": lambda c: models.GMM(
        x_dim=x_dim, n_components=1, covariance="diag", reg_covar=1e-2)}
    if x_dim <= FULL_COVARIANCE_MAX_DIM:
        chosen["GenerativeClassifier(GMM, 1 component, full)"] = lambda c: models.GMM(
            x_dim=x_dim, n_components=1, covariance="full", reg_covar=1e-2)
    return chosen


def ssvae_proba(x_bin: torch.Tensor, y: torch.Tensor, labelled: np.ndarray, x_test_bin: torch.Tensor,
                budget: dict, seed: int) -> np.ndarray:
    """p(y|x) of the test images under an SSVAE fitted to every training image, the labels known only at
    ``labelled`` (``-1`` elsewhere): semi-supervised, the unlabelled images used too."""
    partial = torch.full_like(y, models.SSVAE.UNLABELLED)
    partial[labelled] = y[labelled]
    model = models.SSVAE(x_dim=x_bin.shape[1], hidden=budget["hidden"])
    fit = ppgen.fit(model, (x_bin, partial), epochs=budget["epochs"], batch_size=128, lr=budget["lr"], seed=seed,
                    progress=False)
    pyro.set_rng_seed(seed)
    return fit.encode(x_test_bin, models.SSVAE.unlabelled(len(x_test_bin)), site="y").double().numpy()


def labels_table(data: dict, sizes: list[int], seeds: int, ssvae: dict) -> list[dict]:
    """Accuracy and log loss on a test set against the number of labelled training images.

    Arguments:
        data: ``x``, ``y``, ``x_test``, ``y_test`` (grey levels in [0, 1]) and ``x_bin``, ``x_test_bin`` (the
            same images binarised, which the SSVAE's Bernoulli likelihood reads).
        sizes: the numbers of labelled training images (stratified subsets).
        seeds: the subsets drawn, and fits made, per size.
        ssvae: the SSVAE's ``hidden``, ``epochs`` and ``lr``.
    """
    x, y, x_test, y_test = data["x"], data["y"], data["x_test"], data["y_test"].numpy()
    rows = []
    for n in sizes:
        scores: dict[str, list[tuple[float, float]]] = {}
        for seed in range(seeds):
            if n < len(x):
                idx, _ = train_test_split(np.arange(len(x)), train_size=n, stratify=y.numpy(), random_state=seed)
            else:
                idx = np.arange(len(x))
            xs, ys = x[idx].double(), y[idx]
            for label, make in classifiers(x.shape[1]).items():
                clf = ppgen.GenerativeClassifier(make, epochs=20, lr=1e-3, seed=seed, progress=False).fit(xs, ys)
                scores.setdefault(label, []).append(score(clf.predict_proba(x_test.double()).numpy(), y_test))
            proba = ssvae_proba(data["x_bin"], y, idx, data["x_test_bin"], ssvae, seed)
            scores.setdefault("SSVAE (semi-supervised: every training image, these labelled)", []).append(
                score(proba, y_test))
            lr = LogisticRegression(max_iter=5000).fit(xs.numpy(), ys.numpy())
            scores.setdefault("LogisticRegression (scikit-learn)", []).append(
                score(lr.predict_proba(x_test.double().numpy()), y_test))
        for label, values in scores.items():
            accuracy, loss = np.mean(values, axis=0)
            rows.append({"n_labels": n, "classifier": label, "accuracy": accuracy, "log_loss": loss,
                         "seeds": len(values)})
        print(f"    {n} labels: done", flush=True)
    return rows


def classification_data(name: str, n_train: int | None = None, n_test: int | None = None) -> dict:
    """The images (grey and binarised) and labels of a data set for :func:`labels_table`, its first ``n_train``
    training and ``n_test`` test images where given."""
    load = datasets.digits if name == "digits" else datasets.fashion_mnist
    x, y = load(split="train", return_labels=True)
    x_test, y_test = load(split="test", return_labels=True)
    x, y, x_test, y_test = x[:n_train], y[:n_train], x_test[:n_test], y_test[:n_test]
    return {"x": x, "y": y, "x_test": x_test, "y_test": y_test, "x_bin": (x >= 0.5).to(x.dtype),
            "x_test_bin": (x_test >= 0.5).to(x.dtype)}


def classification(quick: bool, only: str | None = None) -> dict:
    """The generative-against-discriminative tables: on the digits, and on a subset of Fashion-MNIST where its
    files are installed (or only the data set ``only``); each block with its own wall time."""
    blocks, skipped = {}, {}
    plans = {
        "digits": dict(n_train=None, n_test=None, sizes=[50, 1437] if quick else [20, 50, 100, 200, 500, 1437],
                       seeds=1 if quick else 3, ssvae={"hidden": (128,), "epochs": 2 if quick else 100, "lr": 3e-3},
                       data="digits, grey levels in [0, 1] (binarised for the SSVAE): stratified subsets of the "
                            "1437 training images, scored on the 360 test images"),
        "fashion-mnist": dict(n_train=500 if quick else 5000, n_test=100 if quick else 1000,
                              sizes=[50, 500] if quick else [50, 500, 5000], seeds=1,
                              ssvae={"hidden": (400,), "epochs": 1 if quick else 20, "lr": 1e-3},
                              data="Fashion-MNIST, grey levels in [0, 1] (binarised for the SSVAE): stratified "
                                   "subsets of the first {n_train} training images, scored on the first {n_test} "
                                   "test images, one seed; no full-covariance Gaussian per class at D = 784"),
    }
    for name, plan in plans.items():
        if only is not None and name != only:
            continue
        try:
            data = classification_data(name, plan["n_train"], plan["n_test"])
        except FileNotFoundError as error:
            skipped[name] = str(error)
            continue
        print(f"  generative vs discriminative on {name}...", flush=True)
        start, cpu_start = time.perf_counter(), time.process_time()
        rows = labels_table(data, plan["sizes"], plan["seeds"], plan["ssvae"])
        blocks[name] = {"data": plan["data"].format(n_train=len(data["x"]), n_test=len(data["x_test"])),
                        "ssvae": {**plan["ssvae"], "hidden": list(plan["ssvae"]["hidden"]), "batch_size": 128},
                        "rows": rows, "seconds": round(time.perf_counter() - start, 1),
                        "cpu_seconds": round(time.process_time() - cpu_start, 1)}
    return {"blocks": blocks, "skipped": skipped}


def score(proba: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Accuracy and log loss (probabilities clipped to [1e-15, 1] and each row normalised again, as scikit-learn
    did before it warned instead)."""
    clipped = np.clip(proba, 1e-15, 1)
    clipped = clipped / clipped.sum(1, keepdims=True)
    return float((proba.argmax(1) == y).mean()), float(log_loss(y, clipped, labels=range(10)))


def families(quick: bool) -> dict:
    """The family tables: on the digits, and on a subset of Fashion-MNIST where its files are installed."""
    epochs, k = (2, 50) if quick else (100, 5000)
    results: dict = {"families": {}, "skipped": {}}
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
    return results


def main(quick: bool = False, part: str = "all", only: str | None = None) -> dict:
    """Measure and write :data:`RESULTS`; ``quick`` shrinks every budget to check the script runs.

    ``part="families"`` or ``"classification"`` measures that part alone and keeps the other's last results
    from :data:`RESULTS` (each part records its own wall time, ``families_seconds`` and the blocks' ``seconds``);
    ``only`` (a data set's name) measures the classification table of that data set alone, keeping the others.
    """
    torch.set_num_threads(1)
    epochs, k = (2, 50) if quick else (100, 5000)
    results: dict = {"settings": {"epochs": epochs, "k": k, "inference": "ELBO()", "batch_size": 128, "lr": 1e-3,
                                  "seed": SEED, "threads": 1}}
    if part in ("all", "families"):
        start = time.perf_counter()
        results.update(families(quick))
        results["families_seconds"] = round(time.perf_counter() - start, 1)
    if part in ("all", "classification"):
        results["classification"] = classification(quick, only)
    # read at the end, so that parts measured at the same time by separate processes keep each other's results
    previous = json.loads(RESULTS.read_text()) if RESULTS.is_file() and (part != "all" or only) else {}
    for key in ("families", "skipped", "families_seconds", "classification"):
        if key in previous and key not in results:
            results[key] = previous[key]
    if only is not None and "blocks" in previous.get("classification", {}):
        for name, block in previous["classification"]["blocks"].items():
            results["classification"]["blocks"].setdefault(name, block)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny budgets, to check the script runs")
    parser.add_argument("--part", choices=["all", "families", "classification"], default="all",
                        help="measure one part alone, keeping the other's last results (default: all)")
    parser.add_argument("--only", choices=["digits", "fashion-mnist"],
                        help="with --part classification: that data set's table alone, keeping the other's")
    args = parser.parse_args()
    main(args.quick, args.part, args.only)
