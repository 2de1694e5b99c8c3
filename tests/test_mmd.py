"""The kernels and the unbiased MMD^2 against closed forms, inference.MMD fitting generators, the aggregate posterior's
MMD regulariser of the ELBO family (latent_mmd), and their refusals."""

from __future__ import annotations

import json
import math

import numpy as np
import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import pytest
import torch
from torch import nn

import ppgen
from ppgen import datasets, inference, models
from ppgen.cli import main
from ppgen.objective.bounds import elbo_terms, log_mean_exp, log_weights
from ppgen.objective.generated import generated
from ppgen.objective.kernels import MEDIAN_MULTIPLES, median_bandwidths, mmd2_unbiased, rbf_kernel, squared_distances
from ppgen.program.inputs import Batch
from ppgen.program.structure import inspect
from ppgen.training.boundary import check_batch_points

pytestmark = pytest.mark.usefixtures("one_thread")


# ---- independent truths ---------------------------------------------------------------------------------------------

def gaussian_kernel_mean(m1, s1, m2, s2, h):
    """E exp(-||x - y||^2 / (2 h^2)) for x ~ N(m1, S1), y ~ N(m2, S2) independent, in closed form."""
    d, s = m1 - m2, s1 + s2
    eye = torch.eye(len(d), dtype=d.dtype)
    return torch.linalg.det(eye + s / h**2) ** -0.5 * torch.exp(-0.5 * d @ torch.linalg.solve(h**2 * eye + s, d))


def gaussian_mmd2(m1, s1, m2, s2, bandwidths):
    """MMD^2(N(m1, S1), N(m2, S2)) for the mixture of Gaussian kernels at ``bandwidths``, in closed form."""
    return sum(gaussian_kernel_mean(m1, s1, m1, s1, h) + gaussian_kernel_mean(m2, s2, m2, s2, h)
               - 2 * gaussian_kernel_mean(m1, s1, m2, s2, h) for h in bandwidths)


