"""The per-point log weights and the bounds built on them, against exact answers."""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch

import ppgen
from ppgen import inference, models, result
from ppgen.bounds import exact_log_prob, log_weights
from ppgen.program import inspect
from programs import AmortisedPPCA


def ppca_and_data(x_dim=5, z_dim=2, n=20):
    """A float64 PPCA with random W (not orthogonal), mu and sigma, and n draws x ~ p(x) from it."""
    ppca = models.PPCA(x_dim=x_dim, z_dim=z_dim).double()
    w, mu = torch.randn(x_dim, z_dim, dtype=torch.float64), torch.randn(x_dim, dtype=torch.float64)
    with torch.no_grad():
        ppca.weight.copy_(w)
        ppca.loc.copy_(mu)
        ppca.log_sigma.fill_(math.log(0.7))
    x = dist.MultivariateNormal(mu, w @ w.T + 0.49 * torch.eye(x_dim, dtype=torch.float64)).sample((n,))
    return ppca, x


def test_with_the_exact_posterior_every_log_weight_is_log_p_x():
    """PPCA's guide is p(z|x) in closed form, so log p(x, z) - log q(z|x) = log p(x) on every draw."""
    ppca, x = ppca_and_data()
    structure = inspect(ppca, x)
    log_w = log_weights(ppca, structure, x, 50)
    assert log_w.shape == (50, 20)
    exact = ppca.log_prob(x)
    torch.testing.assert_close(log_w, exact.expand(50, 20), rtol=0, atol=1e-12)
    # so the ELBO and every IWAE_k equal log p(x) on every draw, whatever the backend
    for backend in (inference.ELBO(num_particles=3), inference.IWAE(k=7)):
        torch.testing.assert_close(backend.loss(ppca, structure, x), -exact.mean(), rtol=0, atol=1e-12)


def test_chunked_importance_sampling_combines_chunks_exactly(monkeypatch):
    """k = 20 in chunks of 8, 8 and 4 particles gives log (1/k) sum w exactly: here every w = p(x)."""
    ppca, x = ppca_and_data()
    fit = ppgen.Fit(ppca, inspect(ppca, x), inference.ELBO(), history=[], example=x[:2])
    monkeypatch.setattr(result, "PARTICLE_POINTS_PER_PASS", 8)
    torch.testing.assert_close(fit.iwae_bound(x, k=20), ppca.log_prob(x).detach(), rtol=0, atol=1e-12)


def test_iwae_bounds_rise_towards_log_p_x_with_k():
    """IWAE_1 <= IWAE_50 <= IWAE_5000 <= log p(x) on average, allowing the Monte Carlo error measured here.

    The zoo's PPCA has the exact posterior as its guide, where every bound is log p(x); with a learnt guide
    of a user's own the bounds are strict and must close the gap as K grows.
    """
    x = ppgen.datasets.digits()[:300].double()
    x = (x - x.mean(0)) / (x.std(0) + 0.1)
    fit = ppgen.fit(AmortisedPPCA(x_dim=64, z_dim=4), x, inference=inference.ELBO(), epochs=40, batch_size=100,
                    lr=0.02, progress=False)
    exact = fit.log_prob(x)
    bounds = {k: fit.iwae_bound(x, k) for k in (1, 50, 5000)}

    def at_least(a, b):  # mean(a - b) >= 0 up to three standard errors
        d = a - b
        return d.mean() >= -3 * d.std() / math.sqrt(len(d))

    assert at_least(bounds[50], bounds[1]) and at_least(bounds[5000], bounds[50]) and at_least(exact, bounds[5000])
    assert (bounds[50] - bounds[1]).mean() > 0.01  # the guide is imperfect, so more particles help
    assert (exact - bounds[5000]).mean() < 0.05


def mixture_of_bernoullis(x_dim=6, components=3):
    """A user's model as two plain functions: pyro.param, an enumerated component, an inner plate over pixels."""

    def model(x):
        weights = pyro.param("weights", torch.ones(components) / components, constraint=dist.constraints.simplex)
        probs = pyro.param("probs", lambda: torch.rand(components, x_dim), constraint=dist.constraints.unit_interval)
        with pyro.plate("data", x.shape[0], dim=-2):
            c = pyro.sample("c", dist.Categorical(weights), infer={"enumerate": "parallel"})
            with pyro.plate("pixels", x_dim, dim=-1):
                pyro.sample("x", dist.Bernoulli(probs[c.squeeze(-1)]), obs=x)

    return model


def test_enumeration_with_an_inner_plate_is_the_exact_mixture_likelihood():
    x = torch.bernoulli(torch.full((40, 6), 0.4))
    program = ppgen.program.as_module((mixture_of_bernoullis(), None))
    structure = inspect(program, x)
    assert structure.enumerated == ("c",) and structure.exact and structure.max_plate_nesting == 2
    log_p = exact_log_prob(program, structure, x)
    store = program._store["params"]
    weights = dist.transforms.transform_to(dist.constraints.simplex)(store["weights"])
    probs = torch.sigmoid(store["probs"])
    by_hand = torch.logsumexp(weights.log() + (x[:, None] * probs.log() + (1 - x[:, None]) * (1 - probs).log()).sum(-1), -1)
    torch.testing.assert_close(log_p, by_hand)


@pytest.mark.parametrize("backend", [inference.MLE(), inference.ELBO(num_particles=2), inference.IWAE(k=4)])
def test_every_backend_sums_out_an_enumerated_latent_to_the_same_value(backend):
    """With no guided latents, MLE, ELBO and IWAE are all exactly -log p(x)."""
    x = torch.bernoulli(torch.full((40, 6), 0.4))
    program = ppgen.program.as_module((mixture_of_bernoullis(), None))
    structure = inspect(program, x)
    torch.testing.assert_close(backend.loss(program, structure, x), -exact_log_prob(program, structure, x).mean())
