"""Langevin dynamics on known densities: the draws against exact samples by an MMD permutation test at level 0.01
(tests/two_sample.py), Metropolis adjustment removing the unadjusted algorithm's bias, annealed Langevin reaching
both modes of a mixture in their proportions from the closed-form score of the noised mixture, memory flat in the
number of steps, the seed fixing every draw, and bad arguments refused before any work."""

import gc
import math
import weakref

import pytest
import torch
from torch import nn
from torch.distributions import Categorical, Independent, MixtureSameFamily, MultivariateNormal, Normal

import ppgen
from ppgen.objective.langevin import annealed_langevin, langevin
from two_sample import mmd_p_value

pytestmark = pytest.mark.usefixtures("one_thread")

#: the level of the two-sample tests: a sampler's draws pass where the p-value is above it.
LEVEL = 0.01
#: a correlated 2-D Gaussian, N(MEAN, COVARIANCE).
MEAN = torch.tensor([1.0, -2.0])
COVARIANCE = torch.tensor([[1.0, 0.8], [0.8, 1.0]])


def gaussian() -> MultivariateNormal:
    return MultivariateNormal(MEAN, COVARIANCE)


def mixture(weights: list[float], means: list[list[float]], scale: float) -> MixtureSameFamily:
    """sum_k w_k N(mu_k, scale^2 I) in two dimensions."""
    return MixtureSameFamily(Categorical(torch.tensor(weights)), Independent(Normal(torch.tensor(means), scale), 1))


def shifted(log_prob, constant: float = math.log(7.0)):
    """log f = log p + a constant: an unnormalised density, Z = exp(constant)."""
    return lambda x: log_prob(x) + constant


def test_unadjusted_langevin_draws_a_gaussian_at_a_small_step():
    chains = langevin(shifted(gaussian().log_prob), 3 * torch.randn(500, 2), step_size=0.05, steps=400)
    assert chains.x.shape == (500, 2) and bool((chains.acceptance == 1).all())
    assert mmd_p_value(chains.x, gaussian().sample((500,))) > LEVEL


def test_metropolis_adjustment_removes_the_bias_of_a_large_step():
    """ULA at eps = 0.5 draws from a wider density than f: along an eigenvector of variance v its stationary variance
    is v / (1 - eps / (4 v)), 1.6 v for v = 0.2. MALA at the same step draws from f itself."""
    exact = gaussian().sample((500,))
    start = 3 * torch.randn(500, 2)
    unadjusted = langevin(shifted(gaussian().log_prob), start, step_size=0.5, steps=400)
    adjusted = langevin(shifted(gaussian().log_prob), start, step_size=0.5, steps=400, adjusted=True)
    assert mmd_p_value(unadjusted.x, exact) < LEVEL
    assert mmd_p_value(adjusted.x, exact) > LEVEL
    assert 0.5 < float(adjusted.acceptance.mean()) < 0.9


def test_adjusted_langevin_draws_a_two_mode_mixture_in_its_proportions():
    target = mixture([0.3, 0.7], [[-1.5, 0.0], [1.5, 0.0]], 0.6)
    chains = langevin(shifted(target.log_prob), 2 * torch.randn(500, 2), step_size=0.3, steps=1000, adjusted=True)
    assert mmd_p_value(chains.x, target.sample((500,))) > LEVEL
    assert abs(float((chains.x[:, 0] > 0).double().mean()) - 0.7) < 0.06  # 3 standard deviations of 500 draws


def test_the_test_has_power_the_starting_points_fail_it():
    assert mmd_p_value(2 * torch.randn(500, 2), gaussian().sample((500,))) < LEVEL


# Song and Ermon's toy: 0.2 N(-mu, I) + 0.8 N(mu, I), convolved with N(0, sigma^2 I) a mixture of the same means and
# covariance (1 + sigma^2) I, whose score is sum_k r_k(x) (mu_k - x) / (1 + sigma^2), r_k the responsibilities.
WEIGHTS, MODES = torch.tensor([0.2, 0.8]), torch.tensor([[-3.0, -3.0], [3.0, 3.0]])
SIGMAS = torch.logspace(math.log10(20), math.log10(0.1), 10).tolist()


def noised_score(x: torch.Tensor, sigma: float) -> torch.Tensor:
    variance = 1 + sigma**2
    responsibilities = (WEIGHTS.log() - (x[:, None] - MODES).square().sum(-1) / (2 * variance)).softmax(-1)
    return (responsibilities[..., None] * (MODES - x[:, None])).sum(1) / variance


def noised_log_density(x: torch.Tensor, sigma: float) -> torch.Tensor:
    return mixture(WEIGHTS.tolist(), MODES.tolist(), math.sqrt(1 + sigma**2)).log_prob(x)


