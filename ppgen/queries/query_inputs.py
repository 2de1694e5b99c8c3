"""A query's inputs checked against the inputs a fit was trained on: as many, each of the same shape per point."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ppgen.program.inputs import Batch, as_batch
from ppgen.program.structure import Structure
from ppgen.utils.checks import check_not_a_list_of_arrays


def query_batch(structure: Structure, example: Batch, device: torch.device, inputs: tuple[Any, ...],
                name: str = "x") -> Batch:
    """The inputs of a query (``log_prob(x, y)``) as one batch on ``device``, checked against the example rows of the
    training inputs; a ``TypeError`` or ``ValueError`` naming ``name`` where they do not fit the program."""
    if len(inputs) != structure.num_inputs:
        raise TypeError(f"the model takes {structure.num_inputs} input(s) (x, ...), as it was fitted, got "
                        f"{len(inputs)}; pass the query's options by keyword, e.g. log_prob(x, k=1000)")
    for value in inputs:
        check_not_a_list_of_arrays(value, name)
    batch = as_batch(inputs[0] if len(inputs) == 1 else tuple(inputs), name=name, keep_integer_x=True)
    whole = structure.plan.whole_data  # its points are those of the whole data set it was fitted to
    for i, (arg, like) in enumerate(zip(batch.args, example.args)):
        where = name if len(inputs) == 1 else f"{name}[{i}]"
        if whole and arg.shape != like.shape:
            raise ValueError(f"{where}: the program takes the whole data set at every step; query it with the "
                             f"whole data set it was fitted to, of shape {list(like.shape)}, got {list(arg.shape)}")
        if arg.shape[1:] != like.shape[1:]:
            raise ValueError(f"{where} must have shape [N, {', '.join(map(str, like.shape[1:]))}] like the "
                             f"training data, got {list(arg.shape)}")
    batch = structure.program_data(Batch(batch.args, batch.rows, example.size))
    own, plate = structure.own_batch_size, structure.plan.data_plate
    if own is not None and own < len(batch):
        raise ValueError(f"{name}: the program's data plate pyro.plate('{plate}', {len(batch)}, subsample_size="
                         f"{own}) subsamples {own} of its {len(batch)} points itself, so that ppgen cannot run it "
                         f"on all of them at once for a query; fit.params holds what it learnt")
    batch = batch.to(device, example.float_dtype)
    structure.check_data(batch, name)
    return batch


def given_inputs(structure: Structure, example: Batch, device: torch.device, n: int,
                 given: tuple[Any, ...]) -> list[Tensor]:
    """The inputs other than x of ``sample(n, *given)``, one row per draw, each checked against the training
    inputs and put on ``device``; a ``ValueError`` naming ``given[i]`` where one has another shape."""
    others = [i for i in range(structure.num_inputs) if i != (structure.observed_input or 0)]
    checked = []
    for i, value in zip(others, given):
        batch = as_batch((value,), name=f"given[{len(checked)}]")
        like = example.args[i]
        if len(batch) != n or batch.args[0].shape[1:] != like.shape[1:]:
            raise ValueError(f"given[{len(checked)}] must have shape [{n}, {', '.join(map(str, like.shape[1:]))}]:"
                             f" one row per draw, got {list(batch.args[0].shape)}")
        checked.append(batch.to(device, like.dtype if like.is_floating_point() else None).args[0])
    return checked
