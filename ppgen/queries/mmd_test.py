"""The kernel two-sample test: MMD^2 between model draws and held-out data, with its permutation p-value.

The statistic is the unbiased MMD^2_u (Gretton et al., 2012, Lemma 6) under the mixture of Gaussian kernels of
:mod:`ppgen.objective.kernels`, k(x, y) = sum_b exp(-||x - y||^2 / (2 h_b^2)), with the bandwidths h_b set once by the
median heuristic on the pooled sample, so that every permutation is scored with the same kernel. Under p_theta =
p_data the n + m pooled points are exchangeable: relabelling them at random draws the statistic from its null
distribution, and the p-value (1 + #{permutations at least as large as observed}) / (1 + permutations) is exact at
any sample size (Gretton et al., 2012, Sec. 5; the + 1 counts the observed labelling, so that p is never 0).

References:
    A Kernel Two-Sample Test (Gretton, Borgwardt, Rasch, Schölkopf and Smola, 2012).
    https://jmlr.org/papers/v13/gretton12a.html
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ppgen.objective.kernels import median_bandwidths, rbf_kernel
from ppgen.queries.score import Score, at_most, check_two_samples
from ppgen.utils.checks import check_positive_int, check_seed

#: the fewest points of each sample the test takes: C(10, 5) = 252 labellings, enough to reach p < 0.01.
MIN_POINTS = 5
#: rows of the pooled kernel matrix computed at once (rows x pooled points x bandwidths numbers in memory).
KERNEL_ROWS = 512


def mmd_test(samples: Any, data: Any, *, permutations: int = 200, max_points: int | None = 1000,
             seed: int = 0) -> Score:
    """MMD^2_u between ``samples`` ~ p_theta and ``data`` ~ p_data, and the permutation p-value of p_theta = p_data.

    Arguments:
        samples: the model's draws, [n, ...].
        data: held-out data, [m, ...], points of the same shape.
        permutations: random relabellings of the pooled sample; the p-value is a multiple of 1 / (permutations + 1).
        max_points: at most this many points of each sample are used (drawn at random), as the pooled kernel matrix
            holds (n + m)^2 numbers and each permutation costs (n + m)^2 operations; ``None``: all.
        seed: the seed of the subsample and the permutations (the same seed, the same p-value).

    Returns:
        A :class:`~ppgen.queries.score.Score`: ``value`` MMD^2_u (zero in expectation where p_theta = p_data, and may be
        below zero), ``std_error`` the standard deviation of the statistic over the permutations (its spread under
        p_theta = p_data, the scale to read the value against), ``p_value`` the permutation p-value.

    Raises:
        TypeError, ValueError: a sample that is not a tensor or array of at least 5 finite points, points of two
            shapes, or ``permutations``, ``max_points`` or ``seed`` not a positive int (seed: an int in [0, 2**32)).
    """
    permutations = check_positive_int(permutations, "permutations")
    if max_points is not None:
        max_points = check_positive_int(max_points, "max_points")
        if max_points < MIN_POINTS:
            raise ValueError(f"max_points must be at least {MIN_POINTS}, the fewest points of a permutation test, "
                             f"got {max_points}")
    generator = torch.Generator().manual_seed(check_seed(seed))
    x, y = check_two_samples(samples, data, least=MIN_POINTS)
    x, y = at_most(x, max_points, generator), at_most(y, max_points, generator)
    pooled = torch.cat([x, y])
    kernel = pooled_kernel(pooled, median_bandwidths(x, y))
    labels = torch.zeros(len(pooled), permutations + 1, dtype=pooled.dtype)
    labels[: len(x), 0] = 1  # the observed labelling, then the permuted ones
    for p in range(1, permutations + 1):
        labels[torch.randperm(len(pooled), generator=generator)[: len(x)], p] = 1
    statistics = mmd2_of_labellings(kernel, labels.to(pooled.device), len(x))
    observed, null = statistics[0], statistics[1:]
    p_value = (1 + int((null >= observed).sum())) / (permutations + 1)
    return Score("mmd", observed.item(), null.std().item() if permutations > 1 else None, p_value, (len(x), len(y)))


def pooled_kernel(pooled: Tensor, bandwidths: Tensor) -> Tensor:
    """k(u_i, u_j) for every pair of the pooled sample, Tensor[N, N], computed :data:`KERNEL_ROWS` rows at a time."""
    return torch.cat([rbf_kernel(rows, pooled, bandwidths) for rows in pooled.split(KERNEL_ROWS)])


def mmd2_of_labellings(kernel: Tensor, labels: Tensor, n: int) -> Tensor:
    """MMD^2_u for each labelling of the pooled sample, Tensor[P], from its kernel matrix K, Tensor[N, N], and the
    labellings a, Tensor[N, P] (a_ip = 1 where point i is in the first sample, n of them, else 0): with b = 1 - a and
    m = N - n, (a'Ka - tr_a K) / (n(n - 1)) + (b'Kb - tr_b K) / (m(m - 1)) - 2 a'Kb / (nm), as
    :func:`ppgen.objective.kernels.mmd2_unbiased` computes it for one labelling."""
    m = len(kernel) - n
    others = 1 - labels
    k_labels = kernel @ labels
    diagonal = kernel.diagonal().unsqueeze(1)
    within_x = ((k_labels * labels).sum(0) - (diagonal * labels).sum(0)) / (n * (n - 1))
    within_y = (((kernel @ others) * others).sum(0) - (diagonal * others).sum(0)) / (m * (m - 1))
    across = (k_labels * others).sum(0) / (n * m)
    return within_x + within_y - 2 * across
