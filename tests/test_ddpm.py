"""models.DDPM against the truth: its sampled-t ELBO, its chain's ELBO and its bound equal in expectation the full
sum over t computed by Gauss-Hermite quadrature, its ELBOs are Pyro's on the same draws, the bound stays below the
exact log p of Gaussian data and comes close to it after training, its samples have the data's moments."""

import math

import numpy as np
import pyro
import pytest
import torch

import ppgen
from ppgen import inference, models
from ppgen.objective.estimators import analytic_log_weights
from ppgen.program.inputs import as_batch
from ppgen.program.structure import inspect
from ppgen.program.traces import sample_sites

pytestmark = pytest.mark.usefixtures("one_thread")

X0 = torch.tensor([[-1.0], [0.2], [1.5]], dtype=torch.float64)


def betas(steps, schedule):
    """beta_1..beta_T from the papers' formulas: Ho et al.'s 1e-4..0.02 at T = 1000 scaled by 1000 / T, Nichol and
    Dhariwal's cosine with s = 0.008, both clipped at 0.999."""
    if schedule == "linear":
        beta = np.linspace(1e-4 * 1000 / steps, 0.02 * 1000 / steps, steps)
    else:
        f = np.cos((np.arange(steps + 1) / steps + 0.008) / 1.008 * np.pi / 2) ** 2
        beta = 1 - f[1:] / f[:-1]
    return np.minimum(beta, 0.999)


@torch.no_grad()
def full_sum(model, x0, schedule):
    """L(x0) = -KL(q(x_T|x_0) || N(0, 1)) + E log p(x_0|x_1) - sum_{t>=2} E KL(q(x_{t-1}|x_t, x_0) || p(x_{t-1}|x_t))
    for one-dimensional x0, every expectation over x_t ~ q(x_t|x_0) by Gauss-Hermite quadrature on 120 nodes, from
    the papers' formulas and the model's network eps_theta alone."""
    beta = betas(model.steps, schedule)
    alpha, abar = 1 - beta, np.cumprod(1 - beta)
    nodes, weights = np.polynomial.hermite.hermgauss(120)
    weights = torch.tensor(weights / math.sqrt(math.pi))
    total = 0.0
    a = abar[-1]
    total -= 0.5 * (a * x0**2 + (1 - a) - 1 - math.log(1 - a))
    for t in range(1, model.steps + 1):
        i = t - 1
        xt = torch.tensor(math.sqrt(abar[i]) * x0 + math.sqrt(2 * (1 - abar[i])) * nodes).unsqueeze(-1)
        eps = model.predicted_noise(xt, torch.full((len(nodes),), t)).squeeze(-1)
        mu = (xt.squeeze(-1) - beta[i] / math.sqrt(1 - abar[i]) * eps) / math.sqrt(alpha[i])
        var = beta[i]
        if t == 1:
            values = -0.5 * math.log(2 * math.pi * var) - (x0 - mu) ** 2 / (2 * var)
        else:
            post_var = (1 - abar[i - 1]) / (1 - abar[i]) * beta[i]
            post_mu = (math.sqrt(abar[i - 1]) * beta[i] * x0
                       + math.sqrt(alpha[i]) * (1 - abar[i - 1]) * xt.squeeze(-1)) / (1 - abar[i])
            values = -(0.5 * math.log(var / post_var) + (post_var + (post_mu - mu) ** 2) / (2 * var) - 0.5)
        total = total + (weights * values).sum()
    return float(total)


def within(draws, truth, sigmas=5.0):
    """Whether the mean of ``draws`` (Tensor[K, N]) is within ``sigmas`` standard errors of ``truth`` at every
    point."""
    mean, error = draws.mean(0), draws.std(0) / math.sqrt(draws.shape[0])
    return ((mean - truth).abs() <= sigmas * error).all(), mean, error


@pytest.mark.usefixtures("float64")
@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_every_estimate_of_the_bound_is_unbiased_for_the_full_sum_over_t(schedule):
    """At T = 4, with one untrained network: the sampled-t program's ELBO (sampled KL and analytic KL), the chain's
    ELBO and log_prob's Rao-Blackwellised sum each average, over many draws, to the quadrature's full sum."""
    sampled = models.DDPM(x_dim=1, steps=4, schedule=schedule, hidden=(16,))
    truth = torch.tensor([full_sum(sampled, x0, schedule) for x0 in X0.squeeze(-1).tolist()])
    k = 20000
    for name, draws in {
        "sampled-t ELBO": ppgen.log_weights(sampled, X0, k=k),
        "sampled-t ELBO, analytic KL": analytic_log_weights(sampled, inspect(sampled, X0), as_batch(X0), k),
        "bound": sampled.log_prob(X0.repeat(k, 1)).reshape(k, 3),
    }.items():
        ok, mean, error = within(draws.detach(), truth)
        assert ok, f"{name}: {mean} +- {error}, full sum {truth}"
    chain = models.DDPM(x_dim=1, steps=4, schedule=schedule, hidden=(16,), terms="all")
    chain.load_state_dict(sampled.state_dict())
    ok, mean, error = within(ppgen.log_weights(chain, X0, k=k).detach(), truth)
    assert ok, f"chain ELBO: {mean} +- {error}, full sum {truth}"


