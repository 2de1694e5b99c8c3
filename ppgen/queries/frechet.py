"""The Fréchet distance between model draws and data: FID's formula, in the feature space of a classifier trained on
the data set itself, or on x itself.

Fit a Gaussian to each sample's features f(x), N(mu_1, S_1) to the model's draws and N(mu_2, S_2) to the data, and
report the Fréchet (2-Wasserstein) distance between the two Gaussians, squared (Dowson and Landau, 1982):

    d^2 = ||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2)),

with Tr (S_1 S_2)^(1/2) = Tr (S_1^(1/2) S_2 S_1^(1/2))^(1/2), the trace of the square root of a symmetric positive
semi-definite matrix, computed here from two symmetric eigen-decompositions (no complex parts to discard, as
``scipy.linalg.sqrtm`` of the non-symmetric S_1 S_2 leaves).

**This is not the FID of the literature.** Heusel et al. (2017) take f from the Inception-v3 network trained on
ImageNet, which is not shipped and cannot be downloaded here; ppgen's f is the penultimate layer of a small classifier
of the data set's own labels (:mod:`ppgen.queries.features`), or x itself when no classifier is given. The figures
therefore differ from published FIDs in scale and meaning: they compare models on one data set under one feature map
(the same classifier, the same number of draws), never with numbers in papers. The estimate is also biased upwards by
the sampling error of the covariances (about Tr of their noise, O(d / n)), so that two samples of one distribution
score above 0; compare models at the same n.

References:
    The Fréchet distance between multivariate normal distributions (Dowson and Landau, 1982).
    https://doi.org/10.1016/0047-259X(82)90077-X
    GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium (Heusel et al., 2017).
    https://arxiv.org/abs/1706.08500
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ppgen.queries.score import Score, check_two_samples

if TYPE_CHECKING:
    from ppgen.queries.features import FeatureClassifier


def frechet_distance(samples: Any, data: Any, *, features: FeatureClassifier | None = None) -> Score:
    """d^2 between Gaussians fitted to f(``samples``) and f(``data``): f the penultimate layer of ``features``, or the
    identity on the flattened x when it is ``None``.

    Arguments:
        samples: the model's draws, [n, ...].
        data: held-out data, [m, ...], points of the same shape.
        features: a :class:`~ppgen.queries.features.FeatureClassifier` of points of this shape.

    Returns:
        A :class:`~ppgen.queries.score.Score` of ``value`` d^2; ``std_error`` and ``p_value`` are ``None``: the
        estimate's error is dominated by its O(d / n) bias, which a standard error would not show.

    Raises:
        TypeError, ValueError: a sample that is not a tensor or array of at least 2 finite points, points of two
            shapes, or ``features`` not a classifier of points of this many numbers.
    """
    x, y = check_two_samples(samples, data)
    if features is not None:
        features.check_input(x.shape[1], "features")
        x, y = features.features(x), features.features(y)
    moments = [(f.mean(0).cpu().numpy(), np.atleast_2d(np.cov(f.cpu().numpy(), rowvar=False))) for f in (x, y)]
    return Score("frechet", gaussian_frechet(*moments[0], *moments[1]), None, None, (len(x), len(y)))


def gaussian_frechet(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1^(1/2) S_2 S_1^(1/2))^(1/2)), the squared 2-Wasserstein distance
    between N(mu_1, S_1) and N(mu_2, S_2) for symmetric positive semi-definite S_1, S_2 (float64 throughout; the
    eigenvalues that rounding leaves below zero count as zero)."""
    cov1, cov2 = np.asarray(cov1, dtype=np.float64), np.asarray(cov2, dtype=np.float64)
    values, vectors = np.linalg.eigh((cov1 + cov1.T) / 2)
    root1 = (vectors * np.sqrt(values.clip(min=0))) @ vectors.T
    middle = root1 @ cov2 @ root1
    cross = np.sqrt(np.linalg.eigvalsh((middle + middle.T) / 2).clip(min=0)).sum()
    shift = np.asarray(mu1, dtype=np.float64) - np.asarray(mu2, dtype=np.float64)
    return float(shift @ shift + np.trace(cov1) + np.trace(cov2) - 2 * cross)

