"""Neural spline flow: autoregressive layers of monotonic rational-quadratic splines."""

from __future__ import annotations

from collections.abc import Sequence

import zuko

from ppgen.models.flows import ExactFlow, check_hidden
from ppgen.utils.checks import check_positive_int


class NeuralSplineFlow(ExactFlow):
    """Neural spline flow over R^D, with exact log p(x), sampling and ``encode``.

    Generative story: z ~ N(0, I_D), x = mu + sigma * g^{-1}(z), g = g_T o ... o g_1, each layer mapping
    x'_d through a monotonic rational-quadratic spline of K bins on [-5, 5] (the identity outside) whose
    knots and slopes come from a MADE pass on x'_<d. Splines are far more flexible per layer than affine
    maps, and their inverse is closed-form (a quadratic per bin). Sampling inverts each layer dimension by
    dimension (D passes). See :class:`~ppgen.models.flows.ExactFlow` for mu and sigma (the standardisation
    puts the data inside the splines' domain).

    Arguments:
        x_dim: D, the size of a data point.
        transforms: T, the number of spline layers.
        hidden: the widths of the hidden layers of each layer's MADE.
        bins: K, the number of spline bins.

    References:
        Neural Spline Flows (Durkan, Bekasov, Murray and Papamakarios, 2019). https://arxiv.org/abs/1906.04032
    """

    def __init__(self, *, x_dim: int, transforms: int = 3, hidden: Sequence[int] = (64, 64), bins: int = 8) -> None:
        super().__init__(x_dim=x_dim)
        self.flow = zuko.flows.NSF(features=self.x_dim, transforms=check_positive_int(transforms, "transforms"),
                                   hidden_features=check_hidden(hidden), bins=check_positive_int(bins, "bins"))
