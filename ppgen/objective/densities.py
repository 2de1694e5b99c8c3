"""The log-density of a program as a function of x, for the objectives that evaluate it on points of their own
(perturbed data for score matching, noise draws for noise-contrastive estimation) rather than through importance
weights: -E_theta(x) for an energy-based model (:mod:`ppgen.program.unnormalized`), the exact log p_theta(x) for a
normalised one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor, nn
from torch.distributions import constraints

from ppgen.objective.bounds import exact_log_prob
from ppgen.program.inputs import Batch
from ppgen.program.structure import Structure
from ppgen.program.unnormalized import energy_site
from ppgen.utils.checks import coordinate_support

#: log p~(v, sigma): Tensor[M, *x_shape], noise levels Tensor[M] or None -> Tensor[M].
Density = Callable[[Tensor, "Tensor | None"], Tensor]


def check_density_model(objective: Any, structure: Structure, *, normalized: bool) -> None:
    """A ``ValueError`` naming ``objective`` unless the model's log-density of x is a function it can evaluate at
    points of its own: an unnormalised model without latents, or, where ``normalized``, a model whose log p(x) is
    exact; its data, one input received as ``obs=`` unchanged, real-valued (the objective moves or draws points in
    R^D), and its program run on batches of rows."""
    name = type(objective).__name__
    if structure.unnormalized:
        latent = structure.guided + structure.unguided + structure.enumerated
        if latent:
            raise ValueError(f"{name}() evaluates -E(x) at points of its own, but the energy-based model has latent "
                             f"site(s) {latent}: write the energy as a function of x alone")
        if len(structure.observed) != 1:
            raise ValueError(f"{name}() fits the density of the data site alone, but the model observes "
                             f"{structure.observed}: give the further inputs to the program as inputs, not as sites")
    elif not normalized:
        raise ValueError(f"{name}() fits an energy-based model, whose data site is ppgen.Unnormalized; this model's "
                         f"log p(x) is normalised: fit it by inference.MLE() (or ELBO() where it has latents)")
    elif not structure.exact:
        raise ValueError(f"{name}() needs the model's log-density as a function of x, but its latent site(s) "
                         f"{structure.guided + structure.unguided} are neither summed out nor integrated in closed "
                         f"form (and it has no log_prob(x)): fit it by inference.ELBO()")
    if structure.data_site is None or structure.plan.whole_data:
        raise ValueError(f"{name}() evaluates the model at points of its own, so its data site must receive x as "
                         f"obs= unchanged, one batch of rows at a time (the program indexes or takes the whole data "
                         f"set here)")
    if coordinate_support(structure.data_support) is not constraints.real:
        raise ValueError(f"{name}() moves or draws points in R^D, but the model's data site has support "
                         f"{structure.data_support}: it fits densities of real-valued data (dequantise discrete data)")


def density(module: nn.Module, structure: Structure, batch: Batch) -> Density:
    """The model's log-density at its data site as a function of points v in place of the batch's x (their rows
    aligned with the batch's, for its other inputs), differentiable in v and theta: ``noisy_log_prob`` of the
    :class:`~ppgen.program.unnormalized.Unnormalized` distribution of an energy-based model (sigma its noise levels),
    else the exact log p(v) (sigma unused)."""
    if structure.unnormalized:
        return energy_site(module, batch, structure.data_site).noisy_log_prob
    where = structure.observed_input

    def log_p(v: Tensor, sigma: Tensor | None) -> Tensor:
        args = batch.args[:where] + (v,) + batch.args[where + 1:]
        return exact_log_prob(module, structure, Batch(args, batch.rows, batch.size))
    return log_p
