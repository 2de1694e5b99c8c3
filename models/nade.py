"""The neural autoregressive distribution estimator: one hidden layer whose weights all conditionals share."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ppgen.models.autoregressive import AutoregressiveModel, natural_order
from ppgen.utils.checks import check_positive_int


class NADE(AutoregressiveModel):
    """NADE over x in {0, 1}^D, with exact log p(x).

    Generative story, dimension by dimension in the order 1..D, with H hidden units:

        h_d = sigmoid(c + W_{:, <d} x_<d),   x_d | x_<d ~ Bernoulli(sigmoid(b_d + V_d . h_d)),

    the weights W (H x D) shared by every conditional, so that all D hidden vectors follow from one
    running sum a_d = c + sum_{j<d} W_{:, j} x_j: log p(x) costs O(DH), as one pass of an autoencoder.
    ``sample`` draws x_1, x_2, ... in turn. The model has no latent variables: ``Fit.encode`` refuses it.

    Arguments:
        x_dim: D, the number of binary dimensions.
        hidden: H, the number of hidden units.

    References:
        The Neural Autoregressive Distribution Estimator (Larochelle and Murray, 2011).
        https://proceedings.mlr.press/v15/larochelle11a.html
    """

    def __init__(self, *, x_dim: int, hidden: int = 64) -> None:
        super().__init__()
        self.x_dim = check_positive_int(x_dim, "x_dim")
        self.hidden = check_positive_int(hidden, "hidden")
        self.w = nn.Parameter(torch.randn(hidden, x_dim) / x_dim**0.5)
        self.c = nn.Parameter(torch.zeros(hidden))
        self.v = nn.Parameter(torch.randn(x_dim, hidden) / hidden**0.5)
        self.b = nn.Parameter(torch.zeros(x_dim))
        self.register_buffer("orders", natural_order(x_dim))

    def logits(self, x: Tensor) -> Tensor:
        """b_d + V_d . sigmoid(c + sum_{j<d} W_{:, j} x_j) for every d, Tensor[..., 1, D]."""
        contributions = x.unsqueeze(-1) * self.w.T  # [..., D, H]: x_j W_{:, j}
        before = torch.cat([torch.zeros_like(contributions[..., :1, :]),
                            contributions[..., :-1, :].cumsum(-2)], -2)  # sum over j < d only
        h = torch.sigmoid(self.c + before)
        return ((h * self.v).sum(-1) + self.b).unsqueeze(-2)
