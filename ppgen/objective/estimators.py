"""Per-point quantities and gradient estimators beyond the plain log weights of :mod:`ppgen.objective.bounds`.

Every function here returns, like :func:`ppgen.objective.bounds.log_weights`, one entry per particle k and data point n
(a Tensor[K, N]), so that each backend stays a function of per-point terms. What changes is which paths the
gradient may take:

* :func:`stopped_log_weights`: log w_k = log p(x, z_k) - log q_stop(z_k|x), z_k ~ q(z|x) reparameterised, with
  the guide's parameters stopped inside q_stop: the gradient reaches the guide only through z_k ("sticking the
  landing"); ``doubly_reparameterised=True`` also scales that path by the normalised weight w~_k, so that the
  importance-weighted bound's gradient becomes the doubly reparameterised one (DReG).
* :func:`detached_draws`: z_k ~ q(z|x) held fixed, with log p(x, z_k) and log q(z_k|x) differentiable in the
  parameters only: the score-function terms of reweighted wake-sleep and VIMCO, for guides that cannot be
  reparameterised.
* :func:`analytic_log_weights`: log p(x|z_k) - sum over latent sites KL(q || p), the KL in closed form (the
  mean-field estimator of Pyro's ``TraceMeanField_ELBO``), whose mean over k is the ELBO.

References:
    Sticking the Landing: Simple, Lower-Variance Gradient Estimators for Variational Inference (Roeder, Wu and
    Duvenaud, 2017). https://arxiv.org/abs/1703.09194
    Doubly Reparameterized Gradient Estimators for Monte Carlo Objectives (Tucker, Lawson, Gu and Maddison, 2019).
    https://arxiv.org/abs/1810.04152
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pyro.poutine as poutine
import torch
from pyro.distributions.util import scale_and_mask
from pyro.poutine.messenger import Messenger
from torch import Tensor, nn
from torch.distributions import kl_divergence

from ppgen.objective.base import Objective
from ppgen.objective.particles import in_passes
from ppgen.program.inputs import Batch
from ppgen.program.pointwise import per_point_terms, trace_log_density
from ppgen.program.protocol import ProgramCall, PyroFunctions
from ppgen.program.structure import Structure, check_importance_weights
from ppgen.program.traces import BatchRows, draw_particles, in_particles, sample_sites, trace_particles


def with_gradient_of(value: Tensor, surrogate: Tensor) -> Tensor:
    """A tensor equal to ``value`` whose gradient is that of ``surrogate``: value + surrogate - stop(surrogate).

    A backend reports its bound as the loss value (nats per point) and takes the gradient of its own estimator.
    """
    return value.detach() + (surrogate - surrogate.detach())


def log_joint(module: nn.Module, structure: Structure, batch: Batch, z: dict[str, Tensor], k: int) -> Tensor:
    """log p(x, z_k) for given draws z (each Tensor laid out on the K particles), Tensor[K, N].

    The model runs conditioned on x and on z; discrete latents that it enumerates are summed out exactly.
    """
    model = in_particles(BatchRows(batch)(poutine.condition(module.model, data=z)), k, structure.plan)
    if structure.enumerated:
        model = poutine.enum(model, first_available_dim=structure.particle_dim - 1)
    return trace_log_density(poutine.trace(model).get_trace(*batch.args), structure, batch, k)


def log_guide(module: nn.Module, structure: Structure, batch: Batch, z: dict[str, Tensor], k: int, *,
              stop_parameters: bool = False) -> Tensor:
    """log q(z_k|x) at given draws z, Tensor[K, N]; with ``stop_parameters`` the guide's parameters are constants,
    so the gradient flows only through z (see :func:`stopped_parameters`)."""
    guide = BatchRows(batch)(poutine.condition(module.guide, data=z))
    if stop_parameters:
        guide = stopped_parameters(module, guide)
    guide = in_particles(guide, k, structure.plan)
    return trace_log_density(poutine.trace(guide).get_trace(*batch.args), structure, batch, k)


class _StopParam(Messenger):
    """Detaches every ``pyro.param`` that the program reads: parameters of a param store become constants."""

    def _pyro_post_param(self, msg: dict) -> None:
        msg["value"] = msg["value"].detach()


def stopped_parameters(module: nn.Module, fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` (a program of ``module``) run with the module's parameters detached: every ``nn.Parameter`` the
    module holds swapped for a detached copy by ``torch.func.functional_call``, every ``pyro.param`` detached as
    it is read. Works for any ``nn.Module`` program; values and draws are unchanged, only the gradient stops.

    The parameters of a :class:`~ppgen.program.protocol.PyroFunctions` pair live in its param store and reach the
    functions through ``pyro.param``, so they are left to the second mechanism (swapping them as well would leave
    the store holding the copies).
    """
    skip = "params." if isinstance(module, PyroFunctions) else None
    wrapper = ProgramCall(module, fn)
    detached = {f"program.{name}": p.detach() for name, p in module.named_parameters()
                if skip is None or not name.startswith(skip)}

    def run(*args: Tensor) -> Any:
        with _StopParam():
            return torch.func.functional_call(wrapper, detached, args)

    return run


