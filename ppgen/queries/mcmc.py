"""MCMC draws as answers: the posterior over the local latents of given points by NUTS under the fitted parameters
(``fit.posterior(x, method="nuts")``), and what a sampler's draws say of data: log p(x_n | theta_s) per draw and
point, and the posterior predictive log p(x_n | data). The chains themselves are :mod:`ppgen.objective.sampler`'s.
"""

from __future__ import annotations

import math
from typing import Any

import pyro.poutine as poutine
import torch
from torch import Tensor, nn

from ppgen.objective.sampler import Draws, check_size, conditioned, latent_names, nuts
from ppgen.program.inputs import Batch
from ppgen.program.pointwise import trace_log_density
from ppgen.program.structure import Structure
from ppgen.program.traces import BatchRows, in_particles, sample_sites, trace_alone
from ppgen.queries.posterior import Posterior
from ppgen.queries.representation import site_draws

#: draws times points of one pass when the log-likelihood of every point is computed under every draw.
DRAW_POINTS_PER_PASS = 2**15


def log_likelihood(module: nn.Module, structure: Structure, batch: Batch, samples: dict[str, Tensor]) -> Tensor:
    """log p(x_n | theta_s) for every draw s and point n, Tensor[S, N]: the observed sites' log-density given the
    drawn latents (laid out as :class:`Draws` has them), the model's enumerated latents summed out.

    Draws and points go through in passes of about :data:`DRAW_POINTS_PER_PASS`; a program that does not broadcast
    over particles is run once per draw.
    """
    events = {name: site["fn"].event_dim for name, site in trace_alone(module.model, batch).nodes.items()
              if name in samples}
    total = len(next(iter(samples.values())))
    per_pass = max(1, DRAW_POINTS_PER_PASS // len(batch)) if structure.plan.vectorized else 1
    return torch.cat([_log_likelihood(module, structure, batch, {n: v[s:s + per_pass] for n, v in samples.items()},
                                      events) for s in range(0, total, per_pass)])


def predictive_log_prob(module: nn.Module, structure: Structure, batch: Batch, draws: Draws) -> Tensor:
    """The posterior predictive log p(x_n | data) = log (1/S) sum_s p(x_n | theta_s) over a sampler's S draws,
    Tensor[N]."""
    return log_likelihood(module, structure, batch, draws.samples).logsumexp(0) - math.log(draws.num_draws)


def _log_likelihood(module: nn.Module, structure: Structure, batch: Batch, samples: dict[str, Tensor],
                    events: dict[str, int]) -> Tensor:
    count = len(next(iter(samples.values())))
    plan = structure.plan
    if plan.vectorized:  # the draws in the particle plate, left of the program's plates
        values = {name: in_particle_layout(v, events[name], plan.max_plate_nesting) for name, v in samples.items()}
    else:
        values = {name: v[0] for name, v in samples.items()}
    model = in_particles(BatchRows(batch)(poutine.condition(module.model, data=values)), count, plan)
    if structure.enumerated:
        model = poutine.enum(model, first_available_dim=structure.particle_dim - 1)
    trace = poutine.trace(model).get_trace(*batch.args)
    for name in samples:
        trace.remove_node(name)
    return trace_log_density(trace, structure, batch, count, global_terms=False)


def in_particle_layout(value: Tensor, event_dim: int, max_plate_nesting: int) -> Tensor:
    """Draws Tensor[S, *site_shape] with the draw dimension where the particle plate puts it: dimensions of size
    one inserted after it for the plates the site's own shape leaves out."""
    missing = max_plate_nesting - (value.dim() - 1 - event_dim)
    return value.reshape(len(value), *(1,) * missing, *value.shape[1:])


def site_shapes(module: nn.Module, batch: Batch) -> dict[str, Any]:
    """Each sample site of one run of the model on ``batch``: the site's record, for the layout of its draws."""
    return {site["name"]: site for site in sample_sites(trace_alone(module.model, batch))}


def local_posterior(module: nn.Module, structure: Structure, batch: Batch, num_samples: int, *, warmup_steps: int,
                    num_chains: int, observed: dict[str, Tensor], progress: bool = False) -> Posterior:
    """NUTS over the local latents of the points of ``batch``, the fitted parameters fixed: ``num_chains`` chains of
    ``num_samples`` draws each (see :meth:`ppgen.Fit.posterior`).

    Raises:
        ValueError: the model has global latents (their posterior is a question about the whole data set:
            ``inference.NUTS``), or more latent coordinates than ``BUDGET.nuts_coordinates``.
    """
    if structure.global_sites:
        raise ValueError(f"method='nuts' draws the latents of the given points under the fitted parameters, but the "
                         f"model's global latent(s) {structure.global_sites} depend on the whole data set: draw them "
                         f"by ppgen.fit(..., inference=inference.NUTS()), or use method='guide'")
    names = latent_names(structure)
    check_size(module, structure, batch, names)
    draws = nuts(conditioned(module, structure, batch), num_samples=num_samples, warmup_steps=warmup_steps,
                 num_chains=num_chains, max_plate_nesting=structure.plan.max_plate_nesting, progress=progress)
    return to_posterior(module, structure, batch, draws, observed)


def to_posterior(module: nn.Module, structure: Structure, batch: Batch, draws: Draws,
                 observed: dict[str, Tensor]) -> Posterior:
    """NUTS draws as a :class:`~ppgen.queries.posterior.Posterior` of the points of ``batch``: the draws laid out as
    ``Posterior`` has them, the sampler's statistics, and log p(x_n | draw) of each point."""
    sites = site_shapes(module, batch)
    samples = {name: site_draws({**sites[name], "value": in_particle_layout(value, sites[name]["fn"].event_dim,
                                                                            structure.plan.max_plate_nesting)},
                                structure.particle_dim)
               for name, value in draws.samples.items()}
    return Posterior(samples, global_sites=tuple(name for name in samples if name in structure.global_sites),
                     chains=draws.chains, method="nuts",
                     log_likelihood=log_likelihood(module, structure, batch, draws.samples),
                     sample_stats=draws.sample_stats, observed=observed)
