"""Sample quality: how close are a model's draws x~ ~ p_theta to held-out data x ~ p_data, judged by metrics that need
no likelihood, so that every model that samples can be scored, a generator without a density included.

* ``"mmd"``: MMD^2_u with a mixture of Gaussian kernels, and its permutation p-value (:mod:`~ppgen.queries.mmd_test`);
* ``"c2st"``: the held-out accuracy of a classifier of draws against data, 0.5 where they are indistinguishable
  (:mod:`~ppgen.queries.c2st`);
* ``"frechet"``: the Fréchet distance of Gaussians fitted to features, a classifier's or x's
  (:mod:`~ppgen.queries.frechet`);
* ``"modes"``: modes captured and the fraction of high-quality draws, for data of known modes
  (:mod:`~ppgen.queries.modes`).

Each is a function of two samples on its own; :class:`SampleMetrics` checks a choice of them and their settings before
any work, and scores a model's draws against data in one call, as ``fit.evaluate(test, metrics=...)`` does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ppgen.queries.c2st import MIN_POINTS as C2ST_MIN_POINTS
from ppgen.queries.c2st import c2st
from ppgen.queries.features import FeatureClassifier
from ppgen.queries.frechet import frechet_distance
from ppgen.queries.mmd_test import MIN_POINTS as MMD_MIN_POINTS
from ppgen.queries.mmd_test import mmd_test
from ppgen.queries.modes import mode_coverage
from ppgen.queries.score import Score, check_two_samples
from ppgen.utils.checks import check_positive_float, check_positive_int, check_seed

#: every metric's name, in the order a report lists them.
METRICS = ("mmd", "c2st", "frechet", "modes")
#: the metrics of ``fit.evaluate`` when none are named (and ``"modes"`` where ``modes=`` is given).
DEFAULT_METRICS = ("mmd", "c2st", "frechet")
#: the fewest data points each metric takes.
MIN_POINTS = {"mmd": MMD_MIN_POINTS, "c2st": C2ST_MIN_POINTS, "frechet": 2, "modes": 1}


@dataclass(frozen=True)
class SampleQuality:
    """The scores of a model's draws against data.

    Attributes:
        scores: each :class:`~ppgen.queries.score.Score` by name (``"modes"`` adds ``"high_quality"``).
        n: the model's draws and the data points scored, before a metric's own subsample (``score.n``).
        features: what the Fréchet distance was computed on: ``"classifier"`` or ``"x"``.
    """

    scores: dict[str, Score]
    n: tuple[int, int]
    features: str = "x"

    def to_dict(self) -> dict[str, Any]:
        """Plain Python, JSON-ready: each score's value, standard error, p-value and sample sizes."""
        return {"n": list(self.n), **{name: score.to_dict() for name, score in self.scores.items()},
                **({"frechet_features": self.features} if "frechet" in self.scores else {})}

    def __str__(self) -> str:
        labels = {"mmd": "MMD^2 (perm. test)", "c2st": "C2ST accuracy",
                  "frechet": f"Frechet ({'features' if self.features == 'classifier' else 'x'})",
                  "modes": "modes captured", "high_quality": "high quality"}
        head = (f"sample quality, {self.n[0]} model draws against {self.n[1]} data points (value +- standard error, "
                f"MMD^2's under p = p_data):")
        lines = [head]
        for name, score in self.scores.items():
            if name == "modes":
                text = f"{int(score.value)} of {score.n[1]}"
            else:
                text = str(score) + ("" if score.n == self.n or name == "high_quality" else
                                     f" (on {score.n[0]} and {score.n[1]} of them)")
            lines.append(f"  {labels[name]:<28}{text}")
        return "\n".join(lines)


