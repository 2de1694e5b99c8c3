"""The semi-supervised VAE (M2), checked against brute-force sums over the labels given z and the bound ordering."""

import pyro
import pytest
import torch
from torch.distributions import Bernoulli, Normal

import ppgen
from ppgen import datasets, models
from ppgen.objective import bounds
from ppgen.program.enumeration import enumerated_log_posterior
from ppgen.program.inputs import as_batch
from ppgen.program.structure import inspect
from ppgen.program.traces import draw_particles, trace_particles
from test_latent_families import paired_lower

pytestmark = pytest.mark.usefixtures("one_thread")
C, D, K = 4, 10, 6


def small_model():
    return models.SSVAE(x_dim=D, n_classes=C, z_dim=3, hidden=(16,)).double()


def data(n=9):
    x = torch.bernoulli(torch.full((n, D), 0.5, dtype=torch.float64))
    y = torch.tensor([0, -1, 2, -1, -1, 3, 1, -1, -1])[:n]  # -1: unknown
    return x, y


def by_hand(model, x, y, z):
    """log pi_y + log p(x | y, z) for every label y, Tensor[K, N, C], with the decoder's logits written out."""
    pi = model.logits.log_softmax(-1)
    terms = []
    for c in range(C):
        code = torch.nn.functional.one_hot(torch.tensor(c), C).double().expand(*z.shape[:-1], C)
        logits = model.decoder(torch.cat([z, code], -1))
        terms.append(pi[c] + Bernoulli(logits=logits).log_prob(x).sum(-1))
    return torch.stack(terms, -1)


def guide_log_density(model, x, y, z):
    """log q(z | x, y), the encoder fed the one-hot label where it is known and zeros where not."""
    code = torch.nn.functional.one_hot(y.clamp(min=0), C).double() * (y >= 0).double().unsqueeze(-1)
    loc, scale = model.encoder(torch.cat([x, code], -1)).chunk(2, -1)
    return Normal(loc, torch.nn.functional.softplus(scale) + 1e-4).log_prob(z).sum(-1)


def test_label_posterior_equals_brute_force_given_z():
    model, (x, y) = small_model(), data()
    structure = inspect(model, (x, y))
    assert structure.enumerated == ("y",) and structure.guided == ("z",) and structure.data_site == "x"
    guide_trace, model_trace = trace_particles(model, structure, as_batch((x, y)), K)
    log_post = enumerated_log_posterior(model_trace, "y", structure.particle_dim, "data")  # [K, N, C]
    z = guide_trace.nodes["z"]["value"]
    unknown = y < 0
    torch.testing.assert_close(log_post[:, unknown], by_hand(model, x, y, z).log_softmax(-1)[:, unknown])


def test_log_weights_sum_out_unknown_labels_and_observe_known_ones():
    """log w = log N(z; 0, I) + log sum_y pi_y p(x|y, z) - log q(z|x) where y is unknown, and
    log N(z; 0, I) + log pi_y + log p(x|y, z) - log q(z|x, y) where it is known, on the same draws z_k."""
    model, (x, y) = small_model(), data()
    structure, batch = inspect(model, (x, y)), as_batch((x, y))
    pyro.set_rng_seed(3)
    got = bounds.log_weights(model, structure, batch, K)
    pyro.set_rng_seed(3)
    z = draw_particles(model, structure, batch, K).nodes["z"]["value"]
    joint = by_hand(model, x, y, z)
    known = joint.gather(-1, y.clamp(min=0).expand(K, -1).unsqueeze(-1))[..., 0]
    label_terms = torch.where(y >= 0, known, joint.logsumexp(-1))
    expected = label_terms + Normal(0.0, 1.0).log_prob(z).sum(-1) - guide_log_density(model, x, y, z)
    torch.testing.assert_close(got, expected)


@pytest.fixture(scope="module")
def fitted_digits():
    x, y = datasets.digits(binarize=True, return_labels=True)
    partial = torch.where(torch.arange(len(y)) % 5 == 0, y, torch.full_like(y, -1))  # one label in five
    fit = ppgen.fit(models.SSVAE(x_dim=64, z_dim=4, hidden=(64,)), (x, partial), epochs=3, batch_size=64,
                    seed=0, progress=False)
    return fit, datasets.digits(split="test", binarize=True, return_labels=True)


@pytest.mark.parametrize("labelled", [False, True])
def test_elbo_below_iwae_k_below_iwae_5000_on_held_out_data(fitted_digits, labelled):
    fit, (x, y) = fitted_digits
    x, y = x[:40], (y[:40] if labelled else models.SSVAE.unlabelled(40))
    elbo = torch.stack([fit.iwae_bound(x, y, k=1) for _ in range(10)]).mean(0)  # per point, 10 draws
    iwae_k, iwae_5000 = fit.iwae_bound(x, y, k=20), fit.iwae_bound(x, y, k=5000)
    assert paired_lower(elbo, iwae_k) > 0 and paired_lower(iwae_k, iwae_5000) > 0
    assert elbo.mean() < iwae_5000.mean()


def test_label_posterior_sums_to_one_and_p_x_y_summed_over_the_labels_is_p_x(fitted_digits):
    """p(y|x) from encode sums to one over the classes; and sum_y p(x, y) = p(x), the labelled and the unlabelled
    program estimated separately (IWAE-5000, so equal within their Monte Carlo error)."""
    fit, (x, _) = fitted_digits
    x = x[:4]
    proba = fit.encode(x, models.SSVAE.unlabelled(4), site="y")
    assert proba.shape == (4, 10) and torch.allclose(proba.sum(-1), torch.ones(4, dtype=proba.dtype))
    marginal = fit.log_prob(x, models.SSVAE.unlabelled(4), k=5000)
    joint = torch.stack([fit.log_prob(x, torch.full((4,), c), k=5000) for c in range(10)], -1)
    torch.testing.assert_close(joint.logsumexp(-1), marginal, atol=0.15, rtol=0)


def test_samples_follow_the_given_labels_and_labels_are_checked():
    fit = ppgen.fit(small_model(), data(), epochs=1, progress=False)
    assert fit.sample(5, torch.tensor([0, 1, -1, 3, -1])).shape == (5, D)
    with pytest.raises(ValueError, match="y must hold labels 0..3"):
        ppgen.fit(small_model(), (data()[0], torch.tensor([0, 4, 1, 1, 1, 1, 1, 1, 1])), epochs=1, progress=False)
    with pytest.raises(ValueError, match="y must hold one integer label per point"):
        ppgen.fit(small_model(), (data()[0], torch.zeros(9)), epochs=1, progress=False)


def test_every_parameter_gets_a_gradient_and_the_arguments_are_recorded():
    """The bound reaches the decoder through both the observed and the summed-out labels, the encoder, and pi."""
    model, (x, y) = small_model(), data()
    assert model.config == {"x_dim": D, "n_classes": C, "z_dim": 3, "hidden": (16,)}
    bounds.log_weights(model, inspect(model, (x, y)), as_batch((x, y)), 2).mean().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
