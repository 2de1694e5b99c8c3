"""A two-sample test for samplers: the MMD permutation test (Gretton et al., 2012, section 3.3) with the mixture of
RBF kernels of :mod:`ppgen.objective.kernels`, its bandwidths set once by the median heuristic on the pooled
sample."""

import torch

from ppgen.objective.kernels import median_bandwidths, mmd2_unbiased, rbf_kernel


def mmd_p_value(x: torch.Tensor, y: torch.Tensor, permutations: int = 500, seed: int = 0) -> float:
    """The permutation p-value of the unbiased MMD^2 between samples x (n points) and y (m points): the fraction of
    random splits of the pooled sample into n and m points (the observed split counted among them) whose MMD^2 is at
    least the observed one.

    Every split's MMD^2 comes from the one kernel matrix G of the pooled sample: for a split marked by a in {0, 1}^N
    (1 for the n points), the sums of G within and across the two parts are a'Ga, (1 - a)'G(1 - a) and a'G(1 - a),
    and the diagonal, k(u, u), is left out of the within-sums as :func:`mmd2_unbiased` leaves it out. The observed
    split's value is checked against :func:`mmd2_unbiased` itself."""
    bandwidths = median_bandwidths(x, y)
    pooled, n, m = torch.cat([x, y]).double(), len(x), len(y)
    gram = rbf_kernel(pooled, pooled, bandwidths.double())
    generator = torch.Generator().manual_seed(seed)
    splits = torch.zeros(permutations + 1, n + m, dtype=torch.float64)
    splits[0, :n] = 1  # the observed split first
    for row in splits[1:]:
        row[torch.randperm(n + m, generator=generator)[:n]] = 1
    within_x = ((splits @ gram) * splits).sum(-1) - n * gram.diagonal()[0]
    within_y = (((1 - splits) @ gram) * (1 - splits)).sum(-1) - m * gram.diagonal()[0]
    across = ((splits @ gram) * (1 - splits)).sum(-1)
    mmd2 = within_x / (n * (n - 1)) + within_y / (m * (m - 1)) - 2 * across / (n * m)
    torch.testing.assert_close(mmd2[0], mmd2_unbiased(x.double(), y.double(), bandwidths.double()))
    return float((mmd2 >= mmd2[0]).double().mean())
