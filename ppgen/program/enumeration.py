"""Exact sums over the model's enumerated discrete latents, with the semantics of Pyro's ``TraceEnum_ELBO``.

The factors of the sum are the unscaled log-densities of the enumerated sites and, masked but unscaled, of every
site whose log-density depends on an enumerated value; Pyro's tensor contraction sums the enumerated dimensions
out in log space, and the common scale of those sites (a ``poutine.scale``, a subsampled plate's N / B) multiplies
the result after the sum. A masked point thus contributes nothing, not log C.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from pyro import poutine
from pyro.ops import packed
from pyro.ops.contract import contract_to_tensor
from torch import Tensor

from ppgen.program.traces import PARTICLE_PLATE, sample_sites


def enumerated_sites(trace: poutine.Trace) -> tuple[list[dict], list[dict]]:
    """Split a model trace's sample sites into those inside the sum over its enumerated values (the enumerated
    sites and every site that depends on one) and the rest. Packs the trace's tensors."""
    trace.compute_log_prob()
    trace.pack_tensors()
    enum_symbols = set(trace.symbol_to_dim) - set(trace.plate_to_symbol.values())
    summed, rest = [], []
    for site in sample_sites(trace):
        depends = site["infer"].get("_enumerate_dim") is not None or not enum_symbols.isdisjoint(
            site["packed"]["log_prob"]._pyro_dims)
        (summed if depends else rest).append(site)
    return summed, rest


def contract_enumerated(trace: poutine.Trace, sites: list[dict], data_plate: str, keep: dict | None = None,
                        weighted: Iterable[str] = ()) -> Tensor:
    """Sum the enumerated dimensions out of the factors of ``sites`` (from :func:`enumerated_sites`), keeping the
    particle and data plates; or, with ``keep``, that site's plates and its enumerated dimension (unscaled then).
    The dimensions of the sites named in ``weighted``, which the guide enumerates (the model is replayed on their
    values), are kept too: the guide's q weighs the terms over them afterwards, as ``TraceEnum_ELBO`` does.

    Returns:
        The unpacked result, laid out on the program's dimensions.

    Raises:
        ValueError: the sites in the sum have different or tensor-valued scales (Pyro's own condition).
    """
    symbol = trace.plate_to_symbol
    factors: OrderedDict[frozenset, list[Tensor]] = OrderedDict()
    for site in sites:
        frames = [f for f in site["cond_indep_stack"] if f.vectorized]
        term = site["packed"]["unscaled_log_prob"]
        if site["infer"].get("_enumerate_dim") is None:  # a site that depends on an enumerated value: masked
            term = packed.scale_and_mask(term, mask=site["packed"]["mask"])
        for frame in frames:  # packing drops a plate of size one (one particle, one point): give it back
            if frame.size == 1 and symbol[frame.name] not in term._pyro_dims:
                term = _with_leading_dim(term, symbol[frame.name])
        factors.setdefault(frozenset(symbol[f.name] for f in frames), []).append(term)
    if keep is None:
        target = frozenset(symbol[p] for p in (PARTICLE_PLATE, data_plate) if p in symbol)
        target_dims = {site["infer"]["_enumerate_symbol"] for site in sites if site["name"] in set(weighted)}
    else:
        target = frozenset(symbol[f.name] for f in keep["cond_indep_stack"] if f.vectorized)
        target_dims = {keep["infer"]["_enumerate_symbol"]}
    sum_dims = set(trace.symbol_to_dim) - set(symbol.values())
    try:
        contracted = contract_to_tensor(factors, sum_dims, target_ordinal=target, target_dims=target_dims)
    except (ValueError, NotImplementedError) as error:  # Pyro names plate symbols; say which sites are summed
        names = ", ".join(repr(site["name"]) for site in sites)
        raise ValueError(f"the sum over the enumerated values of site(s) {names} cannot be computed: {error}") from error
    contracted = packed.unpack(contracted, trace.symbol_to_dim)
    return contracted if keep is not None else contracted * _common_scale(sites)


def _common_scale(sites: list[dict]) -> Tensor | float:
    """The one scale that every site inside the sum shares, applied after it."""
    scales = {site["name"]: float(site["scale"]) if not isinstance(site["scale"], Tensor) or site["scale"].dim() == 0
              else None for site in sites}
    tensors = [name for name, scale in scales.items() if scale is None]
    if tensors:
        raise ValueError(f"enumeration only supports scalar poutine.scale: site(s) {', '.join(map(repr, tensors))} "
                         f"inside the sum over an enumerated latent have a tensor-valued scale")
    if len(set(scales.values())) != 1:
        listed = ", ".join(f"'{name}': {scale}" for name, scale in scales.items())
        raise ValueError(f"Expected all enumerated sample sites to share a common poutine.scale, but the sites inside "
                         f"one sum have different scales ({listed}): scale the whole sum, or none of it")
    return next(iter(scales.values()))


def _with_leading_dim(term: Tensor, dim: str) -> Tensor:
    """A packed tensor with a new leading dimension of size one, named ``dim``."""
    out = term.unsqueeze(0)
    out._pyro_dims = dim + term._pyro_dims
    return out


def enumerated_log_posterior(model_trace: poutine.Trace, site: str, particle_dim: int, data_plate: str) -> Tensor:
    """log p(c = j | x, z_k) for an enumerated latent c of a model trace from
    :func:`~ppgen.program.traces.trace_particles`.

    Everything else the model draws is given: the guide's particles z_k, and every other enumerated latent
    summed out. With no guided latents this is the exact posterior log p(c = j | x).

    Returns:
        Tensor[K, N, ..., C]: one row per particle and data point (and element of any further plate of c),
        normalised over the last dimension, its C values.
    """
    summed, _ = enumerated_sites(model_trace)
    node = model_trace.nodes[site]
    log_joint = contract_enumerated(model_trace, summed, data_plate, keep=node)
    log_joint = log_joint.movedim(node["infer"]["_enumerate_dim"], -1)
    log_joint = log_joint.reshape(log_joint.shape[particle_dim - 1:])  # dims left of the plates have size one
    frames = sorted((f for f in node["cond_indep_stack"] if f.vectorized), key=lambda f: f.dim)
    plates = [1] * -particle_dim
    for frame in frames:
        plates[frame.dim] = frame.size
    log_joint = log_joint.expand(*plates, -1).reshape(*(f.size for f in frames), -1)
    if all(f.name != PARTICLE_PLATE for f in frames):  # a program run one particle at a time, without the plate
        log_joint = log_joint.unsqueeze(0)
    return log_joint.log_softmax(-1)
