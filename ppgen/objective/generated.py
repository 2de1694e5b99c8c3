"""The model's own draws of x for a batch, the raw material of objectives that compare samples with data (an MMD, a
critic) instead of evaluating log p(x)."""

from __future__ import annotations

import pyro.poutine as poutine
from torch import Tensor, nn

from ppgen.program.inputs import Batch
from ppgen.program.structure import Structure, sampled_site
from ppgen.program.traces import BatchRows, Unobserve, as_rows


def generated(module: nn.Module, structure: Structure, batch: Batch) -> Tensor:
    """x~_i ~ p_theta(x | c_i), one draw for each of the batch's B points, laid out as the batch's x (one point per row).

    The model runs forward on the batch with its data site unobserved: every latent is drawn from its prior and x
    from its likelihood given them; the model's other inputs c (a label y) are the batch's own, so that x~_i is
    paired with the data point x_i's condition. Draws through reparameterised samplers (``rsample``, a ``Delta``
    of a generator's output) carry the gradient d x~ / d theta.

    Returns:
        Tensor[B, ...]: the draws, of the shape of the batch's x.
    """
    site = sampled_site(structure)
    x = batch.args[structure.observed_input or 0]
    model = Unobserve(site)(BatchRows(batch, structure.plan.data_plate)(module.model))
    node = poutine.trace(model).get_trace(*batch.args).nodes[site]
    return as_rows(node["value"], node, structure, x.shape)


def check_no_guide(name: str, structure: Structure, way_out: str) -> None:
    """A ``ValueError`` naming the objective ``name`` where the program has a guide: an objective that fits p_theta(x)
    from the model's draws alone would leave q(z|x) untrained, which ``fit.encode`` and ``fit.log_prob`` would read;
    ``way_out`` says which objective fits such a model."""
    guided = structure.guided + tuple(s for s in structure.guide_enumerated if s not in structure.guided)
    if guided:
        raise ValueError(f"{name} fits p_theta(x) from its draws alone, but the program has a guide for "
                         f"{', '.join(map(repr, guided))}, which it would leave untrained (fit.encode and fit.log_prob "
                         f"would read it): fit a model with a guide by {way_out}, or drop its guide")
