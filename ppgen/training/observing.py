"""What watches a fit from epoch to epoch, assembled from ``fit``'s arguments: validation and early stopping
(:mod:`~ppgen.training.validation`), TensorBoard (:mod:`~ppgen.training.tensorboard`), then the user's callbacks
(:mod:`~ppgen.training.callbacks`), in that order, so that each sees what those before it added to ``end.metrics``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ppgen.objective.sampler import Sampler
from ppgen.program.inputs import Batch
from ppgen.program.structure import Structure
from ppgen.training.callbacks import Callbacks, EpochEnd, check_callbacks, stateful
from ppgen.training.tensorboard import TensorBoard, check_log_dir
from ppgen.training.validation import Validation, check_validation_options, validation_batch, validation_loss

#: the training rows a latent picture shows where the fit has no validation rows.
PICTURED_ROWS = 500


@dataclass
class Observers:
    """``fit``'s arguments that watch the run, checked (:func:`check_observers`).

    Attributes:
        validation: the held-out rows as given, then (:meth:`prepare`) as a batch on the fit's device.
        patience, keep, log_dir: as ``fit`` takes them.
        callbacks: the user's callables.
        checked: the validation callback, once :meth:`prepare` built it.
    """

    validation: Any
    patience: int | None
    keep: str
    log_dir: str | None
    callbacks: list[Callable[[EpochEnd], None]]
    checked: Validation | None = None

    def refuse_sampler(self, inference: Any) -> None:
        """A ``ValueError`` where a sampler (``inference.NUTS``), which draws once without epochs, is given
        validation data, callbacks or a log_dir."""
        given = [name for name, given in (("validation", self.validation is not None), ("callbacks", self.callbacks),
                                          ("log_dir", self.log_dir is not None)) if given]
        if isinstance(inference, Sampler) and given:
            raise ValueError(f"{given[0]}: {inference!r} draws from the posterior once, without epochs for "
                             f"{given[0]} to watch: leave it out")

    def prepare(self, module: nn.Module, structure: Structure, inference: Any, example: Batch, device: torch.device,
                batch_size: int, seed: int | None) -> None:
        """Check the held-out rows against the training data (before any work) and build the validation callback."""
        if self.validation is None:
            return
        batch = validation_batch(self.validation, structure, example, inference, device)
        self.validation = batch
        self.checked = Validation(module, lambda: validation_loss(module, structure, inference, batch, batch_size,
                                                                  seed), self.patience, self.keep, batch.float_dtype)

    def checkers(self) -> dict[str, Callable[..., None]]:
        """What checks a checkpoint's state of each stateful callback, by name."""
        return {name: callback.check_state for name, callback in stateful(self.own()).items()}

    def own(self) -> list[Callable[[EpochEnd], None]]:
        """The validation callback (where there are held-out rows), then the user's."""
        return [*([self.checked] if self.checked is not None else []), *self.callbacks]

    def start(self, module: nn.Module, optimizer: torch.optim.Optimizer, make_fit: Callable[[list[float]], Any],
              pictured: Batch, seed: int | None, writer: bool) -> Callbacks:
        """The callbacks of the run, TensorBoard's writer opened (on the rank that writes, ``writer``) with the rows
        its latent picture shows: the validation rows, or the first :data:`PICTURED_ROWS` of ``pictured``."""
        callbacks = self.own()
        if self.log_dir is not None and writer:
            rows = self.validation if self.checked is not None else pictured.head(PICTURED_ROWS)
            x = rows.args[0] if len(rows.args) == 1 else None  # a model of several inputs encodes them together
            callbacks.insert(int(self.checked is not None), TensorBoard(self.log_dir, x=x, seed=seed))
        return Callbacks(callbacks, module, optimizer, make_fit)

    def results(self) -> dict[str, Any]:
        """The fit's validation record (``Fit``'s keyword arguments), the best parameters put back where
        ``keep="best"``."""
        if self.checked is None:
            return {}
        if self.keep == "best":
            self.checked.restore_best()
        return {"validation_history": list(self.checked.history), "best_epoch": self.checked.best_epoch
                if self.keep == "best" else None}


def check_observers(validation: Any, patience: Any, keep: Any, callbacks: Any, log_dir: Any) -> Observers:
    """``fit``'s watching arguments checked, a ``TypeError``/``ValueError`` (``ImportError`` for TensorBoard missing)
    naming the argument before any work."""
    patience, keep = check_validation_options(validation, patience, keep)
    return Observers(validation, patience, keep, check_log_dir(log_dir), check_callbacks(callbacks))
