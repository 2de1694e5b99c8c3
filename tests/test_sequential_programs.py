"""Programs that do not broadcast over a plate of particles run their K particles one at a time, through every
objective: the same loss and the same gradient as the program written to broadcast, on the same draws.

One linear-Gaussian program is written twice: ``z @ W.T`` broadcasts over the particles, ``z.view(-1, d) @ W.T``
reshaped to the batch does not. The guide's draws are made equal in both by a Normal whose noise is read from one
fixed tensor (all K rows at once in a particle plate, row k in the k-th run of one particle), so that every
objective can be compared value for value and gradient for gradient, in float64.
"""

from contextlib import nullcontext

import pyro
import pyro.distributions as dist
import pytest
import torch
from torch import nn

import ppgen
from ppgen import inference
from ppgen.program.inputs import as_batch
from ppgen.program.structure import inspect

pytestmark = pytest.mark.usefixtures("float64", "one_thread")

K, N, D, Z = 5, 4, 3, 2


class Noise:
    """The guide's standard-normal noise, Tensor[K, N, Z]: every row at once, or the next row per run of one (the
    first points of each where a program is traced on fewer)."""

    def __init__(self) -> None:
        self.eps = torch.randn(K, N, Z, generator=torch.Generator().manual_seed(7))
        self.next = 0

    def draw(self, batch_shape: torch.Size) -> torch.Tensor:
        if len(batch_shape) == 3:  # [particles, points, Z]: a vectorised pass of particles
            return self.eps[:batch_shape[0], :batch_shape[1]]
        row, self.next = self.eps[self.next % K, :batch_shape[0]], self.next + 1
        return row


NOISE = Noise()


class Scripted(dist.Normal):
    """A Normal whose reparameterised draws are loc + scale * eps, with eps from :data:`NOISE`."""

    def rsample(self, sample_shape=()):
        return self.loc + self.scale * NOISE.draw(self.batch_shape)


class LinearGaussian(nn.Module):
    """z ~ N(0, I), x | z ~ N(W z + b, 0.5^2 I); q(z|x) = N(A x + c, diag(softplus(s))^2)."""

    def __init__(self, broadcasts: bool) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.broadcasts = broadcasts
        self.W = nn.Parameter(torch.randn(D, Z, generator=generator))
        self.b = nn.Parameter(torch.randn(D, generator=generator))
        self.A = nn.Parameter(torch.randn(D, Z, generator=generator) / 2)
        self.c = nn.Parameter(torch.randn(Z, generator=generator) / 2)
        self.s = nn.Parameter(torch.randn(Z, generator=generator) / 2)

    def model(self, x):
        with pyro.plate("data", len(x)):
            z = pyro.sample("z", dist.Normal(torch.zeros(Z), 1.0).to_event(1))
            loc = z @ self.W.T + self.b if self.broadcasts else (z.view(-1, Z) @ self.W.T + self.b).view(len(x), D)
            pyro.sample("x", dist.Normal(loc, 0.5).to_event(1), obs=x)

    def guide(self, x):
        with pyro.plate("data", len(x)):
            pyro.sample("z", Scripted(x @ self.A + self.c, nn.functional.softplus(self.s)).to_event(1))


@pytest.fixture
def programs():
    x = torch.randn(N, D, generator=torch.Generator().manual_seed(1))
    broadcasting, sequential = LinearGaussian(broadcasts=True), LinearGaussian(broadcasts=False)
    with pytest.warns(UserWarning, match="does not broadcast over a plate of particles"):
        one_at_a_time = inspect(sequential, x)
    return x, (broadcasting, inspect(broadcasting, x)), (sequential, one_at_a_time)


def loss_and_gradients(program, structure, x, objective):
    NOISE.next = 0
    program.zero_grad()
    loss = objective.loss(program, structure, as_batch(x))
    loss.backward()
    return loss.detach(), {name: p.grad.clone() for name, p in program.named_parameters()}


@pytest.mark.parametrize("objective", [inference.RWS(k=K), inference.VIMCO(k=K), inference.IWAE(k=K),
                                       inference.IWAE(k=K, estimator="dreg"), inference.IWAE(k=K, estimator="stl"),
                                       inference.ELBO(num_particles=K), inference.ELBO(num_particles=K, kl="analytic")],
                         ids=repr)
def test_one_particle_at_a_time_gives_the_broadcast_loss_and_gradients_on_the_same_draws(programs, objective):
    x, (broadcasting, vectorised), (sequential, one_at_a_time) = programs
    assert vectorised.plan.vectorized and not one_at_a_time.plan.vectorized
    loss, gradients = loss_and_gradients(broadcasting, vectorised, x, objective)
    again, by_particle = loss_and_gradients(sequential, one_at_a_time, x, objective)
    assert NOISE.next == K  # one run per particle, each its own row of the noise
    torch.testing.assert_close(again, loss, rtol=1e-12, atol=1e-12)
    for name, gradient in gradients.items():
        assert gradient.abs().sum() > 0, name  # every parameter is reached, so the comparison says something
        torch.testing.assert_close(by_particle[name], gradient, rtol=1e-10, atol=1e-12, msg=name)


@pytest.mark.parametrize("objective", [inference.RWS(k=K), inference.VIMCO(k=K), inference.IWAE(k=K, estimator="dreg")],
                         ids=repr)
def test_a_program_that_does_not_broadcast_is_fitted_as_the_one_that_does(objective):
    """The whole fit, step after step: the same losses and the same parameters at the end (the K draws of a step
    are the same rows of noise in both, in whatever order, and every objective is symmetric in its particles)."""
    x = torch.randn(N, D, generator=torch.Generator().manual_seed(1))
    fits = []
    for broadcasts in (True, False):
        program = LinearGaussian(broadcasts=broadcasts)
        with pytest.warns(UserWarning, match="does not broadcast") if not broadcasts else nullcontext():
            fits.append(ppgen.fit(program, x, inference=objective, epochs=3, batch_size=N, lr=0.05, seed=0,
                                  progress=False))
    broadcast, one_at_a_time = fits
    assert broadcast.structure.plan.vectorized and not one_at_a_time.structure.plan.vectorized
    torch.testing.assert_close(one_at_a_time.history, broadcast.history, rtol=1e-10, atol=1e-12)
    for name, value in broadcast.model.named_parameters():
        torch.testing.assert_close(dict(one_at_a_time.model.named_parameters())[name], value, msg=name)
