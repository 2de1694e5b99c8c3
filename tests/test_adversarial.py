"""Two-player objectives against the truth: the f-GAN bound at the optimal critic equals the closed-form
f-divergence, a critic trained alone recovers KL, JS, Pearson chi^2 and W1, and each backend fits a location-scale
generator to a Gaussian; the two-player loop (critic steps, history, guard, resume) and its refusals."""

from __future__ import annotations

import copy
import json
import math
import os
import signal
from dataclasses import dataclass

import pyro
import pyro.distributions as dist
import pytest
import torch
from torch import nn

import ppgen
from ppgen import inference, models
from ppgen.inference.adversarial import DIVERGENCES
from ppgen.objective.adversary import CriticLoss
from ppgen.run.signals import Interrupted
from ppgen.training import registry
from ppgen.training.guard import Diverged
from run_files import record_again

pytestmark = pytest.mark.usefixtures("one_thread")

# p = N(0, S1^2) (the data), q = N(M2, S2^2) (the model), with 2 S2^2 > S1^2 so that chi^2(p || q) is finite
S1, M2, S2 = 1.0, 1.0, 1.2


def kl(m1: float, s1: float, m2: float, s2: float) -> float:
    """KL(N(m1, s1^2) || N(m2, s2^2)) in closed form."""
    return math.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5


def js() -> float:
    """JS(p, q) = (KL(p || m) + KL(q || m)) / 2, m = (p + q) / 2, by the trapezoidal rule on a fine grid (no closed
    form): float64, 400,001 points over [-20, 20]."""
    x = torch.linspace(-20, 20, 400_001, dtype=torch.float64)
    p, q = torch.distributions.Normal(0.0, S1).log_prob(x).exp(), torch.distributions.Normal(M2, S2).log_prob(x).exp()
    m = (p + q) / 2
    return torch.trapezoid(torch.nan_to_num(p * (p / m).log() + q * (q / m).log()) / 2, x).item()


TRUTH = {
    "kl": kl(0.0, S1, M2, S2),
    "reverse_kl": kl(M2, S2, 0.0, S1),
    # integral of p^2 / q - 1 for Gaussians
    "pearson": S2**2 / (S1 * math.sqrt(2 * S2**2 - S1**2)) * math.exp(M2**2 / (2 * S2**2 - S1**2)) - 1,
    # 2 - 2 BC, BC the Bhattacharyya coefficient of two Gaussians
    "hellinger": 2 - 2 * math.sqrt(2 * S1 * S2 / (S1**2 + S2**2)) * math.exp(-(M2**2) / (4 * (S1**2 + S2**2))),
    "js": js(),
    "gan": 2 * js() - math.log(4),
}

#: the optimal critic's raw score V* as a function of log r, r = p / q: g_f(V*) = T* = f'(r) (Nowozin et al., Table 2)
OPTIMAL = {
    "kl": lambda log_r: 1 + log_r,  # f'(u) = 1 + log u
    "reverse_kl": lambda log_r: log_r,  # f'(u) = -1/u = -exp(-v)
    "pearson": lambda log_r: 2 * (log_r.exp() - 1),  # f'(u) = 2 (u - 1)
    "hellinger": lambda log_r: log_r / 2,  # f'(u) = 1 - u^(-1/2) = 1 - exp(-v)
    "js": lambda log_r: log_r,  # f'(u) = log(2u / (1 + u)) / 2
    "gan": lambda log_r: log_r,  # f'(u) = log(u / (1 + u)) = log sigmoid(v)
}


def test_the_divergences_are_the_papers_and_no_others():
    assert set(DIVERGENCES) == set(TRUTH) == set(OPTIMAL)


