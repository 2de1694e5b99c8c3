"""Programs written the way a user writes them, shared by several tests."""

import math
import os
import signal
from dataclasses import dataclass

import pyro
import pyro.distributions as dist
import torch
from torch import nn
from torch.nn.functional import softplus
from torch.utils.data import Dataset

import ppgen
from ppgen import inference, models
from ppgen.inference import Objective
from ppgen.objective.generated import generated
from ppgen.program.inputs import as_batch
from ppgen.program.protocol import DATA_PLATE, as_module
from ppgen.program.structure import inspect
from ppgen.program.unnormalized import Unnormalized


class AmortisedPPCA(models.PPCA):
    """The zoo's PPCA model with a guide of a user's own: q(z|x) = N(A x + b, diag(s^2)), learnt.

    The true posterior N(M^{-1} W^T (x - mu), sigma^2 M^{-1}) is in this family only when the columns of W
    are orthogonal (M diagonal), which is where the ELBO drives W; elsewhere the guide is imperfect, so the
    ELBO and IWAE_K have something to close.
    """

    def __init__(self, *, x_dim: int, z_dim: int = 2) -> None:
        super().__init__(x_dim=x_dim, z_dim=z_dim)
        self.encoder = nn.Linear(x_dim, z_dim)
        self.log_posterior_scale = nn.Parameter(torch.zeros(z_dim))

    def guide(self, x: torch.Tensor) -> None:
        with pyro.plate(DATA_PLATE, x.shape[0]):
            pyro.sample("z", dist.Normal(self.encoder(x), self.log_posterior_scale.exp()).to_event(1))


class Rows(Dataset):
    """The rows of a tensor as a map-style data set, one row at a time; of several tensors, a tuple of one row of
    each. ppgen reads it as a stream."""

    def __init__(self, *inputs: torch.Tensor) -> None:
        self.inputs = inputs

    def __len__(self) -> int:
        return len(self.inputs[0])

    def __getitem__(self, i: int):
        return self.inputs[0][i] if len(self.inputs) == 1 else tuple(t[i] for t in self.inputs)


def regression_data(n: int = 60) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(n, 2, generator=generator, dtype=torch.float64)
    return x, x @ torch.tensor([1.5, -2.0], dtype=torch.float64) + 0.5 * torch.randn(n, generator=generator,
                                                                                       dtype=torch.float64)


def regression(x, y):
    """b ~ N(0, 3^2 I), y_n | x_n, b ~ N(x_n . b, 0.5^2): b a global latent."""
    b = pyro.sample("b", dist.Normal(torch.zeros(2, dtype=x.dtype), 3.0).to_event(1))
    with pyro.plate("data", len(x)):
        pyro.sample("y", dist.Normal((x * b).sum(-1), 0.5), obs=y)


