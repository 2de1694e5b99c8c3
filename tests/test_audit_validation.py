"""An audit of validation while training (ppgen.training.validation) against losses computed by hand: a global
latent's term shared as 1/N of the training set per point (closed form of Bayesian linear regression), a network with
dropout and BatchNorm validated in eval mode (torch.distributions on the held-out rows), the best epoch's parameters
and buffers returned by keep="best" with the update in the compiled step, and patience counted from the best epoch
(an equal loss is no improvement)."""

from __future__ import annotations

import math

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from torch import nn

import ppgen
from ppgen import inference

pytestmark = pytest.mark.usefixtures("one_thread")

N, D, ALPHA, SIGMA = 12, 3, 0.5, 0.4


class Snapshots:
    """A callback that keeps a copy of the model's state (parameters and buffers) at each epoch's end."""

    def __init__(self):
        self.states = []

    def __call__(self, end):
        self.states.append({name: t.clone() for name, t in end.model.state_dict().items()})


class Regression(nn.Module):
    """y_n = x_n . w + e_n, w ~ N(0, I / alpha) global, e_n ~ N(0, sigma^2); q(w) = N(mu, diag(s^2)), s tiny."""

    def __init__(self):
        super().__init__()
        self.mu = nn.Parameter(torch.tensor([0.3, -1.0, 0.2]))
        self.log_s = nn.Parameter(torch.full((D,), -10.0))

    def model(self, X, y):
        w = pyro.sample("w", dist.Normal(torch.zeros(D), ALPHA ** -0.5).to_event(1))
        with pyro.plate("data", len(X)):
            pyro.sample("y", dist.Normal(X @ w, SIGMA), obs=y)

    def guide(self, X, y):
        pyro.sample("w", dist.Normal(self.mu, self.log_s.exp()).to_event(1))

    def minus_elbo_per_point(self, X, y, n):
        """-(1/M) sum_m E_q log p(y_m | w) + KL(q(w) || p(w)) / n, in closed form, for M rows and a share of 1/n."""
        s = self.log_s.exp()
        likelihood = dist.Normal(X @ self.mu, SIGMA).log_prob(y).sum() - (s**2 * (X**2).sum(0)).sum() / (2 * SIGMA**2)
        kl = (-0.5 * math.log(ALPHA) - self.log_s + ALPHA * (s**2 + self.mu**2) / 2 - 0.5).sum()
        return float(-likelihood / len(X) + kl / n)


@pytest.mark.usefixtures("float64")
@pytest.mark.parametrize("batch_size", [12, 5])
def test_a_global_latents_term_is_shared_by_the_training_rows_in_the_validation_loss(batch_size):
    """Validated on M = 7 held-out rows, the ELBO's KL(q(w) || p(w)) counts 1/N of the N = 12 training rows per point,
    as in the training loss, not 1/M: the validation loss is the closed form at the (unchanged) parameters, to the
    Monte Carlo error of 200 draws of a q(w) of scale e^-10 (the KL in closed form)."""
    generator = torch.Generator().manual_seed(3)
    X, X_val = torch.randn(N, D, generator=generator), torch.randn(7, D, generator=generator)
    w = torch.tensor([1.0, -2.0, 0.5])
    y = X @ w + SIGMA * torch.randn(N, generator=generator)
    y_val = X_val @ w + SIGMA * torch.randn(7, generator=generator)
    module = Regression()
    fit = ppgen.fit(module, (X, y), inference=inference.ELBO(kl="analytic", num_particles=200), epochs=1,
                    batch_size=batch_size, optim=torch.optim.SGD, lr=1e-300, seed=0, progress=False,
                    validation=(X_val, y_val))
    assert fit.structure.plan.mapped
    with torch.no_grad():
        truth, wrong_share = (module.minus_elbo_per_point(X_val, y_val, n) for n in (N, 7))
    assert fit.validation_history[0] == pytest.approx(truth, abs=1e-4)
    assert abs(truth - wrong_share) > 0.5


