"""Stopping a fit between two steps: SIGINT and SIGTERM caught, and the error that says where the run was saved."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any


class Interrupted(KeyboardInterrupt):
    """Training stopped at a step boundary on SIGINT or SIGTERM; the checkpoint, if any, is written.

    Attributes:
        step: the steps done.
        signal_name: ``"SIGINT"`` or ``"SIGTERM"``.
        checkpoint: the checkpoint written, or ``None`` when the fit had no run folder.
    """

    def __init__(self, message: str, *, step: int, signal_name: str, checkpoint: str | None) -> None:
        super().__init__(message)
        self.step = step
        self.signal_name = signal_name
        self.checkpoint = checkpoint

    def __str__(self) -> str:
        return str(self.args[0])


class StopSignals:
    """Within ``with StopSignals() as stop:``, SIGINT and SIGTERM set ``stop.received`` instead of stopping the
    process, so that the loop can finish its step and write a checkpoint. A second signal of the same kind
    stops at once. Outside the main thread, where handlers cannot be set, signals keep their usual effect."""

    def __init__(self) -> None:
        self.received: str | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:  # asked twice: stop now
            signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))
            raise KeyboardInterrupt
        self.received = signal.Signals(signum).name

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