def brute_force_mmd2(x, y, bandwidths):
    """The unbiased U-statistic of Gretton et al. (2012), Lemma 6, by loops over pairs in float64 NumPy."""
    x, y = (np.asarray(a, dtype=np.float64).reshape(len(a), -1) for a in (x, y))
    hs = np.asarray(bandwidths, dtype=np.float64)

    def k(a, b):
        return np.exp(-np.sum((a - b) ** 2) / (2 * hs**2)).sum()
    n, m = len(x), len(y)
    within_x = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    within_y = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    across = sum(k(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
    return within_x + within_y - 2 * across


def numpy_median_bandwidths(x, y):
    """c_b times the median distance over the distinct pairs of the pooled sample (an odd number of pairs)."""
    pooled = np.concatenate([np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)])
    distances = [np.linalg.norm(pooled[i] - pooled[j]) for i in range(len(pooled)) for j in range(i)]
    assert len(distances) % 2 == 1
    return np.median(distances) * np.asarray(MEDIAN_MULTIPLES)


# ---- kernels.py -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dim", [1, 3])
def test_the_unbiased_mmd2_averages_to_the_closed_form_between_gaussians(dim):
    gen = torch.Generator().manual_seed(dim)
    m1, m2 = torch.zeros(dim, dtype=torch.float64), torch.full((dim,), 0.6, dtype=torch.float64)
    a = torch.randn(dim, dim, generator=gen, dtype=torch.float64)
    s1, s2 = a @ a.T / dim + 0.5 * torch.eye(dim, dtype=torch.float64), 0.6 * torch.eye(dim, dtype=torch.float64)
    bandwidths = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    truth = gaussian_mmd2(m1, s1, m2, s2, bandwidths).item()
    l1, l2 = torch.linalg.cholesky(s1), torch.linalg.cholesky(s2)
    estimates = torch.stack([
        mmd2_unbiased(m1 + torch.randn(60, dim, generator=gen, dtype=torch.float64) @ l1.T,
                      m2 + torch.randn(90, dim, generator=gen, dtype=torch.float64) @ l2.T, bandwidths)
        for _ in range(400)])
    mean, se = estimates.mean().item(), (estimates.std() / math.sqrt(len(estimates))).item()
    assert abs(mean - truth) < 4 * se, (mean, truth, se)
    assert truth > 20 * se  # the distributions differ by far more than the test's resolution


def test_the_unbiased_mmd2_is_the_u_statistic_of_every_pair():
    x, y = torch.randn(5, 2, dtype=torch.float64), torch.randn(7, 2, dtype=torch.float64) + 0.3
    bandwidths = torch.tensor([0.3, 1.7], dtype=torch.float64)
    assert mmd2_unbiased(x, y, bandwidths).item() == pytest.approx(brute_force_mmd2(x, y, bandwidths), rel=1e-12)


@pytest.mark.parametrize("median", [False, True], ids=["fixed bandwidths", "median heuristic"])
def test_the_unbiased_mmd2_is_zero_in_expectation_for_one_distribution(median):
    gen = torch.Generator().manual_seed(3)
    fixed = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    unbiased, biased = [], []
    for _ in range(400):
        x, y = (torch.randn(40, 2, generator=gen, dtype=torch.float64) for _ in range(2))
        bandwidths = median_bandwidths(x, y) if median else fixed
        unbiased.append(mmd2_unbiased(x, y, bandwidths))
        biased.append(rbf_kernel(x, x, bandwidths).mean() + rbf_kernel(y, y, bandwidths).mean()
                      - 2 * rbf_kernel(x, y, bandwidths).mean())
    unbiased, biased = torch.stack(unbiased), torch.stack(biased)
    se = (unbiased.std() / math.sqrt(len(unbiased))).item()
    assert abs(unbiased.mean().item()) < 3.5 * se
    assert biased.mean().item() > 20 * se  # the V-statistic's bias, which the unbiased estimate removes


def test_the_unbiased_mmd2_needs_two_points_in_each_sample():
    with pytest.raises(ValueError, match=r"the unbiased MMD needs at least 2 points in each sample, got 1 and 3"):
        mmd2_unbiased(torch.zeros(1, 2), torch.zeros(3, 2), torch.ones(1))


def test_median_bandwidths_are_multiples_of_the_median_pairwise_distance():
    x, y = torch.randn(5, 3, dtype=torch.float64), torch.randn(6, 3, dtype=torch.float64)  # 55 pairs
    got = median_bandwidths(x.requires_grad_(), y)
    np.testing.assert_allclose(got.numpy(), numpy_median_bandwidths(x.detach(), y), rtol=1e-12)
    assert got.dtype == torch.float64 and not got.requires_grad
    assert median_bandwidths(x, y, multiples=(3.0,)).item() == pytest.approx(3 * got[2].item(), rel=1e-12)


def test_median_bandwidths_take_the_lower_middle_distance_of_an_even_number_of_pairs():
    x, y = torch.tensor([[0.0], [1.0]]), torch.tensor([[3.0], [7.0]])  # distances 1, 2, 3, 4, 6, 7
    assert median_bandwidths(x, y, multiples=(1.0, 2.0)).tolist() == [3.0, 6.0]


@pytest.mark.parametrize("x, y", [
    (torch.ones(4, 2), torch.ones(3, 2)),                     # every point the same: every distance 0
    (torch.ones(1, 2), torch.ones(0, 2)),                     # one point: no pair at all
    (torch.cat([torch.zeros(4, 2), torch.ones(1, 2)]), torch.zeros(0, 2)),  # 6 of 10 distances 0: the median is 0
], ids=["identical points", "a single point", "a median of zero"])
def test_median_bandwidths_of_a_degenerate_sample_are_the_multiples_themselves(x, y):
    got = median_bandwidths(x, y)
    assert torch.equal(got, torch.tensor(MEDIAN_MULTIPLES))


# ---- generators, written inline --------------------------------------------------------------------------------------

class LocScale(nn.Module):
    """x = mu + sigma z, z ~ N(0, 1): a Delta at the generator's output, observed at the data."""

    def __init__(self):
        super().__init__()
        self.mu, self.log_sigma = nn.Parameter(torch.zeros(1)), nn.Parameter(torch.zeros(1))

    def model(self, x):
        with pyro.plate("data", len(x)):
            z = pyro.sample("z", dist.Normal(torch.zeros(1), 1.0).to_event(1))
            pyro.sample("x", dist.Delta(self.mu + self.log_sigma.exp() * z, event_dim=1), obs=x)


class Linear2D(nn.Module):
    """x = mu + A z, z ~ N(0, I_2): covariance A A^T."""

    def __init__(self):
        super().__init__()
        self.mu, self.a = nn.Parameter(torch.zeros(2)), nn.Parameter(torch.eye(2))

    def model(self, x):
        with pyro.plate("data", len(x)):
            z = pyro.sample("z", dist.Normal(torch.zeros(2), 1.0).to_event(1))
            pyro.sample("x", dist.Delta(self.mu + z @ self.a.T, event_dim=1), obs=x)


class Conditional(nn.Module):
    """x | c = a c + b + sigma z: a generator of x given a further input c."""

    def __init__(self):
        super().__init__()
        self.ab, self.log_sigma = nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(1))

    def model(self, x, c):
        with pyro.plate("data", len(x)):
            z = pyro.sample("z", dist.Normal(torch.zeros(1), 1.0).to_event(1))
            loc = self.ab[0] * c.unsqueeze(-1) + self.ab[1]
            pyro.sample("x", dist.Delta(loc + self.log_sigma.exp() * z, event_dim=1), obs=x)


