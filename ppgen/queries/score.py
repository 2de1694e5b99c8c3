"""What every sample-quality metric of :mod:`ppgen.queries.sample_quality` takes and gives: two samples, checked
and flattened to rows of numbers, in; one figure with its uncertainty, a :class:`Score`, out."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor


@dataclass(frozen=True)
class Score:
    """A metric's value computed from two samples, model draws x~ ~ p_theta and held-out data x ~ p_data.

    Attributes:
        name: the metric, as :func:`ppgen.queries.sample_quality.sample_quality` names it (``"mmd"``, ``"c2st"``, ...).
        value: the estimate.
        std_error: its standard error, ``None`` where the metric has none to offer (its docstring says why).
        p_value: the p-value of the test of p_theta = p_data, ``None`` where the metric is not a test.
        n: the points of each sample that the estimate used, model draws first (``"modes"``: draws and modes).
    """

    name: str
    value: float
    std_error: float | None
    p_value: float | None
    n: tuple[int, int]

    def to_dict(self) -> dict[str, float | list[int] | None]:
        """Plain Python, JSON-ready (a value that is not finite becomes ``None``)."""
        return {"value": _finite(self.value), "std_error": _finite(self.std_error), "p_value": self.p_value,
                "n": list(self.n)}

    def __str__(self) -> str:
        text = f"{self.value:.4g}"
        if self.std_error is not None:
            text += f" +- {self.std_error:.2g}"
        if self.p_value is not None:
            text += f" (p = {self.p_value:.3g})"
        return text


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value


def check_two_samples(samples: Any, data: Any, least: int = 2,
                      names: tuple[str, str] = ("samples", "data")) -> tuple[Tensor, Tensor]:
    """The model's draws and the data as float64 ``Tensor[n, d]`` and ``Tensor[m, d]`` (each point flattened), on the
    data's device; a ``TypeError``/``ValueError`` naming the argument (``names``: those of ``samples`` and ``data``)
    unless both are tensors or arrays of at least ``least`` finite points of one shape."""
    pair = []
    for name, value in zip(names, (samples, data)):
        if isinstance(value, (list, tuple)) or not hasattr(value, "shape"):
            raise TypeError(f"{name} must be a Tensor or array of points [n, ...], got {type(value).__name__}")
        value = torch.as_tensor(value)
        if value.dim() < 1 or len(value) < least:
            raise ValueError(f"{name} must hold at least {least} points, got shape {list(value.shape)}")
        if value.dtype == torch.bool or value.is_complex():
            raise TypeError(f"{name} must hold real numbers, got {value.dtype}")
        if not bool(torch.isfinite(value.double()).all()):
            raise ValueError(f"{name} holds NaN or infinite values")
        pair.append(value)
    x, y = pair
    if x.shape[1:] != y.shape[1:]:
        raise ValueError(f"{names[0]} and {names[1]} must have points of one shape, got {list(x.shape[1:])} and "
                         f"{list(y.shape[1:])}")
    return x.to(y.device).double().reshape(len(x), -1), y.double().reshape(len(y), -1)


def at_most(x: Tensor, limit: int | None, generator: torch.Generator) -> Tensor:
    """``limit`` rows of x drawn without replacement by ``generator`` (on the CPU), or x itself where it has no more."""
    if limit is None or len(x) <= limit:
        return x
    return x[torch.randperm(len(x), generator=generator)[:limit].to(x.device)]
