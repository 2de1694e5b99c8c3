"""Per-data-point log importance weights from Pyro traces, and the bounds built from them.

For K particles z_1..z_K ~ q(z|x_n), drawn in one vectorised pass,

    log w_k(x_n) = log p(x_n, z_k) - log q(z_k | x_n),

where discrete latents that the model enumerates are summed out of p exactly. Every objective
is a function of this [K, N] tensor: the ELBO is its mean over k, the importance-weighted bound
IWAE_K is log (1/K) sum_k w_k, and log p(x) itself when the model has no guided latents.
The same traces give the posterior of an enumerated latent c given x and the guide's draws z_k.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import pyro
import pyro.poutine as poutine
from pyro.ops import packed
from pyro.ops.contract import contract_to_tensor
from torch import Tensor, nn

from ppgen.program import DATA_PLATE, PARTICLE_PLATE, Structure, has_guide, sample_sites


def draw_particles(module: nn.Module, structure: Structure, x: Tensor, num_particles: int) -> poutine.Trace | None:
    """z_k ~ q(z|x) for K particles in one vectorised pass, in a plate left of the program's own plates.

    Returns:
        The guide's trace, or ``None`` for a program without a guide.
    """
    if not has_guide(module):
        return None
    with pyro.plate(PARTICLE_PLATE, num_particles, dim=structure.particle_dim):
        return poutine.trace(module.guide).get_trace(x)


def trace_particles(module: nn.Module, structure: Structure, x: Tensor, num_particles: int,
                    use_guide: bool = True) -> tuple[poutine.Trace | None, poutine.Trace]:
    """K particles of the program: z_k ~ q(z|x) from :func:`draw_particles`, and the model replayed on them, with
    its discrete latents that are marked for enumeration left as enumerated tensor dimensions, to be summed out.

    Arguments:
        module: the program (protocol of :mod:`ppgen.program`).
        structure: its :class:`~ppgen.program.Structure`.
        x: a batch, Tensor[N, ...].
        num_particles: K.
        use_guide: draw z from the guide; ``False`` runs the model alone, every latent enumerated.

    Returns:
        The guide's trace (``None`` without a guide, or with ``use_guide=False``) and the model's trace.
    """
    guide_trace = draw_particles(module, structure, x, num_particles) if use_guide else None
    model = module.model
    if structure.enumerated or not use_guide:
        model = poutine.enum(model, first_available_dim=structure.particle_dim - 1)
    if guide_trace is not None:
        model = poutine.replay(model, trace=guide_trace)
    with pyro.plate(PARTICLE_PLATE, num_particles, dim=structure.particle_dim):
        return guide_trace, poutine.trace(model).get_trace(x)


def log_weights(module: nn.Module, structure: Structure, x: Tensor, num_particles: int,
                use_guide: bool = True) -> Tensor:
    """log w_k(x_n) = log p(x_n, z_k) - log q(z_k|x_n) for k = 1..K particles, vectorised.

    Arguments are those of :func:`trace_particles`.

    Returns:
        Tensor[K, N], differentiable in the parameters of model and guide.
    """
    guide_trace, model_trace = trace_particles(module, structure, x, num_particles, use_guide)
    shape = (num_particles, x.shape[0])
    log_w = per_point_log_density(model_trace, structure, shape)
    if guide_trace is not None and structure.guided:  # a guide that draws nothing has density one
        log_w = log_w - per_point_log_density(guide_trace, structure, shape)
    return log_w


def per_point_log_density(trace: poutine.Trace, structure: Structure, shape: tuple[int, int]) -> Tensor:
    """Sum the log-densities of a trace's sample sites into Tensor[K, N], one entry per particle and point.

    Each site's plates other than the particle and data plates are summed over that site alone: a per-point
    site beside a per-pixel one counts once, not once per pixel. Enumerated dimensions are summed out in log
    space by Pyro's tensor contraction, which keeps this exact.
    """
    trace.compute_log_prob()
    sites = sample_sites(trace)
    if any(site["infer"].get("_enumerate_dim") is not None for site in sites):
        return _particle_by_point(_contract_enumerated(trace, sites), structure, shape)
    return sum(_particle_by_point(site["log_prob"], structure, shape) for site in sites)


def _particle_by_point(log_density: Tensor, structure: Structure, shape: tuple[int, int]) -> Tensor:
    """A log-density laid out on the program's plates, summed over all but the particle and data plates: [K, N]."""
    particle_dim = structure.particle_dim
    log_density = log_density.reshape((1,) * max(0, -particle_dim - log_density.dim()) + log_density.shape)
    keep = (log_density.dim() + particle_dim, log_density.dim() + structure.data_dim)
    summed = [d for d in range(log_density.dim()) if d not in keep]
    if summed:
        log_density = log_density.sum(summed, keepdim=True)
    return log_density.reshape(log_density.shape[keep[0]], log_density.shape[keep[1]]).expand(shape)