def conjugate_posterior(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """p(b | x, y) = N(C x^T y / 0.25, C), C = (I / 9 + x^T x / 0.25)^-1 (Bishop 2006, eq. 3.53-3.54)."""
    covariance = torch.linalg.inv(torch.eye(2, dtype=x.dtype) / 9 + x.T @ x / 0.25)
    return covariance @ (x.T @ y / 0.25), covariance


def fixed_fit(program, x) -> ppgen.Fit:
    """A fit of ``program`` (a module, or a ``(model, guide)`` pair) whose parameters stay as they are, nothing
    trained: what a query is asked of where the truth is known for those parameters."""
    module = as_module(program)
    return ppgen.Fit(module, inspect(module, x), inference.ELBO(), history=[], example=as_batch(x))


def shifted_mixture(loc: float, scale: float) -> tuple:
    """``(model, guide)``: z ~ N(0, 1), c ~ Bernoulli(0.3) summed out by the model, x | z, c ~ N(z + 2c, 0.5^2), one
    of each per point, and the guide q(z|x) = N(loc x, scale^2). Its posterior p(z | x) is a mixture of two Gaussians
    and p(c | x, z) a Bernoulli, both by hand."""

    def model(x):
        with pyro.plate("data", len(x)):
            z = pyro.sample("z", dist.Normal(0.0, 1.0))
            c = pyro.sample("c", dist.Bernoulli(0.3), infer={"enumerate": "parallel"})
            pyro.sample("x", dist.Normal(z + 2 * c, 0.5), obs=x)

    def guide(x):
        with pyro.plate("data", len(x)):
            pyro.sample("z", dist.Normal(x * loc, scale))

    return model, guide


def correlated_gaussian(n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """n points of N(mu, A A^T), mu = (1, -1), A = [[1, 0], [0.6, 0.5]], float64, seeded; their sample mean and
    covariance (1/n): the closed form that a Gaussian energy fitted by score matching, NCE or CD recovers."""
    mixing = torch.tensor([[1.0, 0.0], [0.6, 0.5]], dtype=torch.float64)
    x = torch.randn(n, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) @ mixing.T
    x = x + torch.tensor([1.0, -1.0], dtype=torch.float64)
    mean = x.mean(0)
    return x, mean, (x - mean).T @ (x - mean) / n


def coin_rows(n: int = 64) -> torch.Tensor:
    """n rows of 6 coin flips with P(1) = 0.3, the same every call: the data of the run-folder and streaming tests."""
    return torch.bernoulli(torch.full((n, 6), 0.3), generator=torch.Generator().manual_seed(1))


def small_vae() -> models.VAE:
    """A 6-2-6 VAE with one hidden layer of 8, the same weights every call."""
    ppgen.seed(0)
    return models.VAE(x_dim=6, z_dim=2, hidden=(8,))


@dataclass(frozen=True, kw_only=True)
class MomentMatching(Objective):
    """A user's own likelihood-free objective: the squared distance between the first two moments of a batch and of
    as many of the model's draws, ||mean(x~) - mean(x)||^2 + ||std(x~) - std(x)||^2, per coordinate of x. It
    evaluates no density, so it fits an implicit model (a generator); it stands in for the likelihood-free backends
    in the tests of implicit models."""

    likelihood_free = True

    def loss(self, module, structure, batch):
        x = batch.args[structure.observed_input or 0].flatten(1)
        drawn = generated(module, structure, batch).flatten(1)
        return (drawn.mean(0) - x.mean(0)).square().sum() + (drawn.std(0) - x.std(0)).square().sum()


#: one entry per call of a :class:`SignalAt` objective's loss: the steps its runs took (a test clears it first).
LOSS_CALLS: list[int] = []


@dataclass(frozen=True, kw_only=True)
class SignalAt:
    """Put before an objective class among a dataclass's bases (``class StopAt(SignalAt, inference.ELBO)``): its loss,
    each call counted in :data:`LOSS_CALLS`, sends the class's ``signum`` (SIGINT, a user's Ctrl-C, unless the class
    sets another) to this process at the ``signal_at``-th call (0: never)."""

    signum = signal.SIGINT  # a class attribute, not a field
    signal_at: int = 0

    def loss(self, module, structure, batch):
        LOSS_CALLS.append(1)
        if len(LOSS_CALLS) == self.signal_at:
            os.kill(os.getpid(), self.signum)
        return super().loss(module, structure, batch)


@dataclass(frozen=True, kw_only=True)
class StopAt(SignalAt, inference.ELBO):
    """The ELBO, with SIGINT sent to this process at its ``signal_at``-th call."""


class GaussianEnergy(nn.Module):
    """E(x) = (x - mu)^T P (x - mu) / 2 with P = L L^T, L lower triangular with a positive diagonal (P = I at the
    start); with ``noise_conditional``, E(x, sigma) of the covariance C + sigma^2 I, C = P^-1, at noise level sigma."""

    def __init__(self, d, noise_conditional=False, log_normalizer=True):
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(d))
        self.raw = nn.Parameter(torch.zeros(d, d))
        self.log_normalizer = nn.Parameter(torch.zeros(())) if log_normalizer else None
        self.noise_conditional = noise_conditional

    def precision(self):
        factor = torch.tril(self.raw, -1) + torch.diag(softplus(self.raw.diagonal()) / math.log(2))
        return factor @ factor.T

    def log_density(self, x, sigma=None):
        a = x - self.loc
        if sigma is None:
            return -0.5 * ((a @ self.precision()) * a).sum(-1)
        covariance = torch.linalg.inv(self.precision()) + sigma[:, None, None] ** 2 * torch.eye(len(self.loc))
        return -0.5 * (a * torch.linalg.solve(covariance, a.unsqueeze(-1)).squeeze(-1)).sum(-1)

    def model(self, x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", Unnormalized(self.log_density, event_shape=x.shape[1:], log_normalizer=self.log_normalizer,
                                          noise_conditional=self.noise_conditional), obs=x)

    def set_gaussian(self, mean, covariance):
        """Put the energy at N(mean, covariance) exactly: mu = mean, P = covariance^-1 (log Z = (D/2) log 2 pi +
        (1/2) log det covariance)."""
        factor = torch.linalg.cholesky(torch.linalg.inv(covariance))
        raw = torch.tril(factor, -1) + torch.diag(torch.log(torch.expm1(factor.diagonal() * math.log(2))))
        with torch.no_grad():
            self.loc.copy_(mean)
            self.raw.copy_(raw)


class GaussianModel(nn.Module):
    """A normalised model, x ~ N(mu, L L^T) with learnt mu and Cholesky factor L, fitted by score matching."""

    def __init__(self, d):
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(d))
        self.raw = nn.Parameter(torch.zeros(d, d))

    def model(self, x):
        factor = torch.tril(self.raw, -1) + torch.diag(softplus(self.raw.diagonal()) / math.log(2))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", dist.MultivariateNormal(self.loc, scale_tril=factor), obs=x)
