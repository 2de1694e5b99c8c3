r"""Pictures of a fitted model: samples, a latent space, a training curve.

One function per picture.  Each draws on a :class:`matplotlib.figure.Figure` attached to the Agg
canvas directly (never ``pyplot``), so nothing depends on a display or on global figure state,
writes one file, and frees its figure before it returns.  The file format follows the extension
of ``path`` (``.png``, ``.pdf``, ``.svg``, ...).

Every function takes a ``torch.Tensor`` (on any device) or anything :func:`numpy.asarray` accepts.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ppgen.checkpoint import atomic_write

__all__ = ["DPI", "FIGSIZE", "image_grid", "loss_curve", "scatter"]

#: Figure size in inches and resolution of every picture: a PNG is ``FIGSIZE * DPI`` pixels.
FIGSIZE: tuple[float, float] = (5.0, 5.0)
DPI: int = 100

ArrayLike = torch.Tensor | np.ndarray | Sequence


def _numpy(x: ArrayLike) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _figure(figsize: tuple[float, float] = FIGSIZE) -> Figure:
    fig = Figure(figsize=figsize, dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | os.PathLike) -> None:
    """Write the figure to ``path`` atomically: a link there is replaced, never written through."""
    suffix = os.path.splitext(os.fspath(path))[1].lstrip(".").lower() or "png"
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format=suffix)
    finally:
        fig.clear()
    atomic_write(path, lambda f: f.write(buffer.getvalue()))


def _square_side(d: int) -> int | None:
    side = math.isqrt(d)
    return side if side * side == d else None


def image_grid(
    x: ArrayLike,
    path: str | os.PathLike,
    *,
    shape: tuple[int, int] | None = None,
    title: str = r"samples $x \sim p_\theta(x)$",
) -> None:
    r"""Draws ``n`` flattened images as one grid of tiles.

    Arguments:
        x: Images, of shape ``(n, D)``.
        path: Where to write the picture.
        shape: Height and width of one image, with ``height * width == D``. By default a square
            ``(sqrt(D), sqrt(D))`` when ``D`` is a perfect square (64 for 8x8 digits, 784 for MNIST);
            otherwise every image is drawn as one row of pixels, so the grid is the ``(n, D)`` matrix.
        title: Title of the picture.

    Pixel values in [0, 1] map onto black to white; values outside that range widen the scale.
    """
    x = _numpy(x)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"image_grid expects images of shape (n, D) with n >= 1, got {x.shape}")
    n, d = x.shape
    if shape is None:
        side = _square_side(d)
        shape = (side, side) if side is not None else None
    if shape is not None and shape[0] * shape[1] != d:
        raise ValueError(f"image shape {tuple(shape)} does not hold D={d} pixels")
    lo, hi = min(0.0, float(np.nanmin(x))), max(1.0, float(np.nanmax(x)))

    fig = _figure()
    ax = fig.subplots()
    if shape is None:
        canvas, aspect = x, "auto"
        ax.set_xlabel("pixel $j$")
        ax.set_ylabel("sample $i$")
    else:
        h, w = shape
        cols = math.ceil(math.sqrt(n))
        rows = math.ceil(n / cols)
        # One array with a one-pixel border between tiles: a single imshow, however many images.
        canvas = np.full((rows * (h + 1) + 1, cols * (w + 1) + 1), np.nan)
        for i, image in enumerate(x.reshape(n, h, w)):
            r, c = divmod(i, cols)
            canvas[1 + r * (h + 1) : (r + 1) * (h + 1), 1 + c * (w + 1) : (c + 1) * (w + 1)] = image
        aspect = "equal"
        ax.set_axis_off()
    cmap = _gray_with_border()
    ax.imshow(canvas, cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest", aspect=aspect)
    ax.set_title(title)
    fig.tight_layout()
    _save(fig, path)


def _gray_with_border():
    # The border between tiles (NaN) in a colour that no pixel can take.
    return colormaps["gray"].with_extremes(bad="#3b6ea8")


def scatter(
    x2d: ArrayLike,
    path: str | os.PathLike,
    labels: ArrayLike | None = None,
    *,
    reference: ArrayLike | None = None,
    title: str = r"samples $x \sim p_\theta(x)$",
    xlabel: str = "$x_1$",
    ylabel: str = "$x_2$",
) -> None:
    r"""Draws points in the plane: 2-D samples, or a 2-D view of a latent space.

    Arguments:
        x2d: Points, of shape ``(n, 2)``.
        path: Where to write the picture.
        labels: Optional class labels, of shape ``(n,)``; points are coloured by label, with a legend.
        reference: Optional points, of shape ``(m, 2)``, drawn in grey behind ``x2d`` (the data, say).
        title: Title of the picture.
        xlabel: Label of the horizontal axis.
        ylabel: Label of the vertical axis.
    """
    x2d = _numpy(x2d)
    if x2d.ndim != 2 or x2d.shape[1] != 2:
        raise ValueError(f"scatter expects points of shape (n, 2), got {x2d.shape}")
    fig = _figure()
    ax = fig.subplots()
    if reference is not None:
        reference = _numpy(reference)
        ax.scatter(reference[:, 0], reference[:, 1], s=4, c="0.8", label="data", rasterized=True)
    size = 6 if len(x2d) > 500 else 12
    if labels is None:
        ax.scatter(x2d[:, 0], x2d[:, 1], s=size, c="C0", alpha=0.8, label="model", rasterized=True)
        if reference is not None:
            ax.legend(loc="best", fontsize="small")
    else:
        labels = _numpy(labels).reshape(-1)
        if len(labels) != len(x2d):
            raise ValueError(f"{len(labels)} labels for {len(x2d)} points")
        classes = np.unique(labels)
        for i, cls in enumerate(classes):
            keep = labels == cls
            name = f"{int(cls)}" if float(cls).is_integer() else f"{cls:g}"
            ax.scatter(x2d[keep, 0], x2d[keep, 1], s=size, color=f"C{i % 10}", alpha=0.8, label=name,
                       rasterized=True)
        if len(classes) <= 20:
            ax.legend(title="$y$", loc="best", fontsize="small", markerscale=1.5)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    fig.tight_layout()
    _save(fig, path)


def loss_curve(
    history: Sequence[float],
    path: str | os.PathLike,
    *,
    title: str = "training loss",
    ylabel: str = "loss (nats per data point)",
) -> None:
    r"""Draws the mean training loss of every epoch.

    Arguments:
        history: One loss per epoch (``Fit.history``): the negative objective, in nats per data point.
        path: Where to write the picture.
        title: Title of the picture.
        ylabel: Label of the vertical axis, the objective in its own notation (e.g. ``-ELBO``).
    """
    loss = _numpy(list(history)).reshape(-1)
    fig = _figure(figsize=(FIGSIZE[0] * 1.2, FIGSIZE[1] * 0.8))
    ax = fig.subplots()
    epochs = np.arange(1, len(loss) + 1)
    ax.plot(epochs, loss, marker="o" if len(loss) <= 30 else None, markersize=3)
    ax.set_title(title)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    if len(loss):
        ax.set_xlim(0.5, len(loss) + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    _save(fig, path)