@pytest.mark.usefixtures("float64")
@pytest.mark.parametrize("options", [{}, {"terms": "all"}, {"loss": "simple"}, {"variance": "posterior"},
                                     {"steps": 1}])
def test_the_elbo_is_pyros_trace_elbo_on_the_same_draws(options):
    """ppgen's ELBO of each form of the program is Pyro's Trace_ELBO on the same draws, and with the KL in closed form
    Pyro's TraceMeanField_ELBO."""
    model = models.DDPM(x_dim=2, hidden=(8,), **{"steps": 5, **options})
    x = torch.randn(6, 2)
    structure = inspect(model, x)
    for ours, theirs in [(inference.ELBO(), pyro.infer.Trace_ELBO(max_plate_nesting=1)),
                         (inference.ELBO(kl="analytic"), pyro.infer.TraceMeanField_ELBO(max_plate_nesting=1))]:
        pyro.set_rng_seed(3)
        loss = ours.loss(model, structure, as_batch(x))
        pyro.set_rng_seed(3)  # the same draws
        reference = theirs.differentiable_loss(model.model, model.guide, x) / len(x)
        torch.testing.assert_close(loss, reference, rtol=1e-14, atol=1e-12)  # summed in another order


def test_the_sampled_program_has_a_few_sites_whatever_t():
    """The trace of the sampled-t program holds the same six sites at T = 1000 as at T = 4; the chain's holds T + 1."""
    x = torch.randn(3, 2)
    for steps in (4, 1000):
        trace = pyro.poutine.trace(models.DDPM(x_dim=2, steps=steps).model).get_trace(x)
        assert [site["name"] for site in sample_sites(trace)] == ["x_T", "x_1", "x", "t", "x_t", "x_prev"]
    trace = pyro.poutine.trace(models.DDPM(x_dim=2, steps=7, terms="all").model).get_trace(x)
    assert [site["name"] for site in sample_sites(trace)] == [f"x_{t}" for t in range(7, 0, -1)] + ["x"]


@pytest.fixture(scope="module")
def gaussian_fit():
    """A DDPM of T = 100 fitted to 2000 draws of N(0.3, 0.9^2) by the ELBO with closed-form KL terms: 1000 steps of
    Adam at lr 1e-3 on batches of 200, then 160 at lr 1e-4 on batches of 500 (about 25 s)."""
    pyro.set_rng_seed(0)
    x = 0.3 + 0.9 * torch.randn(2000, 1)
    model = models.DDPM(x_dim=1, steps=100, hidden=(32, 32))
    elbo = inference.ELBO(kl="analytic")
    ppgen.fit(model, x, inference=elbo, epochs=100, batch_size=200, lr=1e-3, progress=False, seed=0)
    return ppgen.fit(model, x, inference=elbo, epochs=40, batch_size=500, lr=1e-4, progress=False, seed=1), x


@pytest.mark.slow
def test_the_bound_stays_below_the_exact_log_likelihood_and_comes_close_after_training(gaussian_fit):
    """E_p[L(x)] <= E_p[log p_theta(x)] <= E_p[log p(x)] on fresh draws of the true Gaussian p (Gibbs' inequality),
    and on the training set below the best Gaussian's log-likelihood; after training within 0.1 nats of it."""
    fit, x = gaussian_fit
    pyro.set_rng_seed(5)
    fresh = 0.3 + 0.9 * torch.randn(5000, 1)
    gap = torch.distributions.Normal(0.3, 0.9).log_prob(fresh).squeeze(-1) - fit.log_prob(fresh)
    error = gap.std() / math.sqrt(len(gap))
    assert gap.mean() > -3 * error, f"bound above the exact log p by {-gap.mean():.4f} +- {error:.4f}"
    assert gap.mean() < 0.1, f"bound {gap.mean():.4f} nats below the exact log p after training"
    best = torch.distributions.Normal(x.mean(), x.std(unbiased=False)).log_prob(x).squeeze(-1)
    gap = best - fit.log_prob(x)
    assert gap.mean() > -3 * gap.std() / math.sqrt(len(gap))


