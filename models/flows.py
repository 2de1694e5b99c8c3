"""Normalising flows as Pyro programs: the shared building block of RealNVP, MAF and NeuralSplineFlow.

A flow is an invertible map f with a tractable Jacobian; with z = f(x) and a standard normal base p(z),

    log p(x) = log N(f(x); 0, I) + log |det df/dx|,

exact and one pass of f, and x = f^{-1}(z) with z ~ N(0, I) is a draw from p(x).

The flows come from zuko (a `LazyDistribution` per family) and enter Pyro through
``pyro.contrib.zuko.ZukoToPyro``, which wraps a zuko distribution as a Pyro one and, when it samples,
keeps the log-density that zuko's ``rsample_and_log_prob`` computes on the way, so that scoring its own
draws needs no second pass (for an inverse autoregressive guide this saves the sequential inverse). Pyro's
wrapper serves with two small additions, made in :class:`FlowDistribution`: a ``support`` (ppgen reads
the support of an observed site to check data before fitting; the wrapper has none) and an ``expand`` that
keeps the subclass (a plate expands a distribution, and Pyro's ``expand`` returns the base wrapper).
Pyro's own ``pyro.distributions.transforms`` would serve too, but zuko's flows are built, tested and
kept up as a family, with the conditional (context) variants that :class:`~ppgen.models.FlowVAE` needs.

Every flow here starts with a fixed affine standardisation x -> (x - mu) / sigma, mu and sigma the
data's mean and standard deviation, set once by ``initialize`` (part of the density, with its
log-determinant -sum_d log sigma_d): zuko's spline flows act on [-5, 5] and every flow trains better on
standardised data.
"""

from __future__ import annotations

import pyro
import torch
import zuko
from pyro.contrib.zuko import ZukoToPyro
from torch import Size, Tensor
from torch.distributions import AffineTransform, constraints
from zuko.distributions import NormalizingFlow
from zuko.transforms import ComposedTransform

from ppgen.program.protocol import DATA_PLATE, Model
from ppgen.utils.checks import check_positive_int


class FlowDistribution(ZukoToPyro):
    """A zuko distribution over real vectors as a Pyro distribution (``ZukoToPyro`` with a support).

    Arguments:
        dist: the zuko distribution, e.g. a ``NormalizingFlow``.
    """

    support = constraints.real_vector

    def expand(self, batch_shape: Size, _instance: FlowDistribution | None = None) -> FlowDistribution:
        return FlowDistribution(self.dist.expand(Size(batch_shape)))


def check_hidden(hidden: object, name: str = "hidden") -> tuple[int, ...]:
    """``hidden`` as a tuple of positive layer widths, or a ``TypeError``/``ValueError`` naming it."""
    if not isinstance(hidden, (tuple, list)) or not hidden:
        raise TypeError(f"{name} must be a non-empty sequence of layer widths such as (64, 64), got {hidden!r}")
    return tuple(check_positive_int(width, f"{name}[{i}]") for i, width in enumerate(hidden))


class ExactFlow(Model):
    """A normalising flow p(x) over R^D, observed in the data plate, with exact ``log_prob`` and ``encode``.

    Generative story: z ~ N(0, I_D), x = mu + sigma * g^{-1}(z) with g the zuko flow ``self.flow``;
    so f(x) = g((x - mu) / sigma) is the map to the base space, and
    log p(x) = log N(f(x); 0, I) + log |det dg/dx'| - sum_d log sigma_d.

    A subclass builds ``self.flow`` (a ``zuko.lazy.Flow``) after calling this constructor.

    Arguments:
        x_dim: D, the size of a data point.
    """

    flow: zuko.lazy.Flow

    def __init__(self, *, x_dim: int) -> None:
        super().__init__()
        self.x_dim = check_positive_int(x_dim, "x_dim")
        self.register_buffer("shift", torch.zeros(x_dim))
        self.register_buffer("scale", torch.ones(x_dim))

    def initialize(self, x: Tensor) -> None:
        """Set the standardisation mu, sigma to the data's mean and standard deviation (a floor of 1e-3)."""
        self.standardize(x.mean(0), x.std(0) if x.shape[0] > 1 else torch.ones_like(x[0]))

    def standardize(self, shift: Tensor, scale: Tensor) -> None:
        """Set mu and sigma of the fixed first step x -> (x - mu) / sigma; sigma is floored at 1e-3."""
        with torch.no_grad():
            self.shift.copy_(shift)
            self.scale.copy_(scale.clamp_min(1e-3))

    def distribution(self) -> NormalizingFlow:
        """p(x) as a zuko ``NormalizingFlow`` (a torch distribution), its transform f the map to N(0, I)."""
        standardize = AffineTransform(-self.shift / self.scale, 1 / self.scale, event_dim=1)
        return NormalizingFlow(ComposedTransform(standardize, self.flow.transform()), self.flow.base())

    def model(self, x: Tensor) -> None:
        with pyro.plate(DATA_PLATE, x.shape[0]):
            pyro.sample("x", FlowDistribution(self.distribution()), obs=x)

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact log p(x) by the change of variables, Tensor[N]."""
        return self.distribution().log_prob(x)

    def encode(self, x: Tensor) -> Tensor:
        """The base-space representation z = f(x), Tensor[N, D]: N(0, I) distributed when x ~ p(x)."""
        return self.distribution().transform(x)

    def decode(self, z: Tensor) -> Tensor:
        """x = f^{-1}(z), the inverse of :meth:`encode`."""
        return self.distribution().transform.inv(z)
