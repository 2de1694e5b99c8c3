"""Observation models p(x | decoder output) for the VAE family, each with the support its data must lie in.

A decoder ends in ``params_per_dim`` outputs for every coordinate of x, flattened to [..., P * D]; a
likelihood turns them into a distribution whose event is one data point of shape ``event_shape``:

| name | data | decoder outputs per coordinate | support |
|---|---|---|---|
| ``"bernoulli"`` | binary {0, 1} | 1 (logit) | {0, 1} |
| ``"gaussian"`` | real | 1 (mean); scale learnt per coordinate, or fixed | R |
| ``"continuous_bernoulli"`` | [0, 1] | 1 (logit) | [0, 1] |
| ``"discretised_logistic"`` | 8-bit levels {0, ..., 255} | 2 (mean, scale) | integers in [0, 255] |

The support is the distribution's own, so ``ppgen.fit`` checks data against it before fitting.
"""

from __future__ import annotations

import abc
import math

import pyro.distributions as dist
import torch
from torch import Tensor, nn
from torch.distributions import constraints
from torch.nn.functional import logsigmoid, softplus

from ppgen.utils.checks import check_positive_float, check_positive_int

#: floor on the scale of a discretised logistic, in levels: keeps log P(x) finite at a perfect fit.
MIN_LOGISTIC_SCALE = 1e-2


class Likelihood(nn.Module, abc.ABC):
    """p(x | eta): a distribution over one data point, given the decoder's outputs eta.

    Attributes:
        params_per_dim: P, the decoder outputs each coordinate of x needs.
        support: the values one coordinate of x may take.
    """

    params_per_dim: int = 1
    support: constraints.Constraint

    def forward(self, out: Tensor, event_shape: torch.Size | tuple[int, ...]) -> dist.Distribution:
        """The distribution of x, its batch shape ``out.shape[:-1]`` and its event shape ``event_shape``.

        Arguments:
            out: the decoder's outputs, Tensor[..., P * D] with D the product of ``event_shape``.
            event_shape: the shape of one data point.
        """
        event_shape = torch.Size(event_shape)
        params = out.reshape(*out.shape[:-1], self.params_per_dim, *event_shape).unbind(-len(event_shape) - 1)
        return self.distribution(params, event_shape).to_event(len(event_shape))

    @abc.abstractmethod
    def distribution(self, params: tuple[Tensor, ...], event_shape: torch.Size) -> dist.TorchDistribution:
        """The distribution of each coordinate, from its P parameters (each shaped [..., *event_shape])."""


class Bernoulli(Likelihood):
    """x_d ~ Bernoulli(sigmoid(eta_d)), for binary data."""

    support = constraints.boolean

    def distribution(self, params: tuple[Tensor, ...], event_shape: torch.Size) -> dist.TorchDistribution:
        return dist.Bernoulli(logits=params[0])


class Gaussian(Likelihood):
    """x_d ~ N(eta_d, sigma_d^2), with sigma_d learnt per coordinate or fixed.

    Arguments:
        x_dim: D, the number of coordinates of a data point (each has its own learnt sigma_d).
        scale: a fixed sigma for every coordinate, or ``None`` to learn log sigma_d, starting at 0.
    """

    support = constraints.real

    def __init__(self, x_dim: int, scale: float | None = None) -> None:
        super().__init__()
        x_dim = check_positive_int(x_dim, "x_dim")
        if scale is None:
            self.log_scale = nn.Parameter(torch.zeros(x_dim))
        else:
            self.register_buffer("log_scale", torch.full((x_dim,), math.log(check_positive_float(scale, "scale"))))

    def distribution(self, params: tuple[Tensor, ...], event_shape: torch.Size) -> dist.TorchDistribution:
        return dist.Normal(params[0], self.log_scale.exp().reshape(event_shape))


class ContinuousBernoulli(Likelihood):
    """x_d ~ CB(sigmoid(eta_d)), the normalised Bernoulli density on [0, 1], for data in the unit interval.

    The Bernoulli log-likelihood of grey values in (0, 1) lacks the normaliser C(lambda) that makes it a
    density; the continuous Bernoulli restores it, so that log p(x) is a proper log-density on [0, 1]^D.

    References:
        The continuous Bernoulli: fixing a pervasive error in variational autoencoders (Loaiza-Ganem and
        Cunningham, 2019). https://arxiv.org/abs/1907.06845
    """

    support = constraints.unit_interval

    def distribution(self, params: tuple[Tensor, ...], event_shape: torch.Size) -> dist.TorchDistribution:
        return dist.ContinuousBernoulli(logits=params[0])


