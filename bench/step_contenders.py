"""The PyTorch contenders of ``bench/step_table.py``: one VAE trained by the hand-written loop, by ``ppgen.fit`` and by
Pyro's SVI, each a :class:`Contender` whose ``run()`` times a run in process CPU seconds.

Every contender starts from the same initial weights (``VAE(x_dim, z_dim, hidden)`` after ``torch.manual_seed(SEED)``)
and steps through the same data in shuffled batches of one size, every batch full (the data are a whole number of
batches), so that a compiled step meets one batch shape.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial

import pyro
import pyro.optim
import torch
from pyro.infer import SVI, RenyiELBO, Trace_ELBO
from torch import Tensor

import ppgen
import ppgen.training.loop
from ppgen import inference
from ppgen.models import VAE
from ppgen.program.inputs import as_batch
from ppgen.program.structure import inspect
from ppgen.training.optimizers import adam

import handwritten  # bench/ is on sys.path when a script in it runs
from workloads import LR, SEED

#: the bounds of the table: a ppgen backend, the hand-written loss, and the Pyro ELBO that computes the same bound
#: (summed over the batch; per point, divided by the batch size).
BOUNDS = {
    "elbo": (inference.ELBO, handwritten.elbo_loss, lambda: Trace_ELBO(max_plate_nesting=1)),
    "iwae5": (partial(inference.IWAE, k=5), partial(handwritten.iwae_loss, k=5),
              lambda: RenyiELBO(alpha=0.0, num_particles=5, vectorize_particles=True, max_plate_nesting=1)),
}


def network(x_dim: int, z_dim: int, hidden: tuple[int, ...]) -> VAE:
    """The benchmark's VAE, the same initial weights at each call."""
    torch.manual_seed(SEED)
    return VAE(x_dim=x_dim, z_dim=z_dim, hidden=hidden)


@dataclass
class Run:
    """A timed run: process CPU seconds over ``steps`` steps, and the last epoch's mean loss per point; for a fit,
    the CPU seconds of the whole call (set-up included) over its ``fit_steps``."""

    cpu_s: float
    steps: int
    final_loss: float
    fit_cpu_s: float | None = None
    fit_steps: int | None = None


