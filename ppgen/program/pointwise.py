"""Traces of K particles reduced to per-point log-densities, Tensor[K, B]: the one reduction under every bound.

Each site's log-density, laid out on the program's plates, is summed over every plate but the particle plate and
the data plate; the model's enumerated latents are summed out exactly (:mod:`ppgen.program.enumeration`), the
guide's are summed over weighted by q; a per-point term has its data plate's subsample scale N / B divided out, and
a global latent's term is shared as 1/N of it to each point. :func:`ppgen.program.structure.inspect` runs this
reduction once on two particles to check a program; the bounds of :mod:`ppgen.objective.bounds` are built on it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from pyro import poutine
from torch import Tensor

from ppgen.program.enumeration import contract_enumerated, enumerated_sites
from ppgen.program.inputs import Batch
from ppgen.program.traces import sample_sites

if TYPE_CHECKING:  # the reduction reads a Structure's plan; structure.py runs it to check a program
    from ppgen.program.structure import Structure


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
        total = reduce.local(contract_enumerated(trace, summed, structure.plan.data_plate,
                                                 weighted=structure.guide_enumerated))
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
