"""The structure of Burda et al. (2015), Table 1, on binarised digits and Fashion-MNIST, and the encoder-gradient SNR
of IWAE's estimators.

1. Per data set, a one-stochastic-layer ``VAE`` and the two-stochastic-layer ``HVAE``, each trained by the ELBO and
   by IWAE at k = 1, 5, 50, and by IWAE-DReG at k = 50, from the same initial weights, the same batches and the
   same number of epochs; each evaluated on the test split with ``fit.evaluate(test, k=K_eval)`` (IWAE_K, the
   ELBO, and the PSIS k-hat of its weights), with Burda's count of active latent units beside it, per stochastic
   layer: unit u of z1 is active when Cov_x(E_q[z1_u | x]) > 0.01, unit u of z2 when
   Cov_x(E_q(z1|x) E_q(z2|z1)[z2_u]) > 0.01 (the inner mean analytic, the outer one over draws of z1).
   Fashion-MNIST is trained on the first ``--train-size`` training images and evaluated on the first
   ``--test-size`` test images (the table and the JSON say which), so that it runs in under 30 minutes on two
   idle cores; ``--train-size 0 --test-size 0`` runs it full size (60,000 and 10,000 images: hours on one core).
   With ``--runs DIR`` every row trains in a run folder of its own under DIR (``fit(out=..., resume=True)``) and
   its evaluation is kept beside it, so that the same command, stopped anywhere and run again, continues where it
   stopped: a full-size table can span several sessions.
2. The signal-to-noise ratio |E g| / std(g) of the encoder's gradient under the standard, DReG and STL estimators
   of IWAE_k at several k, on the ELBO-trained digits VAE (Rainforth et al., 2018: the standard estimator's falls
   as k grows): per parameter over repeated estimates on a fixed batch, the median over the encoder's parameters.

``python bench/burda.py`` measures what its options select (``--help``), merges it into the ``"burda"`` entry of
``bench/results.json`` (blocks it did not run keep their last figures and dates) and re-renders
``docs/benchmarks.md``; ``bench/run.py`` runs it after the speed figures.

References:
    Importance Weighted Autoencoders (Burda, Grosse and Salakhutdinov, 2015). https://arxiv.org/abs/1509.00519
    Tighter Variational Bounds are Not Necessarily Better (Rainforth et al., 2018). https://arxiv.org/abs/1802.04537
    Fashion-MNIST: a Novel Image Dataset for Benchmarking Machine Learning Algorithms (Xiao, Rasul and Vollgraf,
    2017). https://arxiv.org/abs/1708.07747
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import pyro
import torch
from torch import Tensor

import ppgen
from ppgen import datasets, inference
from ppgen.models import HVAE, VAE
from ppgen.models.hvae import gaussian
from ppgen.program.inputs import as_batch
from ppgen.program.structure import inspect
from ppgen.run.folder import RunFolder

from sections.formatting import read_json  # bench/ is on sys.path when a script in it runs

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results.json"
DOCS = BENCH.parent / "docs" / "benchmarks.md"

BATCH_SIZE, LR, SEED, EVAL_K = 100, 1e-3, 0, 5000
ACTIVE_THRESHOLD = 0.01
#: draws of z1 ~ q(z1|x) behind E_q(z1|x) E_q(z2|z1)[z2]: their Monte Carlo variance, at most Var(z2)/S ~ 1/S,
#: stays well under the 0.01 threshold.
Z2_MEAN_DRAWS = 1000
ROWS = {
    "ELBO": inference.ELBO(),
    "IWAE k=1": inference.IWAE(k=1),
    "IWAE k=5": inference.IWAE(k=5),
    "IWAE k=50": inference.IWAE(k=50),
    "IWAE-DReG k=50": inference.IWAE(k=50, estimator="dreg"),
}
#: per data set, the networks: for digits scaled down to 64 pixels; for Fashion-MNIST Burda's two architectures
#: (Table 1: 784-200-200-50 and 784-100-100-100-50-50-50), ppgen's VAE with ReLU hidden units where Burda's has tanh.
NETWORKS = {
    "digits": {
        "VAE": {"x_dim": 64, "z_dim": 20, "hidden": (100, 100), "likelihood": "bernoulli"},
        "HVAE": {"x_dim": 64, "z_dim": 20, "z2_dim": 10, "hidden": (100, 100), "hidden2": (50, 50),
                 "likelihood": "bernoulli"},
    },
    "fashion-mnist": {
        "VAE": {"x_dim": 784, "z_dim": 50, "hidden": (200, 200), "likelihood": "bernoulli"},
        "HVAE": {"x_dim": 784, "z_dim": 100, "z2_dim": 50, "hidden": (100, 100), "hidden2": (50, 50),
                 "likelihood": "bernoulli"},
    },
}
CLASSES = {"VAE": VAE, "HVAE": HVAE}
DEFAULT_EPOCHS = {"digits": 100, "fashion-mnist": 5}
DEFAULT_TRAIN_SIZE, DEFAULT_TEST_SIZE = 3000, 100
SNR_K = (1, 4, 16, 64)
SNR_ESTIMATORS = ("standard", "dreg", "stl")


def network(data: str, name: str) -> VAE | HVAE:
    """The benchmarked network, with the same initial weights each call."""
    torch.manual_seed(SEED)
    return CLASSES[name](**NETWORKS[data][name])


def describe(data: str, name: str) -> str:
    """The network's constructor call, as the table prints it."""
    return f"ppgen.models.{name}({', '.join(f'{k}={v!r}' for k, v in NETWORKS[data][name].items())})"


