"""The Gaussian mixture: c ~ Categorical(pi), x | c ~ N(mu_c, Sigma_c), with c summed out exactly."""

from __future__ import annotations

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from sklearn.cluster import KMeans
from torch import Tensor, nn
from torch.distributions import constraints, transform_to

from ppgen.program.protocol import DATA_PLATE, Model
from ppgen.utils.checks import check_non_negative_float, check_positive_int

COVARIANCES = ("full", "diag")


class GMM(Model):
    """Gaussian mixture model whose component c is a discrete latent, enumerated in parallel.

    Every backend sums c out exactly, so log p(x) = log sum_c pi_c N(x; mu_c, Sigma_c) is exact and
    no guide is needed. Before training the mixture starts from k-means, as EM does.

    Each component is parametrised relative to a reference (m_c, R_c), its k-means estimate:
    mu_c = m_c + R_c delta_c and Sigma_c = (R_c T_c)(R_c T_c)^T + reg_covar I, with delta_c = 0 and T_c = I
    at the start. A gradient step on delta_c and T_c is then a change in the component's own coordinates,
    which keeps the steps of an optimiser such as Adam (about lr per parameter, whatever its scale) in
    proportion where a covariance is nearly singular, as it is along the always-blank pixels of image data.
    There the likelihood grows without bound as a variance shrinks; ``reg_covar`` is its floor, as in
    scikit-learn's ``GaussianMixture``, which adds it to every covariance it estimates.

    Arguments:
        x_dim: D, the size of a data point.
        n_components: C, the number of mixture components.
        covariance: ``"full"`` (a Cholesky factor per component) or ``"diag"``.
        reg_covar: added to the diagonal of every covariance, so that each variance is at least this.
    """

    def __init__(self, *, x_dim: int, n_components: int = 3, covariance: str = "full",
                 reg_covar: float = 1e-6) -> None:
        super().__init__()
        if covariance not in COVARIANCES:
            raise ValueError(f"covariance must be one of {COVARIANCES}, got {covariance!r}")
        x_dim, n_components = check_positive_int(x_dim, "x_dim"), check_positive_int(n_components, "n_components")
        reg_covar = check_non_negative_float(reg_covar, "reg_covar")
        self.x_dim, self.n_components, self.covariance, self.reg_covar = x_dim, n_components, covariance, reg_covar
        full = covariance == "full"
        self.logits = nn.Parameter(torch.zeros(n_components))
        self.offset = nn.Parameter(torch.zeros(n_components, x_dim))  # delta
        self.unconstrained_scale = nn.Parameter(torch.zeros((n_components, x_dim, x_dim) if full else
                                                            (n_components, x_dim)))  # T = I at zero
        self.register_buffer("reference_locs", torch.randn(n_components, x_dim))  # m
        self.register_buffer("reference_scale", torch.eye(x_dim).expand(n_components, -1, -1).clone() if full
                             else torch.ones(n_components, x_dim))  # R

    @property
    def _scale_constraint(self) -> constraints.Constraint:
        return constraints.lower_cholesky if self.covariance == "full" else constraints.positive

    def components(self) -> tuple[Tensor, Tensor]:
        """mu_c = m_c + R_c delta_c, Tensor[C, D], and the scale of Sigma_c: its Cholesky factor, Tensor[C, D, D],
        or the standard deviations of a diagonal covariance, Tensor[C, D]."""
        relative = transform_to(self._scale_constraint)(self.unconstrained_scale)
        if self.covariance == "full":
            locs = self.reference_locs + (self.reference_scale @ self.offset.unsqueeze(-1)).squeeze(-1)
            scale = self.reference_scale @ relative
            eye = torch.eye(self.x_dim, dtype=scale.dtype, device=scale.device)
            return locs, torch.linalg.cholesky(scale @ scale.mT + self.reg_covar * eye)
        scale = self.reference_scale * relative
        return self.reference_locs + self.reference_scale * self.offset, (scale.square() + self.reg_covar).sqrt()

    def component(self, c: Tensor | None = None) -> dist.Distribution:
        """N(mu_c, Sigma_c) for the components indexed by c (all of them when c is None)."""
        locs, scale = self.components()  # factorised once per component, then indexed
        if c is not None:
            locs, scale = locs[c], scale[c]
        if self.covariance == "full":
            return dist.MultivariateNormal(locs, scale_tril=scale)
        return dist.Normal(locs, scale).to_event(1)

    def model(self, x: Tensor) -> None:
        with pyro.plate(DATA_PLATE, x.shape[0]):
            c = pyro.sample("c", dist.Categorical(logits=self.logits), infer={"enumerate": "parallel"})
            pyro.sample("x", self.component(c), obs=x)

    @torch.no_grad()
    def set_components(self, weights: Tensor, locs: Tensor, scales: Tensor) -> None:
        """Make the mixture pi = ``weights``, mu = ``locs`` and Sigma = scale scale^T + reg_covar I, from
        ``scales`` (Cholesky factors, or standard deviations for a diagonal covariance), and make these the
        reference of every later step."""
        as_param = lambda a: torch.as_tensor(a, dtype=self.logits.dtype, device=self.logits.device)  # noqa: E731
        self.logits.copy_(as_param(weights).log())
        self.reference_locs.copy_(as_param(locs))
        self.reference_scale.copy_(as_param(scales))
        self.offset.zero_()
        self.unconstrained_scale.zero_()

    def initialize(self, x: Tensor) -> None:
        """Weights, means and covariances of the k-means clusters of x (scikit-learn's KMeans), each covariance
        with ``reg_covar`` on its diagonal for a regular reference, to which Sigma adds its floor: the mixture
        starts at the k-means covariances plus 2 ``reg_covar`` I.

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
        cov += self.reg_covar * np.eye(self.x_dim)  # the reference must be regular; Sigma adds the floor again
        scale = np.linalg.cholesky(cov) if self.covariance == "full" else np.sqrt(np.diagonal(cov, 0, 1, 2))
        self.set_components(counts / counts.sum(), means, scale)