def test_annealed_langevin_reaches_both_modes_in_their_proportions():
    """From uniform noise on [-8, 8]^2, annealed Langevin puts 0.8 of the chains at the heavier mode (the mode's
    other side holds 1e-5 of the lighter one), within 0.04 (three standard deviations of 1000 draws), and draws each
    mode's N(mu_k, (1 + sigma_L^2) I); unadjusted Langevin at the last level, from the same start, sends each chain
    to the nearer mode: about half to each."""
    start = 16 * torch.rand(1000, 2) - 8
    x = annealed_langevin(start, SIGMAS, step_size=0.01, steps=100, score=noised_score)
    heavy = x.sum(-1) > 0
    assert abs(float(heavy.double().mean()) - 0.8) < 0.04
    for points, mode in ((x[heavy], MODES[1]), (x[~heavy], MODES[0])):  # within 4 standard errors
        torch.testing.assert_close(points.mean(0), mode, atol=4 / math.sqrt(len(points)), rtol=0)
        torch.testing.assert_close(points.T.cov(), (1 + SIGMAS[-1] ** 2) * torch.eye(2),
                                   atol=4 * math.sqrt(2 / len(points)), rtol=0)
    plain = langevin(lambda y: noised_log_density(y, SIGMAS[-1]), start, step_size=0.01, steps=1000)
    assert abs(float((plain.x.sum(-1) > 0).double().mean()) - 0.5) < 0.1


def test_annealed_langevin_takes_the_score_or_the_log_density_it_is_the_gradient_of():
    start = 16 * torch.rand(200, 2) - 8
    ppgen.seed(3)
    by_score = annealed_langevin(start, SIGMAS[:3], step_size=0.01, steps=10, score=noised_score)
    ppgen.seed(3)
    by_log_density = annealed_langevin(start, SIGMAS[:3], step_size=0.01, steps=10, log_f=noised_log_density)
    torch.testing.assert_close(by_log_density, by_score, rtol=1e-4, atol=1e-4)


def test_a_seed_fixes_every_draw():
    start = torch.randn(50, 2)
    runs = []
    for _ in range(2):
        ppgen.seed(5)
        runs.append(langevin(gaussian().log_prob, start, step_size=0.3, steps=20, adjusted=True))
    assert torch.equal(runs[0].x, runs[1].x) and torch.equal(runs[0].acceptance, runs[1].acceptance)


