"""The aggregate posterior's distance from the prior, MMD^2(q(z), p(z)): the regulariser of WAE-MMD (Tolstikhin et al.,
2018) and InfoVAE (Zhao et al., 2019) that the ELBO family adds with one argument, ``latent_mmd``.

Over a batch of B points, q(z) = (1/B) sum_i q(z | x_i) is the aggregate posterior of the local latents z (the guide's
sites inside the data plate, all of them together, one vector per point), and p(z) their prior. One draw
z_i ~ q(z | x_i) for each point and one draw z~_i ~ p(z) for each point, the model run forward with its data site
unobserved (so that a latent drawn after x is drawn from the prior too), make the unbiased estimate
MMD^2_u({z_i}, {z~_i}) with the mixture of Gaussian kernels at multiples of the median distance
(:mod:`ppgen.objective.kernels`). The gradient reaches the guide through its reparameterised draws, and a prior with
parameters of its own through the prior's.
"""

from __future__ import annotations

import dataclasses
from dataclasses import field
from typing import Any

import torch
from torch import Tensor, nn

from ppgen.objective.kernels import median_bandwidths, mmd2_unbiased
from ppgen.program.inputs import Batch
from ppgen.program.structure import Structure, sampled_site
from ppgen.program.traces import Unobserve, trace_alone
from ppgen.utils.checks import check_non_negative_float


def latent_mmd_field() -> Any:
    """The ``latent_mmd: float = 0.0`` field of an objective, left out of its repr while it is 0 (see
    :func:`penalised_repr`)."""
    return field(default=0.0, repr=False)


def penalised_repr(objective: Any) -> str:
    """The dataclass's repr, with a field hidden from it (``latent_mmd``) shown where it is on: an objective without
    the penalty keeps the repr that run folders recorded before the field existed, so that those runs resume."""
    shown = [f"{f.name}={getattr(objective, f.name)!r}" for f in dataclasses.fields(objective)
             if f.repr or getattr(objective, f.name)]
    return f"{type(objective).__qualname__}({', '.join(shown)})"


#: an objective's ``units`` with the penalty: nats per data point plus lambda times the kernel's units where it is on.
latent_mmd_units = property(lambda objective: "nats per data point" + (
    f" + {objective.latent_mmd:g} MMD^2" if objective.latent_mmd else ""))

#: an objective's ``min_points`` with the penalty: 2 where it is on (its unbiased MMD^2 compares distinct pairs of
#: points), else 1.
latent_mmd_points = property(lambda objective: 2 if objective.latent_mmd else 1)


def check_latent_mmd_weight(value: Any) -> float:
    """lambda as a ``float``; a ``TypeError``/``ValueError`` naming ``latent_mmd`` unless it is finite and >= 0."""
    return check_non_negative_float(value, "latent_mmd")


def local_latents(structure: Structure) -> tuple[str, ...]:
    """The guide's sites inside the data plate: the latents of q(z | x_i), one per point."""
    return tuple(s for s in structure.guided if s not in structure.global_sites)


def check_latent_mmd(objective: Any, structure: Structure) -> None:
    """A ``ValueError`` naming the site and the way out where the aggregate posterior's MMD is not defined for this
    program: no local latent, a discrete or unreparameterised one, a prior drawn through a discrete latent, or a
    program that takes the whole data set."""
    plate = structure.plan.data_plate
    sites = local_latents(structure)
    if structure.plan.whole_data:
        raise ValueError(f"{objective!r}: latent_mmd compares the latents of a batch of points with as many draws of "
                         f"the prior, but the program takes the whole data set and subsamples pyro.plate('{plate}') "
                         f"itself: give it a batch of rows, or leave latent_mmd at 0")
    if not sites:
        raise ValueError(f"{objective!r}: latent_mmd compares the aggregate posterior of the local latents with their "
                         f"prior, but the guide draws no latent inside pyro.plate('{plate}'): leave latent_mmd at 0")
    discrete = [s for s in sites if s in structure.unreparameterized or s in structure.guide_enumerated]
    if discrete:
        raise ValueError(f"{objective!r}: latent_mmd differentiates through draws of q(z|x), but guide site(s) "
                         f"{', '.join(map(repr, discrete))} have no reparameterised sampler (rsample; discrete): "
                         f"the penalty is defined for continuous, reparameterised local latents only; sum discrete "
                         f"ones out in the model, or leave latent_mmd at 0")
    data_site = sampled_site(structure)
    upstream = [s for s in structure.forward_unreparameterized if s != data_site]
    if upstream:
        raise ValueError(f"{objective!r}: latent_mmd draws the prior p(z) by running the model forward, but its "
                         f"latent site(s) {', '.join(map(repr, upstream))} are drawn without a reparameterised "
                         f"sampler (discrete), so the prior's parameters would get no gradient from the penalty: "
                         f"leave latent_mmd at 0 for this model")


def latent_mmd2(module: nn.Module, structure: Structure, batch: Batch) -> Tensor:
    """MMD^2_u({z_i}, {z~_i}): z_i ~ q(z | x_i) and z~_i ~ p(z) for each of the batch's B points (module docstring).

    Returns:
        A scalar Tensor, differentiable in the guide's (and a learnt prior's) parameters.
    """
    sites, plate = local_latents(structure), structure.plan.data_plate
    guide = trace_alone(module.guide, batch, plate)
    prior = trace_alone(Unobserve(sampled_site(structure))(module.model), batch, plate)
    q, p = (point_rows(trace, sites, structure, len(batch)) for trace in (guide, prior))
    return mmd2_unbiased(q, p, median_bandwidths(q, p))


def point_rows(trace: Any, sites: tuple[str, ...], structure: Structure, n: int) -> Tensor:
    """The values of ``sites`` in ``trace`` as one vector per data point, [n, d]: each site's data-plate dimension
    moved first (a site inside the plate has it, broadcast by the plate), its other dimensions flattened, the sites
    concatenated."""
    rows = []
    for name in sites:
        node = trace.nodes[name]
        value = node["value"]
        rows.append(value.movedim(value.dim() - node["fn"].event_dim + structure.plan.data_dim, 0).reshape(n, -1))
    return torch.cat(rows, 1)


def penalised(objective: Any, loss: Tensor, module: nn.Module, structure: Structure, batch: Batch) -> Tensor:
    """``loss + lambda * MMD^2(q(z), p(z))`` for an objective's ``latent_mmd`` = lambda > 0; ``loss`` itself (the
    same tensor, no draw made) at lambda = 0."""
    if not objective.latent_mmd:
        return loss
    return loss + objective.latent_mmd * latent_mmd2(module, structure, batch)
