"""Posteriors of local latents against the truth: a linear-Gaussian model, whose p(z|x) is Gaussian in closed form.

z_n ~ N(0, I_2), x_n | z_n ~ N(W z_n + b, s^2 I_3): p(z|x_n) = N(C W^T (x_n - b) / s^2, C), C = (I + W^T W / s^2)^-1
(Bishop 2006, section 2.3.3). The guide is deliberately off: its mean shifted by half a posterior standard deviation,
its scale 0.8 of the posterior's (still wider than 1/sqrt(2) of it, so the importance weights have a finite
variance). Means are compared within 3 Monte Carlo standard errors from ArviZ's ``mcse``.
"""

import math
import warnings

import arviz as az
import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

import ppgen
from programs import fixed_fit, shifted_mixture

pytestmark = pytest.mark.usefixtures("float64", "one_thread")

W = [[1.0, 0.5], [-0.3, 1.2], [0.8, -0.7]]
B = [0.2, -0.1, 0.3]
S = 0.6


def linear_gaussian(shift: float, narrow: float) -> tuple:
    """The model, a guide off by ``shift`` posterior standard deviations and ``narrow`` times as wide, and the
    exact posterior's mean (a function of x) and covariance."""
    w, b = torch.tensor(W), torch.tensor(B)
    covariance = torch.linalg.inv(torch.eye(2) + w.T @ w / S**2)

    def mean(x):
        return (x - b) @ w @ covariance.T / S**2

    def model(x):
        with pyro.plate("data", len(x)):
            z = pyro.sample("z", dist.Normal(torch.zeros(2), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(z @ w.T + b, S).to_event(1), obs=x)

    def guide(x):
        with pyro.plate("data", len(x)):
            pyro.sample("z", dist.MultivariateNormal(mean(x) + shift * covariance.diag().sqrt(),
                                                     scale_tril=narrow * torch.linalg.cholesky(covariance)))

    return model, guide, mean, covariance


@pytest.fixture
def off_guide():
    model, guide, mean, covariance = linear_gaussian(shift=0.5, narrow=0.8)
    x = torch.randn(3, 3, generator=torch.Generator().manual_seed(1))
    return fixed_fit((model, guide), x), x, mean(x), covariance


def mcse_of_mean(posterior: ppgen.Posterior) -> torch.Tensor:
    return torch.as_tensor(az.mcse(posterior.to_arviz(), var_names=["z"])["z"].values)


def test_importance_resampling_corrects_a_narrow_shifted_guide_to_the_exact_posterior(off_guide):
    fit, x, truth, covariance = off_guide
    guide = fit.posterior(x, num_samples=1000, method="guide")
    corrected = fit.posterior(x, num_samples=1000, method="importance", k=20000)
    for posterior in (guide, corrected):
        assert posterior.samples["z"].shape == (1000, 3, 2)
    guide_error = (guide.mean()["z"] - truth).abs() / mcse_of_mean(guide)
    assert bool((guide_error > 5).all()), guide_error  # visibly off: half a standard deviation is many MCSE
    assert bool((guide.std()["z"] < 0.85 * covariance.diag().sqrt()).all())
    error = (corrected.mean()["z"] - truth).abs() / mcse_of_mean(corrected)
    assert bool((error < 3).all()), error
    # the spread loosely: self-normalised weights estimate second moments with more noise than the draws' MCSE
    ratio = corrected.std()["z"] / covariance.diag().sqrt()
    assert bool((ratio > 0.9).all() and (ratio < 1.2).all()), ratio
    for n in range(3):
        torch.testing.assert_close(corrected.samples["z"][:, n].T.cov(), covariance, rtol=0, atol=0.06)
    # the diagnostics of the K weights: a light-tailed guide's weights, usable (k-hat below 0.7), ESS well below K
    assert corrected.khat.shape == corrected.ess.shape == (3,)
    assert bool((corrected.khat < 0.7).all()) and bool((corrected.ess < 20000).all() and (corrected.ess > 1000).all())


@pytest.mark.slow  # about 5 s of CPU, several times that on a shared machine
def test_nuts_reaches_the_exact_posterior_mean_within_three_mcse(off_guide):
    fit, x, truth, covariance = off_guide
    pyro.set_rng_seed(2)
    posterior = fit.posterior(x, num_samples=200, method="nuts", num_chains=2, warmup_steps=100)
    assert posterior.chains == 2 and posterior.samples["z"].shape == (400, 3, 2)
    error = (posterior.mean()["z"] - truth).abs() / mcse_of_mean(posterior)
    assert bool((error < 3).all()), error
    torch.testing.assert_close(posterior.std()["z"], covariance.diag().sqrt().expand(3, 2), rtol=0.2, atol=0)
    assert set(posterior.sample_stats) == {"diverging", "step_size", "tree_depth", "lp"}
    assert not bool(posterior.sample_stats["diverging"].any())


def test_nuts_is_deterministic_under_a_seed(off_guide):
    fit, x, _, _ = off_guide
    draws = []
    for _ in range(2):
        pyro.set_rng_seed(7)
        draws.append(fit.posterior(x[:1], num_samples=5, method="nuts", num_chains=2, warmup_steps=5).samples["z"])
    assert torch.equal(draws[0], draws[1])


def test_nuts_refuses_a_program_over_its_budget_naming_the_size(off_guide, monkeypatch):
    fit, x, _, _ = off_guide
    monkeypatch.setattr(ppgen.utils.budget.BUDGET, "nuts_coordinates", 5)
    with pytest.raises(ValueError, match=r"NUTS over 6 latent coordinates .* budget of 5"):
        fit.posterior(x, method="nuts")


def test_importance_warns_where_the_guide_is_too_narrow_for_its_weights():
    """A guide a third as wide as the posterior: w = p/q has infinite variance, PSIS k-hat > 0.7."""
    model, guide, _, _ = linear_gaussian(shift=0.0, narrow=1 / 3)
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(1))
    with pytest.warns(UserWarning, match=r"Pareto k-hat above 0.7"):
        posterior = fixed_fit((model, guide), x).posterior(x, num_samples=100, method="importance", k=2000)
    assert bool((posterior.khat > 0.7).any())


