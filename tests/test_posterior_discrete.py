"""Posterior draws of a program with global latents beside discrete latents that the model sums out: each draw holds
the global sites (one value per draw) and the discrete sites drawn from their exact conditional p(c | x, globals)
given that draw, jointly where they form a chain, as Pyro's ``infer_discrete`` draws them.

The truths are Bayes' rule by hand: p(c = j | x_n, theta) = pi_j N(x_n; mu_j, sigma^2) / sum_i pi_i N(x_n; mu_i,
sigma^2) for a mixture, and for a hidden Markov chain the joint posterior of every state sequence by brute force
over all of them. Frequencies of S draws are compared within four binomial standard errors.
"""

import itertools

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import config_enumerate
from pyro.infer.autoguide import AutoDelta, init_to_value
from pyro.ops.indexing import Vindex

from programs import fixed_fit, shifted_mixture

pytestmark = pytest.mark.usefixtures("float64", "one_thread")

S = 2000


def within_binomial_error(frequency: torch.Tensor, probability: torch.Tensor, draws: int) -> bool:
    return bool(((frequency - probability).abs() <= 4 * (probability * (1 - probability) / draws).sqrt() + 1e-3).all())


@config_enumerate
def gmm(data):
    """Pyro's Gaussian-mixture tutorial as written: ``locs[assignment]`` does not broadcast over particles."""
    weights = pyro.sample("weights", dist.Dirichlet(0.5 * torch.ones(2)))
    scale = pyro.sample("scale", dist.LogNormal(0.0, 2.0))
    with pyro.plate("components", 2):
        locs = pyro.sample("locs", dist.Normal(0.0, 10.0))
    with pyro.plate("data", len(data)):
        assignment = pyro.sample("assignment", dist.Categorical(weights))
        pyro.sample("obs", dist.Normal(locs[assignment], scale), obs=data)


def test_the_gmm_tutorial_with_autodelta_draws_each_assignment_by_bayes_rule_given_the_globals():
    data = torch.tensor([0.0, 1.0, 10.0, 11.0, 12.0, 5.0, 6.5])
    start = {"weights": torch.tensor([0.4, 0.6]), "locs": torch.tensor([2.0, 9.0]), "scale": torch.tensor(2.5)}
    guide = AutoDelta(poutine.block(gmm, expose=["weights", "locs", "scale"]), init_loc_fn=init_to_value(values=start))
    with pytest.warns(UserWarning, match="does not broadcast over a plate of particles"):
        fit = fixed_fit((gmm, guide), data)
    draws = 200  # one run of the program per draw: fewer of them
    posterior = fit.posterior(data, num_samples=draws)
    samples = posterior.samples
    assert {name: tuple(value.shape) for name, value in samples.items()} == {
        "weights": (draws, 2), "scale": (draws,), "locs": (draws, 2), "assignment": (draws, len(data))}
    assert posterior.global_sites == ("weights", "scale", "locs")
    for name in posterior.global_sites:  # point estimates: every draw holds the same value
        assert bool((samples[name] == samples[name][0]).all()), name
    weights, scale, locs = samples["weights"][0], samples["scale"][0], samples["locs"][0]
    torch.testing.assert_close(locs, start["locs"])  # the point estimates, through AutoDelta's transforms
    joint = weights.log() + dist.Normal(locs, scale).log_prob(data[:, None])  # [N, 2], by hand
    bayes = (joint - joint.logsumexp(-1, keepdim=True)).exp()
    assert bool(((bayes > 0.05) & (bayes < 0.95)).any())  # some point is in doubt, so the draws say something
    torch.testing.assert_close(fit.encode(data, site="assignment", num_samples=5), bayes)  # exact
    frequency = torch.stack([(samples["assignment"] == j).double().mean(0) for j in range(2)], -1)
    assert within_binomial_error(frequency, bayes, draws)
    idata = posterior.to_arviz()
    assert idata.posterior["assignment"].dims == ("chain", "draw", "point")
    assert idata.posterior["weights"].dims == ("chain", "draw", "weights_dim_0")
    assert idata.posterior["scale"].dims == ("chain", "draw")
    assert idata.log_likelihood["obs"].dims == ("chain", "draw", "point")


def test_each_assignment_is_drawn_given_the_same_draw_of_the_global_latents():
    """Global locations drawn from a wide q, so that which component explains a point changes from draw to draw:
    c_s must follow p(c | x, mu_s) of its own draw mu_s, not the average over draws."""
    def model(x):
        locs = pyro.sample("locs", dist.Normal(torch.zeros(2), 3.0).to_event(1))
        with pyro.plate("data", len(x)):
            c = pyro.sample("c", dist.Bernoulli(0.3), infer={"enumerate": "parallel"})
            pyro.sample("x", dist.Normal(torch.where(c.bool(), locs[..., 1], locs[..., 0]), 1.0), obs=x)

    def guide(x):
        pyro.sample("locs", dist.Normal(torch.tensor([-1.0, 1.0]), 1.5).to_event(1))

    x = torch.tensor([-2.0, 0.0, 0.5, 2.0])
    fit = fixed_fit((model, guide), x)
    assert fit.structure.plan.vectorized
    posterior = fit.posterior(x, num_samples=S)
    locs, c = posterior.samples["locs"], posterior.samples["c"]
    assert locs.shape == (S, 2) and c.shape == (S, len(x))
    log_odds = torch.tensor(0.3 / 0.7).log() + dist.Normal(locs[:, 1:], 1.0).log_prob(x) \
        - dist.Normal(locs[:, :1], 1.0).log_prob(x)
    p = log_odds.sigmoid()  # p(c_n = 1 | x_n, mu_s), [S, N], by hand
    agreement = ((c == 1) == (p > 0.5)).double().mean()
    expected = torch.maximum(p, 1 - p).mean()
    assert abs(agreement - expected) <= 4 * (expected * (1 - expected) / c.numel()).sqrt()
    assert expected - (torch.maximum(p.mean(0), 1 - p.mean(0))).mean() > 0.1  # drawn from the average, it would fail
    assert within_binomial_error((c == 1).double().mean(0), p.mean(0), S)