class DiscretisedLogistic(Likelihood):
    """x_d in {0, ..., L - 1}: a logistic of mean eta_d and scale s_d, integrated over the bin [x - 1/2, x + 1/2],
    with the outermost bins reaching to -inf and +inf, so the L probabilities sum to one.

    Data are integer levels (an 8-bit image as its values 0..255, not divided by 255).

    Arguments:
        levels: L, the number of levels.

    References:
        PixelCNN++: Improving the PixelCNN with Discretized Logistic Mixture Likelihood and Other Modifications
        (Salimans, Karpathy, Chen and Kingma, 2017). https://arxiv.org/abs/1701.05517
    """

    params_per_dim = 2

    def __init__(self, levels: int = 256) -> None:
        super().__init__()
        self.levels = check_positive_int(levels, "levels")
        self.support = constraints.integer_interval(0, self.levels - 1)

    def distribution(self, params: tuple[Tensor, ...], event_shape: torch.Size) -> dist.TorchDistribution:
        loc, raw_scale = params
        return DiscretisedLogisticDistribution(loc, softplus(raw_scale) + MIN_LOGISTIC_SCALE, self.levels)


class DiscretisedLogisticDistribution(dist.TorchDistribution):
    """The distribution of :class:`DiscretisedLogistic`, one independent level per batch element.

    Arguments:
        loc: the logistic's mean, in levels.
        scale: its scale s > 0, in levels.
        levels: L.
    """

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    has_rsample = False

    def __init__(self, loc: Tensor, scale: Tensor, levels: int, validate_args: bool | None = None) -> None:
        self.loc, self.scale = torch.broadcast_tensors(loc, scale)
        self.levels = levels
        super().__init__(self.loc.shape, validate_args=validate_args)

    @constraints.dependent_property(is_discrete=True, event_dim=0)
    def support(self) -> constraints.Constraint:
        return constraints.integer_interval(0, self.levels - 1)

    def expand(self, batch_shape: torch.Size, _instance: dist.TorchDistribution | None = None):
        shape = torch.Size(batch_shape)
        return DiscretisedLogisticDistribution(self.loc.expand(shape), self.scale.expand(shape), self.levels)

    def log_prob(self, value: Tensor) -> Tensor:
        """log [sigmoid(b) - sigmoid(a)] with a, b the standardised edges of the bin, written as
        log sigmoid(b) + log sigmoid(-a) + log(1 - exp(a - b)), each term 0 where its edge is infinite."""
        if self._validate_args:
            self._validate_sample(value)
        upper = (value + 0.5 - self.loc) / self.scale
        lower = (value - 0.5 - self.loc) / self.scale
        first, last = value <= 0, value >= self.levels - 1
        gap = torch.log(-torch.expm1(-1 / self.scale))  # log(1 - exp(a - b)), a - b = -1/s
        return (torch.where(last, 0.0, logsigmoid(upper)) + torch.where(first, 0.0, logsigmoid(-lower))
                + torch.where(first | last, 0.0, gap))

    def sample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        shape = self._extended_shape(sample_shape)
        with torch.no_grad():
            u = torch.rand(shape, dtype=self.loc.dtype, device=self.loc.device).clamp(1e-6, 1 - 1e-6)
            x = self.loc.expand(shape) + self.scale.expand(shape) * (u.log() - (-u).log1p())
            return x.round().clamp(0, self.levels - 1)

    @property
    def mean(self) -> Tensor:
        """The mean level, sum_k k P(k), computed over the L levels."""
        k = torch.arange(self.levels, dtype=self.loc.dtype, device=self.loc.device)
        return (self.log_prob(k.reshape(-1, *([1] * self.loc.dim()))).exp()
                * k.reshape(-1, *([1] * self.loc.dim()))).sum(0)


#: the likelihoods by name, as models take them.
LIKELIHOODS = ("bernoulli", "gaussian", "continuous_bernoulli", "discretised_logistic")


def build_likelihood(name: str, x_dim: int, scale: float | None = None) -> Likelihood:
    """The likelihood called ``name`` for data points of D = ``x_dim`` coordinates.

    Arguments:
        name: one of :data:`LIKELIHOODS`.
        x_dim: D.
        scale: for ``"gaussian"`` only, a fixed sigma (``None``: learnt per coordinate).

    Raises:
        ValueError: an unknown name, or a ``scale`` given to a likelihood other than the Gaussian.
    """
    if name not in LIKELIHOODS:
        raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {name!r}")
    if scale is not None and name != "gaussian":
        raise ValueError(f"scale applies to likelihood='gaussian' only, got scale={scale!r} with {name!r}")
    if name == "gaussian":
        return Gaussian(x_dim, scale)
    return {"bernoulli": Bernoulli, "continuous_bernoulli": ContinuousBernoulli,
            "discretised_logistic": DiscretisedLogistic}[name]()
