"""The fully visible sigmoid belief network: each pixel a logistic regression on the pixels before it."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ppgen.models.autoregressive import AutoregressiveModel, natural_order
from ppgen.utils.checks import check_positive_int


class FVSBN(AutoregressiveModel):
    """Fully visible sigmoid belief network over x in {0, 1}^D, with exact log p(x).

    Generative story, dimension by dimension in the order 1..D:

        x_d | x_<d ~ Bernoulli(sigmoid(b_d + sum_{j<d} W_dj x_j)),   log p(x) = sum_d log p(x_d | x_<d),

    with W strictly lower triangular (a mask keeps the weights above the diagonal at zero): D(D+1)/2
    effective parameters and no hidden units. ``log_prob`` is one masked matrix product; ``sample`` draws
    x_1, x_2, ... in turn. The model has no latent variables: ``Fit.encode`` refuses it.

    Arguments:
        x_dim: D, the number of binary dimensions.

    References:
        Connectionist learning of belief networks (Neal, 1992). https://doi.org/10.1016/0004-3702(92)90065-6

        Graphical Models for Machine Learning and Digital Communication (Frey, 1998). MIT Press.
        https://mitpress.mit.edu/9780262062022/
    """

    def __init__(self, *, x_dim: int) -> None:
        super().__init__()
        self.x_dim = check_positive_int(x_dim, "x_dim")
        self.weight = nn.Parameter(torch.zeros(x_dim, x_dim))
        self.bias = nn.Parameter(torch.zeros(x_dim))
        self.register_buffer("mask", torch.ones(x_dim, x_dim).tril(-1))
        self.register_buffer("orders", natural_order(x_dim))

    def logits(self, x: Tensor) -> Tensor:
        """b + (W * mask) x for the one ordering, Tensor[..., 1, D]."""
        return (x @ (self.weight * self.mask).T + self.bias).unsqueeze(-2)
