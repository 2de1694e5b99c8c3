"""Ctrl-C at any moment of a command: one line and exit status 130, never a traceback.

A ``KeyboardInterrupt`` raised inside an import may be swallowed by importlib (it is raised in a callback, where
Python prints it as "Exception ignored" and carries on), so while a command imports its libraries SIGINT is only
remembered (:func:`deferred`), and raised once the imports are done.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

_state = {"deferred": 0, "received": False}


def _handle(signum: int, frame: FrameType | None) -> None:
    _state["received"] = True
    if not _state["deferred"]:
        raise KeyboardInterrupt


@contextmanager
def handled() -> Iterator[None]:
    """Within it (in the main thread), SIGINT raises ``KeyboardInterrupt`` as usual, or waits in :func:`deferred`."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _state.update(deferred=0, received=False)
    previous: Any = signal.signal(signal.SIGINT, _handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def deferred() -> Iterator[None]:
    """Within it, SIGINT is remembered; it raises ``KeyboardInterrupt`` when the block ends."""
    _state["deferred"] += 1
    try:
        yield
    finally:
        _state["deferred"] -= 1
    if _state["received"] and not _state["deferred"]:
        raise KeyboardInterrupt
