"""Programs written the way a user writes them, shared by several tests."""

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from ppgen import models
from ppgen.program import DATA_PLATE


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
