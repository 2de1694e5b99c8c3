"""Per-data-point log importance weights from Pyro traces, and the bounds built from them.

For K particles z_1..z_K ~ q(z|x_n), drawn in one vectorised pass,

    log w_k(x_n) = log p(x_n, z_k) - log q(z_k | x_n),

where discrete latents that the model enumerates are summed out of p exactly. Every objective
is a function of this [K, N] tensor: the ELBO is its mean over k, the importance-weighted bound
IWAE_K is log (1/K) sum_k w_k, and log p(x) itself when the model has no guided latents.

Global latents theta (sites outside the data plate) are shared by the N points of the data set: their term
log p(theta_k) - log q(theta_k) is divided by N and added to every point, so that the mean over a mini-batch
of B points is an unbiased estimate of ELBO / N, as Pyro's subsampled plate makes it (local terms times N / B).
"""

from __future__ import annotations

import math

import torch
from pyro import poutine
from torch import Tensor, nn

from ppgen.data import Batch
from ppgen.enumeration import contract_enumerated, enumerated_sites
from ppgen.structure import Structure
from ppgen.traces import sample_sites, trace_particles


def elbo_terms(module: nn.Module, structure: Structure, batch: Batch, num_particles: int,
               use_guide: bool = True, global_terms: bool = True) -> Tensor:
    """E_q[log p(x_n, z) - log q(z|x_n)] per particle and point, Tensor[K, N], differentiable.

    Each entry is one particle's log weight, except that the guide's enumerated discrete sites are summed over
    exactly, weighted by q (Pyro's ``TraceEnum_ELBO`` with ``config_enumerate(guide)``): its mean is the ELBO.
    A program that does not broadcast over particles is run once per particle. ``global_terms=False`` leaves
    out the terms of global latents, keeping log p(x_n, z_k | theta_k) - log q(z_k | x_n, theta_k).
    """
    if not (use_guide and structure.guided) and num_particles > 1:  # nothing is drawn: every particle is the same
        return elbo_terms(module, structure, batch, 1, use_guide, global_terms).expand(num_particles, -1)
    if structure.plan.vectorized or num_particles == 1:
        guide_trace, model_trace = trace_particles(module, structure, batch, num_particles, use_guide)
        return per_point_terms(guide_trace, model_trace, structure, batch, num_particles, global_terms)
    return torch.cat([elbo_terms(module, structure, batch, 1, use_guide, global_terms)
                      for _ in range(num_particles)])


def log_weights(module: nn.Module, structure: Structure, batch: Batch, num_particles: int,
                use_guide: bool = True, global_terms: bool = True) -> Tensor:
    """log w_k(x_n) = log p(x_n, z_k) - log q(z_k|x_n) for k = 1..K particles, vectorised.

    Arguments:
        module: the program (protocol of :mod:`ppgen.program`).
        structure: its :class:`~ppgen.structure.Structure`.
        batch: the inputs of B points.
        num_particles: K.
        use_guide: draw z from the guide; ``False`` runs the model alone, every latent enumerated.
        global_terms: add the terms of global latents, 1/N of them to each point.

    Returns:
        Tensor[K, B], differentiable in the parameters of model and guide.

    Raises:
        ValueError: the guide enumerates a discrete site, so a particle is not one draw of every latent.
    """
    if use_guide and structure.guide_enumerated:
        raise ValueError(
            f"importance weights need one draw of every latent per particle, but the guide enumerates "
            f"{structure.guide_enumerated} (config_enumerate): sum those latents out in the model instead "
            f"(infer={{'enumerate': 'parallel'}} on the model's site, no guide site for them), or fit by "
            f"inference.ELBO(), which sums over the guide's enumerated values exactly")
    return elbo_terms(module, structure, batch, num_particles, use_guide, global_terms)


def per_point_terms(guide_trace: poutine.Trace | None, model_trace: poutine.Trace, structure: Structure,
                    batch: Batch, num_particles: int, global_terms: bool = True) -> Tensor:
    """The traces of K particles reduced to Tensor[K, B]: model terms less guide terms, per particle and point.

    Each site's plates other than the particle and data plates are summed over that site alone (a per-point site
    beside a per-pixel one counts once, not once per pixel). The model's enumerated dimensions are summed out in
    log space by Pyro's tensor contraction with ``TraceEnum_ELBO``'s semantics (masks inside the sum, scales after
    it); the guide's enumerated dimensions are summed over, weighted by q.
    """
    guide_sites = sample_sites(guide_trace) if guide_trace is not None else []
    weights = None
    if structure.guide_enumerated and guide_sites:
        guide_trace.compute_log_prob()
        weights = sum(_normalised(site) for site in guide_sites if site["name"] in structure.guide_enumerated).exp()
    total = trace_log_density(model_trace, structure, batch, num_particles, global_terms, weights)
    if guide_sites:  # a guide that draws nothing has density one
        total = total - trace_log_density(guide_trace, structure, batch, num_particles, global_terms, weights)
    return total