def test_mmd_fits_a_location_scale_generator_to_a_gaussian():
    x = 2.0 + 0.5 * torch.randn(1000, 1)
    fit = ppgen.fit(LocScale(), x, inference=inference.MMD(), epochs=20, batch_size=200, lr=0.05, progress=False)
    assert fit.model.mu.item() == pytest.approx(2.0, abs=0.075)  # seeds 0-2 gave errors of at most 0.025
    assert fit.model.log_sigma.exp().item() == pytest.approx(0.5, abs=0.075)
    assert abs(fit.history[-1]) < 0.02  # MMD^2 near zero at the fit, in the kernel's units


def test_mmd_fits_a_two_dimensional_generator_to_a_gaussian_with_a_given_covariance():
    mean, cov = torch.tensor([1.0, -1.0]), torch.tensor([[1.0, 0.6], [0.6, 0.5]])
    x = mean + torch.randn(1000, 2) @ torch.linalg.cholesky(cov).T
    fit = ppgen.fit(Linear2D(), x, inference=inference.MMD(num_samples=2), epochs=30, batch_size=200, lr=0.05,
                    progress=False)
    a = fit.model.a.detach()
    torch.testing.assert_close(fit.model.mu.detach(), x.mean(0), atol=0.1, rtol=0)
    torch.testing.assert_close(a @ a.T, torch.cov(x.T), atol=0.15, rtol=0)  # seeds 0-2: errors of at most 0.09


def test_mmd_fits_a_generator_of_x_given_a_condition_through_the_pairs():
    c = torch.randint(0, 2, (1000,)).float()
    x = (2.0 * c - 1.0 + 0.3 * torch.randn(1000)).unsqueeze(-1)
    fit = ppgen.fit(Conditional(), (x, c), inference=inference.MMD(), epochs=30, batch_size=200, lr=0.05,
                    progress=False)
    torch.testing.assert_close(fit.model.ab.detach(), torch.tensor([2.0, -1.0]), atol=0.1, rtol=0)  # seeds 0-2: 0.05
    assert fit.model.log_sigma.exp().item() == pytest.approx(0.3, abs=0.05)


