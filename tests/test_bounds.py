"""The per-point log weights and the bounds built on them, against exact answers."""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch

import ppgen
from ppgen import inference, models
from ppgen.objective.bounds import exact_log_prob, log_weights
from ppgen.program.inputs import as_batch
from ppgen.program.structure import inspect
from ppgen.queries import density
from programs import AmortisedPPCA


def ppca_and_data(x_dim=5, z_dim=2, n=20):
    """A float64 PPCA with random W (not orthogonal), mu and sigma, n draws x ~ p(x), and p(x) = N(mu, W W^T + s^2 I)."""
    ppca = models.PPCA(x_dim=x_dim, z_dim=z_dim).double()
    w, mu = torch.randn(x_dim, z_dim, dtype=torch.float64), torch.randn(x_dim, dtype=torch.float64)
    with torch.no_grad():
        ppca.weight.copy_(w)
        ppca.loc.copy_(mu)
        ppca.log_sigma.fill_(math.log(0.7))
    p_x = dist.MultivariateNormal(mu, w @ w.T + 0.49 * torch.eye(x_dim, dtype=torch.float64))
    return ppca, p_x.sample((n,)), p_x


def test_with_the_exact_posterior_every_log_weight_is_log_p_x():
    """PPCA's guide is p(z|x) in closed form, so log p(x, z) - log q(z|x) = log p(x) on every draw."""
    ppca, x, p_x = ppca_and_data()
    structure = inspect(ppca, x)
    log_w = log_weights(ppca, structure, as_batch(x), 50)
    assert log_w.shape == (50, 20)
    exact = p_x.log_prob(x)
    torch.testing.assert_close(log_w, exact.expand(50, 20), rtol=0, atol=1e-12)
    # so the ELBO and every IWAE_k equal log p(x) on every draw, whatever the backend
    for backend in (inference.ELBO(num_particles=3), inference.IWAE(k=7)):
        torch.testing.assert_close(backend.loss(ppca, structure, as_batch(x)), -exact.mean(), rtol=0, atol=1e-12)


def test_chunked_importance_sampling_combines_chunks_exactly(monkeypatch):
    """k = 20 in chunks of 8, 8 and 4 particles gives log (1/k) sum w exactly: here every w = p(x)."""
    ppca, x, p_x = ppca_and_data()
    fit = ppgen.Fit(ppca, inspect(ppca, x), inference.ELBO(), history=[], example=x[:2])
    monkeypatch.setattr(density, "PARTICLE_POINTS_PER_PASS", 8)
    torch.testing.assert_close(fit.iwae_bound(x, k=20), p_x.log_prob(x), rtol=0, atol=1e-12)


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
    bounds = {k: fit.iwae_bound(x, k=k) for k in (1, 50, 5000)}

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
    program = ppgen.program.protocol.as_module((mixture_of_bernoullis(), None))
    structure = inspect(program, x)
    assert structure.enumerated == ("c",) and structure.exact and structure.plan.max_plate_nesting == 2
    log_p = exact_log_prob(program, structure, as_batch(x))
    store = program._store["params"]
    weights = dist.transforms.transform_to(dist.constraints.simplex)(store["weights"])
    probs = torch.sigmoid(store["probs"])
    by_hand = torch.logsumexp(weights.log() + (x[:, None] * probs.log() + (1 - x[:, None]) * (1 - probs).log()).sum(-1), -1)
    torch.testing.assert_close(log_p, by_hand)


@pytest.mark.parametrize("backend", [inference.MLE(), inference.ELBO(num_particles=2), inference.IWAE(k=4)])
def test_every_backend_sums_out_an_enumerated_latent_to_the_same_value(backend):
    """With no guided latents, MLE, ELBO and IWAE are all exactly -log p(x)."""
    x = torch.bernoulli(torch.full((40, 6), 0.4))
    program = ppgen.program.protocol.as_module((mixture_of_bernoullis(), None))
    structure = inspect(program, x)
    torch.testing.assert_close(backend.loss(program, structure, as_batch(x)), -exact_log_prob(program, structure, as_batch(x)).mean())


