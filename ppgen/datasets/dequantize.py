"""Comparable log-likelihoods on discrete data: uniform dequantisation of values on a regular grid.

A density p fitted to data that take only the values of a grid of spacing delta (8-bit pixels, the 17 grey
levels of the digits) can pile its mass onto the grid points and report log p(x) without bound; its figure is
a log-density, not the log-probability a discrete model reports, and the two are not comparable. Adding
uniform noise, y = x + delta u with u ~ U[0, 1)^D, makes the data continuous, and

    log P(x) = log E_u[p(x + delta u)] + D log delta >= E_u[log p(x + delta u)] + D log delta,

so a density fitted to the dequantised data gives a lower bound on the probability of the discrete data, in
the same units (nats per point) as a discrete model's log P(x).

References:
    A note on the evaluation of generative models (Theis, van den Oord and Bethge, 2016).
    https://arxiv.org/abs/1511.01844
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

#: data with more distinct values than this are treated as continuous.
MAX_LEVELS = 256


def grid_spacing(x: Tensor, tolerance: float = 1e-4) -> float | None:
    """delta if every value of x lies on the grid min(x) + delta Z, with at most :data:`MAX_LEVELS` values,
    delta the smallest gap between two of them; ``None`` for data that look continuous (or hold one value)."""
    values = x.detach().reshape(-1).double().unique()
    if len(values) < 2 or len(values) > MAX_LEVELS:
        return None
    spacing = (values[1:] - values[:-1]).min().item()
    steps = (values - values[0]) / spacing
    return spacing if bool(((steps - steps.round()).abs() < tolerance).all()) else None


def dequantize(x: Tensor, spacing: float, generator: torch.Generator | None = None) -> Tensor:
    """x + delta u with u ~ U[0, 1)^D, in x's dtype and on its device."""
    u = torch.rand(x.shape, generator=generator, dtype=x.dtype, device="cpu").to(x.device)
    return x + spacing * u


def discrete_log_likelihood(log_density: Tensor, spacing: float, x_dim: int) -> Tensor:
    """log p(x + delta u) + D log delta: a draw of the lower bound on log P(x) of each point, Tensor[N]."""
    return log_density + x_dim * math.log(spacing)
