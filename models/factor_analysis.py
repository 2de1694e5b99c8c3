"""Factor analysis: z ~ N(0, I_q), x | z ~ N(W z + mu, Psi) with Psi diagonal, so x ~ N(mu, W W^T + Psi)."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from torch import Tensor, nn

from ppgen.program.protocol import DATA_PLATE, Model
from ppgen.utils.checks import check_positive_int


class FactorAnalysis(Model):
    """Factor analysis with its exact log-likelihood and exact posterior: PPCA with a noise variance per coordinate.

    q common factors z explain the correlations between the D coordinates of x; what is left is independent
    noise of its own variance psi_d in each coordinate. Both integrals have closed forms:
    log p(x) = log N(x; mu, W W^T + Psi), and the guide is the true posterior,
    q(z|x) = p(z|x) = N(M^{-1} W^T Psi^{-1} (x - mu), M^{-1}) with M = I + W^T Psi^{-1} W, with no parameters
    of its own; so the ELBO and every IWAE_K equal log p(x) exactly. ``MLE()`` fits it by default.

    Arguments:
        x_dim: D, the size of a data point.
        z_dim: q, the number of factors.

    References:
        Pattern Recognition and Machine Learning (Bishop, 2006), section 12.2.4.
        https://www.microsoft.com/en-us/research/publication/pattern-recognition-machine-learning/

        EM Algorithms for ML Factor Analysis (Rubin and Thayer, 1982). https://doi.org/10.1007/BF02293851
    """

    def __init__(self, *, x_dim: int, z_dim: int = 2) -> None:
        super().__init__()
        x_dim, z_dim = check_positive_int(x_dim, "x_dim"), check_positive_int(z_dim, "z_dim")
        if z_dim > x_dim:
            raise ValueError(f"z_dim must be at most x_dim ({x_dim}), got {z_dim}")
        self.x_dim, self.z_dim = x_dim, z_dim
        self.weight = nn.Parameter(0.1 * torch.randn(x_dim, z_dim))
        self.loc = nn.Parameter(torch.zeros(x_dim))
        self.log_psi = nn.Parameter(torch.zeros(x_dim))  # log of the noise variances

    @torch.no_grad()
    def initialize(self, x: Tensor) -> None:
        """Start at the maximum-likelihood mean, and W, Psi from the principal components of the sample covariance
        (the PPCA solution with its noise spread over the coordinates it leaves unexplained)."""
        mean = x.mean(0)
        centred = x - mean
        cov = centred.T @ centred / x.shape[0]
        values, vectors = torch.linalg.eigh(cov)
        top, rest = values.flip(0)[: self.z_dim], values[: self.x_dim - self.z_dim]
        noise = rest.mean() if rest.numel() else values.min() * 0.1
        weight = vectors.flip(1)[:, : self.z_dim] * (top - noise).clamp_min(0).sqrt()
        psi = (cov.diagonal() - weight.square().sum(1)).clamp_min(1e-3 * cov.diagonal().mean() + 1e-12)
        self.loc.copy_(mean)
        self.weight.copy_(weight)
        self.log_psi.copy_(psi.log())

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact log p(x) = log N(x; mu, W W^T + Psi), Tensor[N]."""
        return dist.LowRankMultivariateNormal(self.loc, self.weight, self.log_psi.exp()).log_prob(x)

    def model(self, x: Tensor) -> None:
        with pyro.plate(DATA_PLATE, x.shape[0]):
            z = pyro.sample("z", dist.Normal(x.new_zeros(self.z_dim), x.new_ones(self.z_dim)).to_event(1))
            pyro.sample("x", dist.Normal(z @ self.weight.T + self.loc, (0.5 * self.log_psi).exp()).to_event(1), obs=x)

    def guide(self, x: Tensor) -> None:
        with pyro.plate(DATA_PLATE, x.shape[0]):
            pyro.sample("z", self.posterior(x))

    def posterior(self, x: Tensor) -> dist.MultivariateNormal:
        """p(z|x) = N(M^{-1} W^T Psi^{-1} (x - mu), M^{-1}), one q-dimensional Gaussian per row of x."""
        scaled = self.weight * (-self.log_psi).exp().unsqueeze(-1)  # Psi^{-1} W
        precision = self.weight.T @ scaled + torch.eye(self.z_dim, dtype=x.dtype, device=x.device)
        projected = (x - self.loc) @ scaled
        mean = torch.cholesky_solve(projected.unsqueeze(-1), torch.linalg.cholesky(precision)).squeeze(-1)
        return dist.MultivariateNormal(mean, precision_matrix=precision)
