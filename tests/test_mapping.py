"""Programs written the natural way, ``X @ w`` with a global w, run with their particles mapped by vmap: against the
closed forms of Bayesian linear regression, against Pyro's own non-vectorised Trace_ELBO and RenyiELBO, and against
the same program run one particle at a time on the same draws.

y_n = x_n . w + e_n, w ~ N(0, I / alpha), e_n ~ N(0, sigma^2): log p(y) = log N(y; 0, sigma^2 I + X X^T / alpha), the
posterior is N(m, C) with C = (alpha I + X^T X / sigma^2)^-1 and m = C X^T y / sigma^2, and for a guide N(mu, diag(s^2))

    ELBO(mu, s) = log N(y; X mu, sigma^2 I) - sum_j s_j^2 |X_j|^2 / (2 sigma^2) + log N(mu; 0, I / alpha)
                  - alpha |s|^2 / 2 + sum_j log s_j + D / 2 (1 + log 2 pi),

whose gradient in mu is X^T (y - X mu) / sigma^2 - alpha mu.
"""

import math
import warnings

import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import pytest
import torch
from pyro.infer import RenyiELBO, Trace_ELBO
from torch import nn

import ppgen
from ppgen import inference
from ppgen.objective.bounds import log_mean_exp, log_weights
from ppgen.objective.particles import in_passes
from ppgen.program.inputs import as_batch
from ppgen.program.mapping import Given
from ppgen.program.pointwise import per_point_terms
from ppgen.program.structure import inspect
from ppgen.program.traces import trace_particles
from ppgen.run.signals import Interrupted
from programs import LOSS_CALLS, StopAt

pytestmark = pytest.mark.usefixtures("float64", "one_thread")

N, D, ALPHA, SIGMA = 12, 3, 0.5, 0.4


def data():
    generator = torch.Generator().manual_seed(3)
    X = torch.randn(N, D, generator=generator)
    y = X @ torch.tensor([1.0, -2.0, 0.5]) + SIGMA * torch.randn(N, generator=generator)
    return X, y


def posterior(X, y):
    C = torch.linalg.inv(ALPHA * torch.eye(D) + X.T @ X / SIGMA**2)
    return C @ X.T @ y / SIGMA**2, C


def log_evidence(X, y):
    return dist.MultivariateNormal(torch.zeros(N), SIGMA**2 * torch.eye(N) + X @ X.T / ALPHA).log_prob(y)


class Regression(nn.Module):
    """Bayesian linear regression as Pyro's tutorials write it: ``X @ w``, which does not broadcast over draws of w;
    q(w) = N(mu, diag(s^2)), or N(m, C) exactly where ``exact`` is given."""

    def __init__(self, exact=None):
        super().__init__()
        self.mu = nn.Parameter(torch.tensor([0.3, -1.0, 0.2]))
        self.log_s = nn.Parameter(torch.full((D,), -1.0))
        self.exact = exact

    def model(self, X, y):
        w = pyro.sample("w", dist.Normal(torch.zeros(D), ALPHA ** -0.5).to_event(1))
        with pyro.plate("data", len(X)):
            pyro.sample("y", dist.Normal(X @ w, SIGMA), obs=y)

    def guide(self, X, y):
        if self.exact is not None:
            pyro.sample("w", dist.MultivariateNormal(*self.exact))
        else:
            pyro.sample("w", dist.Normal(self.mu, self.log_s.exp()).to_event(1))

    def elbo(self, X, y):
        """The closed-form ELBO of the diagonal guide, and its gradient in mu."""
        s = self.log_s.exp()
        value = (dist.Normal(X @ self.mu, SIGMA).log_prob(y).sum() - (s**2 * (X**2).sum(0)).sum() / (2 * SIGMA**2)
                 + dist.Normal(0.0, ALPHA ** -0.5).log_prob(self.mu).sum() - ALPHA * (s**2).sum() / 2
                 + self.log_s.sum() + D / 2 * (1 + math.log(2 * math.pi)))
        return value, X.T @ (y - X @ self.mu) / SIGMA**2 - ALPHA * self.mu


@pytest.fixture
def program():
    X, y = data()
    module = Regression()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning: the program is mapped, not run one particle at a time
        structure = inspect(module, (X, y))
    assert structure.plan.mapped and not structure.plan.vectorized
    return module, structure, X, y