def test_a_per_point_latent_beside_a_per_pixel_plate_counts_once():
    """z_n ~ N(0, 1), x_nd ~ N(z_n, 1) over D pixels, and the guide the exact posterior N(sum_d x_nd / (D + 1),
    1 / (D + 1)): every log weight is log p(x) = log N(x; 0, I + 1 1^T), whichever plate each site sits in."""
    d = 5

    def model(x):
        with pyro.plate("data", x.shape[0], dim=-2):
            z = pyro.sample("z", dist.Normal(x.new_zeros(()), 1.0))
            with pyro.plate("pixels", d, dim=-1):
                pyro.sample("x", dist.Normal(z, 1.0), obs=x)

    def guide(x):
        with pyro.plate("data", x.shape[0], dim=-2):
            pyro.sample("z", dist.Normal(x.sum(-1, keepdim=True) / (d + 1), (d + 1) ** -0.5))

    x = torch.randn(7, d, dtype=torch.float64)
    program = ppgen.program.protocol.as_module((model, guide))
    exact = dist.MultivariateNormal(torch.zeros(d, dtype=torch.float64),
                                    torch.eye(d, dtype=torch.float64) + 1).log_prob(x)
    torch.testing.assert_close(log_weights(program, inspect(program, x), as_batch(x), 30), exact.expand(30, 7),
                               rtol=0, atol=1e-12)


def test_the_elbo_of_latents_in_nested_plates_is_pyros_trace_elbo():
    """A per-point and a per-pixel latent in model and guide: ppgen's ELBO is Pyro's Trace_ELBO on the same draws."""
    d = 4
    loc = torch.linspace(-1, 1, d, dtype=torch.float64)

    def model(x):
        with pyro.plate("data", x.shape[0], dim=-2):
            z = pyro.sample("z", dist.Normal(x.new_zeros(()), 1.0))
            with pyro.plate("pixels", d, dim=-1):
                u = pyro.sample("u", dist.Normal(loc, 0.5))
                pyro.sample("x", dist.Normal(z + u, 1.0), obs=x)

    def guide(x):
        with pyro.plate("data", x.shape[0], dim=-2):
            pyro.sample("z", dist.Normal(x.mean(-1, keepdim=True), 0.7))
            with pyro.plate("pixels", d, dim=-1):
                pyro.sample("u", dist.Normal(0.5 * x, 0.4))

    x = torch.randn(6, d, dtype=torch.float64)
    program = ppgen.program.protocol.as_module((model, guide))
    structure = inspect(program, x)
    pyro.set_rng_seed(1)
    ours = inference.ELBO().loss(program, structure, as_batch(x))
    pyro.set_rng_seed(1)  # the same draws
    theirs = pyro.infer.Trace_ELBO(max_plate_nesting=2).differentiable_loss(model, guide, x) / len(x)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-12)


def mixture_with_a_guided_offset(sigma):
    """c ~ Bernoulli(1/2) summed out, z ~ N(0, 3^2) guided by a q(z|x) = N(0.5, 1) that ignores x,
    x | c, z ~ N(mu_c + z, sigma^2) with mu = (-3, 3)."""
    mus = torch.tensor([-3.0, 3.0], dtype=torch.float64)

    def model(x):
        with pyro.plate("data", x.shape[0]):
            c = pyro.sample("c", dist.Categorical(logits=x.new_zeros(2)), infer={"enumerate": "parallel"})
            z = pyro.sample("z", dist.Normal(x.new_zeros(()), 3.0))
            pyro.sample("x", dist.Normal(mus[c] + z, sigma), obs=x[:, 0])

    def guide(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(x.new_full((), 0.5), 1.0))

    return ppgen.program.protocol.as_module((model, guide)), mus


def test_an_enumerated_latent_beside_a_guided_one_has_the_posterior_given_the_guides_draws():
    """encode(c) = E_q(z|x)[p(c|x, z)], checked against that integral on a fine grid in z, computed by hand."""
    program, mus = mixture_with_a_guided_offset(sigma=1.0)
    x = torch.tensor([[0.0], [1.0], [-2.0]], dtype=torch.float64)
    fit = ppgen.Fit(program, inspect(program, x), inference.ELBO(), history=[], example=x[:2])
    z = torch.linspace(0.5 - 10, 0.5 + 10, 40001, dtype=torch.float64)
    q = dist.Normal(0.5, 1.0).log_prob(z).exp()
    log_lik = dist.Normal(mus[:, None, None] + z, 1.0).log_prob(x[:, 0, None])   # [C, N, grid]
    p_c_given_x_z = log_lik.softmax(0)
    expected = torch.trapezoid(q * p_c_given_x_z, z, dim=-1).T                    # [N, C]
    torch.testing.assert_close(fit.encode(x, site="c", num_samples=40000), expected, rtol=0, atol=0.01)


