"""A normalising flow for discrete data by uniform dequantisation: integer x, continuous v in x's unit bin."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pyro
import pyro.distributions as dist
import torch
from pyro.distributions import TorchDistribution
from torch import Size, Tensor
from torch.distributions import constraints

from ppgen.models.flows import ExactFlow, FlowDistribution
from ppgen.models.maf import MAF
from ppgen.models.nsf import NeuralSplineFlow
from ppgen.models.realnvp import RealNVP
from ppgen.program.protocol import DATA_PLATE, Model
from ppgen.utils.checks import check_positive_int

#: the flows a dequantised model can be built on, by registry name.
FLOWS: dict[str, type[ExactFlow]] = {"realnvp": RealNVP, "maf": MAF, "nsf": NeuralSplineFlow}


class UnitBins(TorchDistribution):
    """q(v|x) = Uniform([x, x + 1)^D): v = x + u with u ~ U[0, 1)^D, so that floor(v) = x exactly.

    The density is 1 on the bin (log q = 0). ``rsample`` keeps v strictly below x + 1: x + u rounds up to
    x + 1 in floating point for u within an ulp of 1 (about one pixel in 2^21 in float32), which would put
    v in the next bin.

    Arguments:
        low: x, Tensor[..., D], integer-valued.
    """

    arg_constraints: dict = {}
    has_rsample = True

    def __init__(self, low: Tensor, validate_args: bool | None = None) -> None:
        self.low = low
        super().__init__(low.shape[:-1], low.shape[-1:], validate_args=validate_args)

    @constraints.dependent_property
    def support(self) -> constraints.Constraint:
        return constraints.independent(constraints.interval(self.low, self.low + 1), 1)

    def expand(self, batch_shape: Size, _instance: UnitBins | None = None) -> UnitBins:
        return UnitBins(self.low.expand(Size(batch_shape) + self.event_shape))

    @property
    def mean(self) -> Tensor:
        return self.low + 0.5

    def rsample(self, sample_shape: Size = Size()) -> Tensor:
        shape = self._extended_shape(sample_shape)
        v = self.low + torch.rand(shape, dtype=self.low.dtype, device=self.low.device)
        return torch.minimum(v, torch.nextafter(self.low + 1, self.low))

    def log_prob(self, value: Tensor) -> Tensor:
        inside = ((value >= self.low) & (value < self.low + 1)).all(-1)
        return torch.where(inside, 0.0, -math.inf).to(self.low.dtype)


class DequantizedFlow(Model):
    """A flow density p(v) on R^D turned into a distribution over integer vectors x in {0..L-1}^D.

    Generative story (v continuous and latent, x its bin):

        v ~ p_flow(v),   x = clip(floor(v), 0, L - 1),
        P(x) = integral over [0, 1)^D of p_flow(x + u) du   (for x inside the grid),

    fitted as a latent-variable program whose guide is uniform dequantisation, q(v|x) = U(x + [0, 1)^D),
    the noise of Theis et al. (2016). Since q = 1 on the bin, log w = log p_flow(x + u), so

        log P(x) >= E_u[log p_flow(x + u)] = ELBO,

    the bound the literature trains and reports for dequantised flows; ``IWAE(k)`` is tighter and rises to
    log P(x) as K grows (Ho et al., 2019), and ``Fit.log_prob(x, k)`` is that importance-sampled estimate.
    The flow lives on the unit-bin scale of x itself (its fixed standardisation, set from the data, is part
    of its density with its log-determinant), so no further correction applies: in nats per data point
    these figures compare directly with discrete models of the same x. (Had the data been rescaled to
    v / L in [0, 1), the correction would be -D log L.) The clip only affects sampling: a draw outside
    the grid lands on its edge, and the guide's bins cover the grid, so every estimate stays a lower bound.

    ``Fit.encode`` gives E_q[v|x] = x + 1/2; the flow's base-space code of that point is
    ``model.flow.encode(x + 0.5)``.

    Arguments:
        x_dim: D, the size of a data point.
        levels: L, the number of values each coordinate takes, 0..L-1 (2 for binary data, 17 for the
            digits' 0..16 pixel values).
        flow: which flow p_flow is: ``"realnvp"``, ``"maf"`` or ``"nsf"``.
        transforms: the number of layers of the flow.
        hidden: the widths of the hidden layers of each of its networks.

    References:
        A note on the evaluation of generative models (Theis, van den Oord and Bethge, 2016).
        https://arxiv.org/abs/1511.01844

        Flow++: Improving Flow-Based Generative Models with Variational Dequantization and Architecture
        Design (Ho, Chen, Srinivas, Duan and Abbeel, 2019). https://arxiv.org/abs/1902.00275
    """

    def __init__(self, *, x_dim: int, levels: int = 2, flow: str = "maf", transforms: int = 4,
                 hidden: Sequence[int] = (64, 64)) -> None:
        super().__init__()
        if flow not in FLOWS:
            raise ValueError(f"flow must be one of {sorted(FLOWS)}, got {flow!r}")
        self.levels = check_positive_int(levels, "levels")
        if self.levels < 2:
            raise ValueError(f"levels must be at least 2 (the values 0..levels-1), got {levels}")
        self.flow = FLOWS[flow](x_dim=x_dim, transforms=transforms, hidden=hidden)
        self.x_dim = self.flow.x_dim

    def initialize(self, x: Tensor) -> None:
        """Refuse data off the grid {0..L-1}; standardise the flow with the moments of v = x + u."""
        off = (x != x.round()) | (x < 0) | (x > self.levels - 1)
        if bool(off.any()):
            row = int(off.any(-1).nonzero()[0, 0])
            raise ValueError(f"data: DequantizedFlow(levels={self.levels}) takes integer values 0..{self.levels - 1}, "
                             f"but row {row} holds {x[row][off[row]][0].item()!r} (scale images to integers first, "
                             f"e.g. the digits times 16 with levels=17)")
        self.flow.standardize(x.mean(0) + 0.5, (x.var(0) + 1 / 12).sqrt() if x.shape[0] > 1
                              else torch.ones_like(x[0]))

    def model(self, x: Tensor) -> None:
        with pyro.plate(DATA_PLATE, x.shape[0]):
            v = pyro.sample("v", FlowDistribution(self.flow.distribution()))
            pyro.sample("x", dist.Delta(v.floor().clamp(0, self.levels - 1), event_dim=1), obs=x)

    def guide(self, x: Tensor) -> None:
        with pyro.plate(DATA_PLATE, x.shape[0]):
            pyro.sample("v", UnitBins(x))