def stopped_log_weights(module: nn.Module, structure: Structure, batch: Batch, k: int, *,
                        doubly_reparameterised: bool = False) -> Tensor:
    """log w_k = log p(x, z_k) - log q_stop(z_k|x), Tensor[K, N], with z_k ~ q(z|x) reparameterised.

    The values are those of :func:`ppgen.objective.bounds.log_weights`; the gradient with respect to the guide's
    parameters phi flows only through z_k, dropping the score term d/dphi log q(z|x) whose expectation is zero
    (STL). With ``doubly_reparameterised``, that path is also scaled by the stopped normalised weight
    w~_k = w_k / sum_j w_j of each particle, so that the gradient of IWAE_K = log (1/K) sum_k w_k becomes, for
    phi, sum_k w~_k^2 d log w_k / dz_k dz_k/dphi (DReG), and for the model's parameters the standard
    sum_k w~_k d log w_k / dtheta. Each draw is scaled once, where the model and q_stop read it: the path from one
    guide site to the next inside the guide is not scaled twice. A program that does not broadcast over particles
    is run once per particle (a mapped one too, :mod:`ppgen.objective.particles`: the hooks need each particle's draws
    outside ``vmap``), each particle's draws scaled by its own weight among all K.
    """
    drawn: list[tuple[int, int, list[dict], dict[str, Tensor]]] = []  # each pass's particles, sites and draws

    def run(start: int, count: int) -> Tensor:
        sites = sample_sites(draw_particles(module, structure, batch, count))
        z = {site["name"]: site["value"] for site in sites}
        if doubly_reparameterised:
            z = {name: value.view_as(value) for name, value in z.items()}  # a node of its own, to hook
            drawn.append((start, count, sites, z))
        return (log_joint(module, structure, batch, z, count)
                - log_guide(module, structure, batch, z, count, stop_parameters=True))

    # a hook on each particle's draws needs them outside vmap: a mapped program runs one particle at a time for DReG
    plan = structure.plan
    if doubly_reparameterised and plan.mapped:
        plan = plan.one_particle_at_a_time()
    log_w = in_passes(run, k, plan)
    if doubly_reparameterised and log_w.requires_grad:
        normalised = log_w.detach().softmax(0)
        for start, count, sites, z in drawn:
            for site in sites:
                value = z[site["name"]]
                if value.requires_grad:
                    weight = _on_site(normalised[start:start + count], value, site["fn"].event_dim, structure)
                    value.register_hook(lambda grad, weight=weight: grad * weight)
    return log_w


def _on_site(per_point: Tensor, value: Tensor, event_dim: int, structure: Structure) -> Tensor:
    """A [K, N] tensor laid out to broadcast against a site's value: K on the particle plate, N on the data plate;
    a site drawn without a particle plate (one particle at a time) takes its one row on the data plate alone."""
    batch_dims = value.dim() - event_dim
    shape = [1] * value.dim()
    if batch_dims + structure.particle_dim >= 0:
        shape[batch_dims + structure.particle_dim] = per_point.shape[0]
    shape[batch_dims + structure.plan.data_dim] = per_point.shape[1]
    return per_point.reshape(shape)


def scored_elbo_terms(module: nn.Module, structure: Structure, batch: Batch, k: int) -> Tensor:
    """log w_k(x_n) per particle and point, Tensor[K, N], whose gradient is that of the score-function surrogate
    log w_k + log q_s(z_k|x_n) * stop(log w_k), where q_s is the density of the guide's sites that have no
    reparameterised sampler: an unbiased estimate of the gradient of the ELBO, as Pyro's ``Trace_ELBO`` takes it
    (each point's own weight is the cost of its local draws; a global draw's score is shared 1/N per point). A
    program that does not broadcast over particles is run once per particle."""
    def run(start: int, count: int) -> Tensor:
        guide_trace, model_trace = trace_particles(module, structure, batch, count)
        log_w = per_point_terms(guide_trace, model_trace, structure, batch, count)
        local, shared = poutine.Trace(), poutine.Trace()
        for name in structure.unreparameterized:
            (shared if name in structure.global_sites else local).add_node(name, **guide_trace.nodes[name])
        # a global draw's score, shared 1/N per point, counts whole against each point's cost: the mean over points
        # of log q(theta) stop(log w_n) is then log q(theta) stop(ELBO) / N, as Trace_ELBO's is stop(ELBO)
        score = (trace_log_density(local, structure, batch, count)
                 + trace_log_density(shared, structure, batch, count) * batch.size)
        return with_gradient_of(log_w, log_w + score * log_w.detach())
    return in_passes(run, k, structure.plan)


