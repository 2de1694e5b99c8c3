"""How a benchmark times a piece of work: seconds per call by a chosen clock, a CUDA device's queue drained around the
calls so that the seconds are those of the work and not of its launch."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch


def timed(fn: Callable[[], object], calls: int = 1, *, device: torch.device | None = None,
          clock: Callable[[], float] = time.perf_counter) -> tuple[float, object]:
    """Seconds per call of ``calls`` calls of ``fn()`` in a row, and what the last call returned.

    Arguments:
        fn: the work, called with no argument.
        calls: how many times it is called between the two readings of the clock.
        device: where the work runs; on a CUDA device its queue is drained (``torch.cuda.synchronize``) before the
            first reading and before the second.
        clock: ``time.perf_counter`` (wall-clock, the default) or ``time.process_time`` (the process's CPU time).
    """
    if calls < 1:
        raise ValueError(f"calls must be a positive int, got {calls!r}")
    cuda = device is not None and device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
    start = clock()
    for _ in range(calls):
        out = fn()
    if cuda:
        torch.cuda.synchronize(device)
    return (clock() - start) / calls, out
