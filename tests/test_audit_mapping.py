"""An audit of the particles mapped by vmap (ppgen.program.mapping) on programs written the way Pyro users write them,
none of which broadcasts over a plate of particles: ``w.view``, ``reshape`` and ``torch.mm``, indexing and
``torch.cat``, ``pyro.factor``, an observation mask, a Python loop over time under ``pyro.markov``, a ``PyroModule``
with ``PyroSample`` priors and an autoguide, and modules with BatchNorm or dropout.

Each linear-Gaussian program y = A w + e, w ~ N(0, P^-1), e ~ N(0, sigma^2 I) is given its exact posterior
N(m, C), C = (P + A^T A / sigma^2)^-1, m = C A^T y / sigma^2, as the guide: then every particle's log weight, summed
over the points, is log p(y) = log N(y; 0, sigma^2 I + A P^-1 A^T) exactly (float64, to rounding), whatever the draw.
A mapped pass that mixed two particles' draws, or dropped or doubled a term, misses it by nats.
"""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import RenyiELBO, Trace_ELBO
from pyro.infer.autoguide import AutoNormal
from pyro.nn import PyroModule, PyroSample
from torch import nn

import ppgen
from ppgen import inference
from ppgen.objective.bounds import log_mean_exp, log_weights
from ppgen.program.inputs import as_batch
from ppgen.program.protocol import as_module
from ppgen.program.structure import inspect

pytestmark = pytest.mark.usefixtures("float64", "one_thread")

N, D, T, SIGMA = 10, 3, 3, 0.5
MASK = torch.arange(N) % 3 != 0


def exact(A, y, precision, constant=0.0):
    """The posterior N(m, C) of w given y = A w + e, and log p(y) (plus ``constant``, a factor's log-normaliser)."""
    C = torch.linalg.inv(precision + A.T @ A / SIGMA**2)
    evidence = dist.MultivariateNormal(torch.zeros(len(y)), SIGMA**2 * torch.eye(len(y))
                                       + A @ torch.linalg.inv(precision) @ A.T).log_prob(y)
    return C @ A.T @ y / SIGMA**2, C, evidence + constant


def rows():
    generator = torch.Generator().manual_seed(4)
    X = torch.randn(N, T, D, generator=generator)
    return X, X @ torch.tensor([0.8, -1.5, 0.4]) + SIGMA * torch.randn(N, T, generator=generator)


def prior(dim=D):
    return pyro.sample("w", dist.Normal(torch.zeros(dim), 1.0).to_event(1))


def view(X, y):
    w = prior()
    with pyro.plate("data", len(X)):
        pyro.sample("y", dist.Normal((X @ w.view(D, 1)).squeeze(-1), SIGMA), obs=y)


def reshaped(X, y):
    w = prior()
    with pyro.plate("data", len(X)):
        pyro.sample("y", dist.Normal(torch.mm(X, w.reshape(D, 1))[:, 0], SIGMA), obs=y)


def indexed(X, y):
    w = prior()
    with pyro.plate("data", len(X)):
        pyro.sample("y", dist.Normal(X[:, 0] * w[0] + X[:, 1] * w[1] + X[:, 2] * w[2], SIGMA), obs=y)


def concatenated(X, y):
    theta = prior(D + 1)  # the weights and the intercept in one site, sliced and put back together
    w, b = theta[:D], theta[D]
    with pyro.plate("data", len(X)):
        pyro.sample("y", dist.Normal(torch.cat([X, torch.ones(len(X), 1)], 1) @ torch.cat([w, b.unsqueeze(0)]),
                                     SIGMA), obs=y)


def factored(X, y):
    w = prior()
    pyro.factor("penalty", -0.5 * (w * w).sum())  # with the N(0, I) prior: exp(-|w|^2) = 2^(-D/2) N(w; 0, I / 2)
    with pyro.plate("data", len(X)):
        pyro.sample("y", dist.Normal(X @ w, SIGMA), obs=y)


def masked(X, y):
    w = prior()
    with pyro.plate("data", len(X)):
        pyro.sample("y", dist.Normal(X @ w, SIGMA).mask(MASK[:len(X)]), obs=y)


def markov(X, y):
    w = prior()
    with pyro.plate("data", len(X)):
        for t in pyro.markov(range(T)):
            pyro.sample(f"y_{t}", dist.Normal(X[:, t] @ w, SIGMA), obs=y[:, t])