@pytest.mark.parametrize("divergence", sorted(TRUTH))
def test_the_bound_at_the_optimal_critic_is_the_divergence(divergence):
    """B(V*) = E_p[g_f(V*)] - E_q[f*(g_f(V*))] = D_f(p || q) exactly: Monte Carlo in float64 over 400,000 draws of
    each, within 5 standard errors (each under 0.01); a critic off the optimum (V*/2) bounds it from below."""
    n = 400_000
    p, q = torch.distributions.Normal(0.0, S1), torch.distributions.Normal(M2, S2)
    xp, xq = p.sample((n,)).double(), q.sample((n,)).double()
    optimal = OPTIMAL[divergence]
    activation, conjugate = DIVERGENCES[divergence]
    real = activation(optimal(p.log_prob(xp) - q.log_prob(xp)))
    fake = conjugate(optimal(p.log_prob(xq) - q.log_prob(xq)))
    error = math.sqrt(real.var().item() / n + fake.var().item() / n)
    backend = inference.Adversarial(divergence=divergence)
    vp, vq = optimal(p.log_prob(xp) - q.log_prob(xp)), optimal(p.log_prob(xq) - q.log_prob(xq))
    bound = backend.bound(vp, vq).item()
    assert error < 0.01 and abs(bound - TRUTH[divergence]) < 5 * error, (bound, TRUTH[divergence], error)
    assert backend.bound(vp / 2, vq / 2).item() < TRUTH[divergence]


class Fixed(nn.Module):
    """x = loc + scale z, z ~ N(0, 1): a location-scale generator, x a point mass at its output."""

    def __init__(self, loc: float = 0.0, scale: float = 1.0, dim: int = 1) -> None:
        super().__init__()
        self.loc = nn.Parameter(torch.full((dim,), float(loc)))
        self.scale = nn.Parameter(torch.tensor(float(scale)))
        self.dim = dim

    def model(self, x):
        with pyro.plate("data", len(x)):
            z = pyro.sample("z", dist.Normal(torch.zeros(self.dim), 1.0).to_event(1))
            pyro.sample("x", dist.Delta(self.loc + self.scale * z, event_dim=1), obs=x)


#: the critic alone: critic_steps past the run's steps, so that the model is never updated
ALONE = 10**6


@pytest.mark.parametrize("divergence, tolerance", [("kl", 0.06), ("js", 0.06), ("pearson", 0.06)])
def test_a_critic_trained_alone_recovers_the_divergence(divergence, tolerance):
    """The model held at q = N(1, 1.2^2), 4,096 data points of p = N(0, 1): the history's estimate of D_f, averaged
    over the last 5 of 30 epochs, within ``tolerance`` (relative) of the closed form."""
    x = torch.randn(4096, 1) * S1
    model = Fixed(M2, S2)
    backend = inference.Adversarial(divergence=divergence, critic_steps=ALONE, critic=models.Critic(x_dim=1,
                                                                                                     hidden=(64, 64)))
    fit = ppgen.fit(model, x, inference=backend, epochs=30, batch_size=512, lr=3e-3, progress=False)
    assert fit.model.loc.item() == M2 and fit.model.scale.item() == pytest.approx(S2)  # never updated
    estimate = sum(fit.history[-5:]) / 5
    assert abs(estimate - TRUTH[divergence]) < tolerance * TRUTH[divergence], (estimate, TRUTH[divergence])


@pytest.mark.parametrize("dim, one_sided", [(2, False), (1, True)])
def test_a_critic_trained_alone_recovers_the_wasserstein_distance(dim, one_sided):
    """W1(N(0, I), N(m, I)) = ||m|| (a translation: E||X - Y|| >= ||E(X - Y)||, attained by Y = X + m), here 1: the
    history's estimate over the last 5 of 30 epochs within 0.08. In one dimension with the one-sided penalty (the
    two-sided one's trap, see inference.Wasserstein)."""
    x = torch.randn(4096, dim)
    shift = torch.zeros(dim)
    shift[0] = 1.0
    model = Fixed(dim=dim)
    with torch.no_grad():
        model.loc.copy_(shift)
    backend = inference.Wasserstein(critic_steps=ALONE, one_sided=one_sided,
                                    critic=models.Critic(x_dim=dim, hidden=(64, 64)))
    fit = ppgen.fit(model, x, inference=backend, epochs=30, batch_size=512, lr=3e-3, progress=False)
    assert torch.equal(fit.model.loc.detach(), shift)
    assert sum(fit.history[-5:]) / 5 == pytest.approx(1.0, abs=0.08)


