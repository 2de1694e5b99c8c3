"""The one door to ArviZ: a :class:`~ppgen.queries.posterior.Posterior` as an ``arviz.InferenceData``.

Everything goes through ``arviz.from_dict``, the converter that ArviZ 0.x and ArviZ 1.x (where ``InferenceData``
becomes an ``xarray.DataTree``) both have, so moving to ArviZ 1.x is a change to this module alone.

References:
    ArviZ: a unified library for exploratory analysis of Bayesian models in Python (Kumar, Carroll, Hartikainen
    and Martin, 2019). https://doi.org/10.21105/joss.01143
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from torch import Tensor

if TYPE_CHECKING:
    import arviz as az

    from ppgen.queries.posterior import Posterior

#: the name of the data dimension in every group.
POINT = "point"


def to_inference_data(posterior: Posterior, points: Sequence[int] | None = None) -> az.InferenceData:
    """The groups ArviZ users expect, from a posterior's draws.

    * ``posterior``: each latent site with dims (chain, draw, point, ``<site>_dim_0``, ...); a global latent has
      no ``point``.
    * ``sample_stats``: the sampler's statistics of each draw (NUTS: ``diverging``, ``step_size``,
      ``tree_depth``, ``lp``) and ``log_weight``, the log importance weight of each draw per point, where known.
    * ``log_likelihood``: log p(x_n | z_s) per point, named after the observed site, for ``arviz.loo``.
    * ``observed_data``: the data conditioned on, dims (point, ``<site>_dim_0``, ...).

    Arguments:
        posterior: the draws, ``posterior.chains`` chains one after the other.
        points: a label for each data point, the coordinates of the ``point`` dimension (0, 1, ... by default).

    Returns:
        An ``arviz.InferenceData``; it round-trips through ``to_netcdf`` / ``arviz.from_netcdf``.
    """
    import arviz as az  # imported on use: it is slow to import and only this export needs it

    coords = {}
    if points is not None:
        local = [v.shape[1] for name, v in posterior.samples.items() if name not in posterior.global_sites]
        count = next(iter(local + [len(v) for v in posterior.observed.values()]), None)
        if count is None or len(points) != count:
            raise ValueError(f"points must label each of the posterior's {count} data points, got {len(points)}")
        coords[POINT] = list(points)
    chains = posterior.chains
    dims: dict[str, list[str]] = {}
    groups: dict[str, dict[str, np.ndarray]] = {"posterior": {}, "sample_stats": {}, "log_likelihood": {},
                                                "observed_data": {}}
    for name, value in posterior.samples.items():
        groups["posterior"][name] = _by_chain(value, chains)
        local = name not in posterior.global_sites
        dims[name] = [POINT] * local + [f"{name}_dim_{i}" for i in range(value.dim() - 1 - local)]
    for name, value in posterior.sample_stats.items():
        groups["sample_stats"][name] = _by_chain(value, chains)
    if posterior.log_weights is not None:
        groups["sample_stats"]["log_weight"] = _by_chain(posterior.log_weights, chains)
        dims["log_weight"] = [POINT]
    for name, value in posterior.observed.items():
        groups["observed_data"][name] = value.detach().cpu().numpy()
        dims[name] = [POINT] + [f"{name}_dim_{i}" for i in range(value.dim() - 1)]
    if posterior.log_likelihood is not None:
        name = next(iter(posterior.observed), "x")  # the same name as the data, as ArviZ's converters do
        groups["log_likelihood"][name] = _by_chain(posterior.log_likelihood, chains)
        dims.setdefault(name, [POINT])
    return az.from_dict(**{group: values for group, values in groups.items() if values}, dims=dims, coords=coords)


def _by_chain(value: Tensor, chains: int) -> np.ndarray:
    """Tensor[S, ...] as an array [chain, draw, ...], S = chains x draws laid out chain after chain."""
    array = value.detach().cpu().numpy()
    return array.reshape(chains, len(array) // chains, *array.shape[1:])