@pytest.mark.parametrize("backend", [inference.MMD(num_samples=2), inference.MMD(bandwidths=(0.4, 1.5))],
                         ids=["median heuristic, two draws a point", "fixed bandwidths"])
def test_the_mmd_loss_is_the_u_statistic_between_the_batch_and_the_models_draws(backend):
    module, x = LocScale(), torch.randn(9, 1, dtype=torch.float64)
    module.double()
    batch = Batch((x,), torch.arange(len(x)), len(x))
    structure = inspect(module, batch)
    pyro.set_rng_seed(7)
    loss = backend.loss(module, structure, batch)
    pyro.set_rng_seed(7)
    with torch.no_grad():
        draws = torch.cat([generated(module, structure, batch) for _ in range(backend.num_samples)])
    pooled = torch.cat([x, draws]).numpy()
    distances = np.sort([np.linalg.norm(pooled[i] - pooled[j]) for i in range(len(pooled)) for j in range(i)])
    median = distances[(len(distances) - 1) // 2]  # the lower median, as torch.median takes it
    bandwidths = backend.bandwidths or median * np.asarray(MEDIAN_MULTIPLES)
    assert loss.item() == pytest.approx(brute_force_mmd2(x, draws, bandwidths), rel=1e-10)
    assert loss.requires_grad and backend.units == "MMD^2, the kernel's units"


# ---- the aggregate posterior's MMD, latent_mmd -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits():
    return datasets.digits(binarize=True)[:300]


def vae_batch(x, z_dim=2):
    module = models.VAE(x_dim=64, z_dim=z_dim, hidden=(16,))
    batch = Batch((x,), torch.arange(len(x)), len(x))
    return module, inspect(module, batch), batch


PLAIN = [
    (lambda **kw: inference.ELBO(**kw), "ELBO(num_particles=1, kl='sampled')",
     lambda m, s, b: -elbo_terms(m, s, b, 1).mean()),
    (lambda **kw: inference.IWAE(k=3, **kw), "IWAE(k=3, estimator='standard')",
     lambda m, s, b: -log_mean_exp(log_weights(m, s, b, 3)).mean()),
    (lambda **kw: inference.RenyiVI(**kw), "RenyiVI(alpha=0.5, k=5)",
     lambda m, s, b: -(log_mean_exp(0.5 * log_weights(m, s, b, 5)) / 0.5).mean()),
]


@pytest.mark.parametrize("make, recorded, plain", PLAIN, ids=["ELBO", "IWAE", "RenyiVI"])
def test_latent_mmd_of_zero_is_the_plain_bound_bitwise_with_the_repr_runs_recorded(digits, make, recorded, plain):
    module, structure, batch = vae_batch(digits[:15])
    pyro.set_rng_seed(4)
    expected = plain(module, structure, batch)
    after = torch.get_rng_state()
    pyro.set_rng_seed(4)
    got = make(latent_mmd=0.0).loss(module, structure, batch)
    assert torch.equal(got, expected) and torch.equal(torch.get_rng_state(), after)  # no draw made for the penalty
    assert repr(make()) == repr(make(latent_mmd=0)) == recorded
    assert repr(make(latent_mmd=2)) == recorded[:-1] + ", latent_mmd=2.0)"
    assert make().units == "nats per data point" and make(latent_mmd=2).units == "nats per data point + 2 MMD^2"


@pytest.mark.parametrize("make, recorded, plain", PLAIN, ids=["ELBO", "IWAE", "RenyiVI"])
def test_latent_mmd_adds_lambda_times_the_mmd2_of_the_guides_and_the_priors_draws(digits, make, recorded, plain):
    module, structure, batch = vae_batch(digits[:15], z_dim=3)  # 30 points pooled: 435 pairs, one median
    pyro.set_rng_seed(5)
    bound = make().loss(module, structure, batch)
    with torch.no_grad():  # the draws that follow the bound's: z_i ~ q(z|x_i), then z~_i ~ p(z), x~_i unobserved
        zq = poutine.trace(module.guide).get_trace(batch.args[0]).nodes["z"]["value"]
        zp = poutine.trace(poutine.uncondition(module.model)).get_trace(batch.args[0]).nodes["z"]["value"]
    pyro.set_rng_seed(5)
    got = make(latent_mmd=3.0).loss(module, structure, batch)
    penalty = brute_force_mmd2(zq, zp, numpy_median_bandwidths(zq, zp))
    assert got.item() == pytest.approx(bound.item() + 3.0 * penalty, rel=1e-5)
    assert penalty != 0


def aggregate_mmd2(fit, x):
    """MMD^2 between one draw of q(z|x_i) for each training point and as many draws of N(0, I), fixed bandwidths."""
    with torch.no_grad():
        pyro.set_rng_seed(11)
        zq = poutine.trace(fit.model.guide).get_trace(x).nodes["z"]["value"]
        return mmd2_unbiased(zq, torch.randn_like(zq), torch.tensor([0.5, 1.0, 2.0])).item()


def test_latent_mmd_brings_the_aggregate_posterior_closer_to_the_prior(digits):
    distances = {}
    for weight in (0.0, 100.0):
        torch.manual_seed(0)  # the same initial weights
        fit = ppgen.fit(models.VAE(x_dim=64, z_dim=2, hidden=(32,)), digits, inference=inference.ELBO(
            latent_mmd=weight), epochs=20, batch_size=100, lr=1e-2, seed=0, progress=False)
        distances[weight] = aggregate_mmd2(fit, digits)
    assert distances[100.0] < 0.3 * distances[0.0] and distances[0.0] > 0.02, distances


# ---- refusals and bad arguments --------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, error, words", [
    (dict(kernel="imq"), ValueError, "kernel must be one of 'rbf', got 'imq'"),
    (dict(bandwidths=0.5), TypeError, "bandwidths must be a tuple of positive numbers, such as (0.5,), or None"),
    (dict(bandwidths="wide"), TypeError, "bandwidths must be a tuple of positive numbers, or None (the median "
                                         "heuristic), got str"),
    (dict(bandwidths=()), ValueError, "bandwidths must hold at least one bandwidth, got an empty tuple"),
    (dict(bandwidths=(1.0, -2.0)), ValueError, "bandwidths[1] must be a positive finite number, got -2.0"),
    (dict(bandwidths=(1.0, math.inf)), ValueError, "bandwidths[1] must be a positive finite number, got inf"),
    (dict(num_samples=0), ValueError, "num_samples must be a positive int, got 0"),
    (dict(num_samples=1.5), TypeError, "num_samples must be a positive int, got float"),
])
def test_mmd_refuses_bad_arguments(kwargs, error, words):
    with pytest.raises(error) as caught:
        inference.MMD(**kwargs)
    assert words in str(caught.value)