def _contract_enumerated(trace: poutine.Trace, sites: list[dict], keep: dict | None = None) -> Tensor:
    """Sum the enumerated dimensions out of a trace's log-densities, keeping the particle and data plates, or,
    with ``keep``, that site's plates and its enumerated dimension. Returns the unpacked tensor."""
    trace.pack_tensors()
    symbol = trace.plate_to_symbol
    factors: OrderedDict[frozenset, list[Tensor]] = OrderedDict()
    for site in sites:
        frames = [f for f in site["cond_indep_stack"] if f.vectorized]
        term = site["packed"]["log_prob"]
        for frame in frames:  # packing drops a plate of size one (one particle, one point): give it back
            if frame.size == 1 and symbol[frame.name] not in term._pyro_dims:
                term = _with_leading_dim(term, symbol[frame.name])
        factors.setdefault(frozenset(symbol[f.name] for f in frames), []).append(term)
    if keep is None:
        target = frozenset(symbol[p] for p in (PARTICLE_PLATE, DATA_PLATE) if p in symbol)
        target_dims: set[str] = set()
    else:
        target = frozenset(symbol[f.name] for f in keep["cond_indep_stack"] if f.vectorized)
        target_dims = {keep["infer"]["_enumerate_symbol"]}
    sum_dims = set(trace.symbol_to_dim) - set(symbol.values())
    contracted = contract_to_tensor(factors, sum_dims, target_ordinal=target, target_dims=target_dims)
    return packed.unpack(contracted, trace.symbol_to_dim)


def _with_leading_dim(term: Tensor, dim: str) -> Tensor:
    """A packed tensor with a new leading dimension of size one, named ``dim``."""
    out = term.unsqueeze(0)
    out._pyro_dims = dim + term._pyro_dims
    return out


def enumerated_log_posterior(model_trace: poutine.Trace, site: str, particle_dim: int) -> Tensor:
    """log p(c = j | x, z_k) for an enumerated latent c of a model trace from :func:`trace_particles`.

    Everything else the model draws is given: the guide's particles z_k, and every other enumerated latent
    summed out. With no guided latents this is the exact posterior log p(c = j | x).

    Returns:
        Tensor[K, N, ..., C]: one row per particle and data point (and element of any further plate of c),
        normalised over the last dimension, its C values.
    """
    model_trace.compute_log_prob()
    node = model_trace.nodes[site]
    log_joint = _contract_enumerated(model_trace, sample_sites(model_trace), keep=node)
    log_joint = log_joint.movedim(node["infer"]["_enumerate_dim"], -1)
    log_joint = log_joint.reshape(log_joint.shape[particle_dim - 1:])  # dims left of the plates have size one
    frames = sorted((f for f in node["cond_indep_stack"] if f.vectorized), key=lambda f: f.dim)
    plates = [1] * -particle_dim
    for frame in frames:
        plates[frame.dim] = frame.size
    log_joint = log_joint.expand(*plates, -1).reshape(*(f.size for f in frames), -1)
    return log_joint.log_softmax(-1)


def log_mean_exp(log_w: Tensor, dim: int = 0) -> Tensor:
    """log (1/K) sum_k exp(log_w_k) along ``dim``, computed stably."""
    return log_w.logsumexp(dim) - math.log(log_w.shape[dim])


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
