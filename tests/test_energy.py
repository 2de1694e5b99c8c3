"""Energy-based models (ppgen.Unnormalized), score matching and NCE, against closed forms: a Gaussian energy
E(x) = (x - mu)^T P (x - mu) / 2 fitted to Gaussian data recovers the sample mean and covariance (denoising score
matching the covariance plus sigma^2 I), NCE its log Z = (D/2) log 2 pi - (1/2) log det P, and the sliced score
matching loss equals Hyvarinen's (the trace of the Hessian by autograd) in expectation."""

import math

import pyro
import pytest
import torch
from torch import nn
from torch.distributions import MultivariateNormal, constraints
from torch.nn.functional import softplus

import ppgen
from ppgen import inference, models
from ppgen.inference.score_matching import sliced_terms
from ppgen.program.inputs import as_batch
from ppgen.program.structure import inspect
from ppgen.program.unnormalized import Unnormalized, log_density
from ppgen.training import registry
from programs import GaussianEnergy, GaussianModel, correlated_gaussian

pytestmark = pytest.mark.usefixtures("float64", "one_thread")


@pytest.fixture(scope="module")
def gaussian_data():
    return correlated_gaussian(2000)


def fitted(model, x, backend, epochs=300):
    return ppgen.fit(model, x, inference=backend, epochs=epochs, batch_size=len(x), lr=0.05, progress=False, seed=0)


# --- the convention ------------------------------------------------------------------------------------------------


def test_log_prob_is_the_log_density_without_log_z_and_there_is_no_direct_sampler():
    d = Unnormalized(lambda x: -0.5 * (x ** 2).sum(-1), event_shape=(3,))
    x = torch.randn(4, 3)
    torch.testing.assert_close(d.log_prob(x), -0.5 * (x ** 2).sum(-1))  # N(0, I) less its log Z = (3/2) log 2 pi
    assert d.expand((2, 4)).log_prob(x).shape == (2, 4)
    assert d.support.event_dim == 1
    with pytest.raises(NotImplementedError, match="no direct sampler; fit.sample"):
        d.sample()


def test_a_noise_conditional_density_receives_sigma_and_log_prob_is_at_sigma_zero():
    seen = []

    def log_density(x, sigma):
        seen.append(sigma)
        return -(x ** 2).sum(-1) / (1 + sigma)

    d = Unnormalized(log_density, event_shape=(2,), noise_conditional=True)
    x = torch.ones(3, 2)
    torch.testing.assert_close(d.log_prob(x), torch.full((3,), -2.0))
    torch.testing.assert_close(d.noisy_log_prob(x, torch.tensor([0.0, 1.0, 3.0])), torch.tensor([-2.0, -1.0, -0.5]))
    assert seen[0].tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(log_density=3, event_shape=(2,)), TypeError, "log_density must be a function"),
    (dict(log_density=abs, event_shape="two"), TypeError, "event_shape must be a tuple of ints"),
    (dict(log_density=abs, event_shape=(2,), support="real"), TypeError, "support must be a torch"),
    (dict(log_density=abs, event_shape=(), support=constraints.simplex), ValueError, "more than event_shape"),
    (dict(log_density=abs, event_shape=(2,), log_normalizer=0.0), TypeError, "log_normalizer must be a scalar"),
    (dict(log_density=abs, event_shape=(2,), noise_conditional=1), TypeError, "noise_conditional must be True"),
])
def test_bad_arguments_are_refused_by_name(kwargs, error, match):
    log_density = kwargs.pop("log_density")
    with pytest.raises(error, match=match):
        Unnormalized(log_density, **kwargs)


def test_a_log_density_of_the_wrong_shape_is_refused():
    d = Unnormalized(lambda x: x.sum(-1, keepdim=True), event_shape=(2,))  # [N, 1], a network's raw output
    with pytest.raises(ValueError, match=r"one number per point, shape \[5\] .* got \[5, 1\]"):
        d.log_prob(torch.zeros(5, 2))


