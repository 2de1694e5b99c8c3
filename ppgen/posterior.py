"""Posterior draws z ~ q(z|x) as a first-class result, exported to ArviZ."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    import arviz as az


@dataclass(frozen=True)
class Posterior:
    """Draws from the posterior: ``samples[site]`` is Tensor[S, N, ...], S draws for each of N data points, or
    Tensor[S, ...] for a global latent (listed in ``global_sites``), which all points share."""

    samples: dict[str, Tensor]
    global_sites: tuple[str, ...] = ()

    def mean(self) -> dict[str, Tensor]:
        """The Monte Carlo posterior mean of each site, Tensor[N, ...]; a discrete site's values are averaged
        as numbers (for a Bernoulli site, the posterior probability of 1)."""
        as_float = lambda v: v if v.is_floating_point() else v.to(torch.get_default_dtype())  # noqa: E731
        return {name: as_float(value).mean(0) for name, value in self.samples.items()}

    def to_arviz(self) -> az.InferenceData:
        """An ``arviz.InferenceData`` with one chain of S draws in its ``posterior`` group.

        Each site ``z`` of shape [S, N, d...] has dimensions ``(chain, draw, point, z_dim_0, ...)``, where
        ``point`` indexes the data points the posterior was conditioned on; a global latent has no ``point``.
        """
        import arviz as az  # imported on use: it is slow to import and only this export needs it

        posterior, dims = {}, {}
        for name, value in self.samples.items():
            posterior[name] = value.detach().cpu().numpy()[None]
            local = name not in self.global_sites
            dims[name] = ["point"] * local + [f"{name}_dim_{i}" for i in range(value.dim() - 1 - local)]
        return az.from_dict(posterior=posterior, dims=dims)
