"""The states of every RNG a training step draws from (torch, CUDA, NumPy, Python, and the generator of the data
order): captured into a checkpoint as tensors and plain numbers, checked when read back, and restored."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor


def capture_rng(generator: torch.Generator | None) -> dict[str, Any]:
    """The states of every RNG a step draws from, as tensors and plain numbers."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
                  "cached": float(cached)},
        "python": {"version": int(version), "internal": list(internal), "gauss": gauss},
        "generator": generator.get_state() if generator is not None else None,
    }


def restore_rng(rng: dict[str, Any], generator: torch.Generator | None) -> None:
    """Set every RNG to the states :func:`capture_rng` recorded."""
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    numpy = rng["numpy"]
    np.random.set_state(("MT19937", numpy["keys"].numpy().astype(np.uint32), numpy["pos"], numpy["has_gauss"],
                         numpy["cached"]))
    python = rng["python"]
    random.setstate((python["version"], tuple(python["internal"]), python["gauss"]))
    if generator is not None and rng["generator"] is not None:
        generator.set_state(rng["generator"])


def check_rng(rng: Any, bad: Callable[[str, str], ValueError]) -> None:
    """The RNG states must have the types, sizes and ranges that torch, NumPy and Python take back."""
    if not isinstance(rng, dict) or set(rng) != {"torch", "cuda", "numpy", "python", "generator"}:
        raise bad("rng", "the states of torch, cuda, numpy, python and the data-order generator")
    size = torch.get_rng_state().numel()
    for name in ("torch", "generator"):
        value = rng[name]
        if not (isinstance(value, Tensor) and value.dtype == torch.uint8 and value.shape == (size,)) and not (
                name == "generator" and value is None):
            raise bad(f"rng.{name}", f"a torch RNG state (a 1-D uint8 tensor of {size} bytes)")
    numpy = rng["numpy"]
    if not (isinstance(numpy, dict) and set(numpy) == {"keys", "pos", "has_gauss", "cached"}
            and isinstance(numpy["keys"], Tensor) and numpy["keys"].shape == (624,)
            and numpy["keys"].dtype == torch.int64 and bool(((numpy["keys"] >= 0) & (numpy["keys"] < 2**32)).all())
            and type(numpy["pos"]) is int and 0 <= numpy["pos"] <= 624 and numpy["has_gauss"] in (0, 1)
            and type(numpy["has_gauss"]) is int and type(numpy["cached"]) is float and math.isfinite(numpy["cached"])):
        raise bad("rng.numpy", "NumPy's MT19937 state (624 keys below 2**32, pos from 0 to 624, has_gauss, cached)")
    python = rng["python"]
    internal = python.get("internal") if isinstance(python, dict) else None
    if not (isinstance(python, dict) and set(python) == {"version", "internal", "gauss"}
            and python["version"] == random.getstate()[0] and type(python["version"]) is int
            and isinstance(internal, list) and len(internal) == 625 and all(type(v) is int for v in internal)
            and all(0 <= v < 2**32 for v in internal[:624]) and 0 <= internal[624] <= 624
            and (python["gauss"] is None or type(python["gauss"]) is float)):
        raise bad("rng.python", "Python's random state (its version, 624 words below 2**32 and a position, gauss)")
    cuda = rng["cuda"]
    if not (isinstance(cuda, list) and all(isinstance(t, Tensor) and t.dtype == torch.uint8 and t.dim() == 1
                                           for t in cuda)):
        raise bad("rng.cuda", "a list of CUDA RNG states (1-D uint8 tensors)")
    if cuda and torch.cuda.is_available():  # restored only where CUDA is
        if len(cuda) > torch.cuda.device_count() or any(t.numel() != torch.cuda.get_rng_state(i).numel()
                                                        for i, t in enumerate(cuda)):
            raise bad("rng.cuda", f"at most {torch.cuda.device_count()} CUDA RNG states, of the size torch takes")
