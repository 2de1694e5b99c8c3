"""Checks ``fit`` makes at its boundary, besides those of :mod:`ppgen.utils.checks`: each raises the error a user reads
before anything changes (the model, the files on disk)."""

from __future__ import annotations

import os
from typing import Any

from torch import Tensor

from ppgen.objective.base import Objective
from ppgen.utils.budget import check_particle_budget
from ppgen.utils.checks import check_not_a_class, check_not_a_list_of_arrays, check_positive_int

#: the fields by which a backend names its particles per data point: ``inference.IWAE(k=K)``,
#: ``inference.ELBO(num_particles=K)`` (DESIGN.md's names); a backend with neither draws one.
PARTICLE_FIELDS = ("k", "num_particles")


def check_bool(value: Any, name: str) -> bool:
    """``value`` if it is a ``bool``; a ``TypeError`` naming ``name`` otherwise (``"no"`` is not false)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return value


def check_optional_bool(value: Any, name: str) -> bool | None:
    """``None`` or a ``bool``; a ``TypeError`` naming ``name`` otherwise."""
    return None if value is None else check_bool(value, name)


def check_model_and_data(model: Any, data: Any) -> None:
    """The mistakes of ``fit(model, data)`` that are neither a program's nor the data's values: the model's class
    given for a model, or aligned inputs given as a list (see :func:`ppgen.utils.checks.check_not_a_list_of_arrays`)."""
    check_not_a_class(model, "model", "models.VAE(x_dim=64) or MyModel()")
    check_not_a_list_of_arrays(data, "data")
    for i, value in enumerate(data if isinstance(data, tuple) else ()):
        check_not_a_list_of_arrays(value, f"data[{i}]")


def check_step_budget(inference: Any, points: int, batch_size: int) -> None:
    """A ``ValueError`` naming the backend's argument where its K particles for each of the ``points`` of a training
    step (``batch_size``, or N where N is smaller) exceed the particle budget that the queries keep
    (:data:`ppgen.utils.budget.BUDGET`): refused before the first step, not an allocator's error inside it."""
    config = inference.config if isinstance(inference, Objective) else {}
    for field in PARTICLE_FIELDS:
        if isinstance(config.get(field), int):
            check_particle_budget(config[field], points, f"inference.{field}",
                                  f"data points of a step (batch_size={batch_size})")


def check_batch_points(inference: Any, n: int | None, batch_size: int, drop_last: bool, world_size: int) -> None:
    """A ``ValueError`` naming ``batch_size`` where a step would give the backend a batch of fewer points than it
    needs (:attr:`~ppgen.objective.base.Objective.min_points`): the batches of ``batch_size`` rows of ``n`` points
    (an epoch's last one holds n mod batch_size, unless ``drop_last``; ``n`` is ``None`` for a stream without a
    length, whose last batch is unknown), each split among ``world_size`` ranks (a rank without rows skips a step)."""
    need = inference.min_points if isinstance(inference, Objective) else 1
    sizes = {batch_size if n is None else min(batch_size, n)}
    if n is not None and n > batch_size and n % batch_size and not drop_last:
        sizes.add(n % batch_size)
    for rows in sorted(sizes):
        shares = {rows // world_size, -(-rows // world_size)} - {0}  # tensor_split's shares differ by at most one
        if min(shares) < need:
            where = "" if world_size == 1 else f", split among {world_size} processes into shares of {sorted(shares)}"
            last = f"the last of an epoch of {n} points" if rows != min(batch_size, n or batch_size) else "a batch"
            raise ValueError(f"batch_size={batch_size}: {inference!r} needs at least {need} data points in each batch "
                             f"it sees, but {last} holds {rows}{where}: choose a batch_size that leaves no "
                             f"smaller batch")


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


def check_scalar_loss(loss: Any, backend: object, method: str = "loss") -> None:
    """A backend's loss (what its ``method`` returns) must be a scalar tensor: a ``TypeError``/``ValueError`` naming
    the backend otherwise."""
    name = f"{type(backend).__name__}.{method}"
    if not isinstance(loss, Tensor):
        raise TypeError(f"inference: {name} must return a scalar tensor, got {type(loss).__name__}")
    if loss.dim() != 0:
        raise ValueError(f"inference: {name} must return a scalar tensor (the mean over the batch), got "
                         f"shape {list(loss.shape)}: reduce it with .mean()")
    if not loss.requires_grad:
        raise ValueError(f"inference: {name} returned a tensor that does not depend on the parameters "
                         f"(requires_grad is False): nothing to differentiate")


def check_state_between_steps(inference: Any, distributed: bool, compile: bool | str) -> bool | str:
    """``compile``, or ``False`` for ``"auto"`` where an objective keeps state between steps (a critic, persistent
    chains: :attr:`~ppgen.objective.base.Objective.state_between_steps`); a ``ValueError`` naming ``distributed`` or
    ``compile`` where such an objective is asked to run data-parallel or through the captured step: neither carries
    such state yet (each rank would keep its own; a captured step replays the tensors it captured, not the state as
    it moves)."""
    what = getattr(inference, "state_between_steps", None)
    if what is None:
        return compile
    compile = False if compile == "auto" else compile
    for name, value in (("distributed", distributed), ("compile", compile)):
        if value:
            raise ValueError(f"{name}: {type(inference).__name__}() {what}, which {name}={value!r} does not take "
                             f"yet: leave {name} out")
    return compile