def load(data: str, train_size: int, test_size: int) -> tuple[Tensor, Tensor, str]:
    """The binarised training and test splits (their first ``train_size`` / ``test_size`` rows where > 0) and a
    description of them."""
    if data == "digits":
        train, test = (datasets.digits(binarize=True, split=s) for s in ("train", "test"))
        return train, test, f"digits, binarised: {len(train)} training and {len(test)} test points of 64 pixels"
    train, test = (datasets.fashion_mnist(split=s, binarize=True) for s in ("train", "test"))
    full = (len(train), len(test))
    train, test = train[:train_size] if train_size else train, test[:test_size] if test_size else test
    subset = "" if (len(train), len(test)) == full else (
        f" (a subset: the first {len(train)} of {full[0]} training and the first {len(test)} of {full[1]} "
        "test images)")
    return train, test, (f"Fashion-MNIST, binarised at 0.5: {len(train)} training and {len(test)} test images of "
                         f"784 pixels{subset}")


def active_units(fit: ppgen.Fit, x: Tensor) -> list[int]:
    """Burda's measure, per stochastic layer: units u with Cov_x(E_q[z_u | x]) > 0.01."""
    counts = [int((fit.encode(x, site="z1" if isinstance(fit.model, HVAE) else None).var(0)
                   > ACTIVE_THRESHOLD).sum())]
    if isinstance(fit.model, HVAE):
        with torch.no_grad():
            z1 = gaussian(fit.model.encoder, x).sample((Z2_MEAN_DRAWS,))
            z2_mean = gaussian(fit.model.encoder2, z1).mean.mean(0)
        counts.append(int((z2_mean.var(0) > ACTIVE_THRESHOLD).sum()))
    return counts


