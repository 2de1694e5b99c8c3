"""Checks ``fit`` makes at its boundary, besides those of :mod:`ppgen.utils.checks`: each raises the error a user reads
before anything changes (the model, the files on disk)."""

from __future__ import annotations

import os
from typing import Any

from torch import Tensor

from ppgen.utils.checks import check_positive_int


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
