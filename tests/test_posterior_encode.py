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


def test_encode_of_a_site_drawn_given_another_averages_its_conditional_mean_over_those_draws():
    """HVAE's guide is q(z1|x) q(z2|z1): E_q[z2|x] = E_q(z1|x)[mean of q(z2|z1)], not the mean at one draw of z1."""
    ppgen.seed(0)
    model = models.HVAE(x_dim=6, z_dim=3, z2_dim=2, hidden=(8,), hidden2=(8,))
    x = torch.bernoulli(torch.full((5, 6), 0.4), generator=torch.Generator().manual_seed(0))
    fit = ppgen.fit(model, x, epochs=1, progress=False)
    with torch.no_grad():  # the same expectation by hand, over many draws of z1
        loc1, raw1 = model.encoder(x).chunk(2, dim=-1)
        z1 = loc1 + (torch.nn.functional.softplus(raw1) + 1e-4) * torch.randn(20000, *loc1.shape)
        expected = model.encoder2(z1).chunk(2, dim=-1)[0].mean(0)
    torch.testing.assert_close(fit.encode(x, site="z2", num_samples=20000), expected, atol=0.01, rtol=0)
