"""The conditional VAE: bound ordering on held-out data, and samples whose class follows the condition c."""

import pyro
import pytest
import torch

import ppgen
from ppgen import datasets, models
from test_latent_families import paired_lower

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def zeros_and_ones():
    """The binarised digits 0 and 1, well separated classes: training and test images with their labels."""
    x, y = datasets.digits(binarize=True, return_labels=True)
    x_test, y_test = datasets.digits(split="test", binarize=True, return_labels=True)
    return (x[y < 2], y[y < 2]), (x_test[y_test < 2], y_test[y_test < 2])


@pytest.fixture(scope="module")
def fitted(zeros_and_ones):
    (x, y), _ = zeros_and_ones
    return ppgen.fit(models.CVAE(x_dim=64, c_dim=2, z_dim=4, hidden=(64,)), (x, y), epochs=40, batch_size=32,
                     lr=3e-3, seed=0, progress=False)


def test_samples_have_the_class_of_their_condition(fitted, zeros_and_ones):
    """Draws x ~ p(x | c) judged by the nearest class mean of the training images agree with c far above chance.

    A CVAE that ignored c would draw each class about as often whatever c is, an agreement of about 1/2 (with
    400 draws its standard deviation is 0.025); the nearest class mean tells the digits 0 and 1 apart almost
    perfectly on real images. So 0.9, sixteen standard deviations above chance, is met only by draws that
    follow c, yet leaves room for the speckle of Bernoulli draws.
    """
    (x, y), _ = zeros_and_ones
    means = torch.stack([x[y == c].mean(0) for c in range(2)])
    c = torch.arange(400) % 2
    draws = fitted.sample(400, c)
    judged = torch.cdist(draws.to(means.dtype), means).argmin(-1)
    assert (judged == c).float().mean() > 0.9


def test_elbo_below_iwae_k_below_iwae_5000_on_held_out_data(fitted, zeros_and_ones):
    _, (x, y) = zeros_and_ones
    x, y = x[:40], y[:40]
    elbo = torch.stack([fitted.iwae_bound(x, y, k=1) for _ in range(10)]).mean(0)  # per point, 10 draws
    iwae_k, iwae_5000 = fitted.iwae_bound(x, y, k=20), fitted.iwae_bound(x, y, k=5000)
    assert paired_lower(elbo, iwae_k) > 0 and paired_lower(iwae_k, iwae_5000) > 0
    assert elbo.mean() < iwae_5000.mean()


def test_labels_are_the_same_condition_as_their_one_hot_vectors(fitted, zeros_and_ones):
    _, (x, y) = zeros_and_ones
    one_hot = torch.nn.functional.one_hot(y, 2).float()
    model = fitted.model
    pyro.set_rng_seed(4)
    by_label = ppgen.log_weights(model, (x, y), k=3)
    pyro.set_rng_seed(4)
    by_vector = ppgen.log_weights(model, (x, one_hot), k=3)
    torch.testing.assert_close(by_label, by_vector)


def test_a_real_valued_condition_is_fitted_and_bad_conditions_are_refused():
    x = torch.bernoulli(torch.full((12, 6), 0.5))
    c = torch.randn(12, 3)
    fit = ppgen.fit(models.CVAE(x_dim=6, c_dim=3, hidden=(8,)), (x, c), epochs=1, progress=False)
    assert fit.sample(4, torch.randn(4, 3)).shape == (4, 6)
    with pytest.raises(ValueError, match=r"c must be Tensor\[N, 3\]"):
        ppgen.fit(models.CVAE(x_dim=6, c_dim=3), (x, torch.randn(12, 2)), epochs=1, progress=False)
    with pytest.raises(ValueError, match="c as labels must be LongTensor"):
        ppgen.fit(models.CVAE(x_dim=6, c_dim=3), (x, torch.arange(12)), epochs=1, progress=False)


def test_every_parameter_gets_a_gradient():
    model = models.CVAE(x_dim=6, c_dim=3, hidden=(8,))
    x, c = torch.bernoulli(torch.full((12, 6), 0.5)), torch.arange(12) % 3
    ppgen.log_weights(model, (x, c), k=2).mean().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
