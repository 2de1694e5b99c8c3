"""Pyro's NUTS on the potential -log f of an unnormalised 2-D Gaussian: the draws' mean and covariance against the
closed form, each draw's recorded lp against log f, the seed fixing every draw, and bad arguments refused before any
step."""

import math

import pytest
import torch
from torch.distributions import MultivariateNormal

import ppgen
from ppgen.objective.hamiltonian import hmc
from ppgen.utils.budget import BUDGET

pytestmark = pytest.mark.usefixtures("one_thread")

MEAN = torch.tensor([1.0, -2.0])
COVARIANCE = torch.tensor([[1.0, 0.8], [0.8, 1.0]])


def log_f(x: torch.Tensor) -> torch.Tensor:
    """log N(x; MEAN, COVARIANCE) + log 7: a Gaussian known up to its normaliser."""
    return MultivariateNormal(MEAN, COVARIANCE).log_prob(x) + math.log(7.0)


def test_nuts_on_a_gaussian_energy_reaches_its_mean_and_covariance():
    draws = hmc(log_f, torch.zeros(2, 2), num_samples=200, warmup_steps=100)
    x = draws.samples["x"]
    assert x.shape == (400, 2) and draws.chains == 2
    # about 4 standard errors: of the mean, 1 / sqrt(400) = 0.05 per coordinate; of a covariance entry, 0.07
    torch.testing.assert_close(x.mean(0), MEAN, atol=0.2, rtol=0)
    torch.testing.assert_close(x.T.cov(), COVARIANCE, atol=0.3, rtol=0)
    assert int(draws.sample_stats["diverging"].sum()) == 0
    torch.testing.assert_close(draws.sample_stats["lp"], log_f(x), rtol=1e-5, atol=1e-5)


def test_a_seed_fixes_every_draw():
    runs = []
    for _ in range(2):
        ppgen.seed(4)
        runs.append(hmc(log_f, torch.zeros(1, 2), num_samples=20, warmup_steps=20).samples["x"])
    assert torch.equal(*runs)


def never_called(x):
    raise AssertionError("log_f ran before the arguments were checked")


@pytest.mark.parametrize("arguments, error, words", [
    (dict(num_samples=0), ValueError, "num_samples must be a positive int, got 0"),
    (dict(warmup_steps=1.5), TypeError, "warmup_steps must be a positive int, got float"),
    (dict(target_accept_prob=1.0), ValueError, "target_accept_prob must be in (0, 1), got 1.0"),
    (dict(max_tree_depth=0), ValueError, "max_tree_depth must be a positive int, got 0"),
])
def test_bad_arguments_are_refused_before_log_f_runs(arguments, error, words):
    with pytest.raises(error) as raised:
        hmc(never_called, torch.zeros(2, 2), **{"num_samples": 10, "warmup_steps": 10, **arguments})
    assert words in str(raised.value)


def test_a_log_f_of_the_wrong_shape_is_refused_before_any_step():
    with pytest.raises(ValueError, match=r"log_f must return one value per point, Tensor\[2\] for x0 of shape "
                                         r"\[2, 2\], got \[\]"):
        hmc(lambda x: x.sum(), torch.zeros(2, 2), num_samples=10, warmup_steps=10)


def test_a_density_of_too_many_coordinates_is_refused(monkeypatch):
    monkeypatch.setattr(BUDGET, "nuts_coordinates", 3)
    with pytest.raises(ValueError, match=r"NUTS over 4 coordinates is over the budget of 3: each draw would cost "
                                         r"minutes. Use Langevin dynamics"):
        hmc(lambda x: -x.square().flatten(1).sum(-1), torch.zeros(2, 2, 2), num_samples=10, warmup_steps=10)


def test_the_chains_run_under_no_grad_as_the_queries_run():
    ppgen.seed(4)
    plain = hmc(log_f, torch.zeros(1, 2), num_samples=10, warmup_steps=10).samples["x"]
    ppgen.seed(4)
    with torch.no_grad():
        under_no_grad = hmc(log_f, torch.zeros(1, 2), num_samples=10, warmup_steps=10).samples["x"]
    assert torch.equal(plain, under_no_grad)