def test_mmd_keeps_bandwidths_as_a_tuple_of_floats_that_a_saved_fit_rebuilds():
    backend = inference.MMD(bandwidths=[1, np.float32(0.5)])
    assert backend.bandwidths == (1.0, 0.5) and type(backend.bandwidths[1]) is float
    assert inference.MMD(**backend.config) == backend


@pytest.mark.parametrize("make", [inference.ELBO, inference.IWAE, inference.RenyiVI])
@pytest.mark.parametrize("value, error, words", [
    (-1.0, ValueError, "latent_mmd must be a finite number >= 0, got -1.0"),
    (math.nan, ValueError, "latent_mmd must be a finite number >= 0, got nan"),
    ("1", TypeError, "latent_mmd must be a finite number >= 0, got str"),
])
def test_latent_mmd_refuses_bad_weights(make, value, error, words):
    with pytest.raises(error) as caught:
        make(latent_mmd=value)
    assert words in str(caught.value)


class BernoulliGenerator(nn.Module):
    def __init__(self):
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(3))

    def model(self, x):
        with pyro.plate("data", len(x)):
            pyro.sample("x", dist.Bernoulli(logits=self.logits).to_event(1), obs=x)


class DiscreteLatent(nn.Module):
    def __init__(self):
        super().__init__()
        self.locs = nn.Parameter(torch.randn(3, 1))

    def model(self, x):
        with pyro.plate("data", len(x)):
            c = pyro.sample("c", dist.Categorical(logits=torch.zeros(3)))
            pyro.sample("x", dist.Normal(self.locs[c], 1.0).to_event(1), obs=x)