FITS = {  # backend, epochs, batch size, lr: each fits x = mu + sigma z to N(2, 0.5^2) within 0.1 in mu and |sigma|
    "js": (lambda critic: inference.Adversarial(divergence="js", critic=critic), 60, 128, 0.01),
    "wasserstein": (lambda critic: inference.Wasserstein(one_sided=True, critic=critic), 80, 64, 0.01),
}
SLOW_FITS = {
    name: (lambda critic, name=name: inference.Adversarial(divergence=name, critic=critic), 100, 128, 0.01)
    for name in ("gan", "kl", "reverse_kl", "hellinger")
}
SLOW_FITS["pearson"] = (lambda critic: inference.Adversarial(divergence="pearson", critic=critic), 150, 128, 0.005)


def fits_the_gaussian(name, build, epochs, batch_size, lr):
    torch.manual_seed(0)
    x = 2.0 + 0.5 * torch.randn(1024, 1)
    fit = ppgen.fit(Fixed(), x, inference=build(models.Critic(x_dim=1, hidden=(32, 32))), epochs=epochs,
                    batch_size=batch_size, lr=lr, progress=False)
    mu, sigma = fit.model.loc.item(), abs(fit.model.scale.item())
    assert abs(mu - 2.0) < 0.1 and abs(sigma - 0.5) < 0.1, (name, mu, sigma)


@pytest.mark.parametrize("name", sorted(FITS))
def test_each_backend_fits_a_location_scale_generator(name):
    fits_the_gaussian(name, *FITS[name])


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SLOW_FITS))
def test_every_divergence_fits_a_location_scale_generator(name):
    fits_the_gaussian(name, *SLOW_FITS[name])


# ---------------------------------------------------------------------------------------------
# The two-player loop

LOOP = dict(epochs=3, batch_size=16, progress=False)  # 64 points: 4 steps an epoch, 12 in all


@dataclass(frozen=True, kw_only=True)
class Counted(inference.Adversarial):
    """The f-GAN objective, recording each call (the critic's, with its estimate, and the model's), with NaN put in
    the critic's loss at chosen calls of it, or in the model's, and a signal sent at a chosen critic call."""

    nan_critic_at: tuple[int, ...] = ()
    nan_model_at: tuple[int, ...] = ()
    signal_at: int = 0

    def critic_loss(self, module, structure, batch):
        CALLS.append(("critic", {k: v.detach().clone() for k, v in self.critic.state_dict().items()}))
        terms = super().critic_loss(module, structure, batch)
        count = sum(kind == "critic" for kind, _ in CALLS)
        ESTIMATES.append(terms.estimate.item())
        if count == self.signal_at:
            os.kill(os.getpid(), signal.SIGTERM)
        if count in self.nan_critic_at:
            return CriticLoss(terms.loss * math.nan, terms.estimate * math.nan)
        return terms

    def loss(self, module, structure, batch):
        CALLS.append(("model", sum(kind == "critic" for kind, _ in CALLS)))
        loss = super().loss(module, structure, batch)
        return loss * math.nan if sum(kind == "model" for kind, _ in CALLS) in self.nan_model_at else loss


CALLS: list = []
ESTIMATES: list[float] = []


@pytest.fixture(autouse=True)
def fresh_calls():
    CALLS.clear()
    ESTIMATES.clear()


@pytest.fixture
def data():
    return 2.0 + 0.5 * torch.randn(64, 1)


def small_critic():
    return models.Critic(x_dim=1, hidden=(8,))


@pytest.mark.parametrize("critic_steps", [1, 3, 5])
def test_the_model_is_updated_after_every_critic_steps_critic_updates(data, critic_steps):
    fit = ppgen.fit(Fixed(), data, inference=Counted(critic_steps=critic_steps, critic=small_critic()), **LOOP)
    critics = [kind for kind, _ in CALLS if kind == "critic"]
    turns = [after for kind, after in CALLS if kind == "model"]
    assert len(critics) == 12 and turns == list(range(critic_steps, 13, critic_steps))
    assert fit.skipped == 0


