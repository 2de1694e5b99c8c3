"""MAF: a normalising flow of masked autoregressive affine layers."""

from __future__ import annotations

from collections.abc import Sequence

import zuko

from ppgen.models.flows import ExactFlow, check_hidden
from ppgen.utils.checks import check_positive_int


class MAF(ExactFlow):
    """Masked autoregressive flow over R^D, with exact log p(x), sampling and ``encode``.

    Generative story: z ~ N(0, I_D), x = mu + sigma * g^{-1}(z), g = g_T o ... o g_1, each an affine
    autoregressive layer z_d = (x'_d - m_d(x'_<d)) * exp(-a_d(x'_<d)) whose m and a come from one MADE
    pass (Germain et al., 2015); the orderings alternate between layers. Density evaluation (``log_prob``,
    ``encode``) is one pass per layer; sampling inverts each layer dimension by dimension (D passes).
    See :class:`~ppgen.models.flows.ExactFlow` for mu and sigma.

    Arguments:
        x_dim: D, the size of a data point.
        transforms: T, the number of autoregressive layers.
        hidden: the widths of the hidden layers of each layer's MADE.

    References:
        Masked Autoregressive Flow for Density Estimation (Papamakarios, Pavlakou and Murray, 2017).
        https://arxiv.org/abs/1705.07057
    """

    def __init__(self, *, x_dim: int, transforms: int = 4, hidden: Sequence[int] = (64, 64)) -> None:
        super().__init__(x_dim=x_dim)
        self.flow = zuko.flows.MAF(features=self.x_dim, transforms=check_positive_int(transforms, "transforms"),
                                   hidden_features=check_hidden(hidden))
