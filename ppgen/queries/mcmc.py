"""MCMC draws as answers: the posterior over the local latents of given points by NUTS under the fitted parameters
(``fit.posterior(x, method="nuts")``), and what a sampler's draws say of data: log p(x_n | theta_s) per draw and
point, and the posterior predictive log p(x_n | data). The chains themselves are :mod:`ppgen.objective.sampler`'s.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any

import pyro
import pyro.poutine as poutine
import torch
from pyro.util import get_rng_state, set_rng_state
from torch import Tensor, nn

from ppgen.objective.particles import in_passes
from ppgen.objective.sampler import Draws, check_size, conditioned, latent_names, nuts
from ppgen.program.inputs import Batch
from ppgen.program.broadcasting import described, mapping_advice
from ppgen.program.pointwise import trace_log_density
from ppgen.program.intake import PROGRAM_ERRORS
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
    over draws (``structure.plan``, learnt by :func:`with_draws_checked`) is mapped over them by ``vmap`` where it
    can be, else run once per draw.
    """
    events = {name: site["fn"].event_dim for name, site in trace_alone(module.model, batch).nodes.items()
              if name in samples}

    def run(start: int, count: int, values: dict[str, Tensor]) -> Tensor:
        return _log_likelihood(module, structure, batch, values, events)
    return in_passes(run, len(next(iter(samples.values()))), structure.plan,
                     most=max(1, DRAW_POINTS_PER_PASS // len(batch)), given=samples)


def check_no_k(k: int | None, sampler: Any, draws: Draws | None) -> None:
    """A ``ValueError`` where ``k``, the importance samples of an estimate of log p(x), is given to the fit of a
    ``sampler`` (``draws`` not ``None``), whose log p(x) over its draws needs none."""
    if draws is not None and k is not None:
        raise ValueError(f"k={k!r}: a fit by {type(sampler).__name__} answers log p(x) = log (1/S) sum_s "
                         f"p(x|theta_s) over its S = {draws.num_draws} draws, each exact: leave k out")


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


def with_draws_checked(module: nn.Module, structure: Structure, batch: Batch, draws: Draws) -> Structure:
    """``structure`` with the plan by which the queries of a sampler's fit run its model over the draws: all in one
    plate left of the program's own plates where that gives, on the first two draws and the rows of ``batch``, the
    values of one draw at a time; else one draw's pass mapped over the draws by ``vmap`` where that gives them
    (``X @ w`` over draws of w, say); else one draw at a time, and said so once. Learnt once, when a
    :class:`~ppgen.Fit` takes the draws; the caller's random stream is left as it was."""
    if not structure.plan.vectorized:
        return structure
    first = {name: value[:2] for name, value in draws.samples.items()}
    one_at_a_time = dataclasses.replace(structure, plan=structure.plan.one_particle_at_a_time())
    mapped = dataclasses.replace(structure, plan=structure.plan.mapped_over_particles())
    reasons = []
    rng = get_rng_state()
    try:
        with poutine.block(), torch.no_grad():
            each = log_likelihood(module, one_at_a_time, batch, first)
            for candidate in (structure, mapped):
                try:
                    with pyro.validation_enabled(candidate.plan.vectorized):  # off inside a mapped pass in any case
                        together = log_likelihood(module, candidate, batch, first)
                    if together.shape == each.shape and torch.allclose(together, each, rtol=1e-5, atol=1e-6):
                        return candidate
                    reasons.append("its values over draws together differ from those of one draw at a time")
                except PROGRAM_ERRORS as error:
                    reasons.append(described(error) + (mapping_advice(error) if candidate is mapped else ""))
    finally:
        set_rng_state(rng)
    warnings.warn(f"the model does not broadcast over a plate of draws left of its own plates ({reasons[0]}), and "
                  f"torch.func.vmap cannot map it over the draws ({reasons[1]}); the queries of this fit run it one "
                  f"draw at a time, which is slower. To vectorise, let every tensor keep its leading batch dimensions: "
                  f"(X * w).sum(-1) rather than X @ w", stacklevel=3)
    return one_at_a_time


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
