"""The latent-variable families and their likelihoods, checked against truths known without ppgen."""

import math

import numpy as np
import pyro
import pytest
import torch
from sklearn.decomposition import FactorAnalysis as SklearnFactorAnalysis

import ppgen
from ppgen import datasets, inference, models
from ppgen.models.likelihoods import LIKELIHOODS, DiscretisedLogisticDistribution, build_likelihood
from ppgen.program.enumeration import enumerated_log_posterior
from ppgen.program.inputs import as_batch
from ppgen.program.structure import inspect
from ppgen.program.traces import trace_particles

LATENT_FAMILIES = {
    "VAE": lambda: models.VAE(x_dim=64, z_dim=4, hidden=(64,)),
    "ConvVAE": lambda: models.ConvVAE(x_dim=64, z_dim=4, channels=(8, 16), dense=32),
    "HVAE": lambda: models.HVAE(x_dim=64, z_dim=8, z2_dim=4, hidden=(32,), hidden2=(16,)),
    "GMVAE": lambda: models.GMVAE(x_dim=64, z_dim=4, n_components=5, hidden=(64,)),
}


@pytest.fixture(scope="module")
def digits():
    return datasets.digits(binarize=True), datasets.digits(split="test", binarize=True)[:40]


def paired_lower(small, large):
    """mean(large - small) + 3 standard errors: above zero where E[small] <= E[large] within Monte Carlo error."""
    d = (large - small).double()
    return (d.mean() + 3 * d.std() / math.sqrt(len(d))).item()


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "ConvVAE" else n
                                  for n in LATENT_FAMILIES])
def test_elbo_below_iwae_k_below_iwae_5000_on_held_out_data(name, digits):
    train, test = digits
    fit = ppgen.fit(LATENT_FAMILIES[name](), train, epochs=3, batch_size=64, progress=False)
    elbo = torch.stack([fit.iwae_bound(test, k=1) for _ in range(10)]).mean(0)  # per point, 10 draws
    iwae_k = fit.iwae_bound(test, k=20)
    iwae_5000 = fit.iwae_bound(test, k=5000)
    assert paired_lower(elbo, iwae_k) > 0 and paired_lower(iwae_k, iwae_5000) > 0
    assert elbo.mean() < iwae_5000.mean()  # the gap is real, not zero: the guides are imperfect after 3 epochs


@pytest.mark.parametrize("likelihood", LIKELIHOODS)
@pytest.mark.parametrize("family", ["VAE", "ConvVAE", "HVAE", "GMVAE"])
def test_samples_have_the_shape_and_support_of_the_likelihood(family, likelihood):
    if likelihood == "discretised_logistic":
        x = torch.randint(0, 256, (16, 36)).float()
    elif likelihood == "bernoulli":
        x = torch.bernoulli(torch.full((16, 36), 0.3))
    else:
        x = torch.rand(16, 36)
    model = getattr(models, family)(x_dim=36, likelihood=likelihood)
    fit = ppgen.fit(model, x, epochs=1, progress=False)
    s = fit.sample(50)
    assert s.shape == (50, 36)
    if likelihood == "bernoulli":
        assert set(s.unique().tolist()) <= {0.0, 1.0}
    elif likelihood == "continuous_bernoulli":
        assert bool(((s >= 0) & (s <= 1)).all()) and len(s.unique()) > 100
    elif likelihood == "discretised_logistic":
        assert torch.equal(s, s.round()) and bool(((s >= 0) & (s <= 255)).all())
    assert torch.isfinite(fit.log_prob(x, k=3)).all()


def test_the_likelihood_support_refuses_data_outside_it():
    with pytest.raises(ValueError, match="outside the support"):
        ppgen.fit(models.VAE(x_dim=4, likelihood="continuous_bernoulli"), torch.full((8, 4), 1.5), progress=False)
    with pytest.raises(ValueError, match="outside the support"):
        ppgen.fit(models.VAE(x_dim=4, likelihood="discretised_logistic"), torch.full((8, 4), 0.5), progress=False)