class Energy(nn.Module):
    """A small network's energy, log f(x) = -E(x); it counts its calls and keeps a weak reference to each input."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 1))
        self.inputs: list[weakref.ref] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append(weakref.ref(x))
        return -self.net(x).squeeze(-1) - 0.5 * x.square().sum(-1)


RUNS = {
    "ULA": lambda energy, start: langevin(energy, start, step_size=0.1, steps=50).x,
    "MALA": lambda energy, start: langevin(energy, start, step_size=0.1, steps=50, adjusted=True).x,
    "annealed": lambda energy, start: annealed_langevin(start, [1.0, 0.5], step_size=0.1, steps=25,
                                                        log_f=lambda x, sigma: energy(x)),
}


@pytest.mark.parametrize("run", RUNS.values(), ids=RUNS.keys())
def test_no_graph_outlives_its_step_and_the_parameters_keep_their_grad(run):
    """Were a step's graph kept (x not detached between steps), every earlier input would stay reachable from the
    last state: memory would grow with the steps. Here only the last two inputs may live (the current point and the
    last proposal, held by the function's frame until it returns)."""
    energy = Energy()
    start = torch.randn(64, 2)
    before = start.clone()
    x = run(energy, start)
    gc.collect()
    assert len(energy.inputs) == 51  # x0, then one evaluation per step
    assert sum(ref() is not None for ref in energy.inputs) <= 2
    assert x.grad_fn is None and not x.requires_grad
    assert all(p.grad is None for p in energy.parameters())
    assert torch.equal(start, before) and not start.requires_grad


def test_the_chains_run_under_no_grad():
    with torch.no_grad():
        chains = langevin(gaussian().log_prob, torch.zeros(10, 2), step_size=0.1, steps=5)
    assert chains.x.shape == (10, 2)


def test_chains_that_diverge_are_refused_not_returned():
    with pytest.raises(ValueError, match=r"10 of 10 chains diverged .* at step_size=100.0: lower step_size"):
        langevin(lambda x: -x.pow(4).sum(-1), torch.ones(10, 2), step_size=100.0, steps=50)


def never_called(x, *rest):
    raise AssertionError("log_f ran before the arguments were checked")


@pytest.mark.parametrize("call, error, words", [
    (lambda: langevin(never_called, torch.zeros(3, 2), step_size=0.0, steps=5), ValueError,
     "step_size must be a positive finite number, got 0.0"),
    (lambda: langevin(never_called, torch.zeros(3, 2), step_size=-0.1, steps=5), ValueError,
     "step_size must be a positive finite number, got -0.1"),
    (lambda: langevin(never_called, torch.zeros(3, 2), step_size=float("nan"), steps=5), ValueError,
     "step_size must be a positive finite number, got nan"),
    (lambda: langevin(never_called, torch.zeros(3, 2), step_size=0.1, steps=0), ValueError,
     "steps must be a positive int, got 0"),
    (lambda: langevin(never_called, torch.zeros(3, 2), step_size=0.1, steps=5, adjusted="yes"), TypeError,
     "adjusted must be True (MALA) or False (ULA), got str"),
    (lambda: langevin(never_called, torch.zeros(3, 2, dtype=torch.long), step_size=0.1, steps=5), TypeError,
     "x0 must be a floating-point Tensor[n, ...] of points, got a Tensor of dtype torch.int64"),
    (lambda: langevin(never_called, torch.zeros(3), step_size=0.1, steps=5), ValueError,
     "x0 must hold n >= 1 points of at least one coordinate, Tensor[n, ...], got shape [3]"),
    (lambda: langevin(never_called, torch.full((3, 2), math.nan), step_size=0.1, steps=5), ValueError,
     "x0 holds values that are not finite"),
    (lambda: langevin("energy", torch.zeros(3, 2), step_size=0.1, steps=5), TypeError,
     "log_f must be a callable x -> log f(x), Tensor[n], got str"),
    (lambda: annealed_langevin(torch.zeros(3, 2), [1.0, 0.5], step_size=0.1, steps=5), TypeError,
     "annealed_langevin takes exactly one of score= (s(x, sigma), shaped as x) and log_f="),
    (lambda: annealed_langevin(torch.zeros(3, 2), [1.0, 0.5], step_size=0.1, steps=5, score=never_called,
                               log_f=never_called), TypeError, "annealed_langevin takes exactly one of score="),
    (lambda: annealed_langevin(torch.zeros(3, 2), [0.5, 1.0], step_size=0.1, steps=5, score=never_called),
     ValueError, "sigmas must decrease strictly, from the largest noise level to the smallest, got [0.5, 1.0]"),
    (lambda: annealed_langevin(torch.zeros(3, 2), [1.0, -0.5], step_size=0.1, steps=5, score=never_called),
     ValueError, "each of sigmas must be a positive finite number, got -0.5"),
    (lambda: annealed_langevin(torch.zeros(3, 2), [], step_size=0.1, steps=5, score=never_called), ValueError,
     "sigmas must hold at least one noise level, got none"),
    (lambda: annealed_langevin(torch.zeros(3, 2), 1.0, step_size=0.1, steps=5, score=never_called), TypeError,
     "sigmas must be a sequence of noise levels, got float"),
    (lambda: annealed_langevin(torch.zeros(3, 2), [1.0], step_size=0.0, steps=5, score=never_called), ValueError,
     "step_size must be a positive finite number, got 0.0"),
])
def test_bad_arguments_are_refused_before_log_f_runs(call, error, words):
    with pytest.raises(error) as raised:
        call()
    assert words in str(raised.value)


class Counted:
    """log f that counts its calls."""

    def __init__(self, function):
        self.function, self.calls = function, 0

    def __call__(self, x, *rest):
        self.calls += 1
        return self.function(x, *rest)


@pytest.mark.parametrize("function, error, words", [
    (lambda x: -x.square().sum(-1, keepdim=True), ValueError,
     "log_f must return one value per point, Tensor[3] for x0 of shape [3, 2], got [3, 1]"),
    (lambda x: -x.square().sum(), ValueError,
     "log_f must return one value per point, Tensor[3] for x0 of shape [3, 2], got []"),
    (lambda x: [0.0] * len(x), ValueError,
     "log_f must return one value per point, Tensor[3] for x0 of shape [3, 2], got list"),
    (lambda x: x.sum(-1) * math.nan, ValueError, "log_f(x0) is not finite at row(s) [0, 1, 2]"),
    (lambda x: torch.where(x[:, 0] > 0, -math.inf, 0.0) + x.sum(-1), ValueError,
     "log_f(x0) is not finite at row(s) [2] (values [-inf]): start the chains where log f is finite"),
    (lambda x: torch.zeros(len(x)), ValueError,
     "log_f(x) does not depend on x through torch operations: Langevin dynamics follows its gradient in x"),
    (lambda x: x.abs().sqrt().sum(-1), ValueError,
     "the gradient of log_f at x0 is not finite: start the chains where log f is smooth"),
])
def test_a_log_f_of_the_wrong_shape_or_value_is_refused_after_one_call(function, error, words):
    counted = Counted(function)
    x0 = torch.tensor([[-1.0, 0.0], [-2.0, 1.0], [1.0, 0.0]])
    with pytest.raises(error) as raised:
        langevin(counted, x0, step_size=0.1, steps=5)
    assert words in str(raised.value) and counted.calls == 1


@pytest.mark.parametrize("score, words", [
    (lambda x, sigma: x.sum(-1), "score must return a Tensor shaped as x, [3, 2] for x0, got [3]"),
    (lambda x, sigma: x / 0.0, "score(x0, sigma=1.0) is not finite: start the chains where the score is finite"),
])
def test_a_score_of_the_wrong_shape_or_value_is_refused_after_one_call(score, words):
    counted = Counted(score)
    with pytest.raises(ValueError) as raised:
        annealed_langevin(torch.ones(3, 2), [1.0, 0.5], step_size=0.1, steps=5, score=counted)
    assert words in str(raised.value) and counted.calls == 1