def test_the_history_is_the_critics_estimate_of_d_per_epoch(data):
    fit = ppgen.fit(Fixed(), data, inference=Counted(critic=small_critic()), **LOOP)
    assert fit.history == pytest.approx([sum(ESTIMATES[i:i + 4]) / 4 for i in (0, 4, 8)], rel=1e-12)


def test_the_critic_given_is_trained_in_place_and_a_default_one_is_built_from_the_datas_shape(data):
    critic = small_critic()
    before = copy.deepcopy(critic.state_dict())
    fit = ppgen.fit(Fixed(), data, inference=inference.Adversarial(critic=critic), **LOOP)
    assert fit.inference.critic is critic and not torch.equal(critic.net[0].weight, before["net.0.weight"])
    built = ppgen.fit(Fixed(), data, inference=inference.Wasserstein(), **LOOP)
    assert isinstance(built.inference.critic, models.Critic) and built.inference.critic.x_dim == 1
    assert isinstance(registry.default_critic((1, 8, 8)), models.ConvCritic)
    assert isinstance(registry.default_critic((1, 28, 28)), models.ConvCritic)
    assert isinstance(registry.default_critic((3,)), models.Critic)
    assert isinstance(registry.default_critic((2, 2, 2)), models.Critic)  # too small to halve twice: flattened


def test_a_non_finite_critic_loss_raises_with_both_players_at_their_last_good_step(data):
    """A NaN critic loss at step 7 (the model updated at steps 3 and 6): Diverged at 7; the critic holds the
    parameters at which its last good loss was computed (step 6's), as one player's guard does."""
    critic = small_critic()
    with pytest.raises(Diverged, match=r"diverged at step 7 \(epoch 2\): the critic's update: its loss is nan.*the "
                                       r"model and the critic hold") as error:
        ppgen.fit(Fixed(), data, inference=Counted(critic_steps=3, nan_critic_at=(7,), critic=critic), **LOOP)
    assert error.value.step == 7 and len(error.value.history) == 1
    step_six = [state for kind, state in CALLS if kind == "critic"][5]
    assert all(torch.equal(critic.state_dict()[k], step_six[k]) for k in step_six)


@pytest.mark.parametrize("on_nan, bad, words", [
    ("raise", (3,), "diverged at step 3 (epoch 1): the critic's update: its loss is nan"),
    ("skip", (1, 2, 3, 4), "diverged at step 4 (epoch 1): every batch was skipped"),
])
def test_a_diverged_two_player_fit_leaves_the_critic_in_eval_mode_as_it_says(data, on_nan, bad, words):
    critic = nn.Sequential(nn.Linear(1, 8), nn.Dropout(0.5), nn.Linear(8, 1))
    model = Fixed()
    with pytest.raises(Diverged) as error:
        ppgen.fit(model, data, inference=Counted(nan_critic_at=bad, critic=critic), on_nan=on_nan, **LOOP)
    assert words in str(error.value) and "the model and the critic hold" in str(error.value)
    assert "in eval mode" in str(error.value) and not model.training and not critic.training


def test_on_nan_skip_skips_a_bad_critic_step_whole_and_a_bad_model_update_alone(data):
    # the critic's NaN at its steps 2 and 6 (the model's turn at 6 lost with it), the model's at its 2nd update
    fit = ppgen.fit(Fixed(), data, inference=Counted(critic_steps=2, nan_critic_at=(2, 6), nan_model_at=(2,),
                                                   critic=small_critic()), on_nan="skip", **LOOP)
    assert fit.skipped == 3
    assert [after for kind, after in CALLS if kind == "model"] == [4, 8, 10, 12]
    good = [e for i, e in enumerate(ESTIMATES, 1) if i not in (2, 6)]
    assert sum(fit.history) == pytest.approx(sum(good[:3]) / 3 + sum(good[3:6]) / 3 + sum(good[6:]) / 4, rel=1e-12)