class Untrainable(LocScale):
    def model(self, x):
        with pyro.plate("data", len(x)):
            z = pyro.sample("z", dist.Normal(torch.zeros(1), 1.0).to_event(1))
            pyro.sample("x", dist.Delta((self.mu + z).detach(), event_dim=1), obs=x)


class Subsampling(LocScale):
    def model(self, x):
        with pyro.plate("data", len(x), subsample_size=4) as ind:
            z = pyro.sample("z", dist.Normal(torch.zeros(1), 1.0).to_event(1))
            pyro.sample("x", dist.Delta(self.mu + z, event_dim=1), obs=x[ind])


@pytest.mark.filterwarnings("ignore:the program does not broadcast")
@pytest.mark.parametrize("make, x, words", [
    (BernoulliGenerator, torch.ones(8, 3), "differentiates through draws of the data site 'x', but its distribution "
                                           "has no reparameterised sampler (rsample), as a Bernoulli likelihood has "
                                           "not"),
    (DiscreteLatent, torch.randn(8, 1), "latent site(s) 'c' are drawn without a reparameterised sampler (rsample; "
                                        "discrete)"),
    (Untrainable, torch.randn(8, 1), "differentiates through draws of the data site 'x', but they depend on no "
                                     "parameter being learnt"),
    (lambda: models.VAE(x_dim=3, z_dim=2, likelihood="gaussian"), torch.randn(8, 3),
     "fits p_theta(x) from its draws alone, but the program has a guide for 'z', which it would leave untrained"),
    (Subsampling, torch.randn(8, 1), "the program takes the whole data set and subsamples pyro.plate('data') itself"),
])
def test_mmd_refuses_what_it_cannot_fit_before_any_change(make, x, words):
    module = make()
    before = {name: p.detach().clone() for name, p in module.named_parameters()}
    with pytest.raises(ValueError) as caught:
        ppgen.fit(module, x, inference=inference.MMD(), epochs=1, progress=False)
    assert words in str(caught.value)
    assert all(torch.equal(p, before[name]) for name, p in module.named_parameters())


@pytest.mark.parametrize("backend", [inference.MMD(), inference.ELBO(latent_mmd=1.0)], ids=["MMD", "latent_mmd"])
@pytest.mark.parametrize("n, batch_size, words", [
    (8, 1, "needs at least 2 data points in each batch it sees, but a batch holds 1"),
    (1, 4, "needs at least 2 data points in each batch it sees, but a batch holds 1"),
    (9, 4, "needs at least 2 data points in each batch it sees, but the last of an epoch of 9 points holds 1"),
])
def test_a_batch_of_one_point_is_refused_before_the_fit_starts(backend, n, batch_size, words):
    module = LocScale() if isinstance(backend, inference.MMD) else models.VAE(x_dim=3, z_dim=2, likelihood="gaussian")
    x = torch.randn(n, module.x_dim if hasattr(module, "x_dim") else 1)
    before = [p.detach().clone() for p in module.parameters()]
    with pytest.raises(ValueError) as caught:
        ppgen.fit(module, x, inference=backend, epochs=1, batch_size=batch_size, progress=False)
    assert str(caught.value).startswith(f"batch_size={batch_size}: {backend!r} ") and words in str(caught.value)
    assert all(torch.equal(p, q) for p, q in zip(module.parameters(), before))


