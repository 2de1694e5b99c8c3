"""RealNVP: a normalising flow of affine coupling layers."""

from __future__ import annotations

from collections.abc import Sequence

import zuko

from ppgen.models.flows import ExactFlow, check_hidden
from ppgen.utils.checks import check_positive_int


class RealNVP(ExactFlow):
    """Real-valued non-volume-preserving flow over R^D, with exact log p(x), sampling and ``encode``.

    Generative story: z ~ N(0, I_D), x = mu + sigma * g^{-1}(z), g = g_T o ... o g_1 affine couplings.
    Each g_t splits x' into halves (a, b) by an alternating checkerboard mask and maps
    (a, b) -> (a, b * exp(s_t(a)) + m_t(a)), s_t and m_t one MLP: both directions cost one pass and
    log |det dg_t/dx'| = sum s_t(a). See :class:`~ppgen.models.flows.ExactFlow` for mu and sigma.

    Arguments:
        x_dim: D, the size of a data point (at D = 1 zuko's coupling degrades to an elementwise map).
        transforms: T, the number of coupling layers.
        hidden: the widths of the hidden layers of each coupling MLP.

    References:
        Density estimation using Real NVP (Dinh, Sohl-Dickstein and Bengio, 2017).
        https://arxiv.org/abs/1605.08803
    """

    def __init__(self, *, x_dim: int, transforms: int = 4, hidden: Sequence[int] = (64, 64)) -> None:
        super().__init__(x_dim=x_dim)
        self.flow = zuko.flows.RealNVP(features=self.x_dim, transforms=check_positive_int(transforms, "transforms"),
                                       hidden_features=check_hidden(hidden))