def test_a_stopped_two_player_run_resumes_bitwise(data, tmp_path):
    """Stopped by SIGTERM at step 6 (mid-epoch, after a checkpoint at 5) and resumed: the model, the critic (built by
    fit from the seed), and the history are bitwise those of a run never stopped."""
    whole = ppgen.fit(Fixed(), data, inference=Counted(critic_steps=2), **LOOP)
    CALLS.clear()
    with pytest.raises(Interrupted, match="SIGTERM at step 6"):
        ppgen.fit(Fixed(), data, inference=Counted(critic_steps=2, signal_at=6), out=tmp_path / "run",
                  checkpoint_every=5, **LOOP)
    saved = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert set(saved["critic"]) == {"parameters", "optimizer"} and saved["counters"]["step"] == 6
    resumed = ppgen.fit(Fixed(), data, inference=Counted(critic_steps=2, signal_at=6), out=tmp_path / "run",
                        resume=True, checkpoint_every=5, **LOOP)
    assert same(resumed.model, whole.model) and same(resumed.inference.critic, whole.inference.critic)
    assert resumed.history == whole.history
    loaded = ppgen.load(tmp_path / "run" / "fit.pt", model=Fixed())
    assert loaded.inference.critic is None and loaded.inference.config == resumed.inference.config
    assert loaded.sample(5).shape == (5, 1)


