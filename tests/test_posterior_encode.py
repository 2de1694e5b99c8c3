"""Representation quality: what a VAE's posterior means keep of the digit, against random projections of x.

A logistic regression (scikit-learn's, the reference) is trained on 8 numbers per training image and scored on the
test split: E[z | x] of a VAE with z of 8 dimensions, fitted without labels, against x projected on 8 random
Gaussian directions (five draws of the projection, their mean accuracy).
"""

import pytest
import torch
from sklearn.linear_model import LogisticRegression

import ppgen
from ppgen import datasets, models

pytestmark = pytest.mark.usefixtures("one_thread")


def accuracy(train: torch.Tensor, train_labels: torch.Tensor, test: torch.Tensor, test_labels: torch.Tensor) -> float:
    classifier = LogisticRegression(max_iter=2000).fit(train.double().numpy(), train_labels.numpy())
    return classifier.score(test.double().numpy(), test_labels.numpy())


@pytest.mark.slow  # ten epochs of a VAE: about 10 s of CPU, nearer a minute on a shared machine
def test_a_vaes_codes_classify_digits_better_than_as_many_random_projections():
    train, train_labels = datasets.digits(split="train", binarize=True, return_labels=True)
    test, test_labels = datasets.digits(split="test", binarize=True, return_labels=True)
    fit = ppgen.fit(models.VAE(x_dim=64, z_dim=8), train, epochs=10, batch_size=64, lr=3e-3, progress=False)
    codes = accuracy(fit.encode(train), train_labels, fit.encode(test), test_labels)
    projections = [torch.randn(64, 8, generator=torch.Generator().manual_seed(seed)) for seed in range(5)]
    random = sum(accuracy(train @ r, train_labels, test @ r, test_labels) for r in projections) / 5
    assert codes > random + 0.1, (codes, random)