def test_the_structure_says_the_model_is_unnormalised_and_its_log_p_is_not_exact(gaussian_data):
    x = gaussian_data[0]
    structure = inspect(GaussianEnergy(2), x)
    assert structure.unnormalized and not structure.exact and structure.data_site == "x"
    normalised = inspect(GaussianModel(2), x)
    assert not normalised.unnormalized and normalised.exact
    assert inspect(models.EnergyModel(x_dim=2), x).unnormalized


def test_data_outside_the_support_are_refused_before_a_fit():
    class Positive(nn.Module):
        def __init__(self):
            super().__init__()
            self.rate = nn.Parameter(torch.ones(()))

        def model(self, x):
            with pyro.plate("data", x.shape[0]):
                pyro.sample("x", Unnormalized(lambda v: -self.rate * v.sum(-1), event_shape=(2,),
                                              support=constraints.positive), obs=x)

    x = torch.rand(10, 2)
    x[3, 1] = -1.0
    with pytest.raises(ValueError, match=r"data: 1 data point\(s\) lie outside the support .* the first at row 3"):
        ppgen.fit(Positive(), x, inference=inference.ScoreMatching(), progress=False)


def test_log_density_gives_minus_the_energy_of_a_batch(gaussian_data):
    x = gaussian_data[0][:7]
    model = GaussianEnergy(2)
    structure = inspect(model, x)
    torch.testing.assert_close(log_density(model, structure, as_batch(x)), -0.5 * ((x - model.loc) ** 2).sum(-1))
    v = x.clone().requires_grad_(True)  # x alone, for a sampler: the score by autograd is -P (x - mu), P = I here
    score = torch.autograd.grad(log_density(model, structure, v).sum(), v)[0]
    torch.testing.assert_close(score, -(x - model.loc).detach())
    with pytest.raises(ValueError, match="is not ppgen.Unnormalized"):
        log_density(GaussianModel(2), inspect(GaussianModel(2), x), as_batch(x))


# --- refusals ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", [inference.MLE(), inference.MAP(), inference.ELBO(), inference.IWAE(),
                                     inference.RenyiVI(), inference.RWS(), inference.VIMCO()])
def test_objectives_built_on_log_p_refuse_an_unnormalised_model(backend, gaussian_data):
    with pytest.raises(ValueError, match=r"needs log p\(x\), but the model observes its data through "
                                         r"ppgen.Unnormalized.*inference.ScoreMatching\(\) or inference.NCE\(\)"):
        backend.check(inspect(GaussianEnergy(2), gaussian_data[0]))


def test_an_energy_model_answers_log_prob_and_sample_and_refuses_the_bound_through_a_guide(gaussian_data):
    """The answers themselves are checked against the truth in tests/test_energy_queries.py."""
    x = gaussian_data[0][:50]
    fit = ppgen.fit(GaussianEnergy(2), x, epochs=1, progress=False)
    assert isinstance(fit.inference, inference.ScoreMatching)  # the default for an energy-based model
    assert fit.log_prob(x).shape == (50,) and fit.sample(3, steps=4).shape == (3, 2)
    with pytest.raises(ValueError, match=r"needs log p\(x\).*without log Z.*no guide whose draws it could weigh: "
                                         r"fit.log_prob\(x\) estimates"):
        fit.iwae_bound(x, k=2)


