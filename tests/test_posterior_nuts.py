"""``inference.NUTS``: a Bayesian linear regression's global latents against the conjugate closed form, and the
fit a sampler returns: its checkpoint, its posterior predictive, its draws from it, its ArviZ export."""

import math
import warnings

import arviz as az
import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

import ppgen
from programs import conjugate_posterior, regression, regression_data
from ppgen import inference
from ppgen.program.protocol import as_module
from ppgen.program.structure import inspect

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def small_fit():
    x, y = regression_data()
    pyro.set_rng_seed(0)
    return ppgen.fit(regression, (x, y), inference=inference.NUTS(num_samples=100, warmup_steps=60, num_chains=2),
                     seed=0, progress=False), x, y


@pytest.mark.slow  # four chains of 1300 steps: about 20 s of CPU
def test_nuts_reaches_the_conjugate_posterior_with_converged_chains():
    x, y = regression_data()
    mean, covariance = conjugate_posterior(x, y)
    fit = ppgen.fit(regression, (x, y), inference=inference.NUTS(num_samples=1000, warmup_steps=300), seed=0,
                    progress=False)
    idata = fit.posterior(x, y).to_arviz()
    assert idata.posterior.sizes["chain"] == 4 and idata.posterior.sizes["draw"] == 1000
    assert float(az.rhat(idata)["b"].max()) < 1.01
    assert int(idata.sample_stats["diverging"].sum()) == 0
    mcse = torch.as_tensor(az.mcse(idata)["b"].values)
    draws = fit.posterior(x, y).samples["b"]
    assert bool(((draws.mean(0) - mean).abs() < 3 * mcse).all()), (draws.mean(0), mean, mcse)
    # loosely: 15% of each entry, or 10% of the smaller variance for the near-zero covariance between the two
    torch.testing.assert_close(draws.T.cov(), covariance, rtol=0.15, atol=0.1 * covariance.diag().min().item())


def test_the_fit_holds_the_draws_with_the_samplers_statistics(small_fit):
    fit, x, y = small_fit
    posterior = fit.posterior(x, y)
    assert fit.history == [] and fit.draws.chains == 2
    assert posterior.samples["b"].shape == (200, 2) and posterior.global_sites == ("b",)
    idata = posterior.to_arviz()
    assert idata.posterior["b"].dims == ("chain", "draw", "b_dim_0")
    assert set(idata.sample_stats.data_vars) == {"diverging", "step_size", "tree_depth", "lp"}
    assert idata.sample_stats["diverging"].dtype == bool
    assert bool((idata.sample_stats["tree_depth"] >= 1).all())
    # the step size is adapted in warmup and then fixed: one value per chain
    assert all(len(np.unique(chain)) == 1 for chain in idata.sample_stats["step_size"].values)
    assert list(az.summary(idata, kind="stats").index) == ["b[0]", "b[1]"]
    # lp is log p(x, b) on the unconstrained space, here b itself: the log joint by hand
    b = posterior.samples["b"]
    joint = dist.Normal(0.0, 3.0).log_prob(b).sum(-1) + dist.Normal(b @ x.T, 0.5).log_prob(y).sum(-1)
    torch.testing.assert_close(posterior.sample_stats["lp"].double(), joint, rtol=1e-6, atol=1e-6)


def test_log_prob_is_the_posterior_predictive_over_the_draws(small_fit):
    fit, x, y = small_fit
    b = fit.draws.samples["b"]
    per_draw = dist.Normal(b @ x.T, 0.5).log_prob(y)  # [S, N]
    torch.testing.assert_close(fit.log_prob(x, y), per_draw.logsumexp(0) - math.log(len(b)))
    torch.testing.assert_close(fit.posterior(x, y).log_likelihood, per_draw)


def test_loo_on_the_fit_agrees_with_its_in_sample_log_likelihood(small_fit):
    """PSIS-LOO's elpd and the in-sample sum of log p(y_n | data) differ by the effective number of parameters
    (about 2 here), well within the standard error of elpd."""
    fit, x, y = small_fit
    loo = az.loo(fit.posterior(x, y).to_arviz())
    in_sample = fit.log_prob(x, y).sum().item()
    assert abs(loo.elpd_loo - in_sample) < loo.se
    assert 0 < loo.p_loo < 4


def test_samples_follow_the_posterior_predictive(small_fit):
    fit, x, y = small_fit
    means = fit.sample(5, x[:5], mean=True)
    b = fit.draws.samples["b"]
    # each row's mean is x_n . b_s for one of the draws b_s
    assert all(bool(((x[n] @ b.T) - means[n]).abs().min() < 1e-12) for n in range(5))
    pyro.set_rng_seed(1)
    draws = fit.sample(4000, x[:1].expand(4000, 2))
    predictive = (x[0] @ b.T)
    assert abs(draws.mean().item() - predictive.mean().item()) < 4 * 0.5 / math.sqrt(4000) + 0.01
    assert draws.std().item() == pytest.approx(math.sqrt(0.25 + predictive.var().item()), rel=0.05)