def test_with_the_exact_posterior_as_the_guide_every_mapped_particle_weighs_log_p_y():
    X, y = data()
    module = Regression(exact=posterior(X, y))
    structure = inspect(module, (X, y))
    assert structure.plan.mapped
    log_w = log_weights(module, structure, as_batch((X, y)), 50)  # [K, N], the global term 1/N to each point
    torch.testing.assert_close(log_w.sum(1), log_evidence(X, y).expand(50), rtol=0, atol=1e-10)
    draws = ppgen.log_weights((module.model, module.guide), (X, y), k=7)
    torch.testing.assert_close(draws.sum(1), log_evidence(X, y).expand(7), rtol=0, atol=1e-10)


def test_the_mapped_particles_are_the_one_at_a_time_pass_on_the_same_draws_values_and_gradients(program):
    """The K draws of a mapped pass, w_k = mu + s eps_k, given back one particle at a time (with the same eps_k, so
    that they depend on mu and s the same way): the same log weights and the same gradients, to float64 rounding."""
    module, structure, X, y = program
    batch = as_batch((X, y))
    sequential = structure.__class__(**{**structure.__dict__, "plan": structure.plan.one_particle_at_a_time()})

    def run(start, count):
        guide_trace, model_trace = trace_particles(module, structure, batch, count)
        return guide_trace.nodes["w"]["value"].unsqueeze(0), per_point_terms(guide_trace, model_trace, structure,
                                                                              batch, count)

    w, log_w = in_passes(run, 6, structure.plan)
    assert w.shape == (6, D) and log_w.shape == (6, N)
    assert len({tuple(row.tolist()) for row in w}) == 6  # each particle its own draw
    mapped_gradients = torch.autograd.grad(log_w.sum(), (module.mu, module.log_s))
    eps = ((w - module.mu) / module.log_s.exp()).detach()
    each = []
    for k in range(6):
        with Given({"w": module.mu + module.log_s.exp() * eps[k]}):
            guide_trace, model_trace = trace_particles(module, sequential, batch, 1)
        each.append(per_point_terms(guide_trace, model_trace, sequential, batch, 1))
    each = torch.cat(each)
    torch.testing.assert_close(log_w, each, rtol=1e-12, atol=1e-12)
    for mapped, one_at_a_time in zip(mapped_gradients, torch.autograd.grad(each.sum(), (module.mu, module.log_s))):
        torch.testing.assert_close(mapped, one_at_a_time, rtol=1e-10, atol=1e-10)


