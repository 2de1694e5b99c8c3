"""Callbacks: the user's code (and ppgen's own validation and TensorBoard logging) at the end of every epoch of a fit.

The protocol is one call. A callback is any callable ``callback(end)`` that ``ppgen.fit(..., callbacks=[...])`` calls
after each epoch, in the order given, with an :class:`EpochEnd`: the epoch just finished, the history of the training
loss, this epoch's figures (``end.metrics``: the loss, the learning rate, the skipped batches, the seconds, and what an
earlier callback added, such as ``"validation"``), the model as it stands and, built on demand, the fit so far
(``end.fit``, which answers every query). A callback may change the model (a KL weight, say) and may ask the fit to stop
(``end.stop(why)``): the fit then ends after this epoch, with ``fit.stopped`` saying why.

A callback that keeps state of its own subclasses :class:`Callback` and gives it as plain values and tensors
(:meth:`Callback.state_dict`): the run's checkpoints hold it, and a resumed run puts it back before its first step, so
that a run stopped and resumed is bitwise one never stopped. What a callback changes in the model should live in the
model's ``state_dict`` (a buffer, ``register_buffer``), which the checkpoints hold too. Example, a KL weight annealed
from 0 to 1 over ten epochs, read by the model's ``model`` as ``self.beta``::

    def anneal(end):
        end.model.beta.fill_(min(1.0, end.epoch / 10))

    ppgen.fit(model, x, callbacks=[anneal])

Figures the callbacks compute draw from their own seeded RNGs and with the model in eval mode (:func:`aside`), so that a
fit's training is the same with them as without. An exception a callback raises propagates out of ``fit``; the run's
folder keeps its last checkpoint, from which ``resume=True`` continues.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyro
import torch
from torch import nn

from ppgen.run.rng import capture_rng, restore_rng
from ppgen.run.state import RunState
from ppgen.utils.checks import SEED_LIMIT

if TYPE_CHECKING:
    from ppgen.queries.result import Fit

#: the logger of the line a fit writes at each epoch's end (level INFO: silent unless a handler takes it, as the
#: command line's does where stderr is not a terminal).
log = logging.getLogger("ppgen.training.epochs")


@dataclass
class EpochEnd:
    """What a callback is given at the end of an epoch.

    Attributes:
        epoch: the epochs finished, 1 after the first.
        epochs: the epochs the fit was asked for.
        history: the mean training loss of each finished epoch (``fit.history`` so far); not to be changed.
        metrics: this epoch's figures by name: ``loss`` (the last of ``history``), ``lr`` (the first parameter group's
            learning rate, where the optimiser has one), ``skipped`` (batches skipped so far), ``seconds`` (the
            epoch's wall time), and what the callbacks before this one added (the validation callback: ``validation``).
        model: the program being fitted (in training mode; a callback that queries it puts it in eval mode
            within :func:`aside`).
        step: the gradient steps taken so far.
        make_fit: what builds :attr:`fit`.
        stopped: why a callback asked the fit to stop (:meth:`stop`), or ``None``.
    """

    epoch: int
    epochs: int
    history: list[float]
    metrics: dict[str, float]
    model: nn.Module
    step: int
    make_fit: Callable[[], Fit] = field(repr=False)
    stopped: str | None = None

    def stop(self, why: str) -> None:
        """Ask the fit to stop after this epoch; ``why`` becomes ``fit.stopped``."""
        self.stopped = self.stopped or str(why)

    @property
    def fit(self) -> Fit:
        """The fit so far: a :class:`~ppgen.Fit` of the model as it stands (the same module, not a copy)."""
        return self.make_fit()


class Callback:
    """A callback with state of its own, which a run's checkpoints hold (see the module's docs). Subclasses define
    ``__call__`` and, where they keep state, :meth:`state_dict`, :meth:`load_state_dict` and :meth:`check_state`.

    Attributes:
        name: the callback's key in a checkpoint (its class's name by default); two stateful callbacks of a fit need
            two names.
    """

    @property
    def name(self) -> str:
        return type(self).__name__

    def __call__(self, end: EpochEnd) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any] | None:
        """The state to checkpoint, as numbers, strings, lists, dicts and tensors; ``None``: none."""
        return None

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Put back a state that :meth:`state_dict` gave (read from a checkpoint and checked by :meth:`check_state`)."""

    def check_state(self, state: Any, bad: Callable[[str, str], ValueError]) -> None:
        """Raise ``bad(field, expected)`` where a checkpoint's ``state`` for this callback is not one it takes; called
        before a resumed run changes anything."""

    def close(self) -> None:
        """Release what the callback holds open (a file), when the fit ends or fails."""


