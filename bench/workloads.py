"""What the benchmark runs: ppgen and the hand-written loop on the same network, the same data, the same optimiser.

Each workload is built once, untimed (network, optimiser, data on the device), and runs as a callable;
``run.py`` times the callables in its own process and ``memory.py`` measures one per subprocess.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import pyro
import torch
from torch import Tensor, nn

import ppgen
import ppgen.queries.density
from ppgen import datasets, inference
from ppgen.models import VAE, MixtureOfBernoullis
from ppgen.objective.base import Objective
from ppgen.program.fastpath import FastPathFallback
from ppgen.program.inputs import Batch
from ppgen.program.structure import inspect
from ppgen.training.optimizers import adam  # ppgen.fit's default optimiser, on both sides
from ppgen.training.step import Gradients

import handwritten  # bench/ is on sys.path when a script in it runs

#: a figure labelled captured or compiled must be one: a batch shape that falls back to the plain step, or replays its
#: graph uncompiled, stops the benchmark instead of being timed under the wrong name.
warnings.simplefilter("error", FastPathFallback)

BATCH_SIZE = 128
LR = 1e-3
SEED = 0
QUERY_K = 1000
#: particles x points a pass of the importance-sampled log p(x); the hand-written query chunks the same way.
PARTICLE_POINTS = ppgen.queries.density.PARTICLE_POINTS_PER_PASS


@dataclass(frozen=True)
class Network:
    """A benchmarked VAE, ``VAE(x_dim, z_dim, hidden)``, and the data set it trains on (``"digits"`` or
    ``"fashion-mnist"``, the latter read from the files Debian's ``dataset-fashion-mnist`` installs)."""

    label: str
    x_dim: int
    z_dim: int
    hidden: tuple[int, ...]
    data: str


#: the two sizes of issue 13's table. Both train on 1437 points, so that an epoch has the same batches (11 of 128,
#: one of 29): the digits' training set, and the first 1437 Fashion-MNIST training images.
NETWORKS = {
    "small": Network("VAE 64-128-8", 64, 8, (128,), "digits"),
    "large": Network("VAE 784-400-32", 784, 32, (400,), "fashion-mnist"),
}
#: Fashion-MNIST's points in the benchmark, training and test: the digits' sizes.
FASHION_POINTS = (1437, 360)


@dataclass(frozen=True)
class Bound:
    """One training objective and model, as a ppgen backend and as a hand-written loss of (model, x); the
    model is the VAE of ``NETWORKS[network]``, or with ``network=None`` the mixture of Bernoullis on the digits."""

    label: str
    backend: Callable[[], Objective]
    loss: Callable[[nn.Module, Tensor], Tensor]
    network: str | None

    @property
    def name(self) -> str:
        """How the figures name it: the objective and the model."""
        return f"{self.label}, {NETWORKS[self.network].label}" if self.network else self.label

    @property
    def data(self) -> str:
        return NETWORKS[self.network].data if self.network else "digits"


BOUNDS = {
    "elbo": Bound("ELBO", inference.ELBO, handwritten.elbo_loss, "small"),
    "iwae5": Bound("IWAE(k=5)", partial(inference.IWAE, k=5), partial(handwritten.iwae_loss, k=5), "small"),
    "elbo784": Bound("ELBO", inference.ELBO, handwritten.elbo_loss, "large"),
    "iwae784": Bound("IWAE(k=5)", partial(inference.IWAE, k=5), partial(handwritten.iwae_loss, k=5), "large"),
    "mixture": Bound("MLE, MixtureOfBernoullis(n_components=10), c enumerated", inference.MLE,
                     handwritten.mixture_loss, None),
}

#: the values of ``fit(..., compile=...)`` that the training figures compare, by workload name.
COMPILE = {"capture": "capture", "compiled": True}

#: workload name -> (side, what). Training workloads run ``epochs`` passes; a query is one call.
WORKLOADS = {
    **{f"ppgen-fit-{b}": ("ppgen", "fit") for b in BOUNDS},
    **{f"ppgen-fit-{mode}-{b}": ("ppgen", f"fit-{mode}") for mode in COMPILE for b in BOUNDS},
    **{f"ppgen-loss-{b}": ("ppgen", "loss") for b in BOUNDS},
    **{f"ppgen-{mode}-{b}": ("ppgen", mode) for mode in COMPILE for b in BOUNDS},
    **{f"handwritten-{b}": ("handwritten", "train") for b in BOUNDS},
    "ppgen-query": ("ppgen", "query"),
    "handwritten-query": ("handwritten", "query"),
}


@dataclass(frozen=True)
class Workload:
    """A built workload: ``run()`` does the measured work, ``steps`` optimiser steps (or 1 query) of it;
    ``setup_seconds``, the time its set-up spent capturing (and compiling) the step, untimed in ``run()``."""

    run: Callable[[], object]
    steps: int
    setup_seconds: float = 0.0


def load_data(device: torch.device) -> tuple[Tensor, Tensor]:
    """The binarised digits, training (1437 x 64) and test (360 x 64) sets, on ``device``."""
    return (datasets.digits(binarize=True, split="train").to(device),
            datasets.digits(binarize=True, split="test").to(device))


def data_of(bound: str, device: torch.device) -> tuple[Tensor, Tensor]:
    """The training and test sets of ``bound``: the digits, or the first :data:`FASHION_POINTS` Fashion-MNIST
    images binarised (pixels >= 0.5), which raises ``FileNotFoundError`` where Fashion-MNIST is not installed."""
    if BOUNDS[bound].data == "digits":
        return load_data(device)
    train, test = (datasets.fashion_mnist(split, binarize=True)[:n].to(device)
                   for split, n in zip(("train", "test"), FASHION_POINTS))
    return train, test


def network(device: torch.device, x_dim: int) -> VAE:
    """The network of the query, memory, scaling and distributed benchmarks, ``VAE(x_dim, z_dim=8,
    hidden=(400,))``, with the same initial weights each call."""
    torch.manual_seed(SEED)
    return VAE(x_dim=x_dim).to(device)


def model_of(bound: str, train: Tensor) -> nn.Module:
    """The network of ``bound``: the VAE of its :class:`Network` or the mixture of Bernoullis started from the data
    (k-means), the same initial weights each call."""
    torch.manual_seed(SEED)
    if BOUNDS[bound].network is not None:
        size = NETWORKS[BOUNDS[bound].network]
        return VAE(x_dim=size.x_dim, z_dim=size.z_dim, hidden=size.hidden).to(train.device)
    mixture = MixtureOfBernoullis(x_dim=train.shape[1])
    mixture.initialize(train)
    return mixture.to(train.device)


def fit(vae: VAE, train: Tensor, bound: str, epochs: int, compile: bool | str = False) -> ppgen.Fit:
    """``ppgen.fit`` with the benchmark's settings: the public path, progress bar off."""
    return ppgen.fit(vae, train, inference=BOUNDS[bound].backend(), epochs=epochs, batch_size=BATCH_SIZE, lr=LR,
                     seed=SEED, device=train.device, progress=False, compile=compile)


def captured(vae: VAE, train: Tensor, bound: str, compile: bool | str, batch_size: int = BATCH_SIZE) -> Gradients:
    """ppgen's step for ``bound`` captured (``compile="capture"``) or compiled (``True``) for both batch shapes of an
    epoch: the set-up that ``fit`` does on the first step of each shape (its trace) and on the second (with
    ``compile=True``, its compilation)."""
    gradients = Gradients(vae, inspect(vae, train[:2]), BOUNDS[bound].backend(), compile)
    last = len(train) % batch_size or batch_size
    with pyro.validation_enabled(False):
        for size in dict.fromkeys((batch_size, last)):
            for _ in range(2):
                gradients(Batch((train[:size],), torch.arange(size, device=train.device), len(train)))
    if gradients.fallbacks or gradients.uncompiled:
        raise RuntimeError(f"the benchmark's step was not captured (or compiled): "
                           f"{gradients.fallbacks or gradients.uncompiled}")
    return gradients


def train_captured(gradients: Gradients, optimizer: torch.optim.Optimizer, x: Tensor, epochs: int, batch_size: int,
                   generator: torch.Generator) -> list[float]:
    """The hand-written loop of :func:`handwritten.train`, with ppgen's captured step for loss and backward."""
    n = x.shape[0]
    history = []
    with pyro.validation_enabled(False):
        for _ in range(epochs):
            order = torch.randperm(n, generator=generator).to(x.device)
            total = x.new_zeros(())
            for rows in order.split(batch_size):
                loss = gradients(Batch((x[rows],), rows, n))
                optimizer.step()
                total += loss * len(rows)
            history.append(total.item() / n)
    return history


def without_validation(loss: Callable[[Batch], Tensor], x: Tensor) -> Tensor:
    """``loss(x)`` with Pyro's argument checks off, as ``ppgen.fit`` computes it in training."""
    with pyro.validation_enabled(False):
        return loss(Batch((x,), torch.arange(len(x)), len(x)))


def build(name: str, device: torch.device, epochs: int) -> Workload:
    """Set up workload ``name`` (a key of :data:`WORKLOADS`) on ``device``; training ones run ``epochs`` passes over
    their bound's training set (:func:`data_of`), the query one call on the digits' test set."""
    side, what = WORKLOADS[name]
    if what == "query":
        train, test = load_data(device)
        trained = fit(network(device, train.shape[1]), train, "elbo", 1)  # both sides query the same weights
        if side == "ppgen":
            return Workload(partial(trained.log_prob, test, k=QUERY_K), 1)
        return Workload(partial(handwritten.log_prob, trained.model, test, QUERY_K, PARTICLE_POINTS), 1)
    bound = name.rsplit("-", 1)[1]
    train, _ = data_of(bound, device)
    vae = model_of(bound, train)
    steps = epochs * math.ceil(train.shape[0] / BATCH_SIZE)
    if what == "fit" or what.startswith("fit-"):
        compile = COMPILE[what.removeprefix("fit-")] if what != "fit" else False
        return Workload(partial(fit, vae, train, bound, epochs, compile), steps)
    optimizer = adam(list(vae.parameters()), LR)
    generator = torch.Generator().manual_seed(SEED)
    if what in COMPILE:
        gradients = captured(vae, train, bound, COMPILE[what])
        return Workload(partial(train_captured, gradients, optimizer, train, epochs, BATCH_SIZE, generator), steps,
                        sum(gradients.capture_seconds.values()))
    if what == "loss":
        backend, structure = BOUNDS[bound].backend(), inspect(vae, train[:2])
        loss = partial(without_validation, partial(backend.loss, vae, structure))
    else:
        loss = partial(BOUNDS[bound].loss, vae)
    return Workload(partial(handwritten.train, loss, optimizer, train, epochs, BATCH_SIZE, generator), steps)