T = 3


def hmm(y):
    """Two hidden states that stay with probability ``stay``, each emitting N(mean, 1) at each of T steps."""
    stay = pyro.sample("stay", dist.Beta(2.0, 2.0))
    transition = torch.stack([torch.stack([stay, 1 - stay], -1), torch.stack([1 - stay, stay], -1)], -2)
    means = torch.tensor([-1.0, 1.0])
    with pyro.plate("sequences", len(y)):
        state = pyro.sample("s_0", dist.Categorical(torch.tensor([0.5, 0.5])), infer={"enumerate": "parallel"})
        pyro.sample("y_0", dist.Normal(means[state], 1.0), obs=y[:, 0])
        for t in pyro.markov(range(1, T)):
            state = pyro.sample(f"s_{t}", dist.Categorical(Vindex(transition)[..., state, :]),
                                infer={"enumerate": "parallel"})
            pyro.sample(f"y_{t}", dist.Normal(means[state], 1.0), obs=y[:, t])


def test_an_hmms_hidden_states_are_drawn_jointly_from_their_posterior_given_the_globals():
    y = torch.tensor([[-1.0, 0.2, 1.0], [0.1, -0.1, 0.0], [1.5, -0.3, 0.8]])
    guide = AutoDelta(poutine.block(hmm, expose=["stay"]),
                      init_loc_fn=init_to_value(values={"stay": torch.tensor(0.9)}))
    fit = fixed_fit((hmm, guide), y)
    posterior = fit.posterior(y, num_samples=S)
    stay = posterior.samples["stay"]
    assert posterior.global_sites == ("stay",) and bool((stay == stay[0]).all())
    assert stay[0].item() == pytest.approx(0.9)
    states = torch.stack([posterior.samples[f"s_{t}"] for t in range(T)], -1)  # [S, N, T]
    sequences = torch.tensor(list(itertools.product(range(2), repeat=T)))  # every path, [2^T, T]
    transition = torch.stack([torch.stack([stay[0], 1 - stay[0]]), torch.stack([1 - stay[0], stay[0]])])
    log_joint = torch.log(torch.tensor(0.5)) + transition[sequences[:, :-1], sequences[:, 1:]].log().sum(-1) \
        + dist.Normal(torch.tensor([-1.0, 1.0])[sequences], 1.0).log_prob(y[:, None, :]).sum(-1)  # [N, 2^T]
    exact = (log_joint - log_joint.logsumexp(-1, keepdim=True)).exp()
    frequency = (states[:, :, None, :] == sequences).all(-1).double().mean(0)  # [N, 2^T]
    assert within_binomial_error(frequency, exact, S)
    marginals = torch.stack([(exact * (sequences[:, t] == 1)).sum(-1) for t in range(T)], -1)  # p(s_t = 1 | y_n)
    independent = torch.where(sequences == 1, marginals[:, None, :], 1 - marginals[:, None, :]).prod(-1)
    assert (independent - exact).abs().max() > 0.05  # draws of each state from its own marginal would fail


@pytest.mark.parametrize("method", ["guide", "importance"])
def test_a_discrete_latent_is_drawn_given_the_same_draw_of_a_local_latent(method):
    """z ~ N(0, 1), c ~ Bernoulli(0.3) summed out, x | z, c ~ N(z + 2c, 0.5^2): c_s must follow p(c | x, z_s) for the
    draw z_s it comes with, from the guide or resampled among the guide's proposals."""
    model, guide = shifted_mixture(loc=0.5, scale=1.0)
    x = torch.tensor([-0.5, 1.0, 2.5])
    posterior = fixed_fit((model, guide), x).posterior(x, num_samples=S, method=method)
    z, c = posterior.samples["z"], posterior.samples["c"]
    log_odds = torch.tensor(0.3 / 0.7).log() + dist.Normal(z + 2, 0.5).log_prob(x) - dist.Normal(z, 0.5).log_prob(x)
    p = log_odds.sigmoid()  # p(c_n = 1 | x_n, z_s), [S, N], by hand
    agreement = ((c == 1) == (p > 0.5)).double().mean()
    expected = torch.maximum(p, 1 - p).mean()
    assert expected > 0.8 and abs(agreement - expected) <= 4 * (expected * (1 - expected) / c.numel()).sqrt()
