"""The contract every model in the zoo keeps, checked over the whole zoo at once."""

import re

import pytest
import torch

import ppgen
from ppgen import inference, models
from ppgen.program.inputs import as_batch
from ppgen.program.structure import inspect
from ppgen.training import registry
from programs import MomentMatching

ZOO = sorted(registry.MODELS)
#: the objective that fits each kind of model here: the ELBO, or for an implicit model (a generator) one that
#: compares its samples with the data.
FITS = {False: inference.ELBO, True: MomentMatching}


@pytest.fixture
def x():
    return torch.bernoulli(torch.full((32, 5), 0.4))


@pytest.mark.parametrize("name", ZOO)
def test_builds_from_x_dim_alone_and_records_its_arguments(name):
    model = registry.MODELS[name](x_dim=5)
    assert model.config == {"x_dim": 5}
    with pytest.raises(TypeError, match="keyword arguments only"):
        registry.MODELS[name](5)


@pytest.mark.parametrize("name", ZOO)
def test_every_parameter_gets_a_gradient_from_the_objective_that_fits_it(name, x):
    """The ELBO trains model and guide together (and sums out enumerated latents), so it reaches every parameter; a
    generator's samples reach every parameter of its network."""
    model = registry.MODELS[name](x_dim=5)
    structure = inspect(model, x)
    FITS[structure.implicit]().loss(model, structure, as_batch(x)).backward()
    for param_name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, param_name


@pytest.mark.parametrize("name", ZOO)
def test_answers_every_query_defined_for_it_and_says_which_is_not(name, x):
    model = registry.MODELS[name](x_dim=5)
    if inspect(model, x).implicit:  # a generator: sample alone, every query of a density refused by name
        fit = ppgen.fit(model, x, inference=MomentMatching(), epochs=2, progress=False)
        assert fit.sample(7).shape == (7, 5)
        refused = {"log_prob(x)": lambda: fit.log_prob(x, k=5), "iwae_bound(x)": lambda: fit.iwae_bound(x, k=3),
                   "inferring p(z|x)": lambda: fit.encode(x), "inferring p(z|x), as": lambda: fit.posterior(x)}
        for needs, query in refused.items():
            with pytest.raises(ValueError, match=rf"^{re.escape(needs)}.* needs the model's density, but the model is "
                                                 rf"implicit.* of the queries it answers sample\(n\), and "
                                                 rf"evaluate\(x\) by its sample metrics alone$"):
                query()
        report = fit.evaluate(x, k=3, metrics=("mmd",))  # evaluate answers by the sample metrics alone
        assert report.iwae is None and set(report.samples.scores) == {"mmd"}
        return
    fit = ppgen.fit(model, x, epochs=2, progress=False)
    site = fit.latent_sites[0] if fit.latent_sites else None  # a model of several latent sites: about one
    assert fit.log_prob(x, k=5).shape == (32,) and torch.isfinite(fit.log_prob(x, k=5)).all()
    assert fit.sample(7).shape == (7, 5)
    own_encode = callable(getattr(fit.model, "encode", None))  # a flow's map to its base space
    if fit.latent_sites or own_encode:
        assert fit.encode(x, site=site).shape[0] == 32
    else:  # an exact model without latents says so, by name
        with pytest.raises(ValueError, match=f"{type(fit.model).__name__} has no latent variables"):
            fit.encode(x)
    if fit.latent_sites:
        assert all(s.shape[:2] == (11, 32) for s in fit.posterior(x, num_samples=11).samples.values())
    else:
        with pytest.raises(ValueError, match="has no latent variables"):
            fit.posterior(x, num_samples=11)
    if fit.structure.reweighted:  # log w estimates the ELBO's terms, no importance weight (a diffusion's sampled step)
        with pytest.raises(ValueError, match="no importance weight"):
            fit.iwae_bound(x, k=3)
        return
    assert fit.iwae_bound(x, k=3).shape == (32,)
    if not fit.structure.guided:  # every latent summed out: the bound is log p(x) itself
        torch.testing.assert_close(fit.iwae_bound(x, k=3), fit.log_prob(x))


def test_a_gaussian_vae_fits_real_valued_data():
    data = torch.randn(64, 3)
    fit = ppgen.fit(models.VAE(x_dim=3, z_dim=1, hidden=(8,), likelihood="gaussian"), data, epochs=2, progress=False)
    assert fit.sample(4).dtype == torch.float32 and not set(fit.sample(4).unique().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("name", ZOO)
@pytest.mark.parametrize("x_dim, error", [(0, ValueError), (-1, ValueError), ("64", TypeError), (6.0, TypeError)])
def test_x_dim_must_be_a_positive_int(name, x_dim, error):
    with pytest.raises(error, match="x_dim must be a positive int"):
        registry.MODELS[name](x_dim=x_dim)


@pytest.mark.parametrize("build, error, match", [
    (lambda: models.VAE(x_dim=3, likelihood="poisson"), ValueError, "likelihood must be one of"),
    (lambda: models.VAE(x_dim=3, z_dim=0), ValueError, "z_dim must be a positive int"),
    (lambda: models.VAE(x_dim=3, hidden=5), TypeError, "hidden must be a sequence of layer widths"),
    (lambda: models.VAE(x_dim=3, hidden=(8, 0)), ValueError, r"hidden\[1\] must be a positive int"),
    (lambda: models.PPCA(x_dim=3, z_dim=4), ValueError, "z_dim must be at most x_dim"),
    (lambda: models.GMM(x_dim=3, covariance="spherical"), ValueError, "covariance must be one of"),
    (lambda: models.GMM(x_dim=3, n_components=0), ValueError, "n_components must be a positive int"),
    (lambda: models.GMM(x_dim=3, reg_covar=-1.0), ValueError, "reg_covar must be a finite number >= 0"),
])
def test_bad_model_options_are_refused(build, error, match):
    with pytest.raises(error, match=match):
        build()


def test_a_gmm_needs_a_point_per_component_to_start():
    gmm = models.GMM(x_dim=2, n_components=3)
    before = {k: v.clone() for k, v in gmm.state_dict().items()}
    with pytest.raises(ValueError, match=r"data: 2 point\(s\) cannot start 3 components"):
        ppgen.fit(gmm, torch.randn(2, 2, dtype=torch.float64), progress=False)
    for name, value in gmm.state_dict().items():  # float64 data, and the model still float32, untouched
        assert value.dtype == before[name].dtype and torch.equal(value, before[name]), name


def test_gmm_draws_have_the_mixtures_mean():
    """x ~ p(x) drawn with the component summed in: E[x] = sum_c pi_c mu_c."""
    fit = ppgen.fit(models.GMM(x_dim=4, n_components=3), torch.randn(60, 4), epochs=1, progress=False)
    draws = fit.sample(20000)
    locs = fit.model.components()[0].detach()
    weights = fit.model.logits.detach().softmax(0)
    torch.testing.assert_close(draws.mean(0), weights @ locs, atol=0.1, rtol=0)  # E[x] = sum_c pi_c mu_c