def test_the_backends_refuse_models_they_cannot_fit(gaussian_data):
    x = gaussian_data[0][:40]
    with pytest.raises(ValueError, match=r"NCE\(\) fits an energy-based model.*normalised: fit it by inference.MLE"):
        inference.NCE().check(inspect(GaussianModel(2), x))
    vae = models.VAE(x_dim=2, likelihood="gaussian")
    with pytest.raises(ValueError, match=r"ScoreMatching\(\) needs the model's log-density as a function of x.*"
                                         r"neither summed out"):
        inference.ScoreMatching().check(inspect(vae, x))
    binary = torch.bernoulli(torch.full((40, 3), 0.5))
    with pytest.raises(ValueError, match=r"moves or draws points in R\^D, but the model's data site has support"):
        inference.ScoreMatching().check(inspect(models.FVSBN(x_dim=3), binary))
    with pytest.raises(ValueError, match=r"NCE\(\) learns log Z as a parameter c of the model, but its Unnormalized "
                                         r"data site has no log_normalizer"):
        ppgen.fit(GaussianEnergy(2, log_normalizer=False), x, inference=inference.NCE(), progress=False)


def test_nce_refuses_noise_it_cannot_use_before_any_step(gaussian_data):
    x = gaussian_data[0][:40]
    model = GaussianEnergy(2)
    with pytest.raises(ValueError, match=r"noise has event shape \(3,\), but x flattened has 2 values per point"):
        ppgen.fit(model, x, inference=inference.NCE(noise=MultivariateNormal(torch.zeros(3), torch.eye(3))),
                  progress=False)
    recorded = inference.NCE(noise="given: MultivariateNormal(loc: torch.Size([2]))")  # as a loaded fit rebuilds it
    with pytest.raises(ValueError, match="rebuilt from a saved fit.*pass inference.NCE\\(noise=<the distribution>\\)"):
        ppgen.fit(model, x, inference=recorded, progress=False)
    with pytest.raises(ValueError, match="the noise distribution is set before the first step, by ppgen.fit"):
        inference.NCE().loss(model, inspect(model, x), as_batch(x))
    assert torch.equal(model.loc, torch.zeros(2))  # nothing changed


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(method="exact"), ValueError, "method must be one of"),
    (dict(projection="uniform"), ValueError, "projection must be one of"),
    (dict(noise="0.1"), TypeError, "noise must be a positive number sigma or a sequence"),
    (dict(noise=-0.1), ValueError, "noise must be a positive finite number, got -0.1"),
    (dict(noise=(0.1, 0.5)), ValueError, r"noise must be a decreasing sequence of levels"),
    (dict(noise=()), ValueError, r"noise must be a decreasing sequence of levels"),
])
def test_score_matching_refuses_bad_settings(kwargs, error, match):
    with pytest.raises(error, match=match):
        inference.ScoreMatching(**kwargs)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(ratio=0), ValueError, "ratio must be a positive int"),
    (dict(noise=3), TypeError, "noise must be None"),
    (dict(noise=MultivariateNormal(torch.zeros(3, 2), torch.eye(2))), ValueError, r"batch shape \(\), event shape"),
])
def test_nce_refuses_bad_settings(kwargs, error, match):
    with pytest.raises(error, match=match):
        inference.NCE(**kwargs)


# --- against the truth ---------------------------------------------------------------------------------------------


def test_denoising_score_matching_recovers_the_mean_and_the_covariance_plus_sigma_squared(gaussian_data):
    """The minimiser of (1/2) E||sigma s(x + sigma eps) + eps||^2 for s(x) = -P (x - mu) is mu = mean, P^-1 = S +
    sigma^2 I exactly: the Gaussian of the data convolved with the noise, not of the data."""
    x, mean, covariance = gaussian_data
    model = GaussianEnergy(2)
    fitted(model, x, inference.ScoreMatching(noise=0.5))
    torch.testing.assert_close(model.loc.detach(), mean, atol=0.08, rtol=0)
    fit_covariance = torch.linalg.inv(model.precision()).detach()
    torch.testing.assert_close(fit_covariance, covariance + 0.25 * torch.eye(2), atol=0.08, rtol=0)


