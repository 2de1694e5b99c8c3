"""Whether a captured graph's outputs agree with the plain computation's on the same random draws, up to float rounding:
the check of every graph that :class:`~ppgen.program.fastpath.ShapeCapture` keeps."""

from __future__ import annotations

import torch
from torch import Tensor


def disagreement(what: str, names: list[str], expected: list[Tensor | None], replayed: list[Tensor | None],
                 buffers: list[Tensor], replayed_buffers: list[Tensor], rng: Tensor,
                 replayed_rng: Tensor) -> str | None:
    """Why the graph's outputs differ from the plain ones on the same draws, or ``None`` where they agree."""
    if not torch.equal(rng, replayed_rng):
        return f"the captured {what} drew a different number of random values"
    for name, a, b in zip(names, expected, replayed):
        if (a is None) != (b is None) or (a is not None and not close(a, b)):
            return f"the captured {what}'s {name} differs from the plain {what}'s"
    for i, (b, c) in enumerate(zip(buffers, replayed_buffers)):
        if not close(b, c):
            return f"the captured {what}'s update of buffer {i} differs from the plain {what}'s"
    return None


def close(a: Tensor, b: Tensor) -> bool:
    """Equal up to float rounding, relative to the larger entries of ``a``."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if not a.is_floating_point():
        return torch.equal(a, b)
    tolerance = 1e-9 if a.dtype == torch.float64 else 1e-4
    scale = a.abs().max() if a.numel() else a.new_zeros(())
    return bool(((a - b).abs() <= tolerance * (scale + 1e-6)).all())
