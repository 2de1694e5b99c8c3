"""Generative classification: one density model p(x|y) per class, and Bayes' rule p(y|x) ∝ p(x|y) p(y)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ppgen.program.inputs import as_data
from ppgen.queries.result import Fit
from ppgen.training.fitting import fit as fit_model
from ppgen.utils.checks import check_positive_int


class GenerativeClassifier:
    """A classifier made of density models: it fits p(x | y = c) to the points of each class c with
    :func:`ppgen.fit`, estimates p(y = c) by the class frequencies, and classifies by Bayes' rule,

        p(y = c | x) = p(x | c) p(c) / sum_c' p(x | c') p(c').

    Its probabilities are those of the joint model p(x, y), as calibrated as the density models are; its
    ``log_prob(x)`` is that of the mixture p(x) = sum_c p(c) p(x|c). Where a density model's log p(x|c) is not
    exact, it is the importance-sampled estimate of :meth:`ppgen.Fit.log_prob` with ``k`` samples.

    Arguments:
        make_model: builds a fresh program for a class, ``make_model(class_index) -> program`` (any model the
            core can fit: a zoo model, a ``ppgen.Model``, a ``(model_fn, guide_fn)`` pair).
        **fit_options: keyword arguments of :func:`ppgen.fit` (``inference``, ``epochs``, ``lr``, ``seed``...),
            the same for every class.

    Example:
        >>> clf = GenerativeClassifier(lambda c: models.GMM(x_dim=64, n_components=1), epochs=50)  # doctest: +SKIP
        >>> clf.fit(x, y).predict_proba(x_test)  # doctest: +SKIP

    References:
        On Discriminative vs. Generative Classifiers: A comparison of logistic regression and naive Bayes
        (Ng and Jordan, 2001). https://papers.nips.cc/paper/2020-on-discriminative-vs-generative-classifiers
    """

    def __init__(self, make_model: Callable[[int], Any], **fit_options: Any) -> None:
        if not callable(make_model):
            raise TypeError(f"make_model must be callable as make_model(class_index), got {type(make_model).__name__}")
        self.make_model = make_model
        self.fit_options = fit_options
        self.fits: list[Fit] = []
        self.log_prior: Tensor | None = None

    def fit(self, x: Any, y: Any) -> GenerativeClassifier:
        """Fit one density model per class to the rows of x labelled with it.

        Arguments:
            x: data, [N, ...].
            y: the class of each row, integers 0..C-1 (every class present at least once).

        Returns:
            ``self``, fitted.

        Raises:
            ValueError: y is not one integer label per row of x, or a class in 0..max(y) has no point.
        """
        x = as_data(x, name="x")
        labels = torch.as_tensor(y)
        if labels.dim() != 1 or len(labels) != len(x):
            raise ValueError(f"y must hold one label per row of x ({len(x)}), got shape {list(labels.shape)}")
        if labels.is_floating_point() or labels.dtype == torch.bool or bool((labels < 0).any()):
            raise ValueError(f"y must hold integer class labels 0, 1, ..., got dtype {labels.dtype} "
                             f"with minimum {labels.min().item()}")
        counts = torch.bincount(labels.long())
        if bool((counts == 0).any()):
            raise ValueError(f"y: class(es) {(counts == 0).nonzero()[:, 0].tolist()} have no points; labels must "
                             f"run 0..C-1 with every class present")
        self.fits = [fit_model(self.make_model(c), x[labels == c], **self.fit_options) for c in range(len(counts))]
        self.log_prior = (counts.double() / counts.sum()).log()
        return self

    @property
    def n_classes(self) -> int:
        """C, the number of classes seen by :meth:`fit`."""
        self._check_fitted()
        return len(self.fits)

    def _check_fitted(self) -> None:
        if not self.fits:
            raise ValueError("this GenerativeClassifier is not fitted yet: call fit(x, y) first")

    @torch.no_grad()
    def joint_log_prob(self, x: Any, k: int | None = None) -> Tensor:
        """log p(x, y = c) = log p(x|c) + log p(c) for every row and class, Tensor[N, C] in float64."""
        self._check_fitted()
        k = None if k is None else check_positive_int(k, "k")
        x = as_data(x, name="x")
        log_likelihood = torch.stack([f.log_prob(x, k=k).double().cpu() for f in self.fits], dim=-1)
        return log_likelihood + self.log_prior

    def predict_log_proba(self, x: Any, k: int | None = None) -> Tensor:
        """log p(y = c | x), Tensor[N, C]."""
        return self.joint_log_prob(x, k).log_softmax(-1)

    def predict_proba(self, x: Any, k: int | None = None) -> Tensor:
        """p(y = c | x) by Bayes' rule, Tensor[N, C], each row summing to one."""
        return self.predict_log_proba(x, k).exp()

    def predict(self, x: Any, k: int | None = None) -> Tensor:
        """The most probable class of each row, argmax_c p(y = c | x), LongTensor[N]."""
        return self.joint_log_prob(x, k).argmax(-1)

    def log_prob(self, x: Any, k: int | None = None) -> Tensor:
        """log p(x) = log sum_c p(c) p(x|c), the class-mixture density of each row, Tensor[N]."""
        return self.joint_log_prob(x, k).logsumexp(-1)

    def __repr__(self) -> str:
        state = f"{len(self.fits)} classes" if self.fits else "not fitted"
        return f"GenerativeClassifier({state})"