def test_importance_in_several_passes_resamples_from_every_proposal(off_guide, monkeypatch):
    """With passes of 500 proposals out of 20000 the draws still follow the exact posterior (the running
    replacement of each pass's draws is resampling among all K at once)."""
    fit, x, truth, _ = off_guide
    monkeypatch.setattr(ppgen.queries.density, "PARTICLE_POINTS_PER_PASS", 500)
    posterior = fit.posterior(x[:1], num_samples=1000, method="importance", k=20000)
    error = (posterior.mean()["z"] - truth[:1]).abs() / mcse_of_mean(posterior)
    assert bool((error < 3).all()), error


def test_posterior_summaries_are_those_of_the_draws(off_guide):
    fit, x, _, _ = off_guide
    posterior = fit.posterior(x, num_samples=400)
    z = posterior.samples["z"]
    torch.testing.assert_close(posterior.std()["z"], torch.as_tensor(np.std(z.numpy(), axis=0, ddof=1)))
    low, high = posterior.quantile([0.05, 0.95])["z"]
    torch.testing.assert_close(low, torch.as_tensor(np.quantile(z.numpy(), 0.05, axis=0)))
    assert bool((low < posterior.mean()["z"]).all() and (posterior.mean()["z"] < high).all())
    assert posterior.quantile(0.5)["z"].shape == (3, 2)
    with pytest.raises(ValueError, match=r"q must be a level in \[0, 1\]"):
        posterior.quantile(1.5)


def test_the_inference_data_has_the_groups_and_round_trips_through_netcdf(off_guide, tmp_path):
    fit, x, _, _ = off_guide
    posterior = fit.posterior(x, num_samples=50)
    idata = posterior.to_arviz()
    assert set(idata.groups()) == {"posterior", "sample_stats", "log_likelihood", "observed_data"}
    assert idata.posterior["z"].dims == ("chain", "draw", "point", "z_dim_0")
    assert idata.log_likelihood["x"].dims == ("chain", "draw", "point")
    np.testing.assert_array_equal(idata.observed_data["x"].values, x.numpy())
    summary = az.summary(idata, var_names=["z"], kind="stats")
    assert list(summary.index) == [f"z[{n}, {d}]" for n in range(3) for d in range(2)]
    path = tmp_path / "post.nc"
    idata.to_netcdf(str(path))
    again = az.from_netcdf(str(path))
    for group in idata.groups():
        assert getattr(again, group).equals(getattr(idata, group)), group


def test_log_likelihood_is_log_p_x_given_each_draw(off_guide):
    fit, x, _, _ = off_guide
    posterior = fit.posterior(x, num_samples=20)
    z = posterior.samples["z"]
    truth = dist.Normal(z @ torch.tensor(W).T + torch.tensor(B), S).log_prob(x).sum(-1)
    torch.testing.assert_close(posterior.log_likelihood, truth)


