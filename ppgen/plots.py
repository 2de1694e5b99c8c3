r"""Pictures of a fitted model: samples, a latent space, posteriors, interpolations, reconstructions, a training curve.

One function per picture.  Each draws on a :class:`matplotlib.figure.Figure` attached to the Agg
canvas directly (never ``pyplot``), so nothing depends on a display or on global figure state.
The file format follows the extension of ``path`` (``.png``, ``.pdf``, ``.svg``, ...).

Two kinds: pictures of arrays (:func:`image_grid`, :func:`scatter`, :func:`loss_curve`) take a ``torch.Tensor``
(on any device) or anything :func:`numpy.asarray` accepts, write one file and free their figure; pictures of a
fit (:func:`latent`, :func:`posterior`, :func:`samples`, :func:`interpolation`, :func:`reconstructions`) return
the figure, which a notebook shows, and write it to ``path`` when one is given.
"""

from __future__ import annotations

import io
import math
import os
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ppgen.run.checkpoint import atomic_write

if TYPE_CHECKING:
    from ppgen.queries.posterior import Posterior
    from ppgen.queries.result import Fit

__all__ = ["DPI", "FIGSIZE", "image_grid", "interpolation", "latent", "loss_curve", "posterior", "reconstructions",
           "samples", "scatter"]

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


def _save(fig: Figure, path: str | os.PathLike, keep: bool = False) -> None:
    """Write the figure to ``path`` atomically: a link there is replaced, never written through; the figure is
    cleared afterwards unless ``keep``."""
    suffix = os.path.splitext(os.fspath(path))[1].lstrip(".").lower() or "png"
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format=suffix)
    finally:
        if not keep:
            fig.clear()
    atomic_write(path, lambda f: f.write(buffer.getvalue()))


def _returned(fig: Figure, path: str | os.PathLike | None) -> Figure:
    """A picture of a fit: laid out, written to ``path`` where given, and returned."""
    fig.tight_layout()
    if path is not None:
        _save(fig, path, keep=True)
    return fig


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
    fig = _figure()
    _draw_grid(fig.subplots(), _numpy(x), shape, title)
    fig.tight_layout()
    _save(fig, path)


def _draw_grid(ax: Any, x: np.ndarray, shape: tuple[int, int] | None, title: str, cols: int | None = None) -> None:
    """Flattened images (n, D) as one grid of tiles on ``ax``, ``cols`` to a row (by default a square grid)."""
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"image_grid expects images of shape (n, D) with n >= 1, got {x.shape}")
    n, d = x.shape
    if shape is None:
        side = _square_side(d)
        shape = (side, side) if side is not None else None
    if shape is not None and shape[0] * shape[1] != d:
        raise ValueError(f"image shape {tuple(shape)} does not hold D={d} pixels")
    lo, hi = min(0.0, float(np.nanmin(x))), max(1.0, float(np.nanmax(x)))
    if shape is None:
        canvas, aspect = x, "auto"
        ax.set_xlabel("pixel $j$")
        ax.set_ylabel("sample $i$")
    else:
        h, w = shape
        cols = cols or math.ceil(math.sqrt(n))
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
    fig = _figure()
    _draw_points(fig.subplots(), _numpy(x2d), labels, reference, title, xlabel, ylabel)
    fig.tight_layout()
    _save(fig, path)


def _draw_points(ax: Any, x2d: np.ndarray, labels: ArrayLike | None, reference: ArrayLike | None, title: str,
                 xlabel: str, ylabel: str) -> None:
    """Points in the plane on ``ax``, coloured by label with a legend where there are labels."""
    if x2d.ndim != 2 or x2d.shape[1] != 2:
        raise ValueError(f"scatter expects points of shape (n, 2), got {x2d.shape}")
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


# ---------------------------------------------------------------------------------------------
# Pictures of a fit


