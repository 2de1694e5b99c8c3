"""The classifier two-sample test (Lopez-Paz and Oquab, 2017): how well can a classifier tell model draws from data?

Label the model's draws 1 and the data 0, with as many of each; train a classifier on a random half of the pooled
points and score its accuracy on the other half. Where p_theta = p_data no classifier beats chance on points it has not
seen: the held-out accuracy is 0.5 up to noise, and each held-out guess is right with probability 1/2, so that the
number right is Binomial(n_test, 1/2) and gives an exact one-sided p-value. Accuracy near 1 means the draws are told
apart from the data at once.

The classifier is scikit-learn's ``MLPClassifier`` (one hidden layer of :data:`HIDDEN` ReLU units, Adam, early
stopping on a tenth of its training half where that half holds :data:`EARLY_STOPPING_POINTS` points or more; below
that, a tenth is too few to judge by, and stopping on it left a classifier that predicts one class, accuracy 0.5
whatever the samples) on standardised inputs, as Lopez-Paz and Oquab used a small neural network:
a linear classifier sees only a difference in the means, and passes two samples of one mean and two covariances. It
runs on the CPU, seeded, independent of the model being judged.

References:
    Revisiting Classifier Two-Sample Tests (Lopez-Paz and Oquab, 2017). https://arxiv.org/abs/1610.06545
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch

from ppgen.queries.score import Score, at_most, check_two_samples
from ppgen.utils.checks import check_positive_int, check_seed

#: the training half at which the classifier stops early on a tenth of it (its validation split of 100 points).
EARLY_STOPPING_POINTS = 1000
#: the fewest points of each sample the test takes: a held-out half of 10 labelled points at the least.
MIN_POINTS = 10
#: hidden units of the classifier.
HIDDEN = 64
#: the classifier's training epochs at the most (on a large training half, early stopping ends most runs sooner).
MAX_EPOCHS = 200


def c2st(samples: Any, data: Any, *, max_points: int | None = 2000, seed: int = 0) -> Score:
    """Held-out accuracy of a classifier trained to separate ``samples`` ~ p_theta from ``data`` ~ p_data.

    Arguments:
        samples: the model's draws, [n, ...].
        data: held-out data, [m, ...], points of the same shape.
        max_points: at most this many points of each sample (drawn at random); the larger sample is cut to the size of
            the smaller in any case, so that chance is 0.5. ``None``: all.
        seed: the seed of the subsample, the split and the classifier.

    Returns:
        A :class:`~ppgen.queries.score.Score`: ``value`` the held-out accuracy a, ``std_error``
        sqrt(a (1 - a) / n_test), ``p_value`` P(Binomial(n_test, 1/2) >= correct guesses), the one-sided test of
        p_theta = p_data.

    Raises:
        TypeError, ValueError: a sample that is not a tensor or array of at least 10 finite points, points of two
            shapes, or ``max_points`` or ``seed`` not a positive int (seed: an int in [0, 2**32)).
    """
    from scipy.stats import binom
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if max_points is not None:
        max_points = check_positive_int(max_points, "max_points")
        if max_points < MIN_POINTS:
            raise ValueError(f"max_points must be at least {MIN_POINTS}, the fewest points of a classifier "
                             f"two-sample test, got {max_points}")
    seed = check_seed(seed)
    x, y = check_two_samples(samples, data, least=MIN_POINTS)
    generator = torch.Generator().manual_seed(seed)
    size = min(len(x), len(y), max_points or len(x))
    x, y = at_most(x, size, generator), at_most(y, size, generator)
    points = torch.cat([x, y]).cpu().numpy()
    labels = np.r_[np.ones(size, dtype=int), np.zeros(size, dtype=int)]
    train, test, train_labels, test_labels = train_test_split(points, labels, test_size=0.5, stratify=labels,
                                                              random_state=seed)
    early = len(train) >= EARLY_STOPPING_POINTS
    classifier = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(HIDDEN,), early_stopping=early,
                                                               max_iter=MAX_EPOCHS, random_state=seed))
    with warnings.catch_warnings():  # a run that meets its epoch limit is a classifier trained for a fixed budget
        warnings.simplefilter("ignore", ConvergenceWarning)
        classifier.fit(train, train_labels)
    correct = int((classifier.predict(test) == test_labels).sum())
    accuracy = correct / len(test)
    p_value = float(binom.sf(correct - 1, len(test), 0.5))
    return Score("c2st", accuracy, math.sqrt(accuracy * (1 - accuracy) / len(test)), p_value, (size, size))
