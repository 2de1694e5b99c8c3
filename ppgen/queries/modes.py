"""Modes captured and the fraction of high-quality samples, for data made of known Gaussian modes (the ring of 8
Gaussians, :func:`ppgen.datasets.ring`), as VEEGAN scores mode collapse.

Srivastava et al. (2017, Sec. 5.1) count a draw as *high quality* when it lies within three standard deviations of the
centre of its nearest mode, ||x~ - c_j|| <= 3 sigma, and report how many of the mixture's modes the model *captures*,
counting a mode when the high-quality draws assigned to it reach a threshold. The threshold here is ``min_count``,
by default a fifth of the draws a model that matches the data would put in each mode, ceil(n / (5 M)) for n draws
and M equally weighted modes: a mode visited by a few stray draws is not captured, one that holds a share of the
draws is. (PacGAN's benchmarks on VEEGAN's ring and grid, Lin et al. 2018, count a mode as lost below 20 of its
expected 100 draws: the same fifth.) ``min_count=1`` counts every mode with a single high-quality draw.

References:
    VEEGAN: Reducing Mode Collapse in GANs using Implicit Variational Learning (Srivastava, Valkov, Russell, Gutmann
    and Sutton, 2017). https://arxiv.org/abs/1705.07761
    PacGAN: The power of two samples in generative adversarial networks (Lin, Khetan, Fanti and Oh, 2018).
    https://arxiv.org/abs/1712.04086
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ppgen.queries.score import Score, check_two_samples
from ppgen.utils.checks import check_positive_float, check_positive_int

#: a draw within this many standard deviations of its nearest mode's centre is of high quality (VEEGAN).
WITHIN_STDS = 3.0
#: by default a mode is captured with at least this fraction of the draws a matching model would put in it.
CAPTURED_SHARE = 0.2


def mode_coverage(samples: Any, centres: Any, std: float, *, min_count: int | None = None) -> tuple[Score, Score]:
    """How many of the modes N(c_j, sigma^2 I) the draws cover, and how many of the draws lie near a mode.

    Arguments:
        samples: the model's draws, [n, d].
        centres: the modes' centres c_j, [M, d].
        std: sigma, the modes' standard deviation.
        min_count: the high-quality draws nearest to a mode that capture it; by default ceil(n / (5 M)).

    Returns:
        Two :class:`~ppgen.queries.score.Score`: ``"modes"``, the number of modes captured (no error, no test), and
        ``"high_quality"``, the fraction q of draws within 3 sigma of their nearest centre, with its binomial standard
        error sqrt(q (1 - q) / n).

    Raises:
        TypeError, ValueError: samples or centres not tensors or arrays of finite points of one dimension,
            ``std`` not a positive number, or ``min_count`` not a positive int.
    """
    std = check_positive_float(std, "std")
    x, centres = check_two_samples(samples, centres, least=1, names=("samples", "centres"))
    n, modes = len(x), len(centres)
    if min_count is None:
        min_count = math.ceil(CAPTURED_SHARE * n / modes)
    min_count = check_positive_int(min_count, "min_count")
    distance, nearest = torch.cdist(x, centres).min(1)
    good = distance <= WITHIN_STDS * std
    counts = torch.bincount(nearest[good], minlength=modes)
    captured = int((counts >= min_count).sum())
    quality = good.double().mean().item()
    return (Score("modes", float(captured), None, None, (n, modes)),
            Score("high_quality", quality, math.sqrt(quality * (1 - quality) / n), None, (n, modes)))
