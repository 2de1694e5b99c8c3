"""The queries of an energy-based model against the truth: log p(x) through an AIS estimate of log Z against the
closed form of a Gaussian energy and against numerical integration (scipy's dblquad) of a two-mode one; draws by
Langevin dynamics, annealed Langevin and NUTS against exact draws (an MMD permutation test) and the closed-form
moments; a fit by score matching then sampled; a saved fit keeping what its queries need; the refusals."""

import json
import math

import pyro
import pytest
import torch
from scipy import integrate
from torch import nn
from torch.distributions import MultivariateNormal

import ppgen
from ppgen import inference
from ppgen.program.unnormalized import Unnormalized
from ppgen.queries.annealing import LogZ
from programs import GaussianEnergy
from two_sample import mmd_p_value

pytestmark = pytest.mark.usefixtures("float64", "one_thread")

MEAN = torch.tensor([1.0, -1.0], dtype=torch.float64)
COVARIANCE = torch.tensor([[1.0, 0.6], [0.6, 0.61]], dtype=torch.float64)


def exact(n, seed):
    """n exact draws of N(MEAN, COVARIANCE)."""
    torch.manual_seed(seed)
    return MultivariateNormal(MEAN, COVARIANCE).sample((n,))


def gaussian_fit(objective=None, noise_conditional=False, n=400):
    """A fit of a Gaussian energy to n exact draws, its parameters then set to N(MEAN, COVARIANCE) exactly."""
    x = exact(n, seed=1)
    model = GaussianEnergy(2, noise_conditional=noise_conditional)
    fit = ppgen.fit(model, x, inference=objective, epochs=1, progress=False, seed=0)
    model.set_gaussian(MEAN, COVARIANCE)
    return fit, x


@pytest.fixture(scope="module")
def gaussian():
    with torch.random.fork_rng():
        torch.set_default_dtype(torch.float64)
        try:
            return gaussian_fit()
        finally:
            torch.set_default_dtype(torch.float32)


def test_log_prob_is_the_closed_form_within_the_standard_error_of_log_z(gaussian):
    fit, x = gaussian
    torch.manual_seed(0)
    got = fit.log_prob(x[:50])
    log_z = fit.log_normalizer()
    truth = MultivariateNormal(MEAN, COVARIANCE).log_prob(x[:50])
    error = got - truth  # every row off by the same error, that of log Zhat
    assert type(got) is torch.Tensor and got.dtype == torch.float64 and got.shape == (50,)
    torch.testing.assert_close(error, error[:1].expand(50), rtol=0, atol=1e-10)
    assert isinstance(log_z, LogZ) and 0 < log_z.standard_error < 0.05
    assert abs(error[0].item()) < 4 * log_z.standard_error
    closed_form = math.log(2 * math.pi) + 0.5 * torch.logdet(COVARIANCE).item()
    assert abs(log_z.estimate - closed_form) < 4 * log_z.standard_error


def test_log_z_is_kept_reestimated_with_other_settings_and_after_the_parameters_change():
    fit, x = gaussian_fit()
    first = fit.log_normalizer()
    assert fit.log_normalizer() is first and torch.equal(fit.log_prob(x), fit.log_prob(x))
    other = fit.log_normalizer(temperatures=20, chains=200)
    assert other is not first and other.log_weights.shape == (200,)
    assert fit.log_normalizer() is other  # no settings given: the kept estimate, with its settings
    f = ppgen.program.unnormalized.log_density(fit.model, fit.structure, x)
    torch.testing.assert_close(fit.log_prob(x), f - other.estimate, rtol=0, atol=0)
    with torch.no_grad():
        fit.model.loc.add_(1.0)  # a new model: its log Z is estimated again (here the same number in truth)
    assert fit.log_normalizer() is not other


def two_modes(x):
    """log f of two banana-shaped modes at x_1 = -1 and 1: -4 (x_1^2 - 1)^2 - (x_2 - x_1^2 / 2)^2 / (2 0.5^2)."""
    return -4 * (x[..., 0] ** 2 - 1) ** 2 - 0.5 * ((x[..., 1] - 0.5 * x[..., 0] ** 2) / 0.5) ** 2