def latent(fit: Fit, x: Any, labels: ArrayLike | None = None, *, site: str | None = None,
           path: str | os.PathLike | None = None) -> Figure:
    r"""The representation in 2-D: E[z | x] of each row of x (:meth:`ppgen.Fit.encode`), coloured by label.

    A 1-D code is drawn on a line, a 2-D one as it is, a wider one by its first two principal components (PCA,
    with the share of variance each explains on its axis).

    Arguments:
        fit: a fitted model with latents.
        x: the points to encode, Tensor[N, ...].
        labels: a label per point, for colour and legend.
        site: the latent site, where the model has several.
        path: where to write the picture too.
    """
    z = fit.encode(x, site=site).detach().cpu().double().reshape(len(x), -1).numpy()
    name = site or (fit.latent_sites[0] if fit.latent_sites else "z")
    title, xlabel, ylabel = f"posterior means E[{name} | x]", f"{name}[0]", f"{name}[1]"
    if z.shape[1] == 1:
        z, ylabel = np.concatenate([z, np.zeros_like(z)], axis=1), f"({name} is 1-D)"
    elif z.shape[1] > 2 and bool((z.var(0) > 0).any()):
        from sklearn.decomposition import PCA

        pca = PCA(n_components=2)
        share = pca.fit(z).explained_variance_ratio_ * 100
        z, title = pca.transform(z), title + f" (PCA of {z.shape[1]}-D {name})"
        xlabel, ylabel = f"PC 1 ({share[0]:.0f}% of variance)", f"PC 2 ({share[1]:.0f}% of variance)"
    fig = _figure()
    _draw_points(fig.subplots(), z[:, :2], labels, None, title, xlabel, ylabel)
    return _returned(fig, path)


def posterior(draws: Posterior, *, var_names: Sequence[str] | None = None, point: int = 0,
              path: str | os.PathLike | None = None) -> Figure:
    r"""The marginal posteriors of one data point through ``arviz.plot_posterior``: a density per coordinate,
    its mean and 94% highest-density interval.

    Arguments:
        draws: the posterior (:meth:`ppgen.Fit.posterior`).
        var_names: the sites to draw (default: all).
        point: which data point's local latents to draw; global latents are drawn whatever it is.
        path: where to write the picture too.
    """
    import arviz as az  # imported on use: it is slow to import

    data = draws.to_arviz().posterior
    if "point" in data.dims:
        if not 0 <= point < data.sizes["point"]:
            raise ValueError(f"point must index the {data.sizes['point']} data points, got {point}")
        data = data.isel(point=point)
    names = list(var_names) if var_names is not None else list(data.data_vars)
    panels = sum(data[name].isel(chain=0, draw=0).size for name in names)
    cols = min(panels, 4)
    fig = _figure(figsize=(3.0 * cols, 2.5 * math.ceil(panels / cols)))
    axes = np.atleast_1d(fig.subplots(math.ceil(panels / cols), cols)).ravel()
    for ax in axes[panels:]:
        ax.set_axis_off()
    with warnings.catch_warnings():  # ArviZ 0.23's call of a helper that matplotlib 3.11 deprecates: not ours to fix
        warnings.filterwarnings("ignore", message="Passing a dict or None as alias_mapping")
        az.plot_posterior(data, var_names=names, ax=axes[:panels], textsize=8)
    return _returned(fig, path)


