"""Score matching: minimise the Fisher divergence (1/2) E_p_data ||grad_x log p_theta(x) - grad_x log p_data(x)||^2,
which needs the score s_theta(x) = grad_x log p~_theta(x) = -grad_x E_theta(x) alone, never log Z."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ppgen.objective.base import Objective
from ppgen.objective.densities import check_density_model, density
from ppgen.program.inputs import Batch
from ppgen.program.structure import Structure
from ppgen.utils.checks import check_choice, check_positive_float

METHODS = ("denoising", "sliced")
PROJECTIONS = ("rademacher", "gaussian")
#: sigma of denoising score matching where ``noise`` is not given.
DEFAULT_NOISE = 0.1


@dataclass(frozen=True, kw_only=True)
class ScoreMatching(Objective):
    """Score matching of an energy-based model (a model whose data site is ``ppgen.Unnormalized``), or of any model
    whose log p(x) is exact (a flow, say, fitted by the Fisher divergence instead of the likelihood).

    The score is s(x~, sigma) = grad_x log p~(x~, sigma), by autograd with ``create_graph=True``. Each data point
    draws a noise level sigma uniformly from ``noise`` and x~ = x + sigma eps, eps ~ N(0, I); its loss is weighted by
    lambda(sigma) = sigma^2 (Song and Ermon, 2019), so that every level contributes a loss of the same scale:

    * ``"denoising"`` (Vincent, 2011): (1/2) ||sigma s(x~, sigma) + eps||^2, that is
      sigma^2 (1/2) ||s + (x~ - x) / sigma^2||^2, whose minimiser is the score of the data convolved with the noise,
      p_sigma = p_data * N(0, sigma^2 I), not of p_data: for Gaussian data N(mu, Sigma) and a Gaussian energy, the
      fit is N(mu, Sigma + sigma^2 I) exactly. Small sigma means little bias and a noisy loss.
    * ``"sliced"`` (Song, Garg, Shi and Ermon, 2019): v^T grad_x s(x~) v + (1/2) ||s(x~)||^2 with one projection
      v per point, Rademacher or standard Gaussian. Since E[v v^T] = I for both, E_v[v^T (grad s) v] = tr(grad_x s),
      and the second term is (1/2) ||s||^2 in place of (1/2) (v^T s)^2: the variance-reduced form (SSM-VR), which
      with Gaussian projections removes the term's variance entirely. In expectation over v it is Hyvarinen's (2005)
      objective tr(grad_x s) + (1/2) ||s||^2, the Fisher divergence up to a constant, at the cost of one more
      backward pass rather than D of them. Without ``noise`` it fits the data themselves (lambda = 1); with it,
      p_sigma at each level.

    With several levels ``noise=(sigma_1, ..., sigma_L)`` (decreasing; a geometric sequence as Song and Ermon
    choose), a noise-conditional energy (``Unnormalized(..., noise_conditional=True)``, the zoo's
    ``EnergyModel(noise_conditional=True)``) receives each point's sigma and learns E(x, sigma) at every level, for
    annealed Langevin sampling from sigma_1 down to sigma_L; a plain energy is fitted to the mixture of the levels.

    Arguments:
        method: ``"denoising"`` or ``"sliced"``.
        noise: sigma, one level or a decreasing sequence of them; by default 0.1 for ``"denoising"`` and none (the
            data themselves) for ``"sliced"``.
        projection: ``"rademacher"`` or ``"gaussian"``, the distribution of sliced score matching's v.

    The loss is in units of the squared score times sigma^2, per data point, not in nats.

    References:
        Estimation of Non-Normalized Statistical Models by Score Matching (Hyvarinen, 2005).
        https://jmlr.org/papers/v6/hyvarinen05a.html
        A Connection Between Score Matching and Denoising Autoencoders (Vincent, 2011).
        https://doi.org/10.1162/NECO_a_00142
        Sliced Score Matching: A Scalable Approach to Density and Score Estimation (Song, Garg, Shi and Ermon, 2019).
        https://arxiv.org/abs/1905.07088
        Generative Modeling by Estimating Gradients of the Data Distribution (Song and Ermon, 2019).
        https://arxiv.org/abs/1907.05600

    Example:
        >>> fit = ppgen.fit(models.EnergyModel(x_dim=2), x, inference=inference.ScoreMatching())  # doctest: +SKIP
    """

    method: str = "denoising"
    noise: float | Sequence[float] | None = None
    projection: str = "rademacher"

    def __post_init__(self) -> None:
        check_choice(self.method, METHODS, "method")
        check_choice(self.projection, PROJECTIONS, "projection")
        if self.noise is None:
            return
        if isinstance(self.noise, (str, bytes)) or not isinstance(self.noise, (Sequence, numbers.Real)):
            raise TypeError(f"noise must be a positive number sigma or a sequence of them, got "
                            f"{type(self.noise).__name__}")
        if isinstance(self.noise, Sequence):
            levels = tuple(check_positive_float(s, f"noise[{i}]") for i, s in enumerate(self.noise))
            if not levels or any(a <= b for a, b in zip(levels, levels[1:])):
                raise ValueError(f"noise must be a decreasing sequence of levels sigma_1 > ... > sigma_L, got "
                                 f"{tuple(self.noise)}")
            object.__setattr__(self, "noise", levels)
        else:
            object.__setattr__(self, "noise", check_positive_float(self.noise, "noise"))

    @property
    def levels(self) -> tuple[float, ...]:
        """sigma_1, ..., sigma_L; empty where the data are not perturbed (sliced score matching without noise)."""
        if self.noise is None:
            return (DEFAULT_NOISE,) if self.method == "denoising" else ()
        return self.noise if isinstance(self.noise, tuple) else (self.noise,)

    def check(self, structure: Structure) -> None:
        check_density_model(self, structure, normalized=True)

    def loss(self, module: nn.Module, structure: Structure, batch: Batch) -> Tensor:
        x = batch.args[structure.observed_input]
        log_p = density(module, structure, batch)
        points = x.shape[:1] + (1,) * (x.dim() - 1)
        if self.levels:
            levels = torch.tensor(self.levels, dtype=x.dtype, device=x.device)
            sigma = levels[torch.randint(len(levels), (len(x),), device=x.device)]
        else:
            sigma = None
        eps = torch.randn_like(x)
        perturbed = (x if sigma is None else x + sigma.reshape(points) * eps).detach().requires_grad_(True)
        with torch.enable_grad():
            score = torch.autograd.grad(log_p(perturbed, sigma).sum(), perturbed, create_graph=True)[0]
            if self.method == "denoising":
                per_point = 0.5 * (sigma.reshape(points) * score + eps).flatten(1).square().sum(1)
            else:
                per_point = sliced_terms(score, perturbed, self.projection)
                if sigma is not None:
                    per_point = sigma.square() * per_point
        return per_point.mean()


def sliced_terms(score: Tensor, x: Tensor, projection: str) -> Tensor:
    """v^T grad_x s(x) v + (1/2) ||s(x)||^2 per point, Tensor[N], one projection v per point (Rademacher or standard
    Gaussian), the Hessian-vector product v^T grad_x (v^T s) by one more backward pass; differentiable in theta."""
    v = torch.randn_like(x) if projection == "gaussian" else torch.randint_like(x, 2).mul_(2).sub_(1)
    hv = torch.autograd.grad((score * v).sum(), x, create_graph=True)[0]
    return (hv * v).flatten(1).sum(1) + 0.5 * score.flatten(1).square().sum(1)