def test_discretised_logistic_probabilities_sum_to_one_over_the_levels():
    loc, scale = torch.tensor([-3.0, 0.2, 100.0, 254.7, 300.0]), torch.tensor([0.05, 1.0, 20.0, 3.0, 0.5])
    d = DiscretisedLogisticDistribution(loc.double(), scale.double(), 256)
    levels = torch.arange(256, dtype=torch.float64).unsqueeze(-1)
    p = d.log_prob(levels).exp()
    torch.testing.assert_close(p.sum(0), torch.ones(5, dtype=torch.float64))
    # the mass of an inner bin is the logistic's CDF difference, computed here with sigmoid directly
    k = torch.tensor(100.0, dtype=torch.float64)
    cdf = lambda v: torch.sigmoid((v - loc[2].double()) / scale[2].double())  # noqa: E731
    torch.testing.assert_close(p[100, 2], cdf(k + 0.5) - cdf(k - 0.5))
    draws = d.sample((20000,))
    assert abs(draws[:, 2].mean().item() - 100.0) < 1.0 and bool((draws[:, 0] == 0).all())


def test_gaussian_likelihood_scale_is_fixed_or_learnt():
    fixed, learnt = build_likelihood("gaussian", 3, scale=0.5), build_likelihood("gaussian", 3)
    assert not list(fixed.parameters()) and len(list(learnt.parameters())) == 1
    torch.testing.assert_close(fixed(torch.zeros(2, 3), (3,)).base_dist.scale, torch.full((2, 3), 0.5))
    with pytest.raises(ValueError, match="scale applies to likelihood='gaussian' only"):
        build_likelihood("bernoulli", 3, scale=0.5)
    with pytest.raises(ValueError, match="likelihood must be one of"):
        models.VAE(x_dim=3, likelihood="poisson")


def test_a_vae_checkpoint_from_before_the_likelihood_module_loads():
    """The Gaussian VAE's learnt log sigma used to be the parameter 'log_scale' of the VAE itself."""
    model = models.VAE(x_dim=5, likelihood="gaussian")
    old = {("log_scale" if k == "observation_model.log_scale" else k): v + 1 for k, v in model.state_dict().items()}
    fresh = models.VAE(x_dim=5, likelihood="gaussian")
    fresh.load_state_dict(old)
    torch.testing.assert_close(fresh.observation_model.log_scale, old["log_scale"])


def test_factor_analysis_reaches_scikit_learns_log_likelihood():
    rng = np.random.default_rng(0)
    w, psi = rng.normal(size=(6, 2)), rng.uniform(0.1, 1.0, size=6)
    x = rng.normal(size=(500, 2)) @ w.T + rng.normal(size=(500, 6)) * np.sqrt(psi) + 1.0
    reference = SklearnFactorAnalysis(n_components=2, tol=1e-8, max_iter=5000).fit(x).score(x)
    fit = ppgen.fit(models.FactorAnalysis(x_dim=6, z_dim=2), torch.tensor(x), epochs=300, batch_size=500, lr=1e-2,
                    progress=False)
    ours = fit.log_prob(torch.tensor(x)).mean().item()
    assert abs(ours - reference) < 0.05
    # the guide is the exact posterior, so the ELBO is log p(x) on every draw
    torch.testing.assert_close(fit.iwae_bound(torch.tensor(x[:20]), k=1), fit.log_prob(torch.tensor(x[:20])))


def bernoulli_mixture_data(n=600, seed=0):
    rng = np.random.default_rng(seed)
    probs = np.where(rng.random((3, 20)) < 0.5, 0.15, 0.85)
    c = rng.choice(3, size=n, p=[0.5, 0.3, 0.2])
    return (rng.random((n, 20)) < probs[c]).astype(np.float64)


