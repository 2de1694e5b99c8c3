"""Representation: what the model thinks explains x, as a posterior mean (``encode``) or as posterior draws."""

from __future__ import annotations

import pyro.poutine as poutine
from pyro.infer import infer_discrete
from torch import Tensor, nn

from ppgen.objective.particles import in_passes
from ppgen.program.enumeration import enumerated_log_posterior
from ppgen.program.implicit import check_density
from ppgen.program.inputs import Batch
from ppgen.program.pointwise import per_point_terms, trace_log_density
from ppgen.program.structure import Structure
from ppgen.program.traces import BatchRows, draw_particles, in_particles, sample_sites, trace_particles
from ppgen.queries.posterior import Posterior


def latent_sites(structure: Structure) -> tuple[str, ...]:
    """The latent sites a query can answer about: those the guide draws, then those the model sums out."""
    return structure.guided + structure.enumerated


def check_latent(module: nn.Module, structure: Structure) -> None:
    """A ``ValueError`` unless the program has latents that a query can infer: an implicit model has none, as its
    posterior p(z|x), proportional to p(z) at the z with G(z) = x, has no density to weigh z by."""
    check_density(structure, "inferring p(z|x), as encode(x) and posterior(x) do,")
    if structure.unguided and not latent_sites(structure):
        raise ValueError(f"{type(module).__name__}'s latent site(s) {structure.unguided} have no guide q(z|x) to "
                         f"infer them: give the model a guide(x) that draws them")
    if not latent_sites(structure):
        raise ValueError(f"{type(module).__name__} has no latent variables to infer")


def latent_site(module: nn.Module, structure: Structure, site: str | None) -> str:
    """The latent site a query is about: the one there is, or the one named."""
    check_latent(module, structure)
    latent = latent_sites(structure)
    if site is None:
        if len(latent) > 1:
            raise ValueError(f"the model has several latent sites {latent}: choose one with site=")
        return latent[0]
    if site not in latent:
        raise ValueError(f"site must be one of the model's latent sites {latent}, got {site!r}")
    return site


def encode(module: nn.Module, structure: Structure, batch: Batch, site: str, num_samples: int) -> Tensor:
    """The posterior mean of a latent site given x: Tensor[N, d] (see :meth:`ppgen.Fit.encode`)."""
    if site in structure.enumerated:
        def conditional(start: int, count: int) -> Tensor:  # p(c | x, z_k), Tensor[K, N, ..., C]
            _, model_trace = trace_particles(module, structure, batch, count)
            return enumerated_log_posterior(model_trace, site, structure.particle_dim, structure.plan.data_plate).exp()
        return in_passes(conditional, num_samples if structure.guided else 1, structure.plan).mean(0)
    guide_trace = poutine.trace(BatchRows(batch)(module.guide)).get_trace(*batch.args)
    q = guide_trace.nodes[site]["fn"]
    if site in structure.guide_enumerated:  # q(c|x) over the C values, as the model's sums give p(c|x)
        values = q.enumerate_support(expand=False)
        return q.log_prob(values).movedim(0, -1).exp()
    if [s["name"] for s in sample_sites(guide_trace)].index(site) == 0:  # q(z|x) given x alone: E_q[z|x] = its mean
        try:
            return q.mean
        except NotImplementedError:  # e.g. a transformed distribution: no closed form, so draws
            pass
    # q(z|x, z') given guide draws z' before it (a hierarchy z1 -> z2): E_q[z|x] = E_q(z'|x)[E_q[z|x, z']], the
    # conditional means averaged over draws of z' (their draws where the conditional has no closed-form mean)
    def conditional_mean(start: int, count: int) -> Tensor:  # E_q[z | x, z'_k], or the draw z_k itself
        drawn = draw_particles(module, structure, batch, count).nodes[site]
        try:
            mean = drawn["fn"].mean
        except NotImplementedError:
            mean = drawn["value"]
        return site_draws({**drawn, "value": mean.expand(drawn["value"].shape)}, structure.particle_dim)
    return in_passes(conditional_mean, num_samples, structure.plan).mean(0)