def test_bad_methods_and_options_are_refused_by_name(off_guide):
    fit, x, _, _ = off_guide
    with pytest.raises(ValueError, match=r"method must be one of 'guide', 'importance', 'nuts', got 'mcmc'"):
        fit.posterior(x, method="mcmc")
    with pytest.raises(ValueError, match=r"k must be a positive int"):
        fit.posterior(x, method="importance", k=0)
    with pytest.raises(ValueError, match=r"num_chains must be a positive int"):
        fit.posterior(x, method="nuts", num_chains=0)


def test_importance_and_nuts_refuse_global_latents():
    def model(x):
        m = pyro.sample("m", dist.Normal(0.0, 1.0))
        with pyro.plate("data", len(x)):
            pyro.sample("x", dist.Normal(m, 1.0), obs=x)

    def guide(x):
        pyro.sample("m", dist.Normal(x.mean(), 0.5))

    x = torch.randn(5)
    fit = fixed_fit((model, guide), x)
    with pytest.raises(ValueError, match=r"global latent\(s\) \('m',\) are shared"):
        fit.posterior(x, method="importance")
    with pytest.raises(ValueError, match=r"inference.NUTS"):
        fit.posterior(x, method="nuts")
    assert fit.posterior(x, num_samples=10).samples["m"].shape == (10,)


@pytest.mark.slow  # about 5 s of CPU, several times that on a shared machine
def test_nuts_sums_out_an_enumerated_latent_and_matches_the_exact_posterior():
    """A two-component mixture in z: z ~ N(0, 1), c ~ Bernoulli(0.3) summed out, x | z, c ~ N(z + 2c, 0.5^2). The
    posterior of z given x is a mixture of two Gaussians, exact by conjugacy; NUTS draws z with c summed out."""
    model, guide = shifted_mixture(loc=0.8, scale=0.45)
    x = torch.tensor([1.0])
    pyro.set_rng_seed(3)
    posterior = fixed_fit((model, guide), x).posterior(x, num_samples=300, method="nuts", num_chains=2,
                                                       warmup_steps=150)
    # p(z | x, c) = N(0.8 (x - 2c), 0.2); p(c | x) from p(x | c) = N(x; 2c, 1.25)
    weights = torch.tensor([0.7, 0.3]) * dist.Normal(torch.tensor([0.0, 2.0]), math.sqrt(1.25)).log_prob(x).exp()
    weights = weights / weights.sum()
    truth = (weights * 0.8 * (x - torch.tensor([0.0, 2.0]))).sum()
    error = (posterior.mean()["z"] - truth).abs() / mcse_of_mean(posterior)
    assert bool((error < 3).all()), error
    assert "c" not in posterior.samples


@pytest.mark.parametrize("checks", [False, True], ids=["mapped", "one-at-a-time"])
def test_importance_runs_a_program_that_does_not_broadcast_mapped_or_one_proposal_at_a_time(checks):
    """The model written with a reshape to the batch, which Pyro cannot broadcast over particles: the same exact
    posterior, reached with the proposals mapped by vmap, or (with a Python check on a draw's value, which vmap cannot
    take) one proposal per run (from a guide a quarter of a standard deviation off)."""
    w, b = torch.tensor(W), torch.tensor(B)
    _, guide, mean, _ = linear_gaussian(shift=0.25, narrow=0.9)

    def model(x):
        with pyro.plate("data", len(x)):
            z = pyro.sample("z", dist.Normal(torch.zeros(2), 1.0).to_event(1))
            if checks and not bool(torch.isfinite(z).all()):
                raise ValueError("z is not finite")
            pyro.sample("x", dist.Normal((z.reshape(-1, 2) @ w.T + b).reshape(len(x), 3), S).to_event(1), obs=x)

    x = torch.randn(1, 3, generator=torch.Generator().manual_seed(1))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = fixed_fit((model, guide), x)
    told = [w for w in caught if "does not broadcast over a plate of particles" in str(w.message)]
    assert len(told) == checks and fit.structure.plan.mapped is not checks and not fit.structure.plan.vectorized
    posterior = fit.posterior(x, num_samples=300, method="importance", k=1500)
    error = (posterior.mean()["z"] - mean(x)).abs() / mcse_of_mean(posterior)
    assert bool((error < 3).all()), error
