"""Per-data-point log importance weights from Pyro traces, and the bounds built from them.

For K particles z_1..z_K ~ q(z|x_n), drawn in one vectorised pass,

    log w_k(x_n) = log p(x_n, z_k) - log q(z_k | x_n),

where discrete latents that the model enumerates are summed out of p exactly. Every objective
is a function of this [K, N] tensor: the ELBO is its mean over k, the importance-weighted bound
IWAE_K is log (1/K) sum_k w_k, and log p(x) itself when the model has no guided latents.

Global latents theta (sites outside the data plate) are shared by the N points of the data set: their term
log p(theta_k) - log q(theta_k) is divided by N and added to every point, so that the mean over a mini-batch
of B points is an unbiased estimate of ELBO / N, as Pyro's subsampled plate makes it (local terms times N / B).
The traces are reduced to these per-point terms by :func:`ppgen.program.pointwise.per_point_terms`.
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from ppgen.objective.particles import in_passes
from ppgen.program.inputs import Batch
from ppgen.program.pointwise import per_point_terms
from ppgen.program.structure import Structure
from ppgen.program.traces import trace_particles


def elbo_terms(module: nn.Module, structure: Structure, batch: Batch, num_particles: int,
               use_guide: bool = True, global_terms: bool = True) -> Tensor:
    """E_q[log p(x_n, z) - log q(z|x_n)] per particle and point, Tensor[K, N], differentiable.

    Each entry is one particle's log weight, except that the guide's enumerated discrete sites are summed over
    exactly, weighted by q (Pyro's ``TraceEnum_ELBO`` with ``config_enumerate(guide)``): its mean is the ELBO.
    A program that does not broadcast over particles is run once per particle (:mod:`ppgen.objective.particles`).
    ``global_terms=False`` leaves out the terms of global latents, keeping
    log p(x_n, z_k | theta_k) - log q(z_k | x_n, theta_k).
    """
    if not (use_guide and structure.guided) and num_particles > 1:  # nothing is drawn: every particle is the same
        return elbo_terms(module, structure, batch, 1, use_guide, global_terms).expand(num_particles, -1)

    def run(start: int, count: int) -> Tensor:
        guide_trace, model_trace = trace_particles(module, structure, batch, count, use_guide)
        return per_point_terms(guide_trace, model_trace, structure, batch, count, global_terms)
    return in_passes(run, num_particles, structure.plan)


def log_weights(module: nn.Module, structure: Structure, batch: Batch, num_particles: int,
                use_guide: bool = True, global_terms: bool = True) -> Tensor:
    """log w_k(x_n) = log p(x_n, z_k) - log q(z_k|x_n) for k = 1..K particles, vectorised.

    Arguments:
        module: the program (protocol of :mod:`ppgen.program.protocol`).
        structure: its :class:`~ppgen.program.structure.Structure`.
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
