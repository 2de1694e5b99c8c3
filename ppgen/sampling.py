"""Sampling: new x ~ p(x), or x ~ p(x | c) given the model's other inputs, by running the model forward."""

from __future__ import annotations

import pyro.poutine as poutine
import torch
from pyro.poutine.messenger import Messenger
from torch import Tensor, nn

from ppgen.data import Batch
from ppgen.structure import Structure
from ppgen.traces import BatchRows


class Unobserve(Messenger):
    """Turns one observed site back into a latent one, drawn from its distribution; every other ``obs=`` stays."""

    def __init__(self, site: str) -> None:
        super().__init__()
        self.site = site

    def _pyro_sample(self, msg: dict) -> None:
        if msg["name"] == self.site and msg["is_observed"]:
            msg["is_observed"], msg["value"] = False, None


def sampled_site(structure: Structure) -> str:
    """The observed site that :func:`sample` draws: the one that observes the data input.

    Raises:
        ValueError: the model observes several sites and none of them receives an input as it is.
    """
    if structure.data_site is not None:
        return structure.data_site
    if len(structure.observed) != 1:
        raise ValueError(f"sample() returns the model's observed site, but it has {len(structure.observed)} "
                         f"({structure.observed}) and none receives the data as obs= unchanged")
    return structure.observed[0]


def sample(module: nn.Module, structure: Structure, example: Batch, n: int, given: tuple[Tensor, ...]) -> Tensor:
    """n draws x ~ p(x) from the prior predictive, or x ~ p(x | given) where the model takes further inputs.

    Arguments:
        module: the program.
        structure: its structure.
        example: a few rows of the training inputs, whose first row stands in for x (the model may use x only
            through ``obs=`` and its shape).
        n: the number of draws.
        given: the model's inputs other than x, each with n rows (one draw per row), already validated.

    Returns:
        Tensor[n, ...]: the values of the sampled site.
    """
    site = sampled_site(structure)
    data_input = structure.observed_input or 0
    placeholder = example.args[data_input][:1].expand(n, *example.args[data_input].shape[1:])
    others = iter(given)
    args = tuple(placeholder if i == data_input else next(others) for i in range(structure.num_inputs))
    batch = Batch(args, torch.arange(n, device=placeholder.device), example.size)
    model = Unobserve(site)(BatchRows(batch)(module.model))
    return poutine.trace(model).get_trace(*args).nodes[site]["value"]
