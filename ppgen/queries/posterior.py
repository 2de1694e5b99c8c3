"""Posterior draws as a first-class result: guide draws z ~ q(z|x), importance-resampled draws, or MCMC draws,
with their diagnostics, summarised in torch and exported to ArviZ (:mod:`ppgen.queries.arviz_export`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    import arviz as az

#: the ways ``Fit.posterior`` draws: from the guide, importance-resampled through the model, or by NUTS.
METHODS = ("guide", "importance", "nuts")


@dataclass(frozen=True)
class Posterior:
    """Draws from the posterior, S = ``chains`` x draws of them, chain after chain.

    Attributes:
        samples: ``samples[site]`` is Tensor[S, N, ...], S draws for each of N data points, or Tensor[S, ...] for a
            global latent (listed in ``global_sites``), which all points share.
        global_sites: the sites without a data dimension.
        chains: how many independent chains the S draws come from (1 for guide and importance draws).
        method: how they were drawn, one of :data:`METHODS`.
        log_likelihood: log p(x_n | z_s), Tensor[S, N]: the observed sites' log-density of each point given each
            draw (discrete latents the model sums out summed out), where it was computed.
        log_weights: log p(x_n, z_s) - log q(z_s|x_n) of each draw, Tensor[S, N]: for guide draws their own
            importance weight, for importance-resampled draws the weight of the proposal each one was taken from.
        ess: the effective sample size of the K proposals of each point, Tensor[N] (importance only).
        khat: the PSIS Pareto shape of those weights, Tensor[N] (importance only; above 0.7, not to be trusted).
        sample_stats: the sampler's statistics of each draw, Tensor[S] each (NUTS: ``diverging``, ``step_size``,
            ``tree_depth``, ``lp``).
        observed: the data the posterior was conditioned on, by the name of the observed site, Tensor[N, ...].
    """

    samples: dict[str, Tensor]
    global_sites: tuple[str, ...] = ()
    chains: int = 1
    method: str = "guide"
    log_likelihood: Tensor | None = None
    log_weights: Tensor | None = None
    ess: Tensor | None = None
    khat: Tensor | None = None
    sample_stats: dict[str, Tensor] = field(default_factory=dict)
    observed: dict[str, Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        sizes = {len(value) for value in self.samples.values()}
        if len(sizes) > 1:
            raise ValueError(f"samples: every site needs the same number of draws, got {sorted(sizes)}")
        if not isinstance(self.chains, int) or self.chains < 1 or (sizes and sizes.pop() % self.chains):
            raise ValueError(f"chains must be a positive int that divides the number of draws, got {self.chains!r}")
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")

    @property
    def num_draws(self) -> int:
        """S, the draws of every site (all chains together)."""
        return len(next(iter(self.samples.values()))) if self.samples else 0

    def mean(self) -> dict[str, Tensor]:
        """The Monte Carlo posterior mean of each site, Tensor[N, ...]; a discrete site's values are averaged
        as numbers (for a Bernoulli site, the posterior probability of 1)."""
        return {name: _as_float(value).mean(0) for name, value in self.samples.items()}

    def std(self) -> dict[str, Tensor]:
        """The Monte Carlo posterior standard deviation of each site, Tensor[N, ...]."""
        return {name: _as_float(value).std(0) for name, value in self.samples.items()}

    def quantile(self, q: float | Sequence[float]) -> dict[str, Tensor]:
        """The posterior quantiles of each site, coordinate by coordinate: Tensor[N, ...] for one level ``q``,
        Tensor[len(q), N, ...] for several.

        Raises:
            ValueError: a level outside [0, 1].
        """
        levels = [q] if isinstance(q, (int, float)) else list(q)
        if not levels or not all(isinstance(v, (int, float)) and 0.0 <= v <= 1.0 for v in levels):
            raise ValueError(f"q must be a level in [0, 1] or a sequence of them, got {q!r}")
        out = {}
        for name, value in self.samples.items():
            value = _as_float(value)
            at = torch.tensor(levels, dtype=value.dtype, device=value.device)
            found = torch.quantile(value.reshape(len(value), -1), at, dim=0).reshape(len(levels), *value.shape[1:])
            out[name] = found[0] if isinstance(q, (int, float)) else found
        return out

    def to_arviz(self, points: Sequence[int] | None = None) -> az.InferenceData:
        """An ``arviz.InferenceData``: ``posterior`` (dims chain, draw, point, ``<site>_dim_i``), ``sample_stats``
        (the sampler's statistics, log importance weights where there are some), ``log_likelihood`` (per point,
        so ``arviz.loo`` works) and ``observed_data``; ``points`` labels the data points (their rows in a larger
        data set, say; 0, 1, ... by default). See :func:`ppgen.queries.arviz_export.to_inference_data`."""
        from ppgen.queries.arviz_export import to_inference_data

        return to_inference_data(self, points)


def _as_float(value: Tensor) -> Tensor:
    """A discrete site's values as numbers of the default floating-point dtype; a float site as it is."""
    return value if value.is_floating_point() else value.to(torch.get_default_dtype())
