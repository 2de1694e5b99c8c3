"""The Gaussian mixture: c ~ Categorical(pi), x | c ~ N(mu_c, Sigma_c), with c summed out exactly."""

from __future__ import annotations

import math
import numbers

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from sklearn.cluster import KMeans
from torch import Tensor, nn
from torch.distributions import constraints, transform_to

from ppgen.checks import check_positive_int
from ppgen.program import DATA_PLATE, Model

COVARIANCES = ("full", "diag")


class GMM(Model):
    """Gaussian mixture model whose component c is a discrete latent, enumerated in parallel.

    Every backend sums c out exactly, so log p(x) = log sum_c pi_c N(x; mu_c, Sigma_c) is exact and
    no guide is needed. Before training the mixture starts from k-means, as EM does.

    Arguments:
        x_dim: D, the size of a data point.
        n_components: C, the number of mixture components.
        covariance: ``"full"`` (a Cholesky factor per component) or ``"diag"``.
        reg_covar: added to the diagonal of each covariance at initialisation.
    """

    def __init__(self, *, x_dim: int, n_components: int = 3, covariance: str = "full",
                 reg_covar: float = 1e-6) -> None:
        super().__init__()
        if covariance not in COVARIANCES:
            raise ValueError(f"covariance must be one of {COVARIANCES}, got {covariance!r}")
        x_dim, n_components = check_positive_int(x_dim, "x_dim"), check_positive_int(n_components, "n_components")
        if isinstance(reg_covar, bool) or not isinstance(reg_covar, numbers.Real):
            raise TypeError(f"reg_covar must be a number >= 0, got {type(reg_covar).__name__}")
        if not 0 <= reg_covar < math.inf:
            raise ValueError(f"reg_covar must be a finite number >= 0, got {reg_covar!r}")
        self.x_dim, self.n_components, self.covariance, self.reg_covar = x_dim, n_components, covariance, reg_covar
        self.logits = nn.Parameter(torch.zeros(n_components))
        self.locs = nn.Parameter(torch.randn(n_components, x_dim))
        shape = (n_components, x_dim, x_dim) if covariance == "full" else (n_components, x_dim)
        self.unconstrained_scale = nn.Parameter(torch.zeros(shape))

    @property
    def _scale_constraint(self) -> constraints.Constraint:
        return constraints.lower_cholesky if self.covariance == "full" else constraints.positive

    def component(self, c: Tensor | None = None) -> dist.Distribution:
        """N(mu_c, Sigma_c) for the components indexed by c (all of them when c is None)."""
        locs, scale = self.locs, transform_to(self._scale_constraint)(self.unconstrained_scale)
        if c is not None:
            locs, scale = locs[c], scale[c]
        if self.covariance == "full":
            return dist.MultivariateNormal(locs, scale_tril=scale)
        return dist.Normal(locs, scale).to_event(1)

    def model(self, x: Tensor) -> None:
        with pyro.plate(DATA_PLATE, x.shape[0]):
            c = pyro.sample("c", dist.Categorical(logits=self.logits), infer={"enumerate": "parallel"})
            pyro.sample("x", self.component(c), obs=x)

    def initialize(self, x: Tensor) -> None:
        """Weights, means and covariances of the k-means clusters of x (scikit-learn's KMeans).

        Raises:
            ValueError: x has fewer points than the mixture has components.
        """
        if len(x) < self.n_components:
            raise ValueError(f"data: {len(x)} point(s) cannot start {self.n_components} components (n_components)")
        data = x.detach().cpu().double().numpy()
        seed = int(torch.randint(2**31 - 1, ()).item())
        labels = KMeans(self.n_components, n_init=1, random_state=seed).fit(data).labels_
        counts = np.bincount(labels, minlength=self.n_components) + 10 * np.finfo(float).eps
        resp = np.eye(self.n_components)[labels]
        means = resp.T @ data / counts[:, None]
        centred = data[None] - means[:, None]
        cov = np.einsum("cn,cni,cnj->cij", resp.T, centred, centred) / counts[:, None, None]
        cov += self.reg_covar * np.eye(self.x_dim)
        scale = np.linalg.cholesky(cov) if self.covariance == "full" else np.sqrt(np.diagonal(cov, 0, 1, 2))
        as_param = lambda a: torch.as_tensor(a, dtype=self.locs.dtype, device=self.locs.device)  # noqa: E731
        with torch.no_grad():
            self.logits.copy_(as_param(np.log(counts / counts.sum())))
            self.locs.copy_(as_param(means))
            self.unconstrained_scale.copy_(transform_to(self._scale_constraint).inv(as_param(scale)))
