"""Probabilistic PCA: z ~ N(0, I_q), x | z ~ N(W z + mu, sigma^2 I_D), so x ~ N(mu, W W^T + sigma^2 I)."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from torch import Tensor, nn

from ppgen.program.protocol import DATA_PLATE, Model
from ppgen.utils.checks import check_positive_int


class PPCA(Model):
    """Probabilistic principal component analysis, with its exact log-likelihood and exact posterior.

    Both integrals of the model have closed forms: log p(x) = log N(x; mu, W W^T + sigma^2 I), and the
    guide is the true posterior itself, q(z|x) = p(z|x) = N(M^{-1} W^T (x - mu), sigma^2 M^{-1}) with
    M = W^T W + sigma^2 I. The guide has no parameters of its own, so ``encode`` and ``posterior`` are
    exact whichever backend fitted W, mu and sigma; and since log p(x, z) - log p(z|x) = log p(x) for
    every z, the ELBO and every IWAE_K equal log p(x) with no Monte Carlo error.

    Arguments:
        x_dim: D, the size of a data point.
        z_dim: q, the number of principal components.

    References:
        Probabilistic Principal Component Analysis (Tipping and Bishop, 1999).
        https://doi.org/10.1111/1467-9868.00196
    """

    def __init__(self, *, x_dim: int, z_dim: int = 2) -> None:
        super().__init__()
        x_dim, z_dim = check_positive_int(x_dim, "x_dim"), check_positive_int(z_dim, "z_dim")
        if z_dim > x_dim:
            raise ValueError(f"z_dim must be at most x_dim ({x_dim}): PPCA has no more components than dimensions, "
                             f"got {z_dim}")
        self.x_dim, self.z_dim = x_dim, z_dim
        self.weight = nn.Parameter(0.1 * torch.randn(x_dim, z_dim))
        self.loc = nn.Parameter(torch.zeros(x_dim))
        self.log_sigma = nn.Parameter(torch.zeros(()))

    def initialize(self, x: Tensor) -> None:
        """Start mu at the sample mean, its maximum-likelihood value."""
        with torch.no_grad():
            self.loc.copy_(x.mean(0))

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact log p(x) = log N(x; mu, W W^T + sigma^2 I), Tensor[N]."""
        sigma2 = (2 * self.log_sigma).exp().expand(self.x_dim)
        return dist.LowRankMultivariateNormal(self.loc, self.weight, sigma2).log_prob(x)

    def model(self, x: Tensor) -> None:
        with pyro.plate(DATA_PLATE, x.shape[0]):
            z = pyro.sample("z", dist.Normal(x.new_zeros(self.z_dim), x.new_ones(self.z_dim)).to_event(1))
            mean = z @ self.weight.T + self.loc
            pyro.sample("x", dist.Normal(mean, self.log_sigma.exp()).to_event(1), obs=x)

    def guide(self, x: Tensor) -> None:
        with pyro.plate(DATA_PLATE, x.shape[0]):
            pyro.sample("z", self.posterior(x))

    def posterior(self, x: Tensor) -> dist.MultivariateNormal:
        """p(z|x) = N(M^{-1} W^T (x - mu), sigma^2 M^{-1}), one q-dimensional Gaussian per row of x."""
        sigma2 = (2 * self.log_sigma).exp()
        precision = self.weight.T @ self.weight / sigma2 + torch.eye(self.z_dim, dtype=x.dtype, device=x.device)
        projected = (x - self.loc) @ self.weight / sigma2
        mean = torch.cholesky_solve(projected.unsqueeze(-1), torch.linalg.cholesky(precision)).squeeze(-1)
        return dist.MultivariateNormal(mean, precision_matrix=precision)