def test_save_and_load_keep_the_draws(small_fit, tmp_path):
    fit, x, y = small_fit
    fit.save(tmp_path / "fit.pt")
    again = ppgen.load(tmp_path / "fit.pt", model=regression)
    assert again.inference == fit.inference
    for name, value in fit.draws.samples.items():
        assert torch.equal(again.draws.samples[name], value)
    for name, value in fit.draws.sample_stats.items():
        assert torch.equal(again.draws.sample_stats[name], value)
    torch.testing.assert_close(again.log_prob(x, y), fit.log_prob(x, y))


def test_a_damaged_draws_entry_is_refused_by_name(small_fit, tmp_path):
    fit, _, _ = small_fit
    fit.save(tmp_path / "fit.pt")
    state = torch.load(tmp_path / "fit.pt", weights_only=True)
    state["draws"]["chains"] = 3  # 200 draws are not three chains
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match=r"field 'draws' is damaged"):
        ppgen.load(tmp_path / "bad.pt", model=regression)


def test_nuts_refuses_what_it_cannot_do_before_any_work():
    x, y = regression_data(10)
    with pytest.raises(ValueError, match=r"out: a run folder"):
        ppgen.fit(regression, (x, y), inference=inference.NUTS(), out="never-written", progress=False)

    def local(x):
        with pyro.plate("data", len(x)):
            z = pyro.sample("z", dist.Normal(0.0, 1.0))
            pyro.sample("x", dist.Normal(z, 1.0), obs=x)

    with pytest.raises(ValueError, match=r"site\(s\) \('z',\) are local to each point"):
        ppgen.fit(local, x[:, 0], inference=inference.NUTS(), progress=False)
    with pytest.raises(ValueError, match=r"target_accept_prob must be in \(0, 1\)"):
        inference.NUTS(target_accept_prob=1.5)
    with pytest.raises(ValueError, match=r"num_chains must be a positive int"):
        inference.NUTS(num_chains=0)


def test_a_model_with_learnt_parameters_is_refused():
    x, y = regression_data(10)

    def with_parameter(x, y):
        scale = pyro.param("scale", torch.tensor(0.5, dtype=x.dtype))
        b = pyro.sample("b", dist.Normal(torch.zeros(2, dtype=x.dtype), 3.0).to_event(1))
        with pyro.plate("data", len(x)):
            pyro.sample("y", dist.Normal((x * b).sum(-1), scale.abs()), obs=y)

    with pytest.raises(ValueError, match=r"parameters that nothing would fit"):
        ppgen.fit(with_parameter, (x, y), inference=inference.NUTS(), progress=False)


def tutorial_regression(x, y):
    """:func:`programs.regression` as Pyro's tutorials write it, ``x @ b``: it does not broadcast over draws of b."""
    b = pyro.sample("b", dist.Normal(torch.zeros(2, dtype=x.dtype), 3.0).to_event(1))
    with pyro.plate("data", len(x)):
        pyro.sample("y", dist.Normal(x @ b, 0.5), obs=y)


@pytest.fixture(scope="module")
def tutorial_fit():
    x, y = regression_data()
    pyro.set_rng_seed(0)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*does not broadcast")
        fit = ppgen.fit(tutorial_regression, (x, y), progress=False, seed=0,
                        inference=inference.NUTS(num_samples=100, warmup_steps=60, num_chains=2))
    return fit, x, y


def test_queries_of_a_model_that_does_not_broadcast_over_draws_map_it_over_them(tutorial_fit):
    fit, x, y = tutorial_fit
    assert fit.structure.plan.mapped and not fit.structure.plan.vectorized
    b = fit.draws.samples["b"]
    per_draw = dist.Normal(b @ x.T, 0.5).log_prob(y)  # [S, N], by hand
    posterior = fit.posterior(x, y)
    torch.testing.assert_close(posterior.log_likelihood, per_draw)
    torch.testing.assert_close(fit.log_prob(x, y), per_draw.logsumexp(0) - math.log(len(b)))
    idata = posterior.to_arviz()
    assert idata.log_likelihood["y"].dims == ("chain", "draw", "point")
    np.testing.assert_allclose(idata.log_likelihood["y"].values.reshape(len(b), -1), per_draw.numpy())
    means = fit.sample(5, x[:5], mean=True)
    assert all(bool(((x[n] @ b.T) - means[n]).abs().min() < 1e-12) for n in range(5))