class TwoModes(nn.Module):
    """The energy of :func:`two_modes` times a learnt scale, 1 as the test sets it."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def model(self, x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", Unnormalized(lambda v: self.scale * two_modes(v), event_shape=(2,)), obs=x)


def test_log_prob_of_a_two_mode_energy_against_numerical_integration():
    value, error = integrate.dblquad(lambda b, a: math.exp(float(two_modes(torch.tensor([a, b])))), -3, 3, -4, 6,
                                     epsabs=1e-10)
    assert error < 1e-6 * value
    torch.manual_seed(0)
    x = torch.stack([torch.randn(300) * 0.2 + torch.randint(2, (300,)) * 2 - 1, torch.randn(300) * 0.5 + 0.5], -1)
    fit = ppgen.fit(TwoModes(), x, epochs=1, progress=False, seed=0)
    with torch.no_grad():
        fit.model.scale.fill_(1.0)
    got = fit.log_prob(x[:20])
    log_z = fit.log_normalizer()
    truth = two_modes(x[:20]) - math.log(value)
    assert abs((got - truth)[0].item()) < 4 * log_z.standard_error and log_z.standard_error < 0.05
    draws = fit.sample(400)
    assert 0.35 < (draws[:, 0] > 0).double().mean() < 0.65  # both modes, about equally


@pytest.mark.parametrize("method, options", [("langevin", {}), ("nuts", {"warmup_steps": 100})])
def test_draws_pass_a_two_sample_test_against_exact_draws_and_match_the_moments(gaussian, method, options):
    fit, _ = gaussian
    torch.manual_seed(2)
    draws = fit.sample(300, method=method, **options)
    assert draws.shape == (300, 2) and draws.dtype == torch.float64
    assert mmd_p_value(draws, exact(300, seed=3)) > 0.01
    torch.testing.assert_close(draws.mean(0), MEAN, rtol=0, atol=0.15)
    torch.testing.assert_close(draws.T.cov(), COVARIANCE, rtol=0, atol=0.2)


def test_annealed_langevin_is_the_default_for_a_noise_conditional_energy_and_draws_its_smallest_level():
    """At the last level sigma_L = 0.1 of a geometric ladder, as Song and Ermon's, the noise-conditional Gaussian
    energy is N(MEAN, COVARIANCE + 0.01 I)."""
    levels = tuple(10 ** (-k / 7) for k in range(8))  # 1 down to 0.1
    fit, _ = gaussian_fit(inference.ScoreMatching(noise=levels), noise_conditional=True)
    torch.manual_seed(4)
    draws = fit.sample(400)
    torch.testing.assert_close(draws.mean(0), MEAN, rtol=0, atol=0.15)
    torch.testing.assert_close(draws.T.cov(), COVARIANCE + 0.01 * torch.eye(2), rtol=0, atol=0.15)
    with pytest.raises(TypeError, match=r"sample\(method='annealed'\) takes the option\(s\) init, step_size, steps, "
                                        r"not adjusted"):
        fit.sample(5, adjusted=True)


def test_a_fit_by_score_matching_draws_the_moments_of_its_data():
    torch.manual_seed(5)
    x = exact(1000, seed=5)
    fit = ppgen.fit(GaussianEnergy(2), x, inference=inference.ScoreMatching(method="sliced"), epochs=150,
                    batch_size=1000, lr=0.05, progress=False, seed=0)
    draws = fit.sample(500)
    torch.testing.assert_close(draws.mean(0), x.mean(0), rtol=0, atol=0.15)
    torch.testing.assert_close(draws.T.cov(), x.T.cov(), rtol=0, atol=0.2)


def test_a_saved_fit_keeps_the_data_moments_and_the_estimate_of_log_z(tmp_path):
    fit, x = gaussian_fit()
    log_z = fit.log_normalizer(temperatures=20, chains=100)
    fit.save(tmp_path / "fit.pt")
    loaded = ppgen.load(tmp_path / "fit.pt", model=GaussianEnergy(2))
    assert torch.equal(loaded.moments.mean, fit.moments.mean) and loaded.moments.count == 400
    torch.testing.assert_close(loaded.moments.covariance, x.T.cov(correction=0), rtol=0, atol=1e-12)
    assert loaded.log_normalizer().estimate == log_z.estimate  # kept, not estimated again
    torch.testing.assert_close(loaded.log_prob(x), fit.log_prob(x), rtol=0, atol=0)
    draws = []
    for answering in (fit, loaded):
        torch.manual_seed(6)
        draws.append(answering.sample(20, steps=10))
    assert torch.equal(*draws)
    state = torch.load(tmp_path / "fit.pt", weights_only=True)
    state["energy"]["covariance"] = state["energy"]["covariance"][:1]
    torch.save(state, tmp_path / "damaged.pt")
    with pytest.raises(ValueError, match=r"damaged.pt: field 'energy.covariance' is damaged: expected a finite float64 "
                                         r"tensor of shape \[2, 2\]"):
        ppgen.load(tmp_path / "damaged.pt", model=GaussianEnergy(2))


def test_evaluate_reports_the_estimate_its_standard_error_and_nces_c_beside_it():
    fit, x = gaussian_fit(inference.NCE(ratio=2))
    torch.manual_seed(7)
    report = fit.evaluate(x[:100], metrics=("mmd",), permutations=50)
    log_z = fit.log_normalizer()
    torch.testing.assert_close(report.estimated, fit.log_prob(x[:100]), rtol=0, atol=0)
    assert report.log_z is log_z and report.learnt_log_z == fit.model.log_normalizer.item()
    assert report.elbo is None and report.exact is None and report.samples.scores["mmd"].n == (100, 100)
    text = str(report)
    assert "an estimate: -E(x) - log Zhat" in text and f"+- {log_z.standard_error:.4f} (standard error)" in text
    assert "c (NCE)" in text
    as_dict = json.loads(json.dumps(report.to_dict()))
    assert as_dict["log_z"]["estimate"] == log_z.estimate and len(as_dict["estimated"]) == 100
    score_fit, _ = gaussian_fit()
    assert score_fit.evaluate(x[:30], metrics=("mmd",), permutations=20).learnt_log_z is None


@pytest.mark.parametrize("options, error, match", [
    (dict(method="gibbs"), ValueError, "method must be one of"),
    (dict(foo=1), TypeError, r"sample\(method='langevin'\) takes the option\(s\) adjusted, init, step_size, steps, "
                             r"not foo"),
    (dict(method="nuts", steps=10), TypeError, r"takes the option\(s\) chains, init, warmup_steps, not steps"),
    (dict(steps=0), ValueError, "steps must be a positive int"),
    (dict(step_size=-1.0), ValueError, "step_size must be a positive"),
    (dict(adjusted="yes"), TypeError, "adjusted must be True"),
    (dict(init=torch.zeros(4, 2)), ValueError, r"init must hold one starting point per draw, shape \[5, 2\], got "
                                               r"\[4, 2\]"),
    (dict(method="nuts", chains=9), ValueError, "9 NUTS chains for 5 draws"),
    (dict(method="annealed"), ValueError, "method='annealed' runs Langevin dynamics down the noise levels.*has none"),
    (dict(mean=True), ValueError, "an energy-based model has no latents"),
])
def test_bad_sampling_options_are_refused_by_name_before_any_work(gaussian, options, error, match):
    fit, _ = gaussian
    state = torch.random.get_rng_state()
    with pytest.raises(error, match=match):
        fit.sample(5, **options)
    assert torch.equal(torch.random.get_rng_state(), state)


def test_chains_that_hardly_move_say_so(gaussian):
    fit, _ = gaussian
    with pytest.warns(RuntimeWarning, match=r"the Langevin chains accepted .* of their proposals at step_size=100: "
                                            r"they hardly moved"):
        fit.sample(50, steps=5, step_size=100.0)


def test_the_bound_through_a_guide_and_bad_settings_of_log_z_are_refused(gaussian):
    fit, x = gaussian
    with pytest.raises(ValueError, match=r"^iwae_bound needs log p\(x\), but the model observes its data through "
                                         r"ppgen.Unnormalized.*no guide whose draws it could weigh"):
        fit.iwae_bound(x, k=2)
    with pytest.raises(ValueError, match="chains must be at least 2"):
        fit.log_normalizer(chains=1)
    with pytest.raises(ValueError, match="temperatures must increase strictly from 0 to 1"):
        fit.log_normalizer(temperatures=[0.0, 0.5])
    normalised = ppgen.fit(ppgen.models.PPCA(x_dim=2, z_dim=1), x, epochs=1, progress=False)
    with pytest.raises(ValueError, match="not ppgen.Unnormalized; its log p\\(x\\) needs no log Z"):
        normalised.log_normalizer()


class Conditional(nn.Module):
    """An energy of x given y, E(x | y) = |x - mu - y|^2 / 2: its normaliser depends on y."""

    def __init__(self):
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(2))

    def model(self, x, y):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", Unnormalized(lambda v: -0.5 * (v - self.loc - y).square().sum(-1), event_shape=(2,)),
                        obs=x)


def test_an_energy_of_x_given_further_inputs_is_refused_by_name():
    x, y = torch.randn(30, 2), torch.randn(30, 2)
    fit = ppgen.fit(Conditional(), (x, y), epochs=1, progress=False)
    for query in (lambda: fit.log_prob(x, y), lambda: fit.sample(3, y[:3]), lambda: fit.log_normalizer()):
        with pytest.raises(ValueError, match=r"an energy model of x given further inputs has a normaliser Z\(y\) for "
                                             r"each y"):
            query()