def same(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


DAMAGED = {  # the change to a two-player checkpoint, the field named, what is expected
    "critic weight of the wrong shape": (lambda s: s["critic"]["parameters"].update({"net.0.weight": torch.zeros(3)}),
                                         "critic.parameters.net.0.weight", "a tensor of shape [8, 1]"),
    "non-finite critic weight": (lambda s: s["critic"]["parameters"]["net.0.bias"].fill_(math.inf),
                                 "critic.parameters.net.0.bias", "finite values"),
    "critic weight missing": (lambda s: s["critic"]["parameters"].pop("net.2.bias"), "critic.parameters",
                              "the parameters"),
    "critic's learning rate": (lambda s: s["critic"]["optimizer"]["param_groups"][0].update(lr=1.0),
                               "critic.optimizer.param_groups[0].lr", "0.001, the run's own setting"),
    "critic's moment of the wrong dtype": (lambda s: s["critic"]["optimizer"]["state"][0].update(
        exp_avg=s["critic"]["optimizer"]["state"][0]["exp_avg"].double()), "critic.optimizer.state[0].exp_avg",
        "dtype torch.float32"),
    "critic's Adam step past the run's": (lambda s: s["critic"]["optimizer"]["state"][0].update(step=torch.tensor(99.)),
                                          "critic.optimizer.state[0].step", "from 0 to the run steps (6)"),
    "critic missing": (lambda s: s.pop("critic"), "critic", "as a two-player run has"),
    "critic not a mapping": (lambda s: s.update(critic=[1]), "critic", "(parameters, optimizer)"),
}


@pytest.mark.parametrize("case", sorted(DAMAGED))
def test_a_damaged_critic_in_a_checkpoint_is_refused_naming_the_field(data, tmp_path, case):
    change, field, expected = DAMAGED[case]
    run = tmp_path / "run"
    backend = Counted(critic_steps=2, signal_at=6, critic=small_critic())
    with pytest.raises(Interrupted):
        ppgen.fit(Fixed(), data, inference=backend, out=run, **LOOP)
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    change(state)
    torch.save(state, run / "checkpoint.pt")
    record_again(run)
    before = copy.deepcopy(backend.critic.state_dict())
    with pytest.raises(ValueError) as error:
        ppgen.fit(Fixed(), data, inference=backend, out=run, resume=True, **LOOP)
    message = str(error.value)
    assert message.startswith(f"{run / 'checkpoint.pt'}: field '{field}'") and expected in message, message
    assert all(torch.equal(backend.critic.state_dict()[k], v) for k, v in before.items())  # untouched


def test_a_one_player_checkpoint_has_no_critic_and_still_resumes(data, tmp_path):
    run = tmp_path / "run"
    model = models.PPCA(x_dim=1, z_dim=1)
    ppgen.fit(model, data, inference=inference.MLE(), out=run, **LOOP)
    assert "critic" not in torch.load(run / "checkpoint.pt", weights_only=True)
    with pytest.raises(Interrupted):
        ppgen.fit(models.PPCA(x_dim=1, z_dim=1), data, inference=Interrupting(), out=tmp_path / "stopped", **LOOP)
    ppgen.fit(models.PPCA(x_dim=1, z_dim=1), data, inference=Interrupting(), out=tmp_path / "stopped", resume=True,
              **LOOP)


@dataclass(frozen=True, kw_only=True)
class Interrupting(inference.MLE):
    """Maximum likelihood, with a SIGTERM at its 6th call."""

    def loss(self, module, structure, batch):
        CALLS.append("mle")
        if len(CALLS) == 6:
            os.kill(os.getpid(), signal.SIGTERM)
        return super().loss(module, structure, batch)


# ---------------------------------------------------------------------------------------------
# Refusals


@pytest.mark.parametrize("build, error, words", [
    (lambda: inference.Adversarial(divergence="wasserstein"), ValueError,
     "divergence must be one of 'kl', 'reverse_kl', 'pearson', 'hellinger', 'js', 'gan', got 'wasserstein'"),
    (lambda: inference.Adversarial(critic="mlp"), TypeError, "critic must be None or a torch.nn.Module"),
    (lambda: inference.Adversarial(critic=nn.Identity()), ValueError, "critic: the module has no parameters"),
    (lambda: inference.Adversarial(critic_steps=0), ValueError, "critic_steps"),
    (lambda: inference.Adversarial(critic_lr=-1e-3), ValueError, "critic_lr must be a positive finite number"),
    (lambda: inference.Adversarial(nonsaturating="yes"), TypeError, "nonsaturating must be None, True or False"),
    (lambda: inference.Wasserstein(gradient_penalty=-1.0), ValueError, "gradient_penalty must be a finite number >= 0"),
    (lambda: inference.Wasserstein(one_sided=1), TypeError, "one_sided must be True or False"),
    (lambda: models.Critic(x_dim=0), ValueError, "x_dim"),
    (lambda: models.ConvCritic(x_dim=64, image_shape=(1, 8, 9)), ValueError, "image_shape must be (C, H, W) with"),
    (lambda: models.ConvCritic(x_dim=16, channels=(4, 4, 4, 4)), ValueError, "channels: 4 halvings leave nothing"),
])
def test_bad_arguments_are_refused_naming_them(build, error, words):
    with pytest.raises(error) as raised:
        build()
    assert words in str(raised.value)


def test_the_defaults_are_the_papers():
    assert inference.Adversarial().critic_steps == 1 and inference.Wasserstein().critic_steps == 5
    assert inference.Adversarial().nonsaturating and inference.Adversarial(divergence="gan").nonsaturating
    assert not inference.Adversarial(divergence="kl").nonsaturating
    assert inference.Wasserstein().gradient_penalty == 10.0 and inference.Wasserstein(gradient_penalty=0).config == {
        "critic_steps": 5, "critic_lr": None, "gradient_penalty": 0.0, "one_sided": False}
    config = inference.Adversarial(critic=small_critic()).config  # JSON-able: the critic left out
    assert json.loads(json.dumps(config)) == config == {"critic_steps": 1, "critic_lr": None, "divergence": "js",
                                                       "nonsaturating": True}


def coin_model(x):
    with pyro.plate("data", len(x)):
        pyro.sample("x", dist.Bernoulli(pyro.param("p", torch.tensor(0.5))).expand([1]).to_event(1), obs=x)


def conditional_model(x, y):
    loc = pyro.param("loc", torch.zeros(1))
    with pyro.plate("data", len(x)):
        pyro.sample("x", dist.Normal(loc + y, 1.0).to_event(1), obs=x)


@pytest.mark.parametrize("backend", [inference.Adversarial, inference.Wasserstein])
def test_programs_the_critic_cannot_train_are_refused_before_any_work(data, backend):
    with pytest.raises(ValueError, match=r"differentiates through the model's draws of x, but site\(s\) 'x' have no "
                                         r"reparameterised sampler"):
        ppgen.fit((coin_model, None), torch.bernoulli(torch.full((8, 1), 0.5)), inference=backend(), **LOOP)
    with pytest.raises(ValueError, match="critic sees x alone, but the model takes 2 inputs"):
        ppgen.fit((conditional_model, None), (data, data), inference=backend(), **LOOP)
    model = Fixed()
    before = copy.deepcopy(model.state_dict())
    for argument, value in (("distributed", True), ("compile", "capture")):
        with pytest.raises(ValueError, match=rf"^{argument}: {backend.__name__}\(\) trains a critic beside the model"):
            ppgen.fit(model, data, inference=backend(), **{argument: value}, **LOOP)
    assert same_dicts(model.state_dict(), before)


def conditional_generator(x, y):
    loc = pyro.param("loc", torch.zeros(1))
    with pyro.plate("data", len(x)):
        z = pyro.sample("z", dist.Normal(torch.zeros(1), 1.0).to_event(1))
        pyro.sample("x", dist.Delta(loc + y + z, event_dim=1), obs=x)


@pytest.mark.parametrize("backend", [inference.Adversarial, inference.Wasserstein])
def test_a_conditional_generator_is_not_sent_to_a_backend_that_refuses_it_too(data, backend):
    """The refusal of a generator of x given y names no likelihood-based backend, which would refuse it in turn."""
    with pytest.raises(ValueError) as error:
        ppgen.fit((conditional_generator, None), (data, data), inference=backend(), **LOOP)
    assert str(error.value) == (f"{backend.__name__}()'s critic sees x alone, but the model takes 2 inputs (x and its "
                                f"conditions): this generator has no density either, so no backend fits it as it is: "
                                f"fit a generator of x alone, or a conditional model with a density (a Normal "
                                f"likelihood) by inference.ELBO()")
    with pytest.raises(ValueError, match="the model is implicit"):
        ppgen.fit((conditional_generator, None), (data, data), inference=inference.ELBO(), **LOOP)


class Subsampling(nn.Module):
    """x = loc + z observed at x[ind], the program subsampling its own data plate of 64 points by 16."""

    def __init__(self) -> None:
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(1))

    def model(self, x):
        with pyro.plate("data", 64, subsample_size=16) as ind:
            z = pyro.sample("z", dist.Normal(torch.zeros(1, dtype=x.dtype), 1.0).to_event(1))
            pyro.sample("x", dist.Delta(self.loc + z, event_dim=1), obs=x[ind])