def test_the_posterior_predictive_is_the_conjugate_one_whether_or_not_the_model_broadcasts(tutorial_fit):
    """log p(y_n | data) = log N(y_n; x_n . m, 0.5^2 + x_n^T C x_n) for the conjugate posterior N(m, C), within four
    Monte Carlo standard errors of the mean of p(y_n | b_s) over the S draws (taking their effective number as S/2,
    as the draws of a chain are correlated); the broadcasting program on the same draws gives the same values."""
    fit, x, y = tutorial_fit
    mean, covariance = conjugate_posterior(x, y)
    exact = dist.Normal(x @ mean, (0.25 + ((x @ covariance) * x).sum(-1)).sqrt()).log_prob(y)
    density = dist.Normal(fit.draws.samples["b"] @ x.T, 0.5).log_prob(y).exp()  # p(y_n | b_s), [S, N]
    standard_error = density.std(0) / density.mean(0) / math.sqrt(len(density) / 2)  # of log of the mean, delta method
    assert bool(((fit.log_prob(x, y) - exact).abs() < 4 * standard_error).all())
    broadcasting = ppgen.Fit(as_module(regression), fit.structure, fit.inference, history=[], example=fit.example,
                             draws=fit.draws)
    assert broadcasting.structure.plan.mapped  # the structure it was given already maps over the draws
    vectorised = ppgen.Fit(as_module(regression), inspect(as_module(regression), (x, y)), fit.inference, history=[],
                           example=fit.example, draws=fit.draws)
    assert vectorised.structure.plan.vectorized
    for other in (broadcasting, vectorised):
        torch.testing.assert_close(other.log_prob(x, y), fit.log_prob(x, y), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(other.posterior(x, y).log_likelihood, fit.posterior(x, y).log_likelihood,
                                   rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("checks", [False, True], ids=["maps", "checks-a-draw"])
def test_a_model_that_broadcasts_over_draws_to_wrong_values_is_mapped_or_run_one_draw_at_a_time(tutorial_fit, checks):
    """``b.reshape(-1)[:2]`` keeps the shapes but reads the first draw for every draw: no error, wrong values, found
    by comparing the draws together with one at a time. One draw's pass is right, and mapped over the draws by vmap;
    with a Python check on a draw's value (which vmap cannot take), it is run one draw at a time."""
    fit, x, y = tutorial_fit

    def first_draw_only(x, y):
        b = pyro.sample("b", dist.Normal(torch.zeros(2, dtype=x.dtype), 3.0).to_event(1)).reshape(-1)[:2]
        if checks and not bool(torch.isfinite(b).all()):
            raise ValueError("b is not finite")
        with pyro.plate("data", len(x)):
            pyro.sample("y", dist.Normal((x * b).sum(-1), 0.5), obs=y)

    module = as_module(first_draw_only)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        other = ppgen.Fit(module, inspect(module, (x, y)), fit.inference, history=[], example=fit.example,
                          draws=fit.draws)
    told = [str(w.message) for w in caught if "does not broadcast" in str(w.message)]
    if checks:
        assert len(told) == 1 and "values over draws together differ from those of one draw at a time" in told[0]
        assert "data-dependent control flow" in told[0]
        assert "`if checks and not bool(torch.isfinite(b).all()):`" in told[0]
        assert "torch.where" in told[0]
        assert not other.structure.plan.mapped and not other.structure.plan.vectorized
    else:
        assert not told and other.structure.plan.mapped
    per_draw = dist.Normal(fit.draws.samples["b"] @ x.T, 0.5).log_prob(y)
    torch.testing.assert_close(other.posterior(x, y).log_likelihood, per_draw)


def test_warmup_defaults_to_the_number_of_draws_and_an_explicit_one_is_kept(monkeypatch):
    """As NumPyro's and Stan's users expect: NUTS(num_samples=S) warms each chain up for S steps, the steps Pyro's
    MCMC is handed; an explicit ``warmup_steps`` is kept, and one that is not a positive int is refused by name."""
    import ppgen.inference.nuts as nuts_module

    assert inference.NUTS().warmup_steps == 1000
    assert inference.NUTS(num_samples=200).warmup_steps == 200
    assert inference.NUTS(num_samples=200, warmup_steps=50).warmup_steps == 50
    assert inference.NUTS(num_samples=200) == inference.NUTS(num_samples=200, warmup_steps=200)
    with pytest.raises(ValueError, match=r"warmup_steps must be a positive int"):
        inference.NUTS(warmup_steps=0)
    handed = []
    real = nuts_module.nuts
    monkeypatch.setattr(nuts_module, "nuts", lambda *a, **kw: handed.append(kw["warmup_steps"]) or real(*a, **kw))
    x, y = regression_data(20)
    for backend in (inference.NUTS(num_samples=15, num_chains=1), inference.NUTS(num_samples=15, warmup_steps=7,
                                                                                num_chains=1)):
        fit = ppgen.fit(regression, (x, y), inference=backend, seed=0, progress=False)
        assert fit.draws.samples["b"].shape == (15, 2)
    assert handed == [15, 7]


def test_log_prob_of_a_sampler_fit_refuses_k_and_says_what_it_computes(small_fit):
    """Each p(x | theta_s) of a sampler's fit is exact (its model has no latent local to a point): there is nothing
    for K importance samples to draw, so a k given is refused by name, before any work, and saying what is used."""
    fit, x, y = small_fit
    for k in (1, 1000):
        with pytest.raises(ValueError, match=r"^k=%d: a fit by NUTS answers log p\(x\) = log \(1/S\) sum_s "
                                             r"p\(x\|theta_s\) over its S = 200 draws, each exact: leave k out" % k):
            fit.log_prob(x, y, k=k)
    b = fit.draws.samples["b"]
    torch.testing.assert_close(fit.log_prob(x, y), dist.Normal(b @ x.T, 0.5).log_prob(y).logsumexp(0)
                               - math.log(len(b)))
