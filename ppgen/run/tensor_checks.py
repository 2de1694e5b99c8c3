"""The checks of a checkpoint's tensors against the run being resumed (:func:`ppgen.run.state.load_state`): the
parameters, the tensors an objective carries between steps, and an optimiser's ``state_dict``, each of the names,
shapes and dtypes the run's own have, finite; ``bad(field, expected)`` makes the error that names the field."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn


def check_parameters(saved: Any, module: nn.Module, dtype: torch.dtype, bad: Callable[[str, str], ValueError],
                     field: str = "model") -> None:
    """The saved parameters (the checkpoint's ``field``) must be the module's, by name, shape and dtype (``dtype`` for
    floating-point ones), and finite."""
    expected = module.state_dict()
    if not isinstance(saved, dict) or set(saved) != set(expected):
        raise bad(field, f"the parameters {sorted(expected)}")
    for name, value in saved.items():
        want = expected[name]
        want_dtype = dtype if want.is_floating_point() else want.dtype
        if not isinstance(value, Tensor) or value.shape != want.shape or value.dtype != want_dtype:
            raise bad(f"{field}.{name}", f"a tensor of shape {list(want.shape)} and dtype {want_dtype}")
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise bad(f"{field}.{name}", "finite values")


def check_tensors(saved: Any, expected: dict[str, Tensor], bad: Callable[[str, str], ValueError], field: str) -> None:
    """The saved tensors (the checkpoint's ``field``) must be ``expected``'s, by name, shape and dtype, and finite."""
    if not isinstance(saved, dict) or set(saved) != set(expected):
        raise bad(field, f"the tensors {sorted(expected)}")
    for name, want in expected.items():
        value = saved[name]
        if not isinstance(value, Tensor) or value.shape != want.shape or value.dtype != want.dtype:
            raise bad(f"{field}.{name}", f"a tensor of shape {list(want.shape)} and dtype {want.dtype}")
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise bad(f"{field}.{name}", "finite values")


def check_optimizer(saved: Any, module: nn.Module, param_groups: list[dict[str, Any]], dtype: torch.dtype,
                    steps: int, bad: Callable[[str, str], ValueError], label: str = "optimizer") -> None:
    """The optimiser's state_dict: the run's own hyperparameters, group by group, and for each parameter i state
    tensors of its shape and dtype (or scalars, such as Adam's step count, finite, at most the run's ``steps``);
    ``label``: the checkpoint's field that holds it.

    Checked before ``load_state_dict``, which takes any hyperparameter, and whose fused kernels read moments of a
    wrong shape out of bounds."""
    if not isinstance(saved, dict) or set(saved) != {"state", "param_groups"}:
        raise bad(label, "a torch optimiser's state_dict (state, param_groups)")
    groups = saved["param_groups"]
    if not isinstance(groups, list) or len(groups) != len(param_groups):
        raise bad(f"{label}.param_groups", f"a list of {len(param_groups)} parameter group(s)")
    for i, (group, want) in enumerate(zip(groups, param_groups)):
        if not isinstance(group, dict) or set(group) != set(want):
            raise bad(f"{label}.param_groups[{i}]", f"the settings {sorted(want)}")
        for key, value in want.items():
            if not _same(group[key], value):
                raise bad(f"{label}.param_groups[{i}].{key}", f"{value!r}, the run's own setting (the file has "
                                                                 f"{group[key]!r}): a checkpoint does not change them")
    params = list(module.parameters())
    state = saved["state"]
    if not isinstance(state, dict) or not all(type(k) is int and 0 <= k < len(params) for k in state):
        raise bad(f"{label}.state", f"a mapping of parameter indices 0 to {len(params) - 1} to their state")
    for index, entry in state.items():
        if not isinstance(entry, dict) or not all(isinstance(name, str) for name in entry):
            raise bad(f"{label}.state[{index}]", "a mapping of names to the parameter's state")
        shape = params[index].shape
        for name, value in entry.items():
            field = f"{label}.state[{index}].{name}"
            if isinstance(value, Tensor) and value.dim() == 0 or type(value) in (int, float):
                scalar = float(value)
                if not math.isfinite(scalar) or name == "step" and not 0 <= scalar <= steps:
                    within = f" from 0 to the run steps ({steps})" if name == "step" else ""
                    raise bad(field, f"a finite scalar{within}")
            elif not (isinstance(value, Tensor) and value.shape == shape and value.dtype == dtype):
                raise bad(field, f"a tensor of shape {list(shape)} and dtype {dtype}, as parameter {index}")
            elif not bool(torch.isfinite(value).all()):
                raise bad(field, "finite values")


def _same(a: Any, b: Any) -> bool:
    """Whether two optimiser settings are equal (tensors by value, sequences element by element)."""
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        return isinstance(a, Tensor) and isinstance(b, Tensor) and a.shape == b.shape and bool((a == b.to(a)).all())
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b