def case(name):
    """The program, its data, and its exact posterior and log p(y)."""
    X, y = rows()
    eye = torch.eye(D)
    if name == "markov":
        return markov, (X, y), exact(X.transpose(0, 1).reshape(T * N, D), y.T.reshape(-1), eye)
    X, y = X[:, 0], y[:, 0]
    if name == "concatenated":
        return concatenated, (X, y), exact(torch.cat([X, torch.ones(N, 1)], 1), y, torch.eye(D + 1))
    if name == "factored":
        return factored, (X, y), exact(X, y, 2 * eye, -D / 2 * math.log(2))
    if name == "masked":
        return masked, (X, y), exact(X[MASK], y[MASK], eye)
    return {"view": view, "reshaped": reshaped, "indexed": indexed}[name], (X, y), exact(X, y, eye)


@pytest.mark.parametrize("name", ["view", "reshaped", "indexed", "concatenated", "factored", "masked", "markov"])
def test_with_the_exact_posterior_as_the_guide_every_mapped_particle_weighs_log_p_y(name):
    model, data, (m, C, evidence) = case(name)

    def guide(X, y):
        pyro.sample("w", dist.MultivariateNormal(m, C))

    module = as_module((model, guide))
    structure = inspect(module, data)
    assert structure.plan.mapped and not structure.plan.vectorized
    log_w = ppgen.log_weights((model, guide), data, k=6)
    assert log_w.shape == (6, N) and len(set(log_w[:, 0].tolist())) > 1  # each particle its own draw
    torch.testing.assert_close(log_w.sum(1), evidence.expand(6), rtol=0, atol=1e-9)
    loss = inference.ELBO(num_particles=6).loss(module, structure, as_batch(data))  # -ELBO per point
    torch.testing.assert_close(loss * N, -evidence, rtol=0, atol=1e-9)


class BayesianRegression(PyroModule):
    """Pyro's tutorial regression: a ``PyroModule[nn.Linear]`` whose weight and bias are ``PyroSample`` priors (its
    weight [1, D] becomes [K, 1, 1, D] in a plate of particles, which ``nn.Linear`` cannot take), and sigma."""

    def __init__(self):
        super().__init__()
        self.linear = PyroModule[nn.Linear](D, 1)
        self.linear.weight = PyroSample(dist.Normal(0.0, 1.0).expand([1, D]).to_event(2))
        self.linear.bias = PyroSample(dist.Normal(0.0, 10.0).expand([1]).to_event(1))

    def forward(self, x, y=None):
        sigma = pyro.sample("sigma", dist.Uniform(0.0, 10.0))
        mean = self.linear(x).squeeze(-1)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("obs", dist.Normal(mean, sigma), obs=y)


class Tutorial(nn.Module):
    def __init__(self, data):
        super().__init__()
        self.regression = BayesianRegression()
        self.autoguide = AutoNormal(self.regression)
        self.autoguide(*data)  # the autoguide makes its parameters on its first call

    def model(self, x, y):
        return self.regression(x, y)

    def guide(self, x, y):
        return self.autoguide(x, y)


def test_a_pyro_module_with_an_autoguide_is_mapped_with_pyros_elbo_and_gradient():
    """The tutorial's program, mapped: ppgen's ELBO(num_particles=4) times N and its gradient, averaged over R
    estimates, within four standard errors of Pyro's Trace_ELBO(num_particles=4, vectorize_particles=False) on the
    same module."""
    X, y = rows()
    data = (X[:, 0], y[:, 0])
    module = Tutorial(data)
    structure = inspect(module, data)
    assert structure.plan.mapped
    batch, params = as_batch(data), list(module.parameters())
    objective, pyros = inference.ELBO(num_particles=4), Trace_ELBO(num_particles=4, vectorize_particles=False)
    ours, theirs = [], []
    for _ in range(60):
        loss = objective.loss(module, structure, batch) * N
        ours.append(torch.cat([loss.detach().reshape(1), *(g.reshape(-1) for g in torch.autograd.grad(loss, params))]))
        loss = pyros.differentiable_loss(module.model, module.guide, *data)
        theirs.append(torch.cat([loss.detach().reshape(1),
                                 *(g.reshape(-1) for g in torch.autograd.grad(loss, params))]))
    ours, theirs = torch.stack(ours), torch.stack(theirs)
    error = (ours.mean(0) - theirs.mean(0)).abs() / (ours.var(0) / 60 + theirs.var(0) / 60).sqrt().clamp_min(1e-12)
    assert bool((error < 4).all()), error