def check_draws_guide(objective: Any, structure: Structure) -> None:
    """A ``ValueError`` unless the guide draws latents whose draws a score-function backend (RWS, VIMCO) can weigh:
    the checks of every objective, less reparameterisation, which these backends never differentiate through."""
    Objective.check(objective, dataclasses.replace(structure, unreparameterized=()))
    check_importance_weights(structure, repr(objective))
    if not structure.guided:
        raise ValueError(f"{objective!r} trains a guide q(z|x) on importance weights of its draws, but the model's "
                         f"guide draws no latent site: a model whose log p(x) is exact (or whose latents are summed "
                         f"out) is fitted by inference.MLE()")


def detached_draws(module: nn.Module, structure: Structure, batch: Batch, k: int) -> tuple[Tensor, Tensor]:
    """log p(x, z_k) and log q(z_k|x), each Tensor[K, N], at draws z_k ~ q(z|x) held fixed.

    The gradient flows into the model's and the guide's parameters, never through z, whether or not the guide
    can be reparameterised: what score-function estimators (reweighted wake-sleep, VIMCO) differentiate. A program
    that does not broadcast over particles is run once per particle.
    """
    def run(start: int, count: int) -> tuple[Tensor, Tensor]:
        guide_trace = draw_particles(module, structure, batch, count)
        for site in sample_sites(guide_trace):
            site["value"] = site["value"].detach()
        z = {site["name"]: site["value"] for site in sample_sites(guide_trace)}
        return log_joint(module, structure, batch, z, count), trace_log_density(guide_trace, structure, batch, count)
    return in_passes(run, k, structure.plan)


def analytic_log_weights(module: nn.Module, structure: Structure, batch: Batch, k: int) -> Tensor:
    """log p(x|z_k) - sum over latent sites KL(q(z|x) || p(z)), Tensor[K, N], with z_k ~ q(z|x).

    Each latent site's sampled log p(z_k) - log q(z_k|x) is replaced by its expectation under the guide,
    -KL(q || p) in closed form (``torch.distributions.kl_divergence``), evaluated given the particle's draws of
    the sites before it; the mean over k is the ELBO with a lower-variance estimate of its KL term.

    Raises:
        ValueError: the model sums discrete latents out (the KL then sits inside a log-sum and has no per-site
            closed form), or a site's pair of distributions has no registered KL, naming the site and both.

    References:
        Pyro's ``TraceMeanField_ELBO`` (Bingham et al., 2019). https://docs.pyro.ai/en/stable/inference_algos.html
    """
    check_analytic_kl(structure)

    def run(start: int, count: int) -> Tensor:
        guide_trace, model_trace = trace_particles(module, structure, batch, count)
        for site in sample_sites(guide_trace):
            q, node = site["fn"], model_trace.nodes[site["name"]]
            try:
                kl = kl_divergence(q, node["fn"])
            except NotImplementedError:
                raise ValueError(f"ELBO(kl='analytic'): KL(q || p) has no closed form at latent site "
                                 f"{site['name']!r}: q is {_describe(q)} and p is {_describe(node['fn'])}, a pair "
                                 f"that torch.distributions.kl_divergence does not know; use kl='sampled'") from None
            node["log_prob"] = scale_and_mask(-kl, node["scale"], node["mask"])  # read by compute_log_prob as is
        return trace_log_density(model_trace, structure, batch, count)
    return in_passes(run, k, structure.plan)


def check_analytic_kl(structure: Structure) -> None:
    """A ``ValueError`` if the model sums discrete latents out: KL(q || p) then sits inside a log-sum over them
    and has no per-site closed form."""
    if structure.enumerated:
        raise ValueError(f"ELBO(kl='analytic'): the model sums out the discrete latent(s) "
                         f"{', '.join(map(repr, structure.enumerated))}, so KL(q || p) sits inside a log-sum and "
                         f"has no per-site closed form: use kl='sampled'")


def _describe(distribution: torch.distributions.Distribution) -> str:
    """A distribution's class, with the class inside ``Independent`` wrappers: ``Independent(Normal)``."""
    base = getattr(distribution, "base_dist", None)
    name = type(distribution).__name__
    return f"{name}({_describe(base)})" if base is not None else name