def test_the_mapped_weights_are_pyros_on_the_same_draws(program):
    """Each mapped draw w_s of a posterior query, conditioned on in Pyro's own trace of the model: the query's
    log-likelihood and log weight of each point (the global terms left out) are Pyro's log p(y_n | w_s)."""
    module, structure, X, y = program
    fit = ppgen.Fit(module, structure, inference.ELBO(), history=[], example=as_batch((X, y)).head(3))
    draws = fit.posterior(X, y, num_samples=8)
    w = draws.samples["w"]
    assert w.shape == (8, D) and len({tuple(row.tolist()) for row in w}) == 8
    for s in range(8):
        model = poutine.trace(poutine.condition(module.model, data={"w": w[s]})).get_trace(X, y)
        likelihood = model.nodes["y"]["fn"].log_prob(y)  # log p(y_n | w_s), per point
        torch.testing.assert_close(draws.log_likelihood[s], likelihood, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(draws.log_weights[s], likelihood, rtol=1e-12, atol=1e-12)


def test_elbo_and_its_gradient_match_the_closed_form_and_pyros_trace_elbo_in_expectation(program):
    """ppgen's ELBO(num_particles=K) on the mapped program and Pyro's Trace_ELBO(num_particles=K,
    vectorize_particles=False), each averaged over R independent estimates: both within four standard errors of the
    closed-form ELBO and of its gradient in mu (ppgen's loss is per point: times N)."""
    module, structure, X, y = program
    batch = as_batch((X, y))
    truth, truth_gradient = (value.detach() for value in module.elbo(X, y))
    objective, pyros = inference.ELBO(num_particles=10), Trace_ELBO(num_particles=10, vectorize_particles=False)
    ours, theirs = [], []
    for _ in range(100):
        loss = objective.loss(module, structure, batch) * N
        ours.append(torch.cat([-loss.detach().reshape(1), -torch.autograd.grad(loss, module.mu)[0]]))
        loss = pyros.differentiable_loss(module.model, module.guide, X, y)
        theirs.append(torch.cat([-loss.detach().reshape(1), -torch.autograd.grad(loss, module.mu)[0]]))
    expected = torch.cat([truth.reshape(1), truth_gradient])
    for estimates in (torch.stack(ours), torch.stack(theirs)):
        error = (estimates.mean(0) - expected).abs() / (estimates.std(0) / math.sqrt(len(estimates)))
        assert bool((error < 4).all()), error


def test_the_importance_weighted_bound_rises_to_log_p_y_from_below_as_pyros_renyi_elbo(program):
    """IWAE_K = log (1/K) sum_k p(y, w_k) / q(w_k) over the whole data set, from the mapped log weights: its mean
    over R estimates within four standard errors of Pyro's RenyiELBO(alpha=0) at the same K, rising with K, and below
    log p(y) (by less than at K=1, the ELBO)."""
    module, structure, X, y = program
    batch = as_batch((X, y))
    evidence = log_evidence(X, y)
    means = {}
    for k in (1, 10, 1000):
        with torch.no_grad():
            ours = torch.stack([log_mean_exp(log_weights(module, structure, batch, k).sum(1)) for _ in range(40)])
        means[k] = ours.mean()
        if k == 10:
            renyi = RenyiELBO(alpha=0, num_particles=k, vectorize_particles=False)
            theirs = torch.tensor([-renyi.loss(module.model, module.guide, X, y) for _ in range(40)])
            gap = (ours.mean() - theirs.mean()).abs()
            assert gap < 4 * math.sqrt(ours.var() / 40 + theirs.var() / 40), (ours.mean(), theirs.mean())
    assert means[1] < means[10] < means[1000] < evidence
    assert evidence - means[1000] < 0.1 * (evidence - means[1])


def test_queries_map_the_program_posterior_draws_and_log_prob(program):
    """With the exact posterior N(m, C) as the guide: posterior draws have its mean and covariance, and log_prob(x, k)
    estimates the posterior predictive log N(y_n; x_n . m, sigma^2 + x_n^T C x_n) of each point."""
    _, _, X, y = program
    m, C = posterior(X, y)
    module = Regression(exact=(m, C))
    fit = ppgen.Fit(module, inspect(module, (X, y)), inference.ELBO(), history=[], example=as_batch((X, y)).head(3))
    assert fit.structure.plan.mapped
    w = fit.posterior(X, y, num_samples=4000).samples["w"]
    standard_error = C.diagonal().sqrt() / math.sqrt(len(w))
    assert bool(((w.mean(0) - m).abs() < 4 * standard_error).all())
    torch.testing.assert_close(torch.cov(w.T), C, rtol=0.1, atol=0.1 * C.diagonal().max().item())
    predictive = dist.Normal(X @ m, (SIGMA**2 + ((X @ C) * X).sum(-1)).sqrt()).log_prob(y)
    torch.testing.assert_close(fit.log_prob(X, y, k=4000), predictive, rtol=0, atol=0.01)


def test_a_fit_of_the_mapped_program_reaches_the_exact_posterior():
    """ELBO(num_particles=5) fitted on the mapped program: q(w) ends at the posterior mean m (the mean of the diagonal
    Gaussian closest to a Gaussian posterior in KL(q || p) is m), within half a posterior standard deviation (the
    wander of Adam's last steps at lr=0.05; it held at seeds 0, 1 and 2)."""
    X, y = data()
    m, C = posterior(X, y)
    fit = ppgen.fit(Regression(), (X, y), inference=inference.ELBO(num_particles=5), epochs=500, batch_size=N,
                    lr=0.05, seed=0, progress=False)
    assert fit.structure.plan.mapped
    assert bool(((fit.model.mu.detach() - m).abs() < 0.5 * C.diagonal().sqrt()).all()), (fit.model.mu, m)


@pytest.mark.parametrize("objective", [inference.ELBO(num_particles=4), inference.RWS(k=4), inference.VIMCO(k=4),
                                       inference.IWAE(k=4, estimator="stl"), inference.IWAE(k=4, estimator="dreg")],
                         ids=repr)
def test_every_estimator_runs_a_mapped_local_latent_program(objective):
    """A linear-Gaussian program written with a reshape to the batch, mapped: every estimator's loss is finite and
    reaches every parameter (score-function ones through log q per particle), and DReG (run one particle at a time,
    its hooks need each particle's draws) agrees with the IWAE bound's value."""
    x = torch.randn(6, 3, generator=torch.Generator().manual_seed(1))

    class LinearGaussian(nn.Module):
        def __init__(self):
            super().__init__()
            self.W = nn.Parameter(torch.randn(3, 2, generator=torch.Generator().manual_seed(0)))
            self.A = nn.Parameter(torch.randn(3, 2, generator=torch.Generator().manual_seed(2)) / 2)

        def model(self, x):
            with pyro.plate("data", len(x)):
                z = pyro.sample("z", dist.Normal(torch.zeros(2), 1.0).to_event(1))
                pyro.sample("x", dist.Normal((z.view(-1, 2) @ self.W.T).view(len(x), 3), 0.5).to_event(1), obs=x)

        def guide(self, x):
            with pyro.plate("data", len(x)):
                pyro.sample("z", dist.Normal(x @ self.A, 0.8).to_event(1))

    module = LinearGaussian()
    structure = inspect(module, x)
    assert structure.plan.mapped
    loss = objective.loss(module, structure, as_batch(x))
    loss.backward()
    assert torch.isfinite(loss)
    for name, parameter in module.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_a_stopped_fit_of_a_mapped_program_resumes_bitwise(tmp_path):
    """The mapped particles draw from torch's random stream, which a checkpoint keeps: stopped mid-epoch and
    resumed, the fit ends with the parameters and history of one never stopped, each step run once."""
    X, y = data()
    settings = dict(epochs=3, batch_size=4, lr=0.05, seed=0, progress=False)
    LOSS_CALLS.clear()
    whole = ppgen.fit(Regression(), (X, y), inference=StopAt(num_particles=5), **settings)
    assert whole.structure.plan.mapped
    LOSS_CALLS.clear()
    backend = StopAt(num_particles=5, signal_at=5)
    with pytest.raises(Interrupted):
        ppgen.fit(Regression(), (X, y), inference=backend, out=tmp_path / "run", checkpoint_every=2, **settings)
    resumed = ppgen.fit(Regression(), (X, y), inference=backend, out=tmp_path / "run", checkpoint_every=2,
                        resume=True, **settings)
    assert resumed.history == whole.history and len(LOSS_CALLS) == 9
    for name, value in whole.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], value), name