def samples(fit: Fit, n: int = 64, *given: Any, mean: bool = True, shape: tuple[int, int] | None = None,
            path: str | os.PathLike | None = None) -> Figure:
    r"""n samples of the model as a grid: by default the decoder's means E[x | z] for prior draws z (the VAE
    literature's pictures), or draws x ~ p(x) with ``mean=False``; 2-D data as points in the plane.

    Arguments:
        fit: a fitted model.
        n: the number of samples.
        given: the model's inputs besides x, n rows each (see :meth:`ppgen.Fit.sample`).
        mean: draw means rather than samples; a model whose likelihood has no mean needs ``mean=False``.
        shape: height and width of one image (see :func:`image_grid`).
        path: where to write the picture too.
    """
    x = _numpy(fit.sample(n, *given, mean=mean)).reshape(n, -1)
    what = r"decoder means $E[x \mid z]$, $z \sim p(z)$" if mean else r"samples $x \sim p_\theta(x)$"
    fig = _figure()
    if x.shape[1] == 2:
        _draw_points(fig.subplots(), x, None, None, what, "$x_1$", "$x_2$")
    else:
        _draw_grid(fig.subplots(), x, shape, what)
    return _returned(fig, path)


def interpolation(fit: Fit, x_a: Any, x_b: Any, steps: int = 10, *, site: str | None = None,
                  shape: tuple[int, int] | None = None, path: str | os.PathLike | None = None) -> Figure:
    r"""The decoded path between two codes: E[x | z_t] for z_t = (1 - t) E[z | x_a] + t E[z | x_b], t from 0 to 1.

    Arguments:
        fit: a fitted latent-variable model of x alone.
        x_a: the start, one data point (shape [D] or [1, D]).
        x_b: the end, one data point.
        steps: the number of points on the path, ends included (at least 2).
        site: the latent site to interpolate, where the model has several.
        shape: height and width of one image (see :func:`image_grid`).
        path: where to write the picture too.
    """
    from ppgen.queries.representation import latent_site
    from ppgen.queries.sampling import decode

    if not isinstance(steps, int) or steps < 2:
        raise ValueError(f"steps must be an int of at least 2, got {steps!r}")
    ends = [torch.as_tensor(v).reshape(1, *fit.x_shape) for v in (x_a, x_b)]
    name = latent_site(fit.model, fit.structure, site)
    z_a, z_b = (fit.encode(v, site=site) for v in ends)
    t = torch.linspace(0, 1, steps, dtype=z_a.dtype, device=z_a.device).reshape(-1, *(1,) * (z_a.dim() - 1))
    with torch.no_grad():
        x = decode(fit.model, fit.structure, fit.example.to(fit.device), {name: (1 - t) * z_a + t * z_b})
    fig = _figure(figsize=(FIGSIZE[0] * 1.6, FIGSIZE[1] * 0.5))
    _draw_grid(fig.subplots(), _numpy(x).reshape(steps, -1), shape,
               rf"$E[x \mid z_t]$, $z_t$ from E[{name} | $x_a$] to E[{name} | $x_b$]", cols=steps)
    return _returned(fig, path)


def reconstructions(fit: Fit, x: Any, *, site: str | None = None, shape: tuple[int, int] | None = None,
                    path: str | os.PathLike | None = None) -> Figure:
    r"""Each row of x (top) above its reconstruction E[x | z = E[z | x]] (bottom).

    Arguments:
        fit: a fitted latent-variable model of x alone.
        x: the points, Tensor[N, ...] (a dozen or so make a readable picture).
        site: the latent site to encode, where the model has several.
        shape: height and width of one image (see :func:`image_grid`).
        path: where to write the picture too.
    """
    from ppgen.queries.representation import latent_site
    from ppgen.queries.sampling import decode

    x = torch.as_tensor(x)
    name = latent_site(fit.model, fit.structure, site)
    with torch.no_grad():
        rebuilt = decode(fit.model, fit.structure, fit.example.to(fit.device), {name: fit.encode(x, site=site)})
    both = np.concatenate([_numpy(x).reshape(len(x), -1), _numpy(rebuilt).reshape(len(x), -1)])
    fig = _figure(figsize=(FIGSIZE[0] * 1.6, FIGSIZE[1] * 0.5))
    _draw_grid(fig.subplots(), both, shape, r"data $x$ (top) and $E[x \mid z = E[z \mid x]]$ (bottom)", cols=len(x))
    return _returned(fig, path)
