"""Argument checks that raise the errors users read: the argument's name and what was expected."""

from __future__ import annotations

from typing import Any


def check_positive_int(value: Any, name: str) -> None:
    """Raise ``TypeError``/``ValueError`` naming ``name`` unless ``value`` is a positive int."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a positive int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be a positive int, got {value}")
