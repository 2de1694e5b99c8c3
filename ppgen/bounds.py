"""Per-data-point log importance weights from Pyro traces, and the bounds built from them.

For K particles z_1..z_K ~ q(z|x_n), drawn in one vectorised pass,

    log w_k(x_n) = log p(x_n, z_k) - log q(z_k | x_n),

where discrete latents that the model enumerates are summed out of p exactly. Every objective
is a function of this [K, N] tensor: the ELBO is its mean over k, the importance-weighted bound
IWAE_K is log (1/K) sum_k w_k, and log p(x) itself when the model has no guided latents.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import pyro
import pyro.poutine as poutine
import torch
from pyro.ops import packed
from pyro.ops.contract import contract_to_tensor
from torch import Tensor, nn

from ppgen.program import DATA_PLATE, PARTICLE_PLATE, Structure, has_guide, sample_sites


def log_weights(module: nn.Module, structure: Structure, x: Tensor, num_particles: int,
                use_guide: bool = True) -> Tensor:
    """log w_k(x_n) = log p(x_n, z_k) - log q(z_k|x_n) for k = 1..K particles, vectorised.

    Arguments:
        module: the program (protocol of :mod:`ppgen.program`).
        structure: its :class:`~ppgen.program.Structure`.
        x: a batch, Tensor[N, ...].
        num_particles: K.
        use_guide: draw z from the guide; ``False`` runs the model alone, every latent summed out.

    Returns:
        Tensor[K, N], differentiable in the parameters of model and guide.
    """
    particle_dim = -structure.max_plate_nesting - 1
    with pyro.plate(PARTICLE_PLATE, num_particles, dim=particle_dim):
        guide_trace = None
        if use_guide and has_guide(module):
            guide_trace = poutine.trace(module.guide).get_trace(x)
        model = module.model
        if structure.enumerated or not use_guide:
            model = poutine.enum(model, first_available_dim=particle_dim - 1)
        if guide_trace is not None:
            model = poutine.replay(model, trace=guide_trace)
        model_trace = poutine.trace(model).get_trace(x)
    shape = (num_particles, x.shape[0])
    log_w = per_point_log_density(model_trace, particle_dim, shape)
    if guide_trace is not None:
        log_w = log_w - per_point_log_density(guide_trace, particle_dim, shape)
    return log_w


def per_point_log_density(trace: poutine.Trace, particle_dim: int, shape: tuple[int, int]) -> Tensor:
    """Sum the log-densities of a trace's sample sites into Tensor[K, N], one entry per particle and point.

    Plates other than the particle and data plates are summed over; enumerated dimensions are
    summed out in log space by Pyro's tensor contraction, which keeps this exact.
    """
    trace.compute_log_prob()
    sites = sample_sites(trace)
    if any(site["infer"].get("_enumerate_dim") is not None for site in sites):
        total = _contract_enumerated(trace, sites)
    else:
        total = sum(site["log_prob"] for site in sites)
    return _to_particle_by_point(total, sites, particle_dim, shape)


def _contract_enumerated(trace: poutine.Trace, sites: list[dict], keep: str | None = None) -> Tensor:
    """Sum out the enumerated dimensions of a packed trace, keeping the particle and data plates, and the
    enumerated dimension of site ``keep`` if one is named."""
    trace.pack_tensors()
    plate_symbol = trace.plate_to_symbol
    factors: OrderedDict[frozenset, list[Tensor]] = OrderedDict()
    for site in sites:
        ordinal = frozenset(plate_symbol[f.name] for f in site["cond_indep_stack"] if f.vectorized)
        factors.setdefault(ordinal, []).append(site["packed"]["log_prob"])
    sum_dims = set(trace.symbol_to_dim) - set(plate_symbol.values())
    # packing drops dimensions of size 1, so a plate of one particle or one point may have no symbol left
    present = {symbol for terms in factors.values() for term in terms for symbol in term._pyro_dims}
    target = frozenset({plate_symbol[p] for p in (PARTICLE_PLATE, DATA_PLATE) if p in plate_symbol} & present)
    target_dims = {trace.nodes[keep]["infer"]["_enumerate_symbol"]} if keep else set()
    contracted = contract_to_tensor(factors, sum_dims, target_ordinal=target, target_dims=target_dims)
    return packed.unpack(contracted, trace.symbol_to_dim)


def _to_particle_by_point(total: Tensor | int, sites: list[dict], particle_dim: int,
                          shape: tuple[int, int]) -> Tensor:
    data_dim = next(f.dim for s in sites for f in s["cond_indep_stack"] if f.name == DATA_PLATE)
    total = torch.as_tensor(total)
    total = total.reshape((1,) * max(0, -particle_dim - total.dim()) + total.shape)
    keep = (total.dim() + particle_dim, total.dim() + data_dim)
    summed = [d for d in range(total.dim()) if d not in keep]
    if summed:
        total = total.sum(summed, keepdim=True)
    return total.reshape(total.shape[keep[0]], total.shape[keep[1]]).expand(shape)


def enumerated_posterior(module: nn.Module, structure: Structure, x: Tensor, site: str) -> Tensor:
    """p(c = j | x_n) for an enumerated discrete latent c, exactly: Tensor[N, C], each row summing to 1.

    log p(x_n, c = j) is contracted from the model's enumerated trace with every other latent summed out,
    then normalised over j. For a one-hot c this is also the posterior mean E[onehot(c) | x].
    """
    enum_model = poutine.enum(module.model, first_available_dim=-structure.max_plate_nesting - 1)
    trace = poutine.trace(enum_model).get_trace(x)
    trace.compute_log_prob()
    log_joint = _contract_enumerated(trace, sample_sites(trace), keep=site)
    log_joint = log_joint.movedim(trace.nodes[site]["infer"]["_enumerate_dim"], -1)
    log_joint = log_joint.reshape(-1, log_joint.shape[-1]).expand(x.shape[0], -1)
    return (log_joint - log_joint.logsumexp(-1, keepdim=True)).exp()


def log_mean_exp(log_w: Tensor, dim: int = 0) -> Tensor:
    """log (1/K) sum_k exp(log_w_k) along ``dim``, computed stably."""
    return torch.logsumexp(log_w, dim) - math.log(log_w.shape[dim])


def exact_log_prob(module: nn.Module, structure: Structure, x: Tensor) -> Tensor:
    """Exact log p(x), Tensor[N]: the model's own ``log_prob``, or every latent summed out by enumeration.

    Raises:
        ValueError: the model has latents that can be neither summed out nor integrated in closed form.
    """
    if callable(getattr(module, "log_prob", None)):
        return module.log_prob(x)
    if not structure.exact:
        raise ValueError(
            f"log p(x) has no closed form for this model: latent site(s) "
            f"{', '.join(repr(s) for s in structure.guided + structure.unguided)} are continuous or not marked "
            f"for enumeration. Give the model a log_prob(x) method, or estimate log p(x) by importance sampling")
    return log_weights(module, structure, x, 1, use_guide=False)[0]
