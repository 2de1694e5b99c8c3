"""Noise-contrastive estimation: tell the data from draws of a known noise distribution q by logistic regression on
log p_theta(x) - log(nu q(x)), with log p_theta(x) = -E_theta(x) - c and the log-normaliser c learnt as a parameter
(Gutmann and Hyvarinen, 2010)."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.distributions import Distribution, MultivariateNormal
from torch.nn.functional import logsigmoid

from ppgen.objective.base import Objective
from ppgen.objective.densities import check_density_model
from ppgen.program.inputs import Batch
from ppgen.program.structure import Structure
from ppgen.program.unnormalized import energy_site
from ppgen.utils.checks import check_positive_int

#: added to the data's covariance, times its mean variance, so that q has a density where the data vary in fewer
#: than D directions (pixels that are always 0).
JITTER = 1e-4


@dataclass(frozen=True, kw_only=True)
class NCE(Objective):
    """Noise-contrastive estimation of an energy-based model whose ``Unnormalized`` data site has a learnt
    ``log_normalizer`` c (the zoo's ``EnergyModel`` and ``ConvEnergy`` have one).

    With nu noise draws y_j ~ q per data point x and G(u) = log p_theta(u) - log(nu q(u)),
    log p_theta(u) = -E_theta(u) - c, the loss per data point is the logistic regression's

        -log sigmoid(G(x)) - sum_{j=1..nu} log sigmoid(-G(y_j)).

    Its minimiser over theta and c is p_theta = p_data where the family holds p_data, and then c = log Z_theta: the
    classifier cannot beat chance only where the model's density is normalised (Gutmann and Hyvarinen, 2010). So after
    a fit, c estimates log Z, and -E(x) - c estimates log p(x); ``fit.log_prob`` answers with its own estimate of
    log Z by annealed importance sampling, and ``fit.evaluate`` reports c beside it for comparison. The estimator
    is good where q overlaps the data: a q far from p_data makes the classification easy and the estimate poor.

    Arguments:
        noise: q. ``None``: the Gaussian N(m, S + 1e-4 (tr S / D) I) of the data's mean m and covariance S (of x
            flattened), fitted at the start of ``ppgen.fit`` to the data in memory (or a stream's first batch), and
            fitted again from the same data on resume; or a ``torch.distributions.Distribution`` over x flattened to
            D values (event shape ``(D,)``), such as a wider ``MultivariateNormal``. A saved fit records ``None``, or a
            description of the distribution given (a loaded fit cannot train on with it: give it again).
        ratio: nu, noise draws per data point.

    References:
        Noise-contrastive estimation: A new estimation principle for unnormalized statistical models (Gutmann and
        Hyvarinen, 2010). https://proceedings.mlr.press/v9/gutmann10a.html

    Example:
        >>> fit = ppgen.fit(models.EnergyModel(x_dim=2), x, inference=inference.NCE(ratio=4))  # doctest: +SKIP
        >>> fit.model.log_normalizer  # the estimate of log Z  # doctest: +SKIP
    """

    learns_log_normalizer: ClassVar[bool] = True
    noise: Distribution | str | None = None
    ratio: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "ratio", check_positive_int(self.ratio, "ratio"))
        if self.noise is not None and not isinstance(self.noise, (Distribution, str)):
            raise TypeError(f"noise must be None (a Gaussian fitted to the data) or a torch.distributions.Distribution "
                            f"of x flattened, got {type(self.noise).__name__}")
        if isinstance(self.noise, Distribution) and (self.noise.batch_shape or len(self.noise.event_shape) != 1):
            raise ValueError(f"noise must be one distribution of x flattened to D values (batch shape (), event shape "
                             f"(D,)), got batch shape {tuple(self.noise.batch_shape)} and event shape "
                             f"{tuple(self.noise.event_shape)}")

    @property
    def config(self) -> dict[str, Any]:
        noise = self.noise if not isinstance(self.noise, Distribution) else f"given: {self.noise!r}"
        return {"noise": noise, "ratio": self.ratio}

    def check(self, structure: Structure) -> None:
        check_density_model(self, structure, normalized=False)

    def prepare(self, module: nn.Module, structure: Structure, data: Batch) -> NCE:
        """This objective with its noise distribution q: the one given, or the Gaussian of the data's mean and
        covariance.

        Raises:
            ValueError: the model's ``Unnormalized`` site has no learnt ``log_normalizer``; the noise was recorded by a
                saved fit and cannot be rebuilt; its dimension is not that of x.
        """
        c = energy_site(module, data.head(2), structure.data_site).log_normalizer
        if c is None or not c.requires_grad:
            raise ValueError("NCE() learns log Z as a parameter c of the model, but its Unnormalized data site has no "
                             "log_normalizer that requires a gradient: pass Unnormalized(..., log_normalizer=c), "
                             "c = nn.Parameter(torch.zeros(())) of the model")
        if isinstance(self.noise, str):
            raise ValueError(f"noise: this NCE was rebuilt from a saved fit, which records the noise distribution "
                             f"only as {self.noise!r}: pass inference.NCE(noise=<the distribution>) to train on")
        x = data.args[structure.observed_input].flatten(1).double()
        noise = self.noise or fitted_gaussian(x)
        if noise.event_shape != x.shape[1:]:
            raise ValueError(f"noise has event shape {tuple(noise.event_shape)}, but x flattened has "
                             f"{x.shape[1]} values per point")
        prepared = copy.copy(self)
        object.__setattr__(prepared, "q", noise)
        return prepared

    def loss(self, module: nn.Module, structure: Structure, batch: Batch) -> Tensor:
        q = getattr(self, "q", None)
        if q is None:
            raise ValueError("NCE(): the noise distribution is set before the first step, by ppgen.fit (or "
                             "NCE().prepare(module, structure, data))")
        where, site, nu = structure.observed_input, structure.data_site, self.ratio
        x = batch.args[where]
        q = self._placed(q, x)
        noise = _draw(q, len(x) * nu, x)
        repeated = batch.take(torch.arange(len(x), device=batch.rows.device).repeat(nu))
        noise_batch = Batch(repeated.args[:where] + (noise,) + repeated.args[where + 1:], repeated.rows, batch.size)
        data_site, noise_site = energy_site(module, batch, site), energy_site(module, noise_batch, site)
        c = data_site.log_normalizer
        log_nu_q = math.log(nu) + torch.cat([_log_q(q, x), _log_q(q, noise)])
        log_ratio = torch.cat([data_site.log_prob(x), noise_site.log_prob(noise)]) - c - log_nu_q
        data_term = logsigmoid(log_ratio[:len(x)])
        noise_term = logsigmoid(-log_ratio[len(x):]).reshape(nu, len(x)).sum(0)
        return -(data_term + noise_term).mean()

    def _placed(self, q: Distribution, like: Tensor) -> Distribution:
        """A Gaussian q on the device and in the dtype of the data (kept for the next step), so that its draws are
        made there; another distribution as given (its draws and densities are moved)."""
        if not isinstance(q, MultivariateNormal) or (q.loc.device, q.loc.dtype) == (like.device, like.dtype):
            return q
        kept = getattr(self, "_q_placed", None)
        if kept is None or (kept.loc.device, kept.loc.dtype) != (like.device, like.dtype):
            kept = MultivariateNormal(q.loc.to(like), scale_tril=q.scale_tril.to(like), validate_args=False)
            object.__setattr__(self, "_q_placed", kept)
        return kept


def fitted_gaussian(x: Tensor) -> MultivariateNormal:
    """N(m, S + JITTER (tr S / D) I) for the rows of x, Tensor[N, D], m their mean and S their covariance (1 / N)."""
    loc = x.mean(0)
    centred = x - loc
    covariance = centred.T @ centred / len(x)
    jitter = JITTER * max(covariance.diagonal().mean().item(), 1e-12)
    return MultivariateNormal(loc, covariance + jitter * torch.eye(x.shape[1], dtype=x.dtype))


def _draw(q: Distribution, n: int, like: Tensor) -> Tensor:
    """n draws of q shaped as the rows of ``like``, in its dtype and on its device."""
    return q.sample((n,)).to(like).reshape(n, *like.shape[1:])


def _log_q(q: Distribution, x: Tensor) -> Tensor:
    """log q(x) of each row of x, computed in q's dtype and device, returned in x's."""
    loc = getattr(q, "loc", None)
    flat = x.detach().flatten(1)
    return q.log_prob(flat if loc is None else flat.to(loc)).to(x)