class Contender:
    """A contender on one row: ``x`` (a whole number of batches of ``batch``), trained ``epochs`` epochs a run."""

    def __init__(self, vae: VAE, x: Tensor, bound: str, batch: int, epochs: int) -> None:
        self.vae, self.x, self.bound, self.batch, self.epochs = copy.deepcopy(vae), x, bound, batch, epochs
        self.steps = epochs * (len(x) // batch)

    def run(self) -> Run:
        raise NotImplementedError


class Handwritten(Contender):
    """The reference: :func:`handwritten.train` on the hand-written loss, ``ppgen.fit``'s fused Adam."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        self.optimizer = adam(list(self.vae.parameters()), LR)
        self.generator = torch.Generator().manual_seed(SEED)
        self.loss = partial(BOUNDS[self.bound][1], self.vae)

    def run(self) -> Run:
        start = time.process_time()
        history = handwritten.train(self.loss, self.optimizer, self.x, self.epochs, self.batch, self.generator)
        return Run(time.process_time() - start, self.steps, history[-1])


@contextlib.contextmanager
def epoch_clock() -> Iterator[list[float]]:
    """Process CPU time at the end of each epoch of a ``ppgen.fit`` inside the block (after the loop's
    ``finish_epoch``, which closes an epoch)."""
    marks: list[float] = []
    finish = ppgen.training.loop.finish_epoch

    def timed(*args: object, **kwargs: object) -> None:
        finish(*args, **kwargs)
        marks.append(time.process_time())

    ppgen.training.loop.finish_epoch = timed
    try:
        yield marks
    finally:
        ppgen.training.loop.finish_epoch = finish


class Fit(Contender):
    """``ppgen.fit`` from the initial weights, ``2 * epochs`` epochs a run, with ``compile=compile`` (no compile
    argument at all for ``None``: the default); timed, the second half of its epochs (``epochs`` epochs), after its
    set-up, its trace and its compilation, and the whole call apart."""

    def __init__(self, *args: object, compile: bool | None = None) -> None:
        super().__init__(*args)
        self.options = {} if compile is None else {"compile": compile}

    def run(self) -> Run:
        vae = copy.deepcopy(self.vae)
        with epoch_clock() as marks:
            start = time.process_time()
            fitted = ppgen.fit(vae, self.x, inference=BOUNDS[self.bound][0](), epochs=2 * self.epochs,
                               batch_size=self.batch, lr=LR, seed=SEED, progress=False, **self.options)
            end = time.process_time()
        if len(marks) != 2 * self.epochs:
            raise RuntimeError(f"ppgen.fit closed {len(marks)} epochs through ppgen.training.loop.finish_epoch, "
                               f"not {2 * self.epochs}: the epoch clock of bench/step_contenders.py needs updating")
        return Run(marks[-1] - marks[self.epochs - 1], self.steps, fitted.history[-1], end - start, 2 * self.steps)


def pyro_program(vae: VAE) -> tuple[Callable[[Tensor], None], Callable[[Tensor], None]]:
    """The VAE's own Pyro model and guide, with its decoder and encoder registered as Pyro modules."""

    def model(x: Tensor) -> None:
        pyro.module("decoder", vae.decoder)
        vae.model(x)

    def guide(x: Tensor) -> None:
        pyro.module("encoder", vae.encoder)
        vae.guide(x)

    return model, guide


class PyroSVI(Contender):
    """``pyro.infer.SVI`` on :func:`pyro_program` with the bound's Pyro ELBO and ``pyro.optim.Adam`` (a torch Adam
    per parameter, Pyro's default way), ``svi.step`` on each batch, as Pyro's tutorials train a VAE."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        self.svi = SVI(*pyro_program(self.vae), pyro.optim.Adam({"lr": LR}), BOUNDS[self.bound][2]())
        self.generator = torch.Generator().manual_seed(SEED)

    def run(self) -> Run:
        n = len(self.x)
        pyro.clear_param_store()  # Pyro's store holds parameters by name: this VAE's, not another's of the same names
        start = time.process_time()
        for _ in range(self.epochs):
            total = 0.0
            for rows in torch.randperm(n, generator=self.generator).split(self.batch):
                total += self.svi.step(self.x[rows])
        return Run(time.process_time() - start, self.steps, total / n)


def same_draws(vae: VAE, x: Tensor, bound: str, seed: int) -> dict[str, float]:
    """The loss per point of the hand-written bound, of ppgen's backend and of Pyro's ELBO on the same weights and the
    same draws (``torch.manual_seed(seed)`` before each: each draws z from one ``randn`` of [K, N, z])."""
    out = {}
    torch.manual_seed(seed)
    with torch.no_grad():
        out["handwritten"] = BOUNDS[bound][1](vae, x).item()
    structure = inspect(vae, x[:2])
    torch.manual_seed(seed)
    out["ppgen"] = BOUNDS[bound][0]().loss(vae, structure, as_batch(x)).item()
    pyro.clear_param_store()
    torch.manual_seed(seed)
    out["pyro"] = BOUNDS[bound][2]().loss(*pyro_program(vae), x) / len(x)
    pyro.clear_param_store()
    return out


def draws(vae: VAE, x: Tensor, bound: str, seed: int) -> Tensor:
    """The standard-normal draws [K, N, z] that the hand-written bound makes after ``torch.manual_seed(seed)``."""
    k = 1 if bound == "elbo" else int(bound.removeprefix("iwae"))
    torch.manual_seed(seed)
    return torch.randn(k, len(x), vae.z_dim)


def monte_carlo(vae: VAE, x: Tensor, bound: str, seeds: int) -> dict[str, float]:
    """Mean and standard deviation of the hand-written loss per point over ``seeds`` draws."""
    with torch.no_grad():
        values = []
        for seed in range(seeds):
            torch.manual_seed(1000 + seed)
            values.append(BOUNDS[bound][1](vae, x).item())
    values = torch.tensor(values, dtype=torch.float64)
    return {"mean": values.mean().item(), "sd": values.std().item(), "seeds": seeds}


def z_score(ours: dict[str, float], theirs: dict[str, float]) -> float:
    """The difference of two Monte Carlo means in standard errors."""
    se = math.sqrt(ours["sd"] ** 2 / ours.get("seeds", ours.get("keys")) +
                   theirs["sd"] ** 2 / theirs.get("seeds", theirs.get("keys")))
    return (ours["mean"] - theirs["mean"]) / se