def em_mixture_of_bernoullis(x, n_components, iterations=300, seed=0):
    """The reference: EM for a mixture of Bernoullis (Bishop 2006, section 9.3.3), mean log-likelihood per point."""
    rng = np.random.default_rng(seed)
    pi, p = np.full(n_components, 1 / n_components), rng.uniform(0.25, 0.75, (n_components, x.shape[1]))
    for _ in range(iterations):
        log_joint = np.log(pi) + x @ np.log(p).T + (1 - x) @ np.log1p(-p).T
        resp = np.exp(log_joint - np.logaddexp.reduce(log_joint, axis=1, keepdims=True))
        pi = resp.mean(0)
        p = np.clip(resp.T @ x / resp.sum(0)[:, None], 1e-6, 1 - 1e-6)
    log_joint = np.log(pi) + x @ np.log(p).T + (1 - x) @ np.log1p(-p).T
    return np.logaddexp.reduce(log_joint, axis=1).mean()


def test_mixture_of_bernoullis_log_prob_is_the_brute_force_sum_over_components():
    x = torch.tensor(bernoulli_mixture_data(50))
    fit = ppgen.fit(models.MixtureOfBernoullis(x_dim=20, n_components=4), x, epochs=2, progress=False)
    model = fit.model
    pi = model.logits.softmax(-1)
    p = model.probs_logits.sigmoid()
    brute = torch.stack([sum(pi[c] * torch.prod(p[c] ** xn * (1 - p[c]) ** (1 - xn)) for c in range(4)).log()
                         for xn in x])
    torch.testing.assert_close(fit.log_prob(x), brute)
    assert fit.structure.exact and isinstance(fit.inference, inference.MLE)


def test_mixture_of_bernoullis_fit_is_no_worse_than_em():
    x = bernoulli_mixture_data()
    reference = max(em_mixture_of_bernoullis(x, 3, seed=s) for s in range(3))
    fit = ppgen.fit(models.MixtureOfBernoullis(x_dim=20, n_components=3), torch.tensor(x), epochs=40,
                    batch_size=600, lr=5e-2, progress=False)
    assert fit.log_prob(torch.tensor(x)).mean().item() > reference - 0.1


def test_gmvae_component_posterior_equals_brute_force_given_z():
    model = models.GMVAE(x_dim=10, z_dim=3, n_components=4, hidden=(16,)).double()
    x = torch.bernoulli(torch.full((7, 10), 0.5, dtype=torch.float64))
    structure = inspect(model, x)
    guide_trace, model_trace = trace_particles(model, structure, as_batch(x), 5)
    log_post = enumerated_log_posterior(model_trace, "c", structure.particle_dim, "data")  # [K, N, C]
    z = guide_trace.nodes["z"]["value"]  # [K, N, z]
    pi = model.logits.softmax(-1)
    scales = torch.nn.functional.softplus(model.raw_scales) + 1e-4
    joint = torch.stack([pi[c].log() + torch.distributions.Normal(model.locs[c], scales[c]).log_prob(z).sum(-1)
                         for c in range(4)], dim=-1)
    torch.testing.assert_close(log_post, joint.log_softmax(-1))
    assert structure.enumerated == ("c",) and structure.guided == ("z",)


def test_conv_vae_reads_images_and_rows_and_checks_the_image_shape():
    pyro.set_rng_seed(0)
    images = torch.bernoulli(torch.full((8, 3, 5, 7), 0.5))
    fit = ppgen.fit(models.ConvVAE(x_dim=105, image_shape=(3, 5, 7)), images, epochs=1, progress=False)
    assert fit.sample(2).shape == (2, 3, 5, 7) and fit.encode(images).shape == (8, 8)
    with pytest.raises(ValueError, match="image_shape must be"):
        models.ConvVAE(x_dim=105, image_shape=(3, 5, 8))
    assert models.ConvVAE(x_dim=784).image_shape == (1, 28, 28)