def trace_log_density(trace: poutine.Trace, structure: Structure, batch: Batch, num_particles: int,
                      global_terms: bool = True, weights: Tensor | None = None) -> Tensor:
    """The log-density of one trace of K particles (a model's, or a guide's) per particle and point, Tensor[K, B].

    The model's enumerated latents are summed out exactly; ``weights`` (q of the guide's enumerated values, laid
    out on the program's dimensions) weigh every per-point term, which is then summed over those values.
    """
    trace.compute_log_prob()
    sites = sample_sites(trace)
    reduce = _PointReduction(structure, batch, num_particles, sites, global_terms, weights)
    total = 0.0
    if any(site["name"] in structure.enumerated for site in sites):
        summed, sites = enumerated_sites(trace)
        total = reduce.local(contract_enumerated(trace, summed, structure.plan.data_plate))
    return total + sum(reduce(site) for site in sites)


class _PointReduction:
    """Reduces one site's log-density, laid out on the program's plates, to Tensor[K, B]."""

    def __init__(self, structure: Structure, batch: Batch, num_particles: int, sites: list[dict],
                 global_terms: bool, weights: Tensor | None) -> None:
        self.plan = structure.plan
        self.global_terms = global_terms
        self.shape = (num_particles, len(batch))
        self.size = batch.size
        self.weights = weights
        frame = next((f for s in sites for f in s["cond_indep_stack"] if f.name == self.plan.data_plate), None)
        #: the factor N / B by which Pyro scales a data plate that subsamples the data set itself
        self.subsample_scale = (frame.full_size or frame.size) / frame.size if frame is not None else 1.0

    def __call__(self, site: dict) -> Tensor:
        if any(f.name == self.plan.data_plate for f in site["cond_indep_stack"]):
            return self.local(site["log_prob"])
        return self._global(site["log_prob"])

    def local(self, log_density: Tensor) -> Tensor:
        """A per-point term: its data plate's subsample scale N / B divided out, the guide's enumeration summed."""
        log_density = self._padded(log_density)
        if self.weights is not None:
            weights = self._padded(self.weights)
            log_density, weights = torch.broadcast_tensors(*_aligned(log_density, weights))
            log_density = (log_density * weights).sum(tuple(range(log_density.dim() + self.plan.particle_dim)))
        return self._keep(log_density, self.plan.data_dim) / self.subsample_scale

    def _global(self, log_density: Tensor) -> Tensor:
        """A term shared by the data set: 1/N of it to each point (or none of it, where left out)."""
        if not self.global_terms:
            return log_density.new_zeros(self.shape)
        return self._keep(self._padded(log_density), None) / self.size

    def _padded(self, log_density: Tensor) -> Tensor:
        return log_density.reshape((1,) * max(0, -self.plan.particle_dim - log_density.dim()) + log_density.shape)

    def _keep(self, log_density: Tensor, data_dim: int | None) -> Tensor:
        """Sum every dimension but the particle plate's and (where given) the data plate's: [K, B] or [K, 1]."""
        particle = log_density.dim() + self.plan.particle_dim
        keep = [particle] if data_dim is None else [particle, log_density.dim() + data_dim]
        summed = [d for d in range(log_density.dim()) if d not in keep]
        if summed:
            log_density = log_density.sum(summed, keepdim=True)
        rows = log_density.shape[keep[1]] if data_dim is not None else 1
        return log_density.reshape(log_density.shape[particle], rows).expand(self.shape)


def _normalised(site: dict) -> Tensor:
    """log q(c = j | ...) of an enumerated guide site, normalised over its values j: a point where the site is masked
    (``.mask(False)``, a label that is observed there) has log-density 0 for every value, and then weighs each value
    equally instead of each fully, as the terms there do not depend on it."""
    log_q = site["unscaled_log_prob"]
    return log_q - log_q.logsumexp(site["infer"]["_enumerate_dim"], keepdim=True)


def _aligned(*tensors: Tensor) -> list[Tensor]:
    """Tensors left-padded with dimensions of size one to the same number of dimensions."""
    dim = max(t.dim() for t in tensors)
    return [t.reshape((1,) * (dim - t.dim()) + t.shape) for t in tensors]


def log_mean_exp(log_w: Tensor, dim: int = 0) -> Tensor:
    """log (1/K) sum_k exp(log_w_k) along ``dim``, computed stably."""
    return log_w.logsumexp(dim) - math.log(log_w.shape[dim])


def exact_log_prob(module: nn.Module, structure: Structure, batch: Batch) -> Tensor:
    """Exact log p(x), Tensor[N]: the model's own ``log_prob``, or every latent summed out by enumeration.

    Raises:
        ValueError: the model has latents that can be neither summed out nor integrated in closed form.
    """
    if callable(getattr(module, "log_prob", None)):
        return module.log_prob(*batch.args)
    if not structure.exact:
        raise ValueError(
            f"log p(x) has no closed form for this model: latent site(s) "
            f"{', '.join(repr(s) for s in structure.guided + structure.unguided)} are continuous or not marked "
            f"for enumeration. Give the model a log_prob(x) method, or estimate log p(x) by importance sampling")
    return log_weights(module, structure, batch, 1, use_guide=False)[0]
