"""The choice of d: one generator fitted by each likelihood-free objective, a flow by maximum likelihood, judged by
sample metrics; and on Fashion-MNIST a convolutional generator against the VAEs of the latent-family table.

1. Two moons and the ring of 8 Gaussians (``datasets.moons``, ``datasets.ring``; 2,000 training and 1,000 held-out
   points each; each set a part of its own): ``models.Generator(x_dim=2)`` fitted by
   ``inference.Adversarial(divergence="js")``, ``inference.Wasserstein()`` and ``inference.MMD()``,
   ``models.RealNVP(x_dim=2)`` by ``inference.MLE()``, the budgets of ``docs/tutorials/choice_of_d.py``. Each fit
   is scored by ``fit.evaluate``: MMD^2 with its permutation p-value, the classifier two-sample test, on the ring
   the modes captured and the fraction of high-quality draws, and the exact test log p(x) where the model has one;
   and the seconds per epoch of each objective as a ratio to MMD's on the same data, measured in the same run.
2. Where Debian's Fashion-MNIST files are installed: a subset of the binarised images (the latent-family table's,
   ``bench/latent_families.py``: the first 5,000 training images; scored on the first 1,000 test images), a
   ``models.ConvGenerator`` fitted by ``inference.Adversarial(divergence="js")`` and by ``inference.MMD()``, against
   ``models.VAE`` and ``models.ConvVAE`` fitted by the ELBO as in that table; all judged by the Fréchet distance in the
   features of a classifier of the subset's labels (``ppgen.queries.features.feature_classifier``; not the Inception
   FID), MMD^2 and the C2ST, and the VAEs by their IWAE estimate of log p(x) too. Where the files are absent, the part
   is skipped with a line saying so.

Run alone: ``python bench/choice_of_d.py [--quick] [--part all|2d|moons|ring|fashion]`` (``bench/run.py`` runs it unless
``--skip-choice-of-d``); writes ``bench/choice_of_d.json``, which ``render.py`` quotes in ``docs/benchmarks.md``. One
torch thread; a part run alone keeps the other's last results.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pyro
import torch

import ppgen
from ppgen import datasets, inference, models
from ppgen.queries.features import feature_classifier

RESULTS = Path(__file__).resolve().parent / "choice_of_d.json"
SEED = 0


def adam(lr: float) -> pyro.optim.Adam:
    """Adam with beta_1 = 0.5, beta_2 = 0.9 (Radford et al. 2016; Gulrajani et al. 2017), the critic's too."""
    return pyro.optim.Adam({"lr": lr, "betas": (0.5, 0.9)})


#: the 2-D fits, as the tutorial makes them: (model, backend, epochs, batch size, learning rate)
OBJECTIVES_2D = {
    "KL (RealNVP, MLE)": (lambda: models.RealNVP(x_dim=2), lambda: inference.MLE(), 100, 256, 1e-3),
    "JS (Adversarial)": (lambda: models.Generator(x_dim=2), lambda: inference.Adversarial(divergence="js"), 200, 128,
                         1e-3),
    "W1 (Wasserstein)": (lambda: models.Generator(x_dim=2), lambda: inference.Wasserstein(), 600, 128, 5e-4),
    "MMD": (lambda: models.Generator(x_dim=2), lambda: inference.MMD(), 100, 256, 3e-3),
}


SETS_2D = {"moons": ("two moons", datasets.moons), "ring": ("ring of 8 Gaussians", datasets.ring)}


def two_d(quick: bool, key: str) -> dict:
    """The 2-D table of one data set (``"moons"`` or ``"ring"``): each objective fitted and scored."""
    n_train, n_test, scale = (256, 100, 0.01) if quick else (2000, 1000, 1.0)
    data_name, make = SETS_2D[key]
    train, test = make(n=n_train, seed=0), make(n=n_test, seed=1)
    ring = key == "ring"
    rows = []
    for name, (model, backend, epochs, batch_size, lr) in OBJECTIVES_2D.items():
        epochs = max(1, int(epochs * scale))
        torch.manual_seed(SEED)
        start = time.perf_counter()
        fit = ppgen.fit(model(), train, inference=backend(), epochs=epochs, batch_size=batch_size, optim=adam(lr),
                        seed=SEED, progress=False)
        seconds = time.perf_counter() - start
        torch.manual_seed(SEED + 1)
        report = fit.evaluate(test, k=1, metrics=("mmd", "c2st", "modes") if ring else ("mmd", "c2st"),
                              modes=datasets.ring_modes() if ring else None)
        row = {"data": data_name, "objective": name, "inference": repr(fit.inference), "epochs": epochs,
               "batch_size": batch_size, "lr": lr, "seconds": seconds, "seconds_per_epoch": seconds / epochs,
               "log_p": None if report.exact is None else report.exact.mean().item(), **report.samples.to_dict()}
        rows.append(row)
        modes = f", modes {row['modes']['value']:.0f}" if ring else ""
        print(f"  {data_name}, {name}: MMD^2 {row['mmd']['value']:.4f}, C2ST {row['c2st']['value']:.3f}{modes}, "
              f"{seconds:.0f} s", flush=True)
    mmd = next(row["seconds_per_epoch"] for row in rows if row["objective"] == "MMD")
    for row in rows:
        row["epoch_time_ratio_to_mmd"] = row["seconds_per_epoch"] / mmd
    return {"data": f"{n_train} training and {n_test} held-out points (seeds 0 and 1)", "rows": rows}