def table(data: str, name: str, train: Tensor, test: Tensor, epochs: int, k_eval: int,
          runs: Path | None = None) -> list[dict]:
    """Train each row's objective on ``name`` and evaluate it with K = ``k_eval`` on the test split; with ``runs``,
    each row resumable there (:func:`row_folder`)."""
    rows = []
    for label, backend in ROWS.items():
        folder = None if runs is None else row_folder(runs, data, name, label, len(train), len(test), epochs, k_eval)
        done = None if folder is None else read_json(folder.with_suffix(".json"))
        if done is not None and "test_iwae" in done:
            rows.append(done)
            print(f"  {data} {name} {label}: kept from {folder.with_suffix('.json')}", flush=True)
            continue
        start, cpu_start = time.perf_counter(), time.process_time()
        fit = ppgen.fit(network(data, name), train, inference=backend, epochs=epochs, batch_size=BATCH_SIZE, lr=LR,
                        seed=SEED, progress=False, out=folder, resume=folder is not None)
        trained, cpu_trained = time.perf_counter() - start, time.process_time() - cpu_start
        if folder is not None:  # wall seconds of every stretch of the run (its folder records them); CPU seconds
            # of the stretches that reached the end of training
            earlier = done or {"train_cpu_seconds": 0.0}
            trained, cpu_trained = RunFolder(folder).seconds(), earlier["train_cpu_seconds"] + cpu_trained
            write_json(folder.with_suffix(".json"), {"train_cpu_seconds": cpu_trained})
        pyro.set_rng_seed(SEED)
        eval_start, cpu_eval_start = time.perf_counter(), time.process_time()
        with warnings.catch_warnings(record=True):  # k-hat is recorded beside the figure, not shouted
            warnings.simplefilter("always")
            report = fit.evaluate(test, k=k_eval)
        evaluated, cpu_evaluated = time.perf_counter() - eval_start, time.process_time() - cpu_eval_start
        means = report.means()
        rows.append({"objective": label, "backend": repr(backend), "test_iwae": means["iwae"],
                     "test_elbo": means["elbo"], "khat_mean": means["khat"], "khat_above_0.7": report.unreliable,
                     "active_units": active_units(fit, test), "final_training_loss": fit.history[-1],
                     "train_seconds": trained, "eval_seconds": evaluated, "train_cpu_seconds": cpu_trained,
                     "eval_cpu_seconds": cpu_evaluated})
        if folder is not None:
            write_json(folder.with_suffix(".json"), rows[-1])
        print(f"  {data} {name} {label}: test log p(x) ~ {means['iwae']:.3f}, ELBO {means['elbo']:.3f}, "
              f"active units {rows[-1]['active_units']}, trained {trained:.0f} s ({cpu_trained:.0f} s of CPU), "
              f"evaluated {evaluated:.0f} s ({cpu_evaluated:.0f} s of CPU)",
              flush=True)
    return rows


def row_folder(runs: Path, data: str, name: str, label: str, train_size: int, test_size: int, epochs: int,
               k_eval: int) -> Path:
    """The run folder of one row of the table under ``runs``, named by everything that makes its figures, so that a
    run with other settings never resumes it; the row's evaluation is kept beside it, in the same name + ``.json``."""
    slug = label.lower().replace(" ", "-").replace("=", "")
    return runs / f"{data}-{train_size}x{test_size}" / f"{name}-{epochs}epochs-k{k_eval}" / slug


def write_json(path: Path, value: dict) -> None:
    """Write ``value`` to ``path`` whole or not at all (a temporary file renamed over it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(value, indent=2) + "\n")
    tmp.replace(path)


def snr(train: Tensor, test: Tensor, epochs: int, repeats: int) -> list[dict]:
    """Median over the encoder's parameters of |mean| / std of ``repeats`` gradient estimates on 16 test points."""
    fit = ppgen.fit(network("digits", "VAE"), train, inference=inference.ELBO(), epochs=epochs,
                    batch_size=BATCH_SIZE, lr=LR, seed=SEED, progress=False)
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