class Decoder(nn.Module):
    """A local-latent program written with a reshape to the batch (``z.view(-1, 2)``), its decoder normalised by
    ``norm`` and with dropout ``drop``."""

    def __init__(self, norm=None, drop=0.0):
        super().__init__()
        torch.manual_seed(1)
        self.decoder = nn.Sequential(nn.Linear(2, 8), *([norm(8)] if norm else []), nn.Tanh(), nn.Dropout(drop),
                                     nn.Linear(8, 4))
        self.encoder = nn.Linear(4, 4)

    def model(self, x):
        with pyro.plate("data", len(x)):
            z = pyro.sample("z", dist.Normal(torch.zeros(2), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(self.decoder(z.view(-1, 2)).view(len(x), 4), 0.7).to_event(1), obs=x)

    def guide(self, x):
        h = self.encoder(x)
        with pyro.plate("data", len(x)):
            pyro.sample("z", dist.Normal(h[:, :2], h[:, 2:].exp()).to_event(1))


def test_a_batchnorm_module_handed_over_in_eval_mode_is_inspected_as_it_trains():
    """Regression: a module in eval mode was inspected as it was, where its BatchNorm reads its running statistics and
    vmap maps it; the fit then trained it in train mode, where BatchNorm updates them in place, and vmap raised
    ("Batch norm got a batched tensor as input while the running_mean ... were not batched") at the first step. The
    fit now inspects the program in train mode, runs its particles one at a time, and puts the module's modes back."""
    x = torch.randn(10, 4, generator=torch.Generator().manual_seed(5))
    module = Decoder(norm=nn.BatchNorm1d).eval()
    assert inspect(module, x).plan.mapped  # in eval mode, as queries run it, it maps
    assert not module.training
    with pytest.warns(UserWarning, match="one at a time"):
        fit = ppgen.fit(module, x, inference=inference.IWAE(k=3), epochs=2, batch_size=5, lr=0.01, seed=0,
                        progress=False)
    assert not fit.structure.plan.mapped and len(fit.history) == 2 and all(map(math.isfinite, fit.history))


def test_inspect_in_a_mode_puts_back_each_submodules_own():
    """``inspect(training=...)`` traces the program in that mode and leaves every submodule's mode as it was (a frozen
    encoder kept in eval mode inside a module in train mode stays so)."""
    x = torch.randn(10, 4, generator=torch.Generator().manual_seed(5))
    module = Decoder(norm=nn.BatchNorm1d)
    module.encoder.eval()
    before = [part.training for part in module.modules()]
    with pytest.warns(UserWarning, match="Batch norm got a batched tensor"):  # its statistics updated in place
        assert not inspect(module, x, training=True).plan.mapped
    assert [part.training for part in module.modules()] == before
    assert inspect(module, x, training=False).plan.mapped
    assert [part.training for part in module.modules()] == before


def test_a_mapped_local_latent_program_has_pyros_importance_weighted_bound_per_point():
    """IWAE_K per point (K=5) of a mapped decoder program with a LayerNorm, averaged over R = 100 estimates, within four
    standard errors of Pyro's RenyiELBO(alpha=0, num_particles=5, vectorize_particles=False) run on each point alone
    (a per-point bound is Pyro's bound of a data set of one point)."""
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(5))
    module = Decoder(norm=nn.LayerNorm)
    structure = inspect(module, x)
    assert structure.plan.mapped
    with torch.no_grad():
        ours = torch.stack([log_mean_exp(log_weights(module, structure, as_batch(x), 5)) for _ in range(100)])
    renyi = RenyiELBO(alpha=0, num_particles=5, vectorize_particles=False)
    theirs = torch.tensor([[-renyi.loss(module.model, module.guide, x[n:n + 1]) for n in range(len(x))]
                           for _ in range(100)])
    error = (ours.mean(0) - theirs.mean(0)).abs() / (ours.var(0) / 100 + theirs.var(0) / 100).sqrt()
    assert bool((error < 4).all()), (ours.mean(0), theirs.mean(0))


def counted(X, y):
    w = prior()
    k = pyro.sample("k", dist.Poisson(1.5))
    with pyro.plate("data", len(X)):
        pyro.sample("y", dist.Normal(X @ w + 0.1 * k, SIGMA), obs=y)