@pytest.mark.parametrize("backend", [inference.Adversarial, inference.Wasserstein])
def test_a_program_that_indexes_the_whole_data_set_is_refused_before_any_work(data, tmp_path, backend):
    """It has no draws of a batch's points to show the critic (fit.sample refuses it too): refused up front, not at
    the first step with the model cast to the data's dtype and a message that names sample."""
    model = Subsampling()
    with pytest.raises(ValueError) as error:
        ppgen.fit(model, data.double(), inference=backend(), epochs=1, out=tmp_path / "run", progress=False)
    assert str(error.value).startswith(f"{backend.__name__}() compares the model's draws of a batch's points with "
                                       f"them, but the model takes the whole data set and observes x indexed in "
                                       f"pyro.plate('data', ...)"), str(error.value)
    assert model.loc.dtype == torch.float32 and not (tmp_path / "run").exists()


def same_dicts(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class SharedGAN(nn.Module):
    """A generator holding its critic as a submodule, as a user's GAN class may: x = loc + z."""

    def __init__(self) -> None:
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(1))
        self.critic = small_critic()

    def model(self, x):
        with pyro.plate("data", len(x)):
            z = pyro.sample("z", dist.Normal(torch.zeros(1, dtype=x.dtype), 1.0).to_event(1))
            pyro.sample("x", dist.Delta(self.loc + z, event_dim=1), obs=x)


@pytest.mark.parametrize("backend", [inference.Adversarial, inference.Wasserstein])
def test_a_critic_that_shares_parameters_with_the_model_is_refused_before_any_work(data, tmp_path, backend):
    """The model's optimiser would move the shared parameters to lower the bound that the critic's raises."""
    gan = SharedGAN()
    before = copy.deepcopy(gan.state_dict())
    with pytest.raises(ValueError) as error:
        ppgen.fit(gan, data.double(), inference=backend(critic=gan.critic), out=tmp_path / "run", **LOOP)
    assert str(error.value).startswith("critic: 4 of its parameters are the model's too (the critic is a part of the "
                                       "model)"), str(error.value)
    assert same_dicts(gan.state_dict(), before) and not (tmp_path / "run").exists()