def check_callbacks(callbacks: Any) -> list[Callable[[EpochEnd], None]]:
    """``callbacks`` as a list: a ``TypeError`` naming it unless it is a list or tuple of callables, a ``ValueError``
    where two stateful ones share a :attr:`Callback.name`."""
    if callbacks is None:
        return []
    if not isinstance(callbacks, (list, tuple)):
        raise TypeError(f"callbacks must be a list of callables called as callback(end) after each epoch, got "
                        f"{type(callbacks).__name__}")
    for i, callback in enumerate(callbacks):
        if not callable(callback):
            raise TypeError(f"callbacks[{i}] must be callable as callback(end), got {type(callback).__name__}")
    names = [c.name for c in callbacks if isinstance(c, Callback) and c.state_dict() is not None]
    if len(set(names)) < len(names):
        raise ValueError(f"callbacks: two callbacks with state share a name ({sorted(names)}): give each its own "
                         f"name, under which the run's checkpoints keep its state")
    return list(callbacks)


def stateful(callbacks: Sequence[Callable[[EpochEnd], None]]) -> dict[str, Callback]:
    """The callbacks whose state the checkpoints hold (a :class:`Callback` whose ``state_dict()`` is not ``None``), by
    name."""
    return {c.name: c for c in callbacks if isinstance(c, Callback) and c.state_dict() is not None}


@contextlib.contextmanager
def aside(module: nn.Module, seed: int | None) -> Iterator[None]:
    """Run a callback's computation aside from the training: under ``torch.no_grad``, with ``module`` in eval mode and
    every RNG (torch, CUDA, NumPy, Python) seeded by ``seed`` (0 for an unseeded fit) and put back afterwards, so that
    the same figures come from the same parameters and the training draws what it would have drawn without them."""
    saved, training = capture_rng(None), module.training
    pyro.set_rng_seed(int(seed or 0) % SEED_LIMIT)
    module.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        module.train(training)
        restore_rng(saved, None)


class Callbacks:
    """The callbacks of a fit, called by the training loop at each epoch's end (:meth:`after_epoch`), with their states
    kept in the run's state (``state.callbacks``) for the checkpoints.

    Arguments:
        callbacks: the callables, in order (ppgen's own validation and TensorBoard first, then the user's).
        model, optimizer: the program being fitted and its optimiser (whose learning rate ``metrics`` shows).
        make_fit: builds the fit so far (``EpochEnd.fit``) from the history.
    """

    def __init__(self, callbacks: Sequence[Callable[[EpochEnd], None]], model: nn.Module,
                 optimizer: torch.optim.Optimizer, make_fit: Callable[[list[float]], Fit]) -> None:
        self.callbacks, self.model, self.optimizer, self.make_fit = list(callbacks), model, optimizer, make_fit
        self.started = time.perf_counter()

    def start(self, state: RunState) -> None:
        """Before the first step: a resumed run's callback states put back, a fresh run's recorded in ``state``."""
        for name, callback in stateful(self.callbacks).items():
            if name in state.callbacks:
                callback.load_state_dict(state.callbacks[name])
        self.snapshot(state)
        self.started = time.perf_counter()

    def snapshot(self, state: RunState) -> None:
        state.callbacks = {name: callback.state_dict() for name, callback in stateful(self.callbacks).items()}

    def after_epoch(self, state: RunState, epochs: int) -> None:
        """Call every callback on the epoch ``state`` just finished, then record their states and whether one asked
        to stop (``state.stopped``)."""
        now = time.perf_counter()
        metrics = {"loss": state.history[-1], "skipped": float(state.skipped), "seconds": now - self.started}
        lr = self.optimizer.param_groups[0].get("lr")  # a tensor or a number; an optimiser may have none
        if lr is not None:
            metrics["lr"] = float(lr)
        end = EpochEnd(state.epoch, epochs, state.history, metrics, self.model, state.step,
                       lambda: self.make_fit(list(state.history)))
        for callback in self.callbacks:
            callback(end)
        log_epoch(end)
        self.snapshot(state)
        state.stopped = end.stopped
        self.started = time.perf_counter()

    def close(self) -> None:
        for callback in self.callbacks:
            if isinstance(callback, Callback):
                callback.close()


def log_epoch(end: EpochEnd) -> None:
    """The epoch's line at level INFO: epoch, training loss, validation loss where there is one, seconds."""
    if not log.isEnabledFor(logging.INFO):
        return
    validation = f", validation {end.metrics['validation']:.4f}" if "validation" in end.metrics else ""
    log.info("epoch %d/%d: loss %.4f%s, %.1f s", end.epoch, end.epochs, end.metrics["loss"], validation,
             end.metrics["seconds"])