@pytest.mark.parametrize("projection", ["rademacher", "gaussian"])
def test_sliced_score_matching_recovers_the_mean_and_covariance(projection, gaussian_data):
    x, mean, covariance = gaussian_data
    model = GaussianEnergy(2)
    fitted(model, x, inference.ScoreMatching(method="sliced", projection=projection))
    torch.testing.assert_close(model.loc.detach(), mean, atol=0.03, rtol=0)
    torch.testing.assert_close(torch.linalg.inv(model.precision()).detach(), covariance, atol=0.06, rtol=0)


def test_score_matching_fits_a_normalised_model_too(gaussian_data):
    x, mean, covariance = gaussian_data
    model = GaussianModel(2)
    fitted(model, x, inference.ScoreMatching(method="sliced", projection="gaussian"))
    factor = torch.tril(model.raw, -1) + torch.diag(softplus(model.raw.diagonal()) / math.log(2))
    torch.testing.assert_close(model.loc.detach(), mean, atol=0.03, rtol=0)
    torch.testing.assert_close((factor @ factor.T).detach(), covariance, atol=0.06, rtol=0)


def test_several_noise_levels_reach_a_noise_conditional_energy_and_recover_the_data_covariance(gaussian_data):
    """With E(x, sigma) the Gaussian of covariance C + sigma^2 I, every level's minimiser is C = S: the
    noise-conditional energy learns the data's covariance through perturbed data alone."""
    x, mean, covariance = gaussian_data
    model = GaussianEnergy(2, noise_conditional=True)
    fitted(model, x, inference.ScoreMatching(noise=(1.0, 0.5, 0.25)))
    torch.testing.assert_close(model.loc.detach(), mean, atol=0.08, rtol=0)
    torch.testing.assert_close(torch.linalg.inv(model.precision()).detach(), covariance, atol=0.1, rtol=0)


def test_nce_recovers_the_mean_the_covariance_and_log_z(gaussian_data):
    x, mean, covariance = gaussian_data
    model = GaussianEnergy(2)
    fit = fitted(model, x, inference.NCE(ratio=5))
    precision = model.precision().detach()
    torch.testing.assert_close(model.loc.detach(), mean, atol=0.05, rtol=0)
    torch.testing.assert_close(torch.linalg.inv(precision), covariance, atol=0.06, rtol=0)
    log_z = math.log(2 * math.pi) - 0.5 * torch.logdet(precision).item()  # (D/2) log 2 pi - (1/2) log det P, D = 2
    assert abs(model.log_normalizer.item() - log_z) < 0.05
    assert fit.inference.config == {"noise": None, "ratio": 5}  # the Gaussian fitted at the start is not recorded


def test_nce_takes_a_noise_distribution_of_the_users(gaussian_data):
    x, mean, covariance = gaussian_data
    model = GaussianEnergy(2)
    wide = MultivariateNormal(mean, 2 * covariance)
    fit = fitted(model, x, inference.NCE(noise=wide, ratio=5))
    torch.testing.assert_close(model.loc.detach(), mean, atol=0.1, rtol=0)
    torch.testing.assert_close(torch.linalg.inv(model.precision()).detach(), covariance, atol=0.15, rtol=0)
    assert fit.inference.config["noise"].startswith("given: MultivariateNormal")


@pytest.mark.parametrize("projection", ["rademacher", "gaussian"])
def test_the_sliced_loss_is_hyvarinens_exact_loss_in_expectation(projection):
    """At fixed parameters, the mean of v^T (grad s) v + (1/2)||s||^2 over many projections v equals
    tr(grad_x s(x)) + (1/2)||s(x)||^2, the trace of the Hessian of log p~ taken by autograd, within 4 standard
    errors."""
    model = models.EnergyModel(x_dim=3, hidden=(16,))
    x = torch.randn(5, 3)
    repeats = 4000
    many = x.repeat(repeats, 1)
    structure = inspect(model, many)
    terms = []
    for point in x:
        hessian = torch.autograd.functional.hessian(lambda v: -model.energy(v.unsqueeze(0)).sum(), point)
        score = torch.autograd.functional.jacobian(lambda v: -model.energy(v.unsqueeze(0)).sum(), point)
        terms.append(hessian.trace() + 0.5 * score.square().sum())
    exact = torch.stack(terms).mean()
    sliced = inference.ScoreMatching(method="sliced", projection=projection).loss(model, structure, as_batch(many))
    v = many.clone().requires_grad_(True)  # the spread of the per-point terms, for the standard error
    spread = sliced_terms(torch.autograd.grad(-model.energy(v).sum(), v, create_graph=True)[0], v, projection).std()
    assert abs(sliced.item() - exact.item()) < 4 * spread.item() / math.sqrt(len(many))


