r"""The ``ppgen`` command line: fit a model from the zoo, evaluate it, draw from it.

::

    ppgen fit --model vae --data digits --inference iwae --k 5 --epochs 50 --out runs/demo
    ppgen eval runs/demo --k 5000
    ppgen sample runs/demo -n 64 --out samples.png

``ppgen fit`` writes one folder per run: ``fit.pt`` (the fitted model, :func:`ppgen.load` reads it
back), ``metrics.json`` (the run's configuration, the training loss per epoch and the test
log-likelihood, with ``"exact": true`` and ``"eval_k": null`` where the model's log p(x) is exact, or the
importance samples ``eval_k`` of the estimate), and three pictures: ``samples.png``, ``latent.png`` (for
models with latent variables) and ``loss.png``.  ``metrics.json`` holds everything ``ppgen eval`` needs
to rebuild the test set.

Data sets (``--data``):

- ``digits``: scikit-learn's 8x8 handwritten digits, binarized for a Bernoulli likelihood;
- ``moons``: two moons, train ``n=1000`` with seed ``S``, test ``n=500`` with seed ``S+1``;
- ``fashion-mnist``: Fashion-MNIST's 60,000 training and 10,000 test images of 28x28, read from local files
  (see :func:`ppgen.datasets.fashion_mnist`; ``make data`` installs them);
- ``idx:PATH``: a local MNIST-style IDX image file; the last 20% of the images are the test set.

Comparable figures: a continuous density (a Gaussian likelihood, PPCA, a GMM...) fitted to data on a grid (the
digits' 17 grey levels, 8-bit pixels) reports a log-density that grows without bound and cannot stand beside a
discrete model's log-probability; ``metrics.json`` then says ``"comparable": false``. ``--dequantize`` fits it
to x + delta u, u ~ U[0, 1)^D instead, and reports log p(x + delta u) + D log delta, a lower bound on the
log-probability of the discrete test data, in the same nats per point (:mod:`ppgen.dequantize`).

Errors a user can cause (a missing run folder, a bad data file, an ``--out`` that cannot be written) are
reported on one line, ``ppgen: error: ...``, with exit status 1, before any work where they can be foreseen;
bad arguments are argparse errors with exit status 2.  The folder of a run is made only once its fit succeeded.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyro
import torch

import ppgen
from ppgen import datasets, plots, registry
from ppgen.checkpoint import atomic_write
from ppgen.dequantize import dequantize, discrete_log_likelihood, grid_spacing
from ppgen.structure import inspect as inspect_program
from ppgen.checks import SEED_LIMIT, check_device, check_positive_float, check_positive_int, check_seed

__all__ = ["main"]

#: Name of the fitted model inside a run folder.
FIT_FILE = "fit.pt"
#: Name of the metrics file inside a run folder.
METRICS_FILE = "metrics.json"

MOONS_NOISE = 0.1
MOONS_TRAIN, MOONS_TEST = 1000, 500
IDX_TEST_FRACTION = 0.2
N_SAMPLES = 64


# ---------------------------------------------------------------------------------------------
# Data


@dataclass(frozen=True)
class Data:
    """A train/test split, with test labels where the data set has them."""

    train: torch.Tensor
    test: torch.Tensor
    test_labels: torch.Tensor | None
    is_image: bool


def _data_kind(spec: str) -> str:
    return "idx" if spec.startswith("idx:") else spec


def load_data(spec: str, *, binarize: bool | None, seed: int) -> Data:
    """Builds the train and test sets named by ``spec`` (``digits``, ``moons`` or ``idx:PATH``).

    Arguments:
        spec: The data set, as given to ``--data`` (an ``idx:`` path should be absolute).
        binarize: Whether to binarize image data; ignored for ``moons``.
        seed: The run's seed; ``moons`` draws its train set with it and its test set with the next seed
            (``seed + 1`` modulo 2**32).
    """
    kind = _data_kind(spec)
    if kind == "digits":
        train = datasets.digits(split="train", binarize=bool(binarize))
        test, labels = datasets.digits(split="test", binarize=bool(binarize), return_labels=True)
        return Data(train, test, labels, is_image=True)
    if kind == "moons":
        train = datasets.moons(n=MOONS_TRAIN, noise=MOONS_NOISE, seed=seed)
        test_seed = (seed + 1) % SEED_LIMIT
        test, labels = datasets.moons(n=MOONS_TEST, noise=MOONS_NOISE, seed=test_seed, return_labels=True)
        return Data(train, test, labels, is_image=False)
    if kind == "fashion-mnist":
        train = datasets.fashion_mnist(split="train", binarize=bool(binarize))
        test, labels = datasets.fashion_mnist(split="test", binarize=bool(binarize), return_labels=True)
        return Data(train, test, labels, is_image=True)
    if kind == "idx":
        path = Path(spec[len("idx:"):]).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"IDX file {path} not found")
        x = datasets.idx_images(path, binarize=bool(binarize))
        n_train = round(len(x) * (1 - IDX_TEST_FRACTION))
        if n_train < 1 or n_train >= len(x):
            raise ValueError(f"{path} holds {len(x)} images: too few to hold out 20% as a test set")
        return Data(x[:n_train], x[n_train:], None, is_image=True)
    raise ValueError(f"unknown data set {spec!r}: use digits, moons, fashion-mnist or idx:PATH")


def _data_arg(value: str) -> str:
    if value in ("digits", "moons", "fashion-mnist"):
        return value
    if value.startswith("idx:") and len(value) > len("idx:"):
        # Absolute, so that `ppgen eval` finds the file from any working directory.
        return "idx:" + str(Path(value[len("idx:"):]).expanduser().resolve())
    raise argparse.ArgumentTypeError(f"unknown data set {value!r} (choose from digits, moons, fashion-mnist, "
                                     f"idx:PATH)")


# ---------------------------------------------------------------------------------------------
# Argument parsing


def _argument_type(parse: Callable[[str], Any], check: Callable[[Any, str], Any]) -> Callable[[str], Any]:
    """An argparse ``type``: the string ``parse``d, then ``check``ed by one of :mod:`ppgen.checks`.

    A failure becomes an :class:`argparse.ArgumentTypeError`, which argparse reports after the flag's name.
    """

    def convert(text: str) -> Any:
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {parse.__name__}, got {text!r}") from None
        try:
            return check(value, "value")
        except (TypeError, ValueError) as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return convert


_positive_int = _argument_type(int, check_positive_int)
_positive_float = _argument_type(float, check_positive_float)
_seed = _argument_type(int, check_seed)
_device = _argument_type(str, check_device)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``ppgen`` command."""
    parser = argparse.ArgumentParser(
        prog="ppgen",
        description="Fit deep generative models written as Pyro programs, evaluate them, draw from them.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {ppgen.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    fit = commands.add_parser(
        "fit",
        help="fit a model and write a run folder",
        description="Fit a model from the zoo to a data set; write fit.pt, metrics.json and pictures into --out.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    fit.add_argument("--model", default="vae", choices=sorted(registry.MODELS), help="model family")
    fit.add_argument("--data", default="digits", type=_data_arg, help="digits, moons, fashion-mnist, or idx:PATH")
    fit.add_argument(
        "--inference",
        default=None,
        choices=sorted(registry.INFERENCE),
        help="inference backend (default: ELBO for models with latents, MLE for exact-likelihood models)",
    )
    fit.add_argument("--k", type=_positive_int, default=None,
                     help="importance samples for iwae, particles for elbo")
    fit.add_argument("--epochs", type=_positive_int, default=50)
    fit.add_argument("--batch-size", type=_positive_int, default=128)
    fit.add_argument("--lr", type=_positive_float, default=1e-3, help="learning rate")
    fit.add_argument("--z-dim", type=_positive_int, default=None,
                     help="latent dimension (default: the model's)")
    fit.add_argument("--components", type=_positive_int, default=None,
                     help="mixture components, for gmm (default: the model's)")
    fit.add_argument("--hidden", type=_positive_int, nargs="+", default=None,
                     help="hidden layer widths, for vae (default: the model's)")
    fit.add_argument("--likelihood", choices=["bernoulli", "gaussian", "continuous_bernoulli"], default=None,
                     help="observation likelihood, for the VAE family (default: bernoulli for images, "
                          "gaussian for moons)")
    fit.add_argument("--binarize", action=argparse.BooleanOptionalAction, default=None,
                     help="binarize image data (default: when the likelihood is Bernoulli)")
    fit.add_argument("--dequantize", action="store_true",
                     help="fit a continuous density to data on a grid plus uniform noise, and report the test "
                          "log-likelihood in the discrete data's units (comparable with discrete models)")
    fit.add_argument("--seed", type=_seed, default=0)
    fit.add_argument("--eval-k", type=_positive_int, default=1000,
                     help="importance samples for the test log-likelihood")
    fit.add_argument("--device", type=_device, default="cpu")
    fit.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                     help="progress bar (default: on a terminal)")
    fit.add_argument("--out", type=Path, default=None, metavar="RUN",
                     help="run folder (default: runs/<model>-<data>)")
    fit.set_defaults(func=_cmd_fit, parser=fit)

    evaluate = commands.add_parser(
        "eval",
        help="re-evaluate the test log-likelihood of a run",
        description="Load RUN/fit.pt, rebuild the run's test set, estimate log p(x) and record it in metrics.json.",
    )
    evaluate.add_argument("run", type=Path, metavar="RUN", help="run folder written by `ppgen fit`")
    evaluate.add_argument("--k", type=_positive_int, default=None,
                          help="importance samples (default: the run's --eval-k)")
    evaluate.add_argument("--seed", type=_seed, default=None, help="seed of the estimate (default: the run's)")
    evaluate.add_argument("--device", type=_device, default="cpu")
    evaluate.set_defaults(func=_cmd_eval, parser=evaluate)

    sample = commands.add_parser(
        "sample",
        help="draw samples from a run and write a picture",
        description="Load RUN/fit.pt, draw n samples x ~ p(x) and write them as a picture.",
    )
    sample.add_argument("run", type=Path, metavar="RUN", help="run folder written by `ppgen fit`")
    sample.add_argument("-n", type=_positive_int, default=N_SAMPLES, help="number of samples")
    sample.add_argument("--out", type=Path, default=None, metavar="FILE",
                        help="picture to write; the extension picks the format (default: RUN/samples-<n>.png)")
    sample.add_argument("--seed", type=_seed, default=0)
    sample.add_argument("--device", type=_device, default="cpu")
    sample.set_defaults(func=_cmd_sample, parser=sample)
    return parser