def posterior(module: nn.Module, structure: Structure, batch: Batch, num_samples: int) -> Posterior:
    """``num_samples`` joint draws of every latent site for every point (see :meth:`ppgen.Fit.posterior`): z_s ~ q(z|x)
    for the sites the guide draws, global ones included (one value per draw), and the discrete latents the model sums
    out drawn jointly from their exact conditional p(c | x, z_s) given the same draw (:func:`enumerated_draws`); with
    the log weight log p(x, z_s) - log q(z_s|x) and the log-likelihood log p(x | z_s) of each. A program that does not
    broadcast over particles is run once per draw."""
    if structure.guide_enumerated:
        raise ValueError(f"posterior draws need one draw of every latent, but the guide enumerates "
                         f"{structure.guide_enumerated}: ask encode(x, site=...) for q(c|x) instead")

    samples, log_w, log_lik = in_passes(lambda start, count: weighted_draws(module, structure, batch, count),
                                        num_samples, structure.plan)
    return Posterior(samples, global_sites=structure.global_sites, log_likelihood=log_lik,
                     log_weights=log_w if structure.guided else None, observed=observed_data(structure, batch))


def weighted_draws(module: nn.Module, structure: Structure, batch: Batch,
                   count: int) -> tuple[dict[str, Tensor], Tensor, Tensor]:
    """One pass of ``count`` particles for a posterior: z_k ~ q(z|x) of every site the guide draws (laid out by
    :func:`site_draws`) and the model's enumerated latents drawn given them (:func:`enumerated_draws`); their log
    weights log p(x_n, z_k) - log q(z_k|x_n), the terms of global latents left out, and log p(x_n | z_k), each
    Tensor[K, B]."""
    guide_trace, model_trace = trace_particles(module, structure, batch, count)
    samples = {site["name"]: site_draws(site, structure.particle_dim) for site in sample_sites(guide_trace)
               if not site["infer"].get("is_auxiliary")} if guide_trace else {}
    samples.update(enumerated_draws(module, structure, batch, guide_trace, count))
    return (samples, per_point_terms(guide_trace, model_trace, structure, batch, count, global_terms=False),
            likelihood_terms(model_trace, structure, batch, count))


def enumerated_draws(module: nn.Module, structure: Structure, batch: Batch, guide_trace: poutine.Trace | None,
                     num_particles: int) -> dict[str, Tensor]:
    """c_k ~ p(c | x, z_k) for the discrete latents c that the model sums out, drawn jointly (a chain of them, as in
    an HMM, together) given each particle's guide draws z_k from ``guide_trace`` (global latents included), by Pyro's
    ``infer_discrete``: forward sums, then backward draws.

    Returns:
        Each enumerated site's draws, Tensor[K, N, ...], laid out as :func:`site_draws` lays them out.
    """
    if not structure.enumerated:
        return {}
    model = in_particles(BatchRows(batch)(module.model), num_particles, structure.plan)
    if guide_trace is not None:  # conditioned, not replayed: given, they are not among the sites to draw
        model = poutine.condition(model, data={site["name"]: site["value"] for site in sample_sites(guide_trace)})
    trace = poutine.trace(infer_discrete(model, first_available_dim=structure.particle_dim - 1)).get_trace(*batch.args)
    return {name: site_draws(trace.nodes[name], structure.particle_dim) for name in structure.enumerated}


def likelihood_terms(model_trace: poutine.Trace, structure: Structure, batch: Batch, num_particles: int) -> Tensor:
    """log p(x_n | z_k) of each particle and point, Tensor[K, B]: the model's trace less the prior terms of the
    latents the guide drew (the model's enumerated latents stay, summed out with their prior)."""
    trace = model_trace.copy()
    for name in structure.guided:
        trace.remove_node(name)
    return trace_log_density(trace, structure, batch, num_particles, global_terms=False)


def observed_data(structure: Structure, batch: Batch) -> dict[str, Tensor]:
    """The data a posterior is conditioned on, by the name of the site that observes it (empty where no site
    receives an input as it is)."""
    if structure.data_site is None:
        return {}
    return {structure.data_site: batch.args[structure.observed_input or 0]}


def site_draws(site: dict, particle_dim: int) -> Tensor:
    """A guide site's draws as Tensor[S, *plates, *event]: the particle dimension, then the site's own plates (the
    data plate first), without the dimensions of size one that stand for plates the site is not in."""
    value = site["value"]
    event = site["fn"].event_dim
    batch_dims = value.dim() - event
    value = value.reshape((1,) * max(0, -particle_dim - batch_dims) + value.shape)
    own = {value.dim() - event + f.dim for f in site["cond_indep_stack"] if f.vectorized}
    particle = value.dim() - event + particle_dim
    keep = [d for d in range(value.dim()) if d == particle or d in own or d >= value.dim() - event]
    return value.reshape([value.shape[d] for d in keep])