def test_a_batch_of_one_point_stays_allowed_for_the_plain_bounds():
    fit = ppgen.fit(models.VAE(x_dim=3, z_dim=2, likelihood="gaussian"), torch.randn(9, 3), epochs=1, batch_size=4,
                    progress=False)
    assert len(fit.history) == 1 and math.isfinite(fit.history[0])


class GlobalOnly(nn.Module):
    def __init__(self):
        super().__init__()
        self.q_loc = nn.Parameter(torch.zeros(1))

    def model(self, x):
        mu = pyro.sample("mu", dist.Normal(torch.zeros(1), 1.0).to_event(1))
        with pyro.plate("data", len(x)):
            pyro.sample("x", dist.Normal(mu, 1.0).to_event(1), obs=x)

    def guide(self, x):
        pyro.sample("mu", dist.Normal(self.q_loc, 1.0).to_event(1))


class DiscreteGuide(nn.Module):
    def __init__(self):
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(2))

    def model(self, x):
        with pyro.plate("data", len(x)):
            c = pyro.sample("c", dist.Categorical(logits=torch.zeros(2)))
            pyro.sample("x", dist.Normal(c.unsqueeze(-1).float(), 1.0).to_event(1), obs=x)

    def guide(self, x):
        with pyro.plate("data", len(x)):
            pyro.sample("c", dist.Categorical(logits=self.logits))


class SubsamplingVAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(1))

    def model(self, x):
        with pyro.plate("data", len(x), subsample_size=4) as ind:
            z = pyro.sample("z", dist.Normal(torch.zeros(1), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(z, 1.0).to_event(1), obs=x[ind])

    def guide(self, x):
        with pyro.plate("data", len(x), subsample_size=4) as ind:
            pyro.sample("z", dist.Normal(self.loc + x[ind], 1.0).to_event(1))


@pytest.mark.parametrize("module, words", [
    (SubsamplingVAE(), "latent_mmd compares the latents of a batch of points with as many draws of the prior, but the "
                       "program takes the whole data set and subsamples pyro.plate('data') itself"),
    (GlobalOnly(), "latent_mmd compares the aggregate posterior of the local latents with their prior, but the guide "
                   "draws no latent inside pyro.plate('data')"),
    (DiscreteGuide(), "latent_mmd differentiates through draws of q(z|x), but guide site(s) 'c' have no "
                      "reparameterised sampler (rsample; discrete)"),
    (models.GMVAE(x_dim=3, z_dim=2), "latent_mmd draws the prior p(z) by running the model forward, but its latent "
                                     "site(s) 'c' are drawn without a reparameterised sampler"),
])
def test_latent_mmd_refuses_programs_without_continuous_local_latents(module, words):
    with pytest.raises(ValueError) as caught:
        ppgen.fit(module, torch.randn(8, 3).abs().round().clamp(max=1) if isinstance(module, models.GMVAE)
                  else torch.randn(8, 1), inference=inference.ELBO(latent_mmd=1.0), epochs=1, progress=False)
    assert words in str(caught.value)


def test_the_cli_fits_a_flow_by_mmd_and_refuses_k_for_it(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["fit", "--model", "realnvp", "--data", "moons", "--inference", "mmd", "--epochs", "1", "--eval-k",
                 "10", "--batch-size", "256", "--seed", "0", "--out", str(run)]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["objective"] == "MMD(kernel='rbf', bandwidths=None, num_samples=1)"
    assert all(math.isfinite(loss) for loss in metrics["train_loss"])
    assert main(["fit", "--model", "realnvp", "--data", "moons", "--inference", "mmd", "--k", "3", "--out",
                 str(tmp_path / "other")]) == 2
    assert "--k does not apply to --inference mmd" in capsys.readouterr().err


@pytest.mark.parametrize("n, batch_size, world_size, words", [
    (12, 6, 4, "but a batch holds 6, split among 4 processes into shares of [1, 2]: choose a batch_size"),
    (13, 8, 3, "but the last of an epoch of 13 points holds 5, split among 3 processes into shares of [1, 2]: choose"),
])
def test_each_ranks_share_of_a_batch_is_held_to_the_objectives_minimum(n, batch_size, world_size, words):
    with pytest.raises(ValueError) as caught:
        check_batch_points(inference.MMD(), n, batch_size, drop_last=False, world_size=world_size)
    assert words in str(caught.value)
    check_batch_points(inference.ELBO(), n, batch_size, drop_last=False, world_size=world_size)  # 1 point is enough


def test_shares_of_two_points_or_more_and_a_dropped_last_batch_are_allowed():
    check_batch_points(inference.MMD(), 13, 8, drop_last=False, world_size=2)  # shares of 4 and 4, then 2 and 3
    check_batch_points(inference.MMD(), 9, 4, drop_last=True, world_size=1)  # the last batch of 1 is never run


def test_a_fit_by_mmd_or_latent_mmd_saves_and_loads_its_objective(tmp_path, digits):
    for make, x, backend in [(LocScale, torch.randn(20, 1), inference.MMD(bandwidths=(0.5, 2.0), num_samples=2)),
                             (lambda: models.VAE(x_dim=64, z_dim=2, hidden=(8,)), digits[:20],
                              inference.IWAE(k=2, latent_mmd=5.0))]:
        fit = ppgen.fit(make(), x, inference=backend, epochs=1, batch_size=10, progress=False)
        fit.save(tmp_path / "fit.pt")
        loaded = ppgen.load(tmp_path / "fit.pt", model=make())
        assert loaded.inference == backend and repr(loaded.inference) == repr(backend)


@pytest.mark.parametrize("make, x, backend", [
    (LocScale, 2.0 + torch.randn(60, 1), inference.MMD(num_samples=2)),
    (lambda: models.VAE(x_dim=64, z_dim=2, hidden=(8,)), None, inference.ELBO(latent_mmd=10.0)),
], ids=["MMD", "latent_mmd"])
def test_the_captured_step_gives_the_plain_fits_history(make, x, backend, digits):
    x = digits[:60] if x is None else x
    histories = []
    for compile in (False, "capture"):
        torch.manual_seed(0)
        fit = ppgen.fit(make(), x, inference=backend, epochs=2, batch_size=25, progress=False, compile=compile)
        histories.append(fit.history)  # batches of 25, 25 and 10: two batch shapes captured
    torch.testing.assert_close(torch.tensor(histories[1]), torch.tensor(histories[0]), rtol=1e-6, atol=0)


def test_a_one_point_batch_that_reaches_the_loss_is_refused_by_name():
    """The last batch of a stream without a length is unknown before the fit; the loss itself refuses one point."""
    module, x = LocScale(), torch.randn(4, 1)
    structure = inspect(module, Batch((x,), torch.arange(4), 4))
    with pytest.raises(ValueError) as caught:
        inference.MMD().loss(module, structure, Batch((x[:1],), torch.arange(1), 4))
    assert str(caught.value) == ("MMD(kernel='rbf', bandwidths=None, num_samples=1): a batch of 1 point; the unbiased "
                                 "MMD^2 needs at least 2 in each: choose a batch_size that leaves no batch of 1")


def test_distances_keep_float32s_digits_far_from_the_origin():
    torch.manual_seed(0)
    x, y = 1000 + 0.01 * torch.randn(50, 3), 1000 + 0.01 * torch.randn(40, 3)
    exact = (x.double()[:, None] - y.double()[None]).square().sum(-1)
    assert (squared_distances(x, y).double() - exact).abs().max() < 1e-3 * exact.mean()  # cdist alone: off by ~1000x