def _accepted_options(model: str) -> set[str] | None:
    """The keyword arguments the model class takes, or None when it takes any (``**kwargs``)."""
    parameters = inspect.signature(registry.MODELS[model]).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return {p.name for p in parameters}


def _model_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options given on the command line, checked against what the model takes."""
    accepted = _accepted_options(args.model)
    given = {
        "z_dim": ("--z-dim", args.z_dim),
        "n_components": ("--components", args.components),
        "hidden": ("--hidden", tuple(args.hidden) if args.hidden else None),
        "likelihood": ("--likelihood", args.likelihood),
    }
    options = {}
    for name, (flag, value) in given.items():
        if value is None:
            continue
        if accepted is not None and name not in accepted:
            args.parser.error(f"{flag} does not apply to model {args.model!r}")
        options[name] = value
    if "likelihood" not in options and accepted is not None and "likelihood" in accepted:
        kind = _data_kind(args.data)
        options["likelihood"] = "gaussian" if kind == "moons" else "bernoulli"
    return options


# ---------------------------------------------------------------------------------------------
# Commands


def _cmd_fit(args: argparse.Namespace) -> int:
    kind = _data_kind(args.data)
    if args.k is not None and args.inference is None:
        args.parser.error("--k needs --inference (iwae: importance samples, elbo: particles)")
    if args.k is not None and args.inference == "mle":
        args.parser.error("--k does not apply to --inference mle")
    if kind == "moons" and args.binarize is not None:
        args.parser.error("--binarize/--no-binarize applies to image data (digits, idx:PATH), not moons")
    options = _model_options(args)
    binarize = None
    if kind != "moons":
        binarize = args.binarize if args.binarize is not None else options.get("likelihood") == "bernoulli"
    run = args.out if args.out is not None else Path("runs") / f"{args.model}-{kind}"
    _check_out(run, folder=run)

    config = {
        "model": args.model,
        "model_options": options,
        "inference": args.inference,
        "k": args.k,
        "data": args.data,
        "binarize": binarize,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "seed": args.seed,
        "eval_k": args.eval_k,
        "device": str(args.device),
    }
    data = load_data(args.data, binarize=binarize, seed=args.seed)
    x_dim = data.train.shape[1]
    pyro.set_rng_seed(args.seed)  # the initial weights are drawn here, before ppgen.fit seeds the training
    model = registry.build_model(args.model, x_dim, **options)
    backend = registry.build_inference(args.inference, k=args.k) if args.inference is not None else None
    spacing, continuous = grid_spacing(data.train), _is_density(inspect_program(model, data.train[:2]).data_support)
    if args.dequantize and not (continuous and spacing is not None):
        why = "its likelihood is discrete" if not continuous else "the data do not lie on a grid of at most 256 values"
        args.parser.error(f"--dequantize applies to a continuous density on discrete data, but for {args.model} "
                          f"on {kind} {why}")
    config["dequantize"] = spacing if args.dequantize else None
    train = dequantize(data.train, spacing, torch.Generator().manual_seed(args.seed)) if args.dequantize \
        else data.train

    start = time.perf_counter()
    fit = ppgen.fit(
        model,
        train,
        inference=backend,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        device=args.device,
        progress=args.progress,
    )
    wall_time = time.perf_counter() - start
    run.mkdir(parents=True, exist_ok=True)  # only now, so that a fit that fails leaves no empty folder behind
    fit.save(run / FIT_FILE)

    estimate = _test_log_likelihood(fit, data.test, k=args.eval_k, seed=args.seed, spacing=config["dequantize"])
    comparable = not continuous or spacing is None or args.dequantize
    metrics = {
        "config": config,
        "x_dim": x_dim,
        "n_train": len(data.train),
        "n_test": len(data.test),
        "train_loss": [_finite_or_none(loss) for loss in fit.history],
        "objective": repr(fit.inference),
        "test_log_likelihood": _finite_or_none(estimate.log_likelihood),
        "eval_k": estimate.k,
        "exact": estimate.exact,
        **_comparability(comparable, spacing),
        "wall_time_s": wall_time,
    }
    _write_json(run / METRICS_FILE, metrics)

    pyro.set_rng_seed(args.seed)
    _draw_samples(fit.sample(N_SAMPLES), run / "samples.png", reference=None if data.is_image else data.test)
    written = [FIT_FILE, METRICS_FILE, "samples.png"]
    skipped = _draw_latent(fit, data, run / "latent.png")
    if skipped is None:
        written.append("latent.png")
    plots.loss_curve(fit.history, run / "loss.png", title=f"training loss, {fit.inference!r}")
    written.append("loss.png")

    print(f"{args.model} on {kind}, {args.epochs} epochs in {wall_time:.1f} s: {estimate}")
    if not comparable:
        print(f"note: {metrics['comparability']}")
    print(f"wrote {', '.join(str(run / name) for name in written)}")
    if skipped is not None:
        print(f"latent.png skipped: {skipped}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    fit = _load_fit(args.run, device=args.device)
    metrics_path = args.run / METRICS_FILE
    metrics = _read_metrics(metrics_path)
    config = metrics.get("config") if isinstance(metrics, dict) else None
    if not isinstance(config, dict) or not {"data", "seed"} <= config.keys():
        raise ValueError(f"{metrics_path} holds no run config (data, seed): was it written by `ppgen fit`?")
    k = args.k if args.k is not None else int(config.get("eval_k", 1000))
    seed = args.seed if args.seed is not None else int(config["seed"])
    data = load_data(config["data"], binarize=config.get("binarize"), seed=int(config["seed"]))

    start = time.perf_counter()
    spacing, grid = config.get("dequantize"), grid_spacing(data.test)
    comparable = spacing is not None or grid is None or not _is_density(fit.structure.data_support)
    estimate = _test_log_likelihood(fit, data.test, k=k, seed=seed, spacing=spacing)
    pyro.set_rng_seed(seed)
    report = fit.evaluate(data.test, k=k)  # bounds and weight diagnostics beside the estimate
    metrics["eval"] = {
        "k": estimate.k,
        "exact": estimate.exact,
        "seed": seed,
        "test_log_likelihood": _finite_or_none(estimate.log_likelihood),
        "n_test": estimate.n,
        **_comparability(comparable, grid),
        "wall_time_s": time.perf_counter() - start,
        "report": report.to_dict(),
    }
    _write_json(metrics_path, metrics)
    print(estimate)
    print(report)
    print(f"recorded under 'eval' in {metrics_path}")
    return 0


def _cmd_sample(args: argparse.Namespace) -> int:
    fit = _load_fit(args.run, device=args.device)
    out = args.out if args.out is not None else args.run / f"samples-{args.n}.png"
    if out.is_dir():
        raise IsADirectoryError(f"--out {out} is a folder: give the picture's file name, e.g. {out / 'samples.png'}")
    _check_out(out, folder=out.parent)
    pyro.set_rng_seed(args.seed)
    x = fit.sample(args.n)
    out.parent.mkdir(parents=True, exist_ok=True)
    _draw_samples(x, out)
    print(f"wrote {args.n} samples to {out}")
    return 0


# ---------------------------------------------------------------------------------------------
# Helpers


@dataclass(frozen=True)
class Estimate:
    """The mean test log-likelihood, in nats per point, over ``n`` points; ``k`` is None where it is exact."""

    log_likelihood: float
    k: int | None
    n: int

    @property
    def exact(self) -> bool:
        """Whether log p(x) is exact, rather than estimated with k importance samples."""
        return self.k is None

    def __str__(self) -> str:
        method = "exact" if self.exact else f"k={self.k}"
        return f"test log-likelihood {self.log_likelihood:.4f} nats per point ({method}, {self.n} points)"


def _test_log_likelihood(fit: ppgen.Fit, test: torch.Tensor, *, k: int, seed: int,
                         spacing: float | None = None) -> Estimate:
    """Mean log p(x) over the test set; seeded, so `eval` can reproduce `fit`; ``k`` is unused where it is exact.
    With a grid ``spacing``, the test points are dequantised (the noise seeded with ``seed + 1``) and the figure is
    the lower bound on the discrete log P(x) of :mod:`ppgen.dequantize`."""
    if spacing is not None:
        test = dequantize(test, spacing, torch.Generator().manual_seed((seed + 1) % SEED_LIMIT))
    pyro.set_rng_seed(seed)
    log_likelihood = fit.log_prob(test, k=k).detach().double()
    if spacing is not None:
        log_likelihood = discrete_log_likelihood(log_likelihood, spacing, test[0].numel())
    return Estimate(log_likelihood.mean().item(), k=None if fit.structure.exact else k, n=len(test))


def _is_density(support: Any) -> bool:
    """Whether a likelihood with this support (a :class:`~ppgen.program.Structure`'s ``data_support``) is a
    density, whose log p(x) is not a log-probability."""
    return support is not None and not support.is_discrete


def _comparability(comparable: bool, spacing: float | None) -> dict[str, Any]:
    """The ``comparable`` entry of metrics.json, with the reason where it is false."""
    if comparable:
        return {"comparable": True}
    levels = "a grid of values" if spacing is None else f"a grid of spacing {spacing:.4g}"
    return {"comparable": False,
            "comparability": f"a continuous density fitted to data on {levels}: the test figure is a log-density, "
                             f"not comparable with a discrete model's log-probability; refit with --dequantize"}


def _check_out(out: Path, folder: Path) -> None:
    """Refuses, before any work is done, an ``--out`` whose ``folder`` cannot be made or written in."""
    existing = next(path for path in (folder, *folder.parents) if path.exists())
    if not existing.is_dir():
        raise NotADirectoryError(f"--out {out}: {existing} exists and is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(f"--out {out}: {existing} is not writable")


def _load_fit(run: Path, device: torch.device) -> ppgen.Fit:
    if not run.exists():
        raise FileNotFoundError(f"run folder {run} not found")
    if not run.is_dir():
        raise NotADirectoryError(f"{run} is not a run folder (the folder `ppgen fit --out` writes)")
    path = run / FIT_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {run} is not a finished `ppgen fit` run")
    return ppgen.load(path, device=device)


def _read_metrics(path: Path) -> Any:
    """The parsed contents of a run's metrics.json; an error naming the file where it is missing or not JSON."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: `ppgen eval` needs the run's config to rebuild its test set")
    try:
        return json.loads(path.read_text())
    except ValueError as error:  # json.JSONDecodeError, or UnicodeDecodeError for a binary file
        raise ValueError(f"{path} is not valid JSON ({error}): was it written by `ppgen fit`?") from None


def _draw_samples(x: torch.Tensor, path: Path, reference: torch.Tensor | None = None) -> None:
    x = x.detach().cpu().reshape(len(x), -1)
    if x.shape[1] == 2:
        plots.scatter(x, path, reference=reference)
    else:
        plots.image_grid(x, path)


def _draw_latent(fit: ppgen.Fit, data: Data, path: Path) -> str | None:
    """Draws a 2-D view of E[z|x] over the test set, for the latent site z that ``fit.encode`` answers about.

    For a discrete site c that the model sums out, E[c|x] is the posterior p(c|x) (see :meth:`ppgen.Fit.encode`).
    Returns why not when the model has no latent site to encode.
    """
    try:
        z = fit.encode(data.test)
    except ValueError as error:
        path.unlink(missing_ok=True)  # a picture left by an earlier run in the same folder would mislead
        return str(error)
    site = fit.latent_sites[0] if fit.latent_sites else "z"  # a flow: encode is its map to the base space
    z = z.detach().cpu().double().reshape(len(z), -1)
    title = f"posterior means E[{site} | x], test set"
    if z.shape[1] == 1:
        plots.scatter(torch.cat([z, torch.zeros_like(z)], dim=1), path, labels=data.test_labels,
                      title=title, xlabel=site, ylabel=f"({site} is 1-D)")
        return None
    if z.shape[1] == 2:
        plots.scatter(z, path, labels=data.test_labels, title=title, xlabel=f"{site}[0]", ylabel=f"{site}[1]")
        return None
    if not bool((z.var(0) > 0).any()):  # no spread, so no principal directions: every point at one place
        plots.scatter(z[:, :2], path, labels=data.test_labels, title=title + " (the same for every point)",
                      xlabel=f"{site}[0]", ylabel=f"{site}[1]")
        return None
    from sklearn.decomposition import PCA

    pca = PCA(n_components=2)
    z2 = pca.fit_transform(z.numpy())
    share = pca.explained_variance_ratio_ * 100
    plots.scatter(
        z2,
        path,
        labels=data.test_labels,
        title=title + f" (PCA of {z.shape[1]}-D {site})",
        xlabel=f"PC 1 ({share[0]:.0f}% of variance)",
        ylabel=f"PC 2 ({share[1]:.0f}% of variance)",
    )
    return None


def _finite_or_none(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _write_json(path: Path, obj: Any) -> None:
    """Writes JSON atomically (see :func:`ppgen.checkpoint.atomic_write`)."""
    text = json.dumps(obj, indent=2, allow_nan=False) + "\n"
    atomic_write(path, lambda f: f.write(text.encode()))


# ---------------------------------------------------------------------------------------------
# Entry point


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the ``ppgen`` command with ``argv`` (default: ``sys.argv[1:]``) and returns its exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return args.func(args)
    except SystemExit as stop:  # argparse: --help, --version, and usage errors (status 2)
        code = stop.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except (ValueError, OSError, FloatingPointError) as error:  # OSError: files and folders a user named
        print(f"ppgen: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ppgen: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
