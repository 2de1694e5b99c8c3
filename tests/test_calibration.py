"""Simulation-based calibration (Talts et al. 2018) of posterior draws on a conjugate model.

References:
    Validating Bayesian Inference Algorithms with Simulation-Based Calibration. Talts, Betancourt, Simpson,
    Vehtari and Gelman, 2018. https://arxiv.org/abs/1804.06788

Probabilistic PCA is linear-Gaussian, so p(z|x) is Gaussian in closed form, and PPCA's guide is that posterior.
Draw z ~ p(z) and x ~ p(x|z) from the model, then L draws z_1..z_L from ``fit.posterior(x)``: where the posterior
is right, the rank of z among them is uniform on {0, ..., L}. One data row is one simulation (rows are
independent under the model), so thousands of simulations are one batched query.
"""

from __future__ import annotations

import pyro
import pyro.poutine as poutine
import pytest
import torch
from scipy import stats

import ppgen
from ppgen import models

#: posterior draws per simulation: ranks fall in L + 1 = 20 bins.
L = 19
SIMULATIONS = 4000
#: the chi-square test's level: a correct posterior fails it with this probability (fixed seeds: never here).
LEVEL = 0.001


def ranks(fit: ppgen.Fit, inflate: float = 1.0) -> torch.Tensor:
    """The rank of each simulation's true z_0 among L posterior draws (centred draws scaled by ``inflate``)."""
    pyro.set_rng_seed(1)
    placeholder = fit.example.args[0][:1].expand(SIMULATIONS, *fit.x_shape)
    trace = poutine.trace(poutine.uncondition(fit.model.model)).get_trace(placeholder)
    z, x = trace.nodes["z"]["value"][:, 0], trace.nodes["x"]["value"]
    draws = fit.posterior(x, num_samples=L).samples["z"][..., 0]  # [L, N]
    centre = fit.model.posterior(x).mean[:, 0]
    draws = centre + inflate * (draws - centre)
    return (draws < z).sum(0)


def uniform_p_value(rank: torch.Tensor) -> float:
    counts = torch.bincount(rank, minlength=L + 1).numpy()
    return stats.chisquare(counts).pvalue


@pytest.fixture(scope="module")
def fitted():
    x = torch.randn(300, 3, generator=torch.Generator().manual_seed(0)) @ torch.tensor(
        [[1.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.0, 0.0, 0.4]])
    return ppgen.fit(models.PPCA(x_dim=3, z_dim=1), x, epochs=20, batch_size=100, lr=0.05, progress=False)


def test_posterior_ranks_are_uniform(fitted):
    assert uniform_p_value(ranks(fitted)) > LEVEL


@pytest.mark.parametrize("inflate", [0.7, 1.5])
def test_the_check_has_power_against_a_wrong_posterior(fitted, inflate):
    """Too narrow or too wide by a third: the same test rejects it, so the pass above says something."""
    assert uniform_p_value(ranks(fitted, inflate)) < LEVEL