class Switched(Regression):
    """The regression with a global switch b ~ Bernoulli(0.3) added to every mean, ``X @ w + b``; q(b) =
    Bernoulli(sigmoid(l)), which has no reparameterised sampler: its gradient is a score-function one."""

    def __init__(self):
        super().__init__()
        self.logit = nn.Parameter(torch.tensor(0.2))

    def model(self, X, y):
        w = pyro.sample("w", dist.Normal(torch.zeros(D), ALPHA ** -0.5).to_event(1))
        b = pyro.sample("b", dist.Bernoulli(0.3))
        with pyro.plate("data", len(X)):
            pyro.sample("y", dist.Normal(X @ w + b, SIGMA), obs=y)

    def guide(self, X, y):
        pyro.sample("w", dist.Normal(self.mu, self.log_s.exp()).to_event(1))
        pyro.sample("b", dist.Bernoulli(logits=self.logit))

    def elbo(self, X, y):
        """The closed-form ELBO: E_q(b)[ELBO of the regression given b] - KL(q(b) || p(b))."""
        s, q = self.log_s.exp(), torch.sigmoid(self.logit)
        given = [dist.Normal(X @ self.mu + b, SIGMA).log_prob(y).sum() for b in (0.0, 1.0)]
        kl = q * torch.log(q / 0.3) + (1 - q) * torch.log((1 - q) / 0.7)
        return ((1 - q) * given[0] + q * given[1] - (s**2 * (X**2).sum(0)).sum() / (2 * SIGMA**2)
                + dist.Normal(0.0, ALPHA ** -0.5).log_prob(self.mu).sum() - ALPHA * (s**2).sum() / 2
                + self.log_s.sum() + D / 2 * (1 + math.log(2 * math.pi)) - kl)


def test_a_score_function_gradient_through_the_mapped_particles_is_the_closed_form_in_expectation():
    """A discrete global draw under vmap (its two particles may be equal: mapped all the same): the ELBO's
    score-function gradient in q(b)'s logit, and its reparameterised one in mu, averaged over R estimates of K
    particles, within four standard errors of the closed form's, as Pyro's Trace_ELBO(vectorize_particles=False)."""
    X, y = data()
    module = Switched()
    structure = inspect(module, (X, y))
    assert structure.plan.mapped and structure.unreparameterized == ("b",)
    batch = as_batch((X, y))
    parameters = (module.logit, module.mu)
    truth = torch.cat([g.reshape(-1) for g in torch.autograd.grad(module.elbo(X, y), parameters)])
    objective, pyros = inference.ELBO(num_particles=10), Trace_ELBO(num_particles=10, vectorize_particles=False)
    ours, theirs = [], []
    for _ in range(100):
        loss = objective.loss(module, structure, batch) * N
        ours.append(-torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, parameters)]))
        loss = pyros.differentiable_loss(module.model, module.guide, X, y)
        theirs.append(-torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, parameters)]))
    for estimates in (torch.stack(ours), torch.stack(theirs)):
        error = (estimates.mean(0) - truth).abs() / (estimates.std(0) / math.sqrt(len(estimates)))
        assert bool((error < 4).all()), error