def counted_guide(X, y):
    pyro.sample("w", dist.Normal(pyro.param("mu", torch.zeros(D)), 0.3).to_event(1))
    pyro.sample("k", dist.Poisson(pyro.param("rate", torch.tensor(1.5), constraint=dist.constraints.positive)))


def test_a_discrete_draw_without_enumerable_support_is_mapped_whatever_the_seed():
    """Regression: the check that each particle mapped draws its own values took a Poisson (no enumerable support, but
    discrete) for continuous, so that two particles drawing the same count (about one time in five at rate 1.5) sent
    the program one particle at a time: its plan hung on the seed (seeds 4, 6, 13 of 30). Mapped at every seed now,
    with Pyro's ELBO (Trace_ELBO, not vectorised) within four standard errors."""
    X, y = rows()
    data = (X[:, 0], y[:, 0])
    for seed in range(15):
        pyro.set_rng_seed(seed)
        assert inspect(as_module((counted, counted_guide)), data).plan.mapped, seed
    module = as_module((counted, counted_guide))
    structure = inspect(module, data)
    ours = torch.cat([log_weights(module, structure, as_batch(data), 10).sum(1) for _ in range(40)]).detach()
    theirs = torch.tensor([-Trace_ELBO().loss(module.model, module.guide, *data) for _ in range(400)])
    assert (ours.mean() - theirs.mean()).abs() < 4 * (ours.var() / len(ours) + theirs.var() / len(theirs)).sqrt()


def penalised(X, y):
    """Written to broadcast (``(X * w).sum(-1)``), but with a penalty on |w|^2 summed over all of w's dimensions: in a
    plate of particles w is [K, 1, D], and ``(w * w).sum()`` adds every particle's penalty into each."""
    w = prior()
    pyro.factor("penalty", -0.5 * (w * w).sum())
    with pyro.plate("data", len(X)):
        pyro.sample("y", dist.Normal((X * w).sum(-1), SIGMA), obs=y)


def spread(X, y):
    """A noise scale made from the mean of |w| over all its dimensions, the particles' included where vectorised."""
    w = prior()
    with pyro.plate("data", len(X)):
        pyro.sample("y", dist.Normal((X * w).sum(-1), 0.2 + w.abs().mean()), obs=y)


@pytest.mark.parametrize("model", [penalised, spread], ids=lambda model: model.__name__)
def test_a_program_that_runs_in_a_plate_of_particles_but_mixes_them_is_not_vectorised(model):
    """Regression: such a program ran in the particle plate without an error and was vectorised, each particle's log
    weight taking terms of the others: ``penalised`` with the exact posterior as the guide gave log weights that were
    not log p(y) (by the other particles' penalties), and its ELBO(num_particles=5) fell 2.6 nats below Pyro's
    Trace_ELBO. The check of the vectorised pass against one particle at a time on the same draws now finds it; its
    particles are mapped, and each weighs log p(y) exactly."""
    X, y = rows()
    data = (X[:, 0], y[:, 0])
    m, C, evidence = exact(X[:, 0], y[:, 0], 2 * torch.eye(D), -D / 2 * math.log(2))  # penalised's posterior

    def guide(X, y):
        pyro.sample("w", dist.MultivariateNormal(m, C))

    structure = inspect(as_module((model, guide)), data)
    assert structure.plan.mapped and not structure.plan.vectorized
    if model is penalised:
        torch.testing.assert_close(ppgen.log_weights((model, guide), data, k=5).sum(1), evidence.expand(5), rtol=0,
                                   atol=1e-9)


def test_a_program_with_dropout_that_broadcasts_stays_vectorised():
    """The check runs in eval mode: a decoder with dropout written to broadcast over particles (no reshape to the
    batch) is vectorised, in train mode as in eval mode, and the module's modes are left as they were."""

    class Broadcasting(Decoder):
        def model(self, x):
            with pyro.plate("data", len(x)):
                z = pyro.sample("z", dist.Normal(torch.zeros(2), 1.0).to_event(1))
                pyro.sample("x", dist.Normal(self.decoder(z), 0.7).to_event(1), obs=x)

    x = torch.randn(10, 4, generator=torch.Generator().manual_seed(5))
    module = Broadcasting(drop=0.3)
    assert inspect(module, x, training=True).plan.vectorized and module.training
    assert inspect(module.eval(), x).plan.vectorized and not module.training