# --- the zoo -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(registry.ENERGY_MODELS))
def test_energy_models_build_from_x_dim_alone_and_refuse_bad_options(name):
    model = registry.ENERGY_MODELS[name](x_dim=16)
    assert model.config == {"x_dim": 16}
    with pytest.raises(TypeError, match="keyword arguments only"):
        registry.ENERGY_MODELS[name](16)
    with pytest.raises(ValueError, match="activation must be one of"):
        registry.ENERGY_MODELS[name](x_dim=16, activation="gelu")
    with pytest.raises(TypeError, match="noise_conditional must be True or False"):
        registry.ENERGY_MODELS[name](x_dim=16, noise_conditional="yes")


@pytest.mark.parametrize("name", sorted(registry.ENERGY_MODELS))
@pytest.mark.parametrize("noise_conditional", [False, True])
def test_energy_models_read_the_noise_level_where_noise_conditional(name, noise_conditional):
    model = registry.ENERGY_MODELS[name](x_dim=16, noise_conditional=noise_conditional)
    x = torch.randn(4, 16)
    at_zero, at_one = model.energy(x), model.energy(x, torch.ones(4))
    assert at_zero.shape == (4,)
    if noise_conditional:  # no level is sigma = 0, the data's own density
        assert torch.equal(at_zero, model.energy(x, torch.zeros(4))) and not torch.equal(at_zero, at_one)
    else:  # a plain energy is the same at every level
        assert torch.equal(at_zero, at_one)


def test_the_convolutional_energy_reads_rows_and_images_alike():
    model = models.ConvEnergy(x_dim=48, image_shape=(3, 4, 4), channels=(8,), dense=16)
    images = torch.randn(5, 3, 4, 4)
    torch.testing.assert_close(model.energy(images), model.energy(images.flatten(1)))
    with pytest.raises(ValueError, match=r"image_shape must be \(C, H, W\) with C H W = x_dim \(48\)"):
        models.ConvEnergy(x_dim=48, image_shape=(1, 4, 4))
    fit = ppgen.fit(model, images, inference=inference.ScoreMatching(method="sliced"), epochs=1, progress=False)
    assert fit.structure.unnormalized and len(fit.history) == 1


@pytest.mark.parametrize("backend", [inference.ScoreMatching(noise=(0.5, 0.1)), inference.NCE(ratio=2)])
def test_a_zoo_energy_fits_and_a_saved_fit_loads_with_its_parameters(backend, tmp_path):
    x = torch.randn(64, 2)
    model = models.EnergyModel(x_dim=2, hidden=(16,), noise_conditional=True)
    fit = ppgen.fit(model, x, inference=backend, epochs=2, progress=False)
    if isinstance(backend, inference.NCE):
        assert model.log_normalizer.item() != 0.0  # NCE learns c; score matching never moves it
    else:
        assert model.log_normalizer.item() == 0.0
    fit.save(tmp_path / "fit.pt")
    loaded = ppgen.load(tmp_path / "fit.pt")
    assert loaded.inference == backend and loaded.structure.unnormalized
    batch = as_batch(x)
    torch.testing.assert_close(log_density(loaded.model, loaded.structure, batch),
                               log_density(fit.model, fit.structure, batch), rtol=0, atol=0)
