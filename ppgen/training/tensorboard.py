"""TensorBoard logging of a fit: ``ppgen.fit(..., log_dir=DIR)`` (``ppgen fit --tensorboard DIR``), a
:class:`~ppgen.training.callbacks.Callback` like any other, writing event files through
``torch.utils.tensorboard.SummaryWriter`` (``tensorboard --logdir DIR`` shows them).

At each epoch's end (the global step of every entry is the epoch, from 1): the scalars ``train/loss`` (``fit.history``),
``validation/loss`` (``fit.validation_history``, where the fit has validation data), ``train/lr``,
``train/skipped_batches`` and ``train/epoch_seconds``; every ``pictures_every`` epochs, and at the last, the pictures of
:mod:`ppgen.plots`: ``pictures/samples`` (:func:`ppgen.plots.samples`: decoder means, or draws where the likelihood
has no mean; points in the plane for 2-D data) and ``pictures/latent`` (:func:`ppgen.plots.latent`, E[z | x] of the
rows ``x``), drawn aside from the training (:func:`~ppgen.training.callbacks.aside`). A picture a model cannot give (no
latents to encode, inputs besides x to sample with) is left out, and a text entry ``pictures/skipped`` says why, once.

TensorBoard is an optional dependency: ``pip install "ppgen[tensorboard]"``.
"""

from __future__ import annotations

import os
from typing import Any

from torch import Tensor

from ppgen.training.callbacks import Callback, EpochEnd, aside
from ppgen.utils.checks import check_positive_int

#: the pictures' interval of ``fit(log_dir=...)``: every this many epochs, and at the last.
PICTURES_EVERY = 10
#: the samples in a picture's grid.
N_SAMPLES = 64


def check_tensorboard(name: str = "log_dir") -> None:
    """An ``ImportError`` naming ``name`` and the extra to install where the ``tensorboard`` package is missing."""
    try:
        import tensorboard  # noqa: F401 - only whether it is there
    except ImportError:
        raise ImportError(f"{name}: TensorBoard logging writes event files through torch.utils.tensorboard, which "
                          f"needs the tensorboard package: pip install \"ppgen[tensorboard]\" (or pip install "
                          f"tensorboard)") from None


def check_log_dir(log_dir: Any) -> str | None:
    """``log_dir`` as a string (``None`` stays ``None``): a ``TypeError``/``ValueError`` naming it unless it is a
    non-empty path, an ``ImportError`` where tensorboard is not installed; before any work."""
    if log_dir is None:
        return None
    if not isinstance(log_dir, (str, os.PathLike)):
        raise TypeError(f"log_dir must be a folder path (str or os.PathLike), got {type(log_dir).__name__}")
    if not os.fspath(log_dir):
        raise ValueError("log_dir must name a folder for TensorBoard's event files, got an empty path")
    check_tensorboard()
    return os.fspath(log_dir)


class TensorBoard(Callback):
    """Write a fit's curves and pictures as TensorBoard event files in ``log_dir`` (see the module's docs).

    Arguments:
        log_dir: the folder of the event files (made where missing; a resumed run adds a file beside the first).
        pictures_every: epochs between pictures (and the last epoch's).
        x: the rows whose E[z | x] the latent picture shows (``fit(log_dir=)`` gives the validation rows, or the first
            500 training rows); ``None``: no latent picture.
        seed: the seed of the pictures' draws, the same each time.
    """

    def __init__(self, log_dir: str | os.PathLike, *, pictures_every: int = PICTURES_EVERY, x: Tensor | None = None,
                 seed: int | None = 0) -> None:
        log_dir = check_log_dir(log_dir)
        self.pictures_every = check_positive_int(pictures_every, "pictures_every")
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=log_dir)
        self.log_dir, self.x, self.seed = log_dir, x, seed
        self.skipped: dict[str, str] = {}

    def __call__(self, end: EpochEnd) -> None:
        tags = {"loss": "train/loss", "validation": "validation/loss", "lr": "train/lr",
                "skipped": "train/skipped_batches", "seconds": "train/epoch_seconds"}
        for name, tag in tags.items():
            if name in end.metrics:
                self.writer.add_scalar(tag, end.metrics[name], end.epoch)
        if end.epoch % self.pictures_every == 0 or end.epoch == end.epochs or end.stopped is not None:
            self.pictures(end)
        self.writer.flush()

    def pictures(self, end: EpochEnd) -> None:
        """The samples' and the latent pictures of the model as it stands, at the epoch's step."""
        from ppgen import plots

        with aside(end.model, self.seed):
            fit = end.fit
        if fit.structure.num_inputs > 1:
            for name in ("samples", "latent"):
                self.skip(name, "the model takes inputs besides x, which its draws and its codes need", end.epoch)
        elif self.x is None:
            self.skip("latent", "no rows to encode were given (x=None)", end.epoch)
        drawers = {"samples": lambda: self._samples(fit), "latent": lambda: plots.latent(fit, self.x)}
        for name, draw in drawers.items():
            if name in self.skipped:
                continue
            try:
                with aside(end.model, self.seed):
                    figure = draw()
            except ValueError as error:  # the model does not answer this picture's query (no latents to encode)
                self.skip(name, str(error), end.epoch)
                continue
            self.writer.add_figure(f"pictures/{name}", figure, end.epoch, close=True)

    def skip(self, name: str, why: str, epoch: int) -> None:
        """Leave the picture ``name`` out from now on, and say why once, as the text entry ``pictures/skipped``."""
        if name not in self.skipped:
            self.skipped[name] = why
            self.writer.add_text("pictures/skipped", f"{name}: {why}", epoch)

    @staticmethod
    def _samples(fit: Any) -> Any:
        from ppgen import plots

        try:
            return plots.samples(fit, N_SAMPLES)
        except ValueError:  # a likelihood without a mean: draws instead
            return plots.samples(fit, N_SAMPLES, mean=False)

    def close(self) -> None:
        self.writer.close()
