"""The callbacks' entry of a run's checkpoint (:mod:`ppgen.training.callbacks`): the states of the fit's stateful
callbacks, by name, as plain values and tensors on the CPU, and why a callback stopped the run before its epochs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor


def on_cpu(value: Any) -> Any:
    """A callback's state with every tensor in it a copy on the CPU, in its lists and dicts."""
    if isinstance(value, Tensor):
        return value.detach().cpu().clone()
    if isinstance(value, dict):
        return {key: on_cpu(item) for key, item in value.items()}
    return [on_cpu(item) for item in value] if isinstance(value, (list, tuple)) else value


def check_callback_states(saved: Any, checks: dict[str, Callable[[Any, Callable[[str, str], ValueError]], None]],
                          bad: Callable[[str, str], ValueError]) -> None:
    """The callbacks' entry: the states of exactly the run's stateful callbacks, each as its own check takes it, and
    why the run stopped early (``None`` or words); absent where neither is."""
    if saved is None and not checks:
        return
    if not (isinstance(saved, dict) and set(saved) == {"states", "stopped"} and isinstance(saved["states"], dict)
            and set(saved["states"]) == set(checks)
            and (saved["stopped"] is None or isinstance(saved["stopped"], str))):
        raise bad("callbacks", f"the states of the run's callbacks {sorted(checks)} and why it stopped (None or words)")
    for name, check in checks.items():
        check(saved["states"][name], lambda field, expected: bad(f"callbacks.states.{name}.{field}", expected))