@dataclass(frozen=True)
class SampleMetrics:
    """A checked choice of sample metrics and their settings; :meth:`__call__` scores draws against data.

    Build it with :meth:`checked`, which refuses bad settings with the argument's name, before any work.
    """

    metrics: tuple[str, ...]
    features: FeatureClassifier | None = None
    modes: tuple[torch.Tensor, float] | None = None
    permutations: int = 200
    seed: int = 0

    @classmethod
    def checked(cls, metrics: str | Sequence[str] | None, *, x_shape: tuple[int, ...], n_data: int,
                n_draws: int | None = None, bounded: bool = True, drawable: bool = True, features: Any = None,
                modes: Any = None, permutations: Any = 200, seed: Any = 0) -> SampleMetrics:
        """The settings, checked against the data they will score: points of ``x_shape``, ``n_data`` of them, against
        ``n_draws`` draws of a model (default: as many).

        Arguments:
            metrics: names among :data:`METRICS`, or one name; ``None``: those of :data:`DEFAULT_METRICS` that
                the points allow (:data:`MIN_POINTS`), with ``"modes"`` where ``modes`` is given, and none where the
                model cannot draw (``drawable=False``); ``()``: none.
            x_shape: the shape of one data point.
            n_data: the number of data points.
            n_draws: the number of the model's draws.
            bounded: whether the model has a density, whose bounds are then evaluated too; without one, no metric is
                an error.
            drawable: whether the program can draw x on its own (``fit.sample``).
            features: a :class:`~ppgen.queries.features.FeatureClassifier` for the Fréchet distance (``None``: on x).
            modes: ``(centres, std)``, the modes' centres [M, *x_shape] and their standard deviation, as
                :func:`ppgen.datasets.ring_modes` gives them.
            permutations: the MMD test's permutations.
            seed: the seed of the permutations, splits and classifiers.

        Raises:
            TypeError, ValueError: an unknown metric (the message lists the choices), ``"modes"`` without ``modes``,
                too few data points for a metric, a feature classifier of points of another size, or a setting of
                the wrong type.
        """
        n_draws = n_data if n_draws is None else n_draws
        fewest = min(n_data, n_draws)
        if metrics is None:
            names = tuple(name for name in DEFAULT_METRICS if fewest >= MIN_POINTS[name]) if drawable else ()
            names += ("modes",) if modes is not None and drawable else ()
        else:
            names = (metrics,) if isinstance(metrics, str) else metrics
            if not isinstance(names, Sequence) or not all(isinstance(name, str) for name in names):
                raise TypeError(f"metrics must be a sequence of names among {', '.join(map(repr, METRICS))}, got "
                                f"{metrics!r}")
            unknown = [name for name in names if name not in METRICS]
            if unknown:
                raise ValueError(f"metrics: unknown {', '.join(map(repr, unknown))}; the choices are "
                                 f"{', '.join(map(repr, METRICS))}")
        names = tuple(name for name in METRICS if name in names)
        size = math.prod(x_shape)
        too_few = [name for name in names if fewest < MIN_POINTS[name]]
        if too_few:
            which = f"x: {n_data} data point(s)" if n_data <= n_draws else f"num_samples: {n_draws} draw(s)"
            raise ValueError(f"{which} are too few for the metric(s) {', '.join(too_few)}, which take at least "
                             f"{max(MIN_POINTS[name] for name in too_few)} (a permutation or classifier test needs "
                             f"points to hold out and relabel); give more")
        if names and not drawable:
            raise ValueError("metrics: the program takes the whole data set and has no x of one point to draw (see "
                             "fit.sample), so there are no draws to score; pass metrics=()")
        if not bounded and not names:
            raise ValueError(f"metrics: none asked for, or none that {fewest} point(s) allow, but this model has no "
                             f"density to bound, so its samples are all there is to evaluate; name metrics among "
                             f"{', '.join(map(repr, METRICS))}")
        if features is not None:
            if not isinstance(features, FeatureClassifier):
                raise TypeError(f"features must be a FeatureClassifier (ppgen.queries.features.feature_classifier), "
                                f"got {type(features).__name__}")
            features.check_input(size, "features")
        if "modes" in names and modes is None:
            raise ValueError("metrics: 'modes' needs the data's modes, modes=(centres, std), e.g. "
                             "modes=ppgen.datasets.ring_modes()")
        return cls(names, features, None if modes is None else _checked_modes(modes, size),
                   check_positive_int(permutations, "permutations"), check_seed(seed))

    def __call__(self, samples: torch.Tensor, data: torch.Tensor) -> SampleQuality:
        """Score ``samples`` ~ p_theta against ``data`` ~ p_data by each chosen metric."""
        scores: dict[str, Score] = {}
        if "mmd" in self.metrics:
            scores["mmd"] = mmd_test(samples, data, permutations=self.permutations, seed=self.seed)
        if "c2st" in self.metrics:
            scores["c2st"] = c2st(samples, data, seed=self.seed)
        if "frechet" in self.metrics:
            scores["frechet"] = frechet_distance(samples, data, features=self.features)
        if "modes" in self.metrics:
            scores["modes"], scores["high_quality"] = mode_coverage(samples, *self.modes)
        return SampleQuality(scores, (len(samples), len(data)), "x" if self.features is None else "classifier")


def sample_quality(samples: Any, data: Any, metrics: str | Sequence[str] | None = None, *, features: Any = None,
                   modes: Any = None, permutations: int = 200, seed: int = 0) -> SampleQuality:
    """Score a model's draws ``samples`` [n, ...] against held-out ``data`` [m, ...] by ``metrics`` (see
    :meth:`SampleMetrics.checked` for the settings and what they refuse)."""
    x, y = check_two_samples(samples, data, least=1)
    quality = SampleMetrics.checked(metrics, x_shape=tuple(y.shape[1:]), n_data=len(y), features=features, modes=modes,
                                    permutations=permutations, seed=seed)
    return quality(x, y)


def _checked_modes(modes: Any, size: int) -> tuple[torch.Tensor, float]:
    """``(centres, std)`` with centres a float64 Tensor[M, size]."""
    if not isinstance(modes, tuple) or len(modes) != 2:
        raise TypeError(f"modes must be a pair (centres, std), as ppgen.datasets.ring_modes() gives it, got "
                        f"{type(modes).__name__}")
    centres, std = modes
    if not hasattr(centres, "shape"):
        raise TypeError(f"modes: centres must be a Tensor [M, d], got {type(centres).__name__}")
    centres = torch.as_tensor(centres).double()
    if centres.dim() < 2 or math.prod(centres.shape[1:]) != size or len(centres) < 1:
        raise ValueError(f"modes: centres must be [M, ...] points of {size} numbers like the data's, got shape "
                         f"{list(centres.shape)}")
    return centres.reshape(len(centres), -1), check_positive_float(std, "modes: std")
