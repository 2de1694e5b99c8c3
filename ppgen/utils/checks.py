"""Argument checks that raise the errors users read: the argument's name and what was expected.

Each returns the value as the plain Python or torch type the rest of ppgen uses, so that a NumPy
scalar (``np.int64(5)``, ``np.float32(1e-3)``) is as good as the number it holds. :func:`first_line` cuts another
library's error to the line that a message of ours quotes.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import torch

#: numpy.random.seed, which Pyro's set_rng_seed calls, takes seeds in [0, 2**32).
SEED_LIMIT = 2**32
#: the largest size torch takes (a C ``int64_t``): past it torch says only "Overflow when unpacking long long".
SIZE_LIMIT = 2**63 - 1


def check_positive_int(value: Any, name: str, limit: int = SIZE_LIMIT) -> int:
    """``value`` as an ``int``; a ``TypeError``/``ValueError`` naming ``name`` unless it is an integer in
    [1, ``limit``] (by default :data:`SIZE_LIMIT`, so that no size reaches torch as a number it cannot hold)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be a positive int, got {value}")
    if value > limit:
        bound = "2**63 - 1, the largest size torch holds" if limit == SIZE_LIMIT else str(limit)
        raise ValueError(f"{name} must be a positive int of at most {bound}, got {value}")
    return int(value)


def check_positive_float(value: Any, name: str) -> float:
    """``value`` as a ``float``; a ``TypeError``/``ValueError`` naming ``name`` unless it is finite and > 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a positive number, got {type(value).__name__}")
    if not 0 < value < math.inf:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def check_non_negative_float(value: Any, name: str) -> float:
    """``value`` as a ``float``; a ``TypeError``/``ValueError`` naming ``name`` unless it is finite and >= 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a finite number >= 0, got {type(value).__name__}")
    if not 0 <= value < math.inf:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def check_probability(value: Any, name: str) -> float:
    """``value`` as a ``float``; a ``TypeError``/``ValueError`` naming ``name`` unless it is a number from 0 to 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a probability, a number from 0 to 1, got {type(value).__name__}")
    if not 0 <= value <= 1:
        raise ValueError(f"{name} must be a probability, a number from 0 to 1, got {value!r}")
    return float(value)


def check_seed(value: Any, name: str = "seed") -> int:
    """``value`` as an ``int`` seed in [0, 2**32), or a ``TypeError``/``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int in [0, 2**32), got {type(value).__name__}")
    if not 0 <= value < SEED_LIMIT:
        raise ValueError(f"{name} must be an int in [0, 2**32), got {value}")
    return int(value)


def check_device(value: Any, name: str = "device") -> torch.device:
    """``value`` as a ``torch.device`` that exists on this machine, or a ``TypeError``/``ValueError``."""
    if not isinstance(value, (str, torch.device)):
        raise TypeError(f"{name} must be a str or torch.device such as 'cpu' or 'cuda', got {type(value).__name__}")
    try:
        device = torch.device(value)
    except RuntimeError:
        raise ValueError(f"{name} must name a torch device such as 'cpu', 'cuda' or 'cuda:1', got {value!r}") from None
    if device.type == "meta":
        raise ValueError(f"{name}='meta' holds shapes without values: moving a model there would destroy its "
                         f"weights; use 'cpu' or 'cuda'")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{name}={value!r}, but Apple's MPS is not available here (torch.backends.mps.is_available() "
                         f"is False)")
    if device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"{name}={value!r}: ppgen runs on 'cpu', 'cuda' or 'mps'")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{name}={value!r}, but CUDA is not available here (torch.cuda.is_available() is False)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"{name}={value!r}, but this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device


def check_finite_float(value: Any, name: str) -> float:
    """``value`` as a ``float``; a ``TypeError``/``ValueError`` naming ``name`` unless it is a finite number."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a finite number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def check_choice(value: Any, choices: tuple[str, ...], name: str) -> str:
    """``value`` unchanged; a ``ValueError`` naming ``name`` and the choices unless it is one of them."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def check_not_a_class(value: Any, name: str, example: str) -> None:
    """A ``TypeError`` naming ``name`` where ``value`` is a class rather than an object built from it: ``example``
    shows how to build one (``models.VAE(x_dim=64)``)."""
    if isinstance(value, type):
        raise TypeError(f"{name} is the class {value.__name__}, not an object built from it: build one first, "
                        f"e.g. {example}")


def check_not_a_list_of_arrays(data: Any, name: str) -> None:
    """A ``TypeError`` naming ``name`` where ``data`` is a list holding tensors or arrays: aligned inputs (x, y) are
    a tuple, and the rows of one input a stacked tensor. NumPy would read ``[x, y]`` of equal shapes as two data
    points, each a whole input: a silently wrong reading, so the list is refused whatever its shapes."""
    if isinstance(data, list) and any(isinstance(item, (torch.Tensor, np.ndarray)) for item in data):
        kinds = sorted({type(item).__name__ for item in data})
        raise TypeError(f"{name} is a list of {len(data)} {'/'.join(kinds)}: aligned inputs (x, y, ...) are passed "
                        f"as a tuple, {name}=(x, y); the rows of one input, as one tensor, torch.stack(rows)")


def first_line(error: Exception) -> str:
    """The first line of an error's message (its type's name where the message is empty), for a message of ours."""
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def coordinate_support(support: Any) -> Any:
    """The support of one coordinate of a point: ``support`` without its ``constraints.independent`` wrappers
    (a ``to_event`` distribution's support of whole points)."""
    from torch.distributions import constraints

    while isinstance(support, constraints.independent):
        support = support.base_constraint
    return support