def now() -> str:
    """The UTC time, to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def run(data_sets: list[str], names: list[str], epochs: int | None = None, k_eval: int = EVAL_K,
        train_size: int = DEFAULT_TRAIN_SIZE, test_size: int = DEFAULT_TEST_SIZE, snr_repeats: int = 100,
        threads: int = 1, previous: dict | None = None, on_block: Callable[[dict], None] | None = None,
        command: str = "python bench/run.py", runs: Path | None = None) -> dict:
    """The selected blocks (one per data set and network), merged into ``previous`` (the last ``"burda"`` entry),
    which keeps the blocks not run (those of a data set whose files are not installed, too); ``on_block`` sees the
    entry after each block, to save it as it grows; ``command`` is recorded in each block, as the way to measure it
    again; ``runs``: where each row resumes (see :func:`row_folder`), ``None`` for rows trained in memory."""
    torch.set_num_threads(threads)
    entry = {"blocks": {}, **(previous or {})}
    entry["settings"] = {"batch_size": BATCH_SIZE, "lr": LR, "optimizer": "torch.optim.Adam", "seed": SEED,
                         "active_threshold": ACTIVE_THRESHOLD, "z2_mean_draws": Z2_MEAN_DRAWS}
    for data in data_sets:
        try:
            train, test, description = load(data, train_size, test_size)
        except FileNotFoundError as missing:  # Fashion-MNIST not installed: its last blocks stay as they are
            print(f"Burda et al. (2015) table, {data}: skipped, {missing}", flush=True)
            continue
        block_epochs = epochs or DEFAULT_EPOCHS[data]
        for name in names:
            print(f"Burda et al. (2015) table, {data}, {name}:", flush=True)
            start = time.perf_counter()
            rows = table(data, name, train, test, block_epochs, k_eval, runs)
            entry["blocks"][f"{data}/{name}"] = {
                "data": description, "network": describe(data, name), "epochs": block_epochs, "eval_k": k_eval,
                "torch_threads": threads, "rows": rows, "seconds": round(time.perf_counter() - start, 1),
                "date": now(), "command": command}
            if on_block:
                on_block(entry)
        if data == "digits" and snr_repeats:
            print("encoder-gradient SNR:", flush=True)
            start = time.perf_counter()
            entry["snr"] = {"rows": snr(train, test, block_epochs, snr_repeats), "repeats": snr_repeats,
                            "batch": 16, "epochs": block_epochs, "network": describe("digits", "VAE"),
                            "torch_threads": threads, "seconds": round(time.perf_counter() - start, 1),
                            "date": now(), "command": command}
            if on_block:
                on_block(entry)
    return entry


def save(entry: dict) -> None:
    """Merge ``entry`` into the ``"burda"`` entry of ``bench/results.json`` as it is on disk now (its blocks and SNR
    replace those of the same name, so that runs of other blocks side by side keep theirs) and re-render
    ``docs/benchmarks.md``."""
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    on_disk = results.get("burda", {})
    results["burda"] = {**on_disk, **entry, "blocks": {**on_disk.get("blocks", {}), **entry["blocks"]}}
    write_json(RESULTS, results)
    if "machine" in results:  # the page needs the speed figures too
        import render  # bench/ is on sys.path when a script in it runs

        render.main()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="digits,fashion-mnist",
                        help="comma-separated, of: digits, fashion-mnist (default both)")
    parser.add_argument("--networks", default="VAE,HVAE", help="comma-separated, of: VAE, HVAE (default both)")
    parser.add_argument("--epochs", type=int, default=None,
                        help=f"training epochs per objective (default {DEFAULT_EPOCHS})")
    parser.add_argument("--k-eval", type=int, default=EVAL_K, help=f"K of the test estimate (default {EVAL_K})")
    parser.add_argument("--train-size", type=int, default=DEFAULT_TRAIN_SIZE,
                        help=f"Fashion-MNIST training images used, 0 for all 60000 (default {DEFAULT_TRAIN_SIZE})")
    parser.add_argument("--test-size", type=int, default=DEFAULT_TEST_SIZE,
                        help=f"Fashion-MNIST test images evaluated, 0 for all 10000 (default {DEFAULT_TEST_SIZE})")
    parser.add_argument("--snr-repeats", type=int, default=100,
                        help="gradient estimates per SNR, 0 to keep the last SNR figures (default 100)")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    parser.add_argument("--runs", type=Path, default=None,
                        help="a folder in which each row trains resumably (a run folder per row, its evaluation "
                             "beside it): the same command run again continues where it stopped (default: none)")
    args = parser.parse_args()
    data_sets, names = args.datasets.split(","), args.networks.split(",")
    for value, known, option in ((data_sets, NETWORKS, "--datasets"), (names, CLASSES, "--networks")):
        if unknown := [v for v in value if v not in known]:
            parser.error(f"{option}: unknown {unknown}, expected some of {list(known)}")
    for option, least in (("epochs", 1), ("k_eval", 1), ("threads", 1), ("train_size", 0), ("test_size", 0),
                          ("snr_repeats", 0)):
        if getattr(args, option) is not None and getattr(args, option) < least:
            parser.error(f"--{option.replace('_', '-')} must be an integer >= {least}, got {getattr(args, option)}")
    previous = json.loads(RESULTS.read_text()).get("burda") if RESULTS.exists() else None
    start = time.perf_counter()
    run(data_sets, names, args.epochs, args.k_eval, args.train_size, args.test_size, args.snr_repeats,
        args.threads, previous, on_block=save, command=" ".join(["python bench/burda.py", *sys.argv[1:]]),
        runs=args.runs)
    print(f"wrote {RESULTS.relative_to(BENCH.parent)} and {DOCS.relative_to(BENCH.parent)} in "
          f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