def test_posterior_draws_of_an_enumerated_latent_follow_the_guides_draw_of_z():
    """With sigma small, p(c = 1 | x = 0, z) is 1 for z < 0 and 0 for z > 0: each c_s must match its own z_s."""
    program, _ = mixture_with_a_guided_offset(sigma=0.1)
    x = torch.zeros(2, 1, dtype=torch.float64)
    fit = ppgen.Fit(program, inspect(program, x), inference.ELBO(), history=[], example=x)
    draws = fit.posterior(x, num_samples=4000).samples
    assert draws["z"].shape == draws["c"].shape == (4000, 2)
    assert ((draws["c"] == 1) == (draws["z"] < 0)).double().mean() > 0.98
    assert abs((draws["c"] == 1).double().mean() - 0.3085) < 0.03  # P(z < 0) under q = N(0.5, 1)


def test_the_enumerated_posterior_of_one_point_or_per_pixel_latents_is_exact():
    """p(c_nd | x_nd) of a latent component per pixel, in closed form; a batch of one is a row of a larger one."""
    mus, weights = torch.tensor([-1.0, 0.5, 2.0]), torch.tensor([0.2, 0.3, 0.5])

    def model(x):
        with pyro.plate("data", x.shape[0], dim=-2), pyro.plate("pixels", x.shape[1], dim=-1):
            c = pyro.sample("c", dist.Categorical(weights), infer={"enumerate": "parallel"})
            pyro.sample("x", dist.Normal(mus[c], 1.0), obs=x)

    x = torch.randn(5, 4)
    program = ppgen.program.protocol.as_module((model, None))
    fit = ppgen.Fit(program, inspect(program, x), inference.MLE(), history=[], example=x[:2])
    expected = (weights.log() + dist.Normal(mus, 1.0).log_prob(x[..., None])).softmax(-1)
    torch.testing.assert_close(fit.encode(x), expected)
    torch.testing.assert_close(fit.encode(x[:1]), expected[:1])
    assert fit.posterior(x[:1], num_samples=6).samples["c"].shape == (6, 1, 4)


def test_a_guide_that_draws_nothing_adds_nothing():
    """A mixture whose component is summed out, with an empty guide: every bound is the exact log p(x)."""
    x = torch.bernoulli(torch.full((40, 6), 0.4))
    program = ppgen.program.protocol.as_module((mixture_of_bernoullis(), lambda x: None))
    fit = ppgen.fit(program, x, inference=inference.IWAE(k=3), epochs=2, progress=False)
    torch.testing.assert_close(fit.iwae_bound(x, k=5), fit.log_prob(x))


def test_a_data_plate_right_of_another_plate_holds_the_points():
    """pyro.plate("data", dim=-1) inside a plate of pixels at dim=-2, x observed transposed: Pyro lets any plate take
    any dim. Each point's log-density sums its pixels, and mini-batches of rows fit it: log p(x) is then exactly
    N(x; loc, 1) with the learnt loc, near the data's column means."""
    def model(x):
        loc = pyro.param("loc", torch.zeros(x.shape[1], 1, dtype=x.dtype))
        with pyro.plate("pixels", x.shape[1], dim=-2), pyro.plate("data", x.shape[0], dim=-1):
            pyro.sample("x", dist.Normal(loc, 1.0), obs=x.T)

    x = torch.randn(6, 3, generator=torch.Generator().manual_seed(0)) + torch.tensor([1.0, -2, 0])
    torch.testing.assert_close(ppgen.log_weights(model, x)[0], dist.Normal(0.0, 1.0).log_prob(x).sum(-1))
    fit = ppgen.fit(model, x, batch_size=2, epochs=200, lr=0.05, progress=False)
    loc = fit.params["loc"][:, 0]
    torch.testing.assert_close(fit.log_prob(x), dist.Normal(loc, 1.0).log_prob(x).sum(-1))
    torch.testing.assert_close(loc, x.mean(0), rtol=0, atol=0.3)