@pytest.mark.slow
@pytest.mark.parametrize("method", ["ancestral", "ddim"])
def test_samples_have_the_datas_mean_variance_and_quantiles(gaussian_fit, method):
    """4000 draws (standard errors 0.015 of the mean, 0.01 of the standard deviation): ancestral samples have the
    data's mean 0.3 and standard deviation 0.9 within 0.06, and the 1%, 10%, 50%, 90% and 99% quantiles of
    N(0.3, 0.9^2) within 0.15; DDIM's at all T steps the mean within 0.06 and the 10%, 50% and 90% quantiles within
    0.15. DDIM's deterministic map carries the network's error at rare x_T further: its upper tail is heavier
    (measured over seeds 6 to 8: 99% quantile 2.58 to 2.71 where the Gaussian's is 2.39, 99.9% quantile 5.7 to 7.4
    where it is 3.1, so a standard deviation of 0.96 to 1.08); with the exact noise prediction both samplers'
    moments are right within 0.05 (test below)."""
    fit, _ = gaussian_fit
    pyro.set_rng_seed(6)
    draws = fit.sample(4000, method=method).squeeze(-1)
    assert abs(draws.mean() - 0.3) < 0.06, draws.mean()
    if method == "ancestral":
        assert abs(draws.std() - 0.9) < 0.06, draws.std()
    levels = torch.tensor([0.01, 0.1, 0.5, 0.9, 0.99] if method == "ancestral" else [0.1, 0.5, 0.9])
    exact = torch.distributions.Normal(0.3, 0.9).icdf(levels)
    assert ((draws.quantile(levels) - exact).abs() < 0.15).all(), (draws.quantile(levels), exact)


def test_both_samplers_draw_gaussian_data_given_its_exact_noise_prediction():
    """With eps_theta the exact E[eps | x_t] of data N(0.3, 0.9^2), sqrt(1 - abar_t) (x_t - sqrt(abar_t) 0.3) /
    (0.81 abar_t + 1 - abar_t), ancestral sampling and DDIM at all T = 1000 steps draw that Gaussian: moments within
    0.05 (4000 draws: standard errors 0.015 and 0.01)."""
    model = models.DDPM(x_dim=1, steps=1000)

    def exact(xt, t):
        abar = model.noise.at(xt)["abar"][t].unsqueeze(-1)
        return (1 - abar).sqrt() * (xt - abar.sqrt() * 0.3) / (0.81 * abar + 1 - abar)

    model.predicted_noise = exact
    with torch.no_grad():
        for method in ("ancestral", "ddim"):
            draws = model.sample(4000, method=method)
            assert abs(draws.mean() - 0.3) < 0.05 and abs(draws.std() - 0.9) < 0.05, (method, draws.mean(), draws.std())


def test_ddim_is_a_deterministic_map_of_x_T_and_its_eta_one_path_at_all_steps_is_ancestral():
    model = models.DDPM(x_dim=2, steps=30, hidden=(8,))
    x_T = torch.randn(5, 2)
    pyro.set_rng_seed(1)
    first = model.ddim(x_T, steps=10)
    pyro.set_rng_seed(2)
    torch.testing.assert_close(model.ddim(x_T, steps=10), first, rtol=0, atol=0)
    assert not torch.equal(model.ddim(x_T, steps=10, eta=1.0), first)


@pytest.mark.parametrize("options, error, words", [
    ({"steps": 0}, ValueError, "steps must be a positive int, got 0"),
    ({"steps": 2.5}, TypeError, "steps must be a positive int, got float"),
    ({"schedule": "quadratic"}, ValueError, "schedule must be one of 'linear', 'cosine', got 'quadratic'"),
    ({"variance": "learnt"}, ValueError, "variance must be one of 'beta', 'posterior', got 'learnt'"),
    ({"loss": "hybrid"}, ValueError, "loss must be one of 'elbo', 'simple', got 'hybrid'"),
    ({"terms": "some"}, ValueError, "terms must be one of 'sampled', 'all', got 'some'"),
    ({"loss": "simple", "terms": "all"}, ValueError, "loss='simple' reweighs the sampled terms"),
    ({"embedding": 5}, ValueError, "embedding must be even"),
])
def test_bad_arguments_are_refused_with_their_name(options, error, words):
    with pytest.raises(error, match=words):
        models.DDPM(x_dim=2, **options)


def test_bad_sampler_arguments_are_refused_before_drawing():
    fit = ppgen.fit(models.DDPM(x_dim=2, steps=10, hidden=(8,)), torch.randn(20, 2), epochs=1, progress=False)
    with pytest.raises(ValueError, match="steps: DDIM takes at most the model's T = 10 steps, got 11"):
        fit.sample(4, method="ddim", steps=11)
    with pytest.raises(ValueError, match="method must be one of 'ancestral', 'ddim', got 'euler'"):
        fit.sample(4, method="euler")
    with pytest.raises(ValueError, match="steps and eta choose the DDIM sampler's path: pass them with method='ddim'"):
        fit.sample(4, steps=5)
    with pytest.raises(ValueError, match="eta must be"):
        fit.sample(4, method="ddim", eta=-1.0)
    with pytest.raises(ValueError, match="draws x by its own sample"):
        fit.sample(4, mean=True)


