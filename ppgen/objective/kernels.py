"""Gaussian (RBF) kernels and the maximum mean discrepancy between two samples (Gretton et al., 2012).

MMD^2(P, Q) = E k(x, x') + E k(y, y') - 2 E k(x, y), for x, x' ~ P and y, y' ~ Q independent. With a characteristic
kernel it is zero exactly when P = Q. The kernel here is a mixture of Gaussian kernels,
k(x, y) = sum_b exp(-||x - y||^2 / (2 h_b^2)), over bandwidths h_b, as generative moment matching networks use it
(Li, Swersky and Zemel, 2015), so that no single bandwidth has to be right.

References:
    A Kernel Two-Sample Test (Gretton et al., 2012). https://jmlr.org/papers/v13/gretton12a.html
    Generative Moment Matching Networks (Li, Swersky and Zemel, 2015). https://arxiv.org/abs/1502.02761
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

#: the bandwidths of the default mixture, as multiples of the median distance between points of the pooled sample.
MEDIAN_MULTIPLES = (0.25, 0.5, 1.0, 2.0, 4.0)


def flat(x: Tensor) -> Tensor:
    """The points of x, [n, ...], as vectors [n, d] (d = 1 for scalar points; n may be 0)."""
    return x.reshape(len(x), math.prod(x.shape[1:]))


def squared_distances(x: Tensor, y: Tensor) -> Tensor:
    """||x_i - y_j||^2 for every pair, Tensor[n, m] (never below zero). Both samples are shifted by x's mean first,
    which leaves every distance as it is: ``torch.cdist`` takes a matrix-product route that loses float32's digits to
    points far from the origin relative to their spread."""
    x, y = flat(x), flat(y)
    centre = x.detach().mean(0) if len(x) else 0
    return torch.cdist(x - centre, y - centre).square()


def median_bandwidths(x: Tensor, y: Tensor, multiples: tuple[float, ...] = MEDIAN_MULTIPLES) -> Tensor:
    """Bandwidths h_b = c_b * median ||u - v|| over distinct pairs of the pooled sample {x, y} (the median
    heuristic; the lower of the two middle distances where their number is even), for each multiple c_b; computed
    without gradient. Where that median is 0 (identical points, or more than half of the pairs at distance 0) or there
    is no pair (one point in all), h_b = c_b.

    Returns:
        Tensor[len(multiples)], of x's dtype and device.
    """
    with torch.no_grad():
        pooled = torch.cat([flat(x), flat(y)])
        distances = torch.pdist(pooled)
        median = distances.median() if distances.numel() else distances.new_tensor(1.0)
        median = torch.where(median > 0, median, torch.ones_like(median))
        return median * torch.tensor(multiples, dtype=median.dtype, device=median.device)


def rbf_kernel(x: Tensor, y: Tensor, bandwidths: Tensor) -> Tensor:
    """k(x_i, y_j) = sum_b exp(-||x_i - y_j||^2 / (2 h_b^2)) for every pair, Tensor[n, m]."""
    d2 = squared_distances(x, y)
    return torch.exp(-d2.unsqueeze(-1) / (2 * bandwidths.square())).sum(-1)


def mmd2_unbiased(x: Tensor, y: Tensor, bandwidths: Tensor) -> Tensor:
    """The unbiased estimate of MMD^2(P, Q) from x ~ P (n points) and y ~ Q (m points), n, m >= 2 (Gretton et al.,
    2012, Lemma 6): the mean of k over distinct pairs within x, plus that within y, minus twice the mean over all
    pairs across. Its expectation is MMD^2 exactly, so it is zero in expectation when P = Q (and may be below zero).

    Returns:
        A scalar Tensor, differentiable in x and y.
    """
    n, m = len(x), len(y)
    if n < 2 or m < 2:
        raise ValueError(f"the unbiased MMD needs at least 2 points in each sample, got {n} and {m}")
    kxx, kyy, kxy = rbf_kernel(x, x, bandwidths), rbf_kernel(y, y, bandwidths), rbf_kernel(x, y, bandwidths)
    within_x = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    within_y = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return within_x + within_y - 2 * kxy.mean()