def fashion(quick: bool) -> dict:
    """The Fashion-MNIST table, or ``{"skipped": why}`` where its files are not installed."""
    try:
        x, labels = datasets.fashion_mnist("train", binarize=True, return_labels=True)
        x_test = datasets.fashion_mnist("test", binarize=True)
    except (FileNotFoundError, OSError) as error:
        print(f"  Fashion-MNIST is not installed here ({error}); skipped", flush=True)
        return {"skipped": f"Fashion-MNIST is not installed here ({error})".replace("\n", " ")}
    n_train, n_test, epochs, k, k_points = (500, 100, 1, 10, 20) if quick else (5000, 1000, 20, 1000, 200)
    x, labels, x_test = x[:n_train], labels[:n_train], x_test[:n_test]
    features = feature_classifier(x, labels, epochs=2 if quick else 20)
    image = {"x_dim": 784, "image_shape": (1, 28, 28)}
    plans = {
        "ConvGenerator, JS (Adversarial)": (lambda: models.ConvGenerator(**image),
                                            lambda: inference.Adversarial(divergence="js"), adam(2e-4), 64),
        "ConvGenerator, MMD": (lambda: models.ConvGenerator(**image), lambda: inference.MMD(), adam(1e-3), 256),
        "VAE, ELBO": (lambda: models.VAE(x_dim=784), lambda: inference.ELBO(), None, 128),
        "ConvVAE, ELBO": (lambda: models.ConvVAE(x_dim=784), lambda: inference.ELBO(), None, 128),
    }
    rows = []
    for name, (model, backend, optim, batch_size) in plans.items():
        torch.manual_seed(SEED)
        start = time.perf_counter()
        fit = ppgen.fit(model(), x, inference=backend(), epochs=epochs, batch_size=batch_size, optim=optim, lr=1e-3,
                        seed=SEED, progress=False)
        seconds = time.perf_counter() - start
        torch.manual_seed(SEED + 1)
        report = fit.evaluate(x_test, k=1, metrics=("mmd", "c2st", "frechet"), features=features)
        density = {"log_p": None, "log_p_se": None}
        if fit.structure.guided:  # a VAE: log p(x) by IWAE on the first test images as well
            torch.manual_seed(SEED + 1)
            log_p = fit.log_prob(x_test[:k_points], k=k).double()
            density = {"log_p": log_p.mean().item(), "log_p_se": (log_p.std() / len(log_p) ** 0.5).item()}
        rows.append({"model": name, "inference": repr(fit.inference), "batch_size": batch_size,
                     "optimizer": "Adam(betas=(0.5, 0.9))" if optim is not None else "Adam (fit's default)",
                     "seconds": seconds, "seconds_per_epoch": seconds / epochs, **density,
                     **report.samples.to_dict()})
        print(f"  Fashion-MNIST, {name}: Frechet {rows[-1]['frechet']['value']:.2f}, MMD^2 "
              f"{rows[-1]['mmd']['value']:.4f}, C2ST {rows[-1]['c2st']['value']:.3f}, {seconds:.0f} s", flush=True)
    mmd = next(row["seconds_per_epoch"] for row in rows if row["model"] == "ConvGenerator, MMD")
    for row in rows:
        row["epoch_time_ratio_to_mmd"] = row["seconds_per_epoch"] / mmd
    return {"data": f"Fashion-MNIST, binarised (pixels >= 0.5): the first {n_train} training images, scored on the "
                    f"first {n_test} test images ({k_points} for log p(x), IWAE-{k})",
            "epochs": epochs, "feature_classifier_accuracy": features.accuracy(
                x_test, datasets.fashion_mnist("test", return_labels=True)[1][:n_test]), "rows": rows}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny budgets, to check the script runs")
    parser.add_argument("--part", choices=["all", "2d", *SETS_2D, "fashion"], default="all",
                        help="measure one part alone (2d: both 2-D sets), keeping the others' last results; the "
                             "parts may run at the same time in separate processes (default: all)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    results = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "threads": 1, "quick": args.quick,
               "command": " ".join(["python bench/choice_of_d.py", *(argv if argv is not None else sys.argv[1:])])}
    measures = {**{key: functools.partial(two_d, key=key) for key in SETS_2D}, "fashion": fashion}
    chosen = {"all": list(measures), "2d": list(SETS_2D)}.get(args.part, [args.part])
    for part, measure in measures.items():
        if part in chosen:
            print(f"choice of d, {part}:", flush=True)
            start = time.perf_counter()
            results[part] = measure(args.quick)
            results[part]["wall_seconds"] = round(time.perf_counter() - start, 1)
            results[part]["date"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    # read at the end, so that the two parts measured at the same time by separate processes keep each other's results
    previous = json.loads(RESULTS.read_text()) if RESULTS.is_file() and args.part != "all" else {}
    results["commands"] = {part: results["command"] for part in chosen}
    for part in measures:
        if part not in results and part in previous:
            results[part] = previous[part]
            results["commands"][part] = previous.get("commands", {}).get(part, previous["command"])
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}")
    return results


if __name__ == "__main__":
    main()