def test_the_bound_is_not_taken_for_exact():
    """log_prob_is_bound: the default backend is the ELBO, and maximum likelihood refuses the model."""
    x = torch.randn(20, 2)
    fit = ppgen.fit(models.DDPM(x_dim=2, steps=10, hidden=(8,)), x, epochs=1, progress=False)
    assert isinstance(fit.inference, inference.ELBO) and not fit.structure.exact
    with pytest.raises(ValueError, match=r"MLE\(\) needs the exact log-likelihood"):
        ppgen.fit(models.DDPM(x_dim=2, steps=10), x, inference=inference.MLE(), epochs=1, progress=False)


def test_sampler_options_for_a_model_without_its_own_sampler_are_refused():
    fit = ppgen.fit(models.PPCA(x_dim=3, z_dim=1), torch.randn(20, 3), epochs=1, progress=False)
    with pytest.raises(TypeError, match="got the option.s. method, but PPCA has no sampler of its own"):
        fit.sample(4, method="ddim")


def test_importance_weighting_refuses_the_sampled_program():
    """The sampled step's poutine.scale(T - 1), and the masks of the draws it is taken at, make log w an estimate of
    the ELBO's terms, no log importance weight: IWAE (fit or query), evaluate and importance resampling refuse it; the
    chain, whose log w is one, is taken."""
    x = torch.randn(20, 2)
    words = "weighs the site.s. 'x_1', 'x_t', 'x_prev' of the program, so that log w is an estimate of the ELBO's terms"
    with pytest.raises(ValueError, match=r"IWAE\(k=5.*" + words):
        ppgen.fit(models.DDPM(x_dim=2, steps=10, hidden=(8,)), x, inference=inference.IWAE(), progress=False)
    fit = ppgen.fit(models.DDPM(x_dim=2, steps=10, hidden=(8,)), x, epochs=1, progress=False)
    assert fit.structure.reweighted == ("x_1", "x_t", "x_prev")
    assert inspect(models.DDPM(x_dim=2, loss="simple"), x).reweighted == ("x_t",)
    for query in (lambda: fit.iwae_bound(x, k=4), lambda: fit.evaluate(x, k=4),
                  lambda: fit.posterior(x, num_samples=2, method="importance")):
        with pytest.raises(ValueError, match=words):
            query()
    chain = ppgen.fit(models.DDPM(x_dim=2, steps=3, hidden=(8,), terms="all"), x, inference=inference.IWAE(k=2),
                      epochs=1, progress=False)
    assert chain.structure.reweighted == () and chain.iwae_bound(x, k=4).shape == (20,)


def test_the_step_is_drawn_and_scored_without_passing_over_its_values():
    """UniformStep on 10^12 values (a Categorical's would not fit in memory): draws in range, log-density -log C,
    mean (C - 1) / 2, KL 0 to itself."""
    from ppgen.models.ddpm import UniformStep

    step = UniformStep(10**12, torch.zeros(())).expand([4, 3])
    t = step.sample()
    assert t.shape == (4, 3) and t.dtype == torch.long and ((t >= 0) & (t < 10**12)).all()
    torch.testing.assert_close(step.log_prob(t), torch.full((4, 3), -12 * math.log(10)))
    assert (step.mean == (10**12 - 1) / 2).all()
    assert (torch.distributions.kl_divergence(step, step) == 0).all()


@pytest.mark.usefixtures("float64")
def test_the_simple_loss_is_the_noise_regression_of_ho_et_al():
    """loss="simple": given the guide's draws t and x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, the data site's
    log-density is -||eps - eps_theta(x_t, t)||^2 / 2 - D/2 log(2 pi (1 - abar_t) / abar_t), Ho et al.'s L_simple up to
    a constant of t."""
    model = models.DDPM(x_dim=3, steps=50, hidden=(8,), loss="simple")
    x = torch.randn(7, 3)
    guide = pyro.poutine.trace(model.guide).get_trace(x)
    traced = pyro.poutine.trace(pyro.poutine.replay(model.model, trace=guide)).get_trace(x)
    traced.compute_log_prob()
    t, xt = guide.nodes["t"]["value"] + 1, guide.nodes["x_t"]["value"]
    beta = torch.tensor(betas(50, "linear"))
    abar = torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(1 - beta, 0)])[t].unsqueeze(-1)
    eps = (xt - abar.sqrt() * x) / (1 - abar).sqrt()
    squared = (eps - model.predicted_noise(xt, t)) ** 2
    expected = (-0.5 * squared - 0.5 * torch.log(2 * math.pi * (1 - abar) / abar)).sum(-1)
    torch.testing.assert_close(traced.nodes["x"]["log_prob"], expected, rtol=1e-12, atol=1e-12)