class DropNorm(nn.Module):
    """y ~ N(f(x), sigma^2), f a network with BatchNorm and dropout: an exact likelihood, fitted by maximum
    likelihood."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(2, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 1))
        self.log_sigma = nn.Parameter(torch.tensor(0.0))

    def model(self, x, y):
        with pyro.plate("data", len(x)):
            pyro.sample("y", dist.Normal(self.net(x).squeeze(-1), self.log_sigma.exp()), obs=y)


def drop_norm_data():
    """Training rows y = 1 + x . a + noise; held-out rows of the opposite slope, y = 1 - x . a + noise, so that the
    validation loss rises as the fit learns the training rows' slope."""
    generator = torch.Generator().manual_seed(2)
    a = torch.tensor([1.5, -1.0])
    x, x_val = torch.randn(64, 2, generator=generator), torch.randn(30, 2, generator=generator)
    y = 1.0 + x @ a + 0.3 * torch.randn(64, generator=generator)
    y_val = 1.0 - x_val @ a + 0.3 * torch.randn(30, generator=generator)
    return (x, y), (x_val, y_val)


def held_out_loss(state, validation, training=False):
    """-(1/M) sum_m log N(y_m; f(x_m), sigma^2) by torch.distributions, the network loaded with ``state``, in eval mode
    (or train mode: dropout on, BatchNorm on the batch's statistics)."""
    model = DropNorm()
    model.load_state_dict(state)
    model.train(training)
    x, y = validation
    with torch.no_grad():
        return float(-torch.distributions.Normal(model.net(x).squeeze(-1), model.log_sigma.exp()).log_prob(y).mean())


@pytest.mark.parametrize("compile", [False, True])
def test_the_validation_loss_is_the_held_out_loss_in_eval_mode_and_keep_best_returns_that_epoch(uncompiled,
                                                                                                 compile):
    """Each epoch's validation loss is the held-out negative log-likelihood in eval mode (dropout off, BatchNorm's
    running statistics) at that epoch's parameters, to float32 rounding, not the train-mode one; keep="best" returns
    the parameters and buffers of the epoch of the lowest, bit for bit, with the update in the compiled step too."""
    data, validation = drop_norm_data()
    snapshots = Snapshots()
    fit = ppgen.fit(DropNorm(), data, inference=inference.MLE(), validation=validation, epochs=6, batch_size=16,
                    lr=0.03, seed=0, progress=False, keep="best", callbacks=[snapshots], compile=compile)
    history = fit.validation_history
    for state, value in zip(snapshots.states, history, strict=True):
        assert value == pytest.approx(held_out_loss(state, validation), rel=1e-6)
    assert abs(held_out_loss(snapshots.states[0], validation, training=True) - history[0]) > 0.1
    assert fit.best_epoch == 1 + int(np.argmin(history)) and history[-1] > history[fit.best_epoch - 1]
    best = snapshots.states[fit.best_epoch - 1]
    assert all(torch.equal(t, best[name]) for name, t in fit.model.state_dict().items())
    assert not torch.equal(best["net.1.running_mean"], snapshots.states[-1]["net.1.running_mean"])


class Line(nn.Module):
    """y ~ N(x . a + b, 1), fitted by maximum likelihood: no buffers, so that its validation loss moves with its
    parameters alone."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(()))

    def model(self, x, y):
        with pyro.plate("data", len(x)):
            pyro.sample("y", dist.Normal(x @ self.a + self.b, 1.0), obs=y)


def test_patience_counts_epochs_from_the_best_and_an_equal_loss_is_no_improvement():
    """Parameters that do not move (SGD at lr 1e-300) give the same validation loss every epoch: the first epoch is
    the best, and patience=2 stops the fit after epoch 3, before its 6 epochs."""
    data, validation = drop_norm_data()
    fit = ppgen.fit(Line(), data, inference=inference.MLE(), validation=validation, epochs=6, batch_size=16,
                    optim=torch.optim.SGD, lr=1e-300, seed=0, progress=False, patience=2, keep="best")
    assert len(fit.history) == len(fit.validation_history) == 3
    assert len(set(fit.validation_history)) == 1 and math.isfinite(fit.validation_history[0])
    assert fit.best_epoch == 1 and fit.stopped.startswith("early stopping") and "2 epochs after epoch 1" in fit.stopped
