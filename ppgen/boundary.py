"""Checks ``fit`` makes at its boundary, besides those of :mod:`ppgen.checks`: each raises the error a user reads
before anything changes (the model, the files on disk)."""

from __future__ import annotations

import os
from typing import Any

import pyro.poutine as poutine
import torch
from torch import Tensor, nn

from ppgen.checks import check_positive_int
from ppgen.program import DATA_PLATE, as_model_input

def check_bool(value: Any, name: str) -> bool:
    """``value`` if it is a ``bool``; a ``TypeError`` naming ``name`` otherwise (``"no"`` is not false)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return value


def check_optional_bool(value: Any, name: str) -> bool | None:
    """``None`` or a ``bool``; a ``TypeError`` naming ``name`` otherwise."""
    return None if value is None else check_bool(value, name)


def check_run_arguments(out: Any, checkpoint_every: Any, resume: Any, overwrite: Any) -> None:
    """``out`` is a path or ``None``; the run-folder options need it and fit it."""
    if out is not None and not isinstance(out, (str, os.PathLike)):
        raise TypeError(f"out must be a path (str or os.PathLike) of a run folder, got {type(out).__name__}")
    if checkpoint_every is not None:
        check_positive_int(checkpoint_every, "checkpoint_every")
    for name, value in (("resume", resume), ("overwrite", overwrite)):
        check_bool(value, name)
        if value and out is None:
            raise ValueError(f"{name}=True needs a run folder: pass out=")
    if checkpoint_every is not None and out is None:
        raise ValueError("checkpoint_every needs a run folder to write checkpoints into: pass out=")


def check_plate_size(module: nn.Module, x: Tensor, batch_size: int, name: str = "data") -> None:
    """The model's data plate must have one entry per row of each batch it will be given.

    A plate of fixed size (``pyro.plate("data", 10)``) fails on a batch of another size mid-training, and one of
    size 1 broadcasts, so that ``sample(n)`` would return a single row. Checked on a batch of each size an epoch
    has (a full one, and the last, smaller one) and on two rows.
    """
    sizes = {min(batch_size, len(x)), len(x) % batch_size or min(batch_size, len(x)), min(2, len(x))}
    for rows in sorted(sizes):
        batch = as_model_input(x[:rows], module)
        with torch.no_grad(), poutine.block():
            try:
                trace = poutine.trace(module.model).get_trace(batch)
            except (RuntimeError, ValueError) as error:
                raise ValueError(f"{name}: the program fails on a batch of {rows} rows ({error}): give "
                                 f"pyro.plate('{DATA_PLATE}', ...) the batch's size, x.shape[0]") from None
        site = trace.nodes.get(DATA_PLATE)
        if site is None or site["type"] != "sample":
            continue
        if len(site["value"]) != rows:
            raise ValueError(f"{name}: the model's pyro.plate('{DATA_PLATE}', ...) has {len(site['value'])} "
                             f"entries on a batch of {rows} rows: give it the batch's size, "
                             f"pyro.plate('{DATA_PLATE}', x.shape[0])")


def check_scalar_loss(loss: Any, backend: object) -> None:
    """A backend's loss must be a scalar tensor: a ``TypeError``/``ValueError`` naming the backend otherwise."""
    name = type(backend).__name__
    if not isinstance(loss, Tensor):
        raise TypeError(f"inference: {name}.loss must return a scalar tensor, got {type(loss).__name__}")
    if loss.dim() != 0:
        raise ValueError(f"inference: {name}.loss must return a scalar tensor (the mean over the batch), got "
                         f"shape {list(loss.shape)}: reduce it with .mean()")
    if not loss.requires_grad:
        raise ValueError(f"inference: {name}.loss returned a tensor that does not depend on the parameters "
                         f"(requires_grad is False): nothing to differentiate")