class Pair(nn.Module):
    """Two scores a point."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(1, 2)

    def forward(self, x):
        return self.linear(x)


@pytest.mark.parametrize("build, words", [
    (Pair, "critic: must give one score a row of x, Tensor[16] or [16, 1], got [16, 2]"),
    (lambda: models.Critic(x_dim=3), ("critic: fails on a batch of x of shape [16, 1] (RuntimeError: shape '[16, 3]' "
                                      "is invalid")),
])
def test_a_critic_that_cannot_score_the_data_is_refused_before_any_work(data, tmp_path, build, words):
    """Found on the first batch before anything changes, not at the first step: the model and the critic keep their
    dtype (float64 data would make both float64), and no run folder is started."""
    model, critic = Fixed(), build()
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(ValueError) as error:
        ppgen.fit(model, data.double(), inference=inference.Wasserstein(critic=critic), out=tmp_path / "run", **LOOP)
    assert str(error.value).startswith(words), str(error.value)
    assert same_dicts(model.state_dict(), before) and model.loc.dtype == torch.float32
    assert all(p.dtype == torch.float32 for p in critic.parameters()) and not (tmp_path / "run").exists()


def test_a_critic_of_one_score_a_point_in_a_column_fits_and_is_left_in_its_mode(data):
    critic = nn.Sequential(nn.Linear(1, 8), nn.Dropout(0.5), nn.Linear(8, 1))  # scores [B, 1]
    fit = ppgen.fit(Fixed(), data, inference=inference.Adversarial(critic=critic), **LOOP)
    assert len(fit.history) == 3 and all(math.isfinite(h) for h in fit.history) and not critic.training


def test_a_reparameterised_likelihood_fits_too():
    """x ~ N(loc + 0.5 z, 0.1^2) with z ~ N(0, 1): draws through rsample carry the gradient to loc, which reaches the
    data's mean, 2, within 0.15."""
    def noisy(x):
        loc = pyro.param("loc", torch.zeros(1))
        with pyro.plate("data", len(x)):
            z = pyro.sample("z", dist.Normal(torch.zeros(1), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(loc + 0.5 * z, 0.1).to_event(1), obs=x)

    x = 2.0 + 0.5 * torch.randn(512, 1)
    backend = inference.Adversarial(critic=models.Critic(x_dim=1, hidden=(16, 16)))
    fit = ppgen.fit((noisy, None), x, inference=backend, lr=0.02, epochs=25, batch_size=64, progress=False)
    assert fit.params["loc"].item() == pytest.approx(2.0, abs=0.15)


def test_the_critics_give_one_score_a_point():
    assert models.Critic(x_dim=3)(torch.randn(5, 3)).shape == (5,)
    assert models.ConvCritic(x_dim=784)(torch.rand(5, 1, 28, 28)).shape == (5,)
    assert models.ConvCritic(x_dim=64)(torch.rand(5, 64)).shape == (5,)


@pytest.mark.parametrize("backend", [inference.Adversarial(), inference.Wasserstein()], ids=["adversarial", "wasserstein"])
def test_a_program_with_a_guide_is_refused_as_mmd_refuses_it(backend):
    vae = models.VAE(x_dim=4, z_dim=2, likelihood="gaussian")
    before = {name: value.clone() for name, value in vae.state_dict().items()}
    with pytest.raises(ValueError, match=rf"^{type(backend).__name__}\(\) fits p_theta\(x\) from its draws alone, but "
                                         r"the program has a guide for 'z', which it would leave untrained"):
        ppgen.fit(vae, torch.randn(32, 4), inference=backend, epochs=1, progress=False)
    assert all(torch.equal(value, before[name]) for name, value in vae.state_dict().items())


def test_the_history_says_what_the_critic_estimates():
    assert inference.Adversarial(divergence="js").units == "nats, the critic's bound of the divergence"
    assert inference.Adversarial(divergence="pearson").units.endswith("pearson divergence (no units)")
    assert inference.Wasserstein().units == "the critic's estimate of W1, in the units of x"
