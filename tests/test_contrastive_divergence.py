"""Persistent contrastive divergence against closed forms: a Gaussian energy E(x) = (x - mu)^T P (x - mu) / 2 fitted
to Gaussian data recovers the sample mean and covariance (the maximum-likelihood answer, which CD's gradient aims at),
and Langevin chains with a noise scale c sample the Gaussian of variance c^2 / (1 - eps / 4) exactly as the
recursion says; the chains in the run's checkpoints, resumed bitwise, damaged entries refused by name; the guard; the
refusals."""

import copy
import math
import signal
from dataclasses import dataclass

import pyro
import pytest
import torch

import ppgen
from ppgen import inference, models
from ppgen.inference import ContrastiveDivergence, Langevin
from ppgen.program.inputs import as_batch
from ppgen.program.structure import inspect
from ppgen.run.signals import Interrupted
from ppgen.training.guard import Diverged
from programs import LOSS_CALLS, GaussianEnergy, GaussianModel, SignalAt, correlated_gaussian
from run_files import record_again

pytestmark = pytest.mark.usefixtures("float64", "one_thread")


@pytest.fixture(scope="module")
def gaussian_data():
    return correlated_gaussian(1000)


def covariance_of(model):
    return torch.linalg.inv(model.precision()).detach()


# --- against the truth ---------------------------------------------------------------------------------------------


def test_cd_recovers_the_sample_mean_and_covariance(gaussian_data):
    """MALA chains (no discretisation bias), 1,000 of them, all lent at each of 300 full-batch steps. The tolerances
    are about twice the estimate's jitter: the chains' Monte Carlo error (about 0.03 in each mean) and their lag
    behind the moving model left Adam's parameters within 0.033 of the answer in the mean and 0.067 in the covariance
    over seeds 0 to 5, and the last epoch's loss within 0.05 of 0."""
    x, mean, covariance = gaussian_data
    model = GaussianEnergy(2, log_normalizer=False)
    cd = ContrastiveDivergence(sampler=Langevin(step_size=0.1, steps=10, adjusted=True), buffer=1000)
    fit = ppgen.fit(model, x, inference=cd, epochs=300, batch_size=1000, lr=0.01, progress=False, seed=0)
    torch.testing.assert_close(model.loc.detach(), mean, atol=0.08, rtol=0)
    torch.testing.assert_close(covariance_of(model), covariance, atol=0.12, rtol=0)
    assert abs(fit.history[-1]) < 0.1  # the data's mean energy minus the chains': near 0 once they agree
    assert fit.inference.units.startswith("energy: the data's mean E(x) minus the chains' mean E(x~)")


def test_chains_with_less_noise_sample_the_colder_density_the_recursion_gives():
    """x' = x + (eps/2)(-x) + c sqrt(eps) xi on N(0, 1): the stationary variance v = (1 - eps/2)^2 v + c^2 eps, so
    v = c^2 / (1 - eps/4), for c = 1 (Langevin's own noise) and c = 0.5 (a colder density, f^4)."""
    for c in (1.0, 0.5):
        x = Langevin(step_size=0.2, steps=300, noise=c).run(lambda v: -0.5 * v.square().sum(-1), torch.zeros(4000, 1))
        truth = c**2 / (1 - 0.2 / 4)
        assert abs(x.var().item() - truth) < 4 * truth * math.sqrt(2 / 4000)  # four standard errors of a variance


# --- the chains in the run -----------------------------------------------------------------------------------------

SMALL = dict(sampler=Langevin(step_size=0.05, steps=3), buffer=24, restart=0.25)  # 16 of 24 chains lent a step
LOOP = dict(epochs=3, batch_size=16, progress=False)  # 64 points: 4 steps an epoch, 12 in all


@dataclass(frozen=True, kw_only=True)
class Signalled(SignalAt, ContrastiveDivergence):
    """CD, sending SIGTERM at its ``signal_at``-th loss."""

    signum = signal.SIGTERM


@pytest.fixture(autouse=True)
def fresh_calls():
    LOSS_CALLS.clear()


@pytest.fixture
def data(gaussian_data):
    return gaussian_data[0][:64]


def test_the_buffer_starts_uniform_in_the_datas_box_and_is_in_the_checkpoint(data, tmp_path):
    torch.manual_seed(0)
    prepared = ContrastiveDivergence(**SMALL).prepare(GaussianEnergy(2), inspect(GaussianEnergy(2), data),
                                                      as_batch(data))
    start = prepared.persistent_state()
    assert set(start) == {"chains", "low", "high"} and start["chains"].shape == (24, 2)
    assert torch.equal(start["low"], data.min(0).values) and torch.equal(start["high"], data.max(0).values)
    assert bool(((start["chains"] >= start["low"]) & (start["chains"] <= start["high"])).all())
    assert ContrastiveDivergence().persistent_state() == {}  # made by prepare, not by the constructor

    fit = ppgen.fit(GaussianEnergy(2), data, inference=ContrastiveDivergence(**SMALL), out=tmp_path / "run", **LOOP)
    saved = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert set(saved["objective"]) == {"chains", "low", "high"}
    assert all(torch.equal(saved["objective"][k], v) for k, v in fit.inference.persistent_state().items())
    ppgen.fit(GaussianModel(2), data, inference=inference.MLE(), out=tmp_path / "mle", **LOOP)
    assert "objective" not in torch.load(tmp_path / "mle" / "checkpoint.pt", weights_only=True)


def test_a_stopped_run_resumes_bitwise_chains_included(data, tmp_path):
    """Stopped by SIGTERM at step 6 (mid-epoch, after a checkpoint at 5) and resumed: the model, the buffer and the
    history are bitwise those of a run never stopped."""
    whole = ppgen.fit(GaussianEnergy(2), data, inference=Signalled(**SMALL), **LOOP)
    LOSS_CALLS.clear()
    backend = Signalled(signal_at=6, **SMALL)
    with pytest.raises(Interrupted, match="SIGTERM at step 6"):
        ppgen.fit(GaussianEnergy(2), data, inference=backend, out=tmp_path / "run", checkpoint_every=5, **LOOP)
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["counters"]["step"] == 6
    resumed = ppgen.fit(GaussianEnergy(2), data, inference=backend, out=tmp_path / "run", resume=True,
                        checkpoint_every=5, **LOOP)
    assert len(LOSS_CALLS) == 12  # 6 steps, then the 6 left: none repeated
    assert all(torch.equal(a, b) for a, b in zip(resumed.model.state_dict().values(),
                                                   whole.model.state_dict().values(), strict=True))
    assert all(torch.equal(resumed.inference.persistent_state()[k], v)
               for k, v in whole.inference.persistent_state().items())
    assert resumed.history == whole.history
    loaded = ppgen.load(tmp_path / "run" / "fit.pt", model=GaussianEnergy(2))
    assert loaded.inference.config == resumed.inference.config and loaded.inference.sampler == SMALL["sampler"]


DAMAGED = {  # the change to a CD run's checkpoint, the field named, what is expected
    "chains of the wrong shape": (lambda s: s["objective"].update(chains=torch.zeros(23, 2)), "objective.chains",
                                  "a tensor of shape [24, 2] and dtype torch.float64"),
    "chains of the wrong dtype": (lambda s: s["objective"].update(chains=s["objective"]["chains"].float()),
                                  "objective.chains", "dtype torch.float64"),
    "a chain not finite": (lambda s: s["objective"]["chains"][3].fill_(math.nan), "objective.chains", "finite values"),
    "the box missing": (lambda s: s["objective"].pop("low"), "objective", "the tensors ['chains', 'high', 'low']"),
    "the buffer missing": (lambda s: s.pop("objective"), "objective",
                           "the objective's state between steps (chains, high, low)"),
    "the buffer not a mapping": (lambda s: s.update(objective=[1]), "objective", "the tensors"),
}


@pytest.mark.parametrize("case", sorted(DAMAGED))
def test_a_damaged_buffer_in_a_checkpoint_is_refused_naming_the_field(data, tmp_path, case):
    change, field, expected = DAMAGED[case]
    run = tmp_path / "run"
    with pytest.raises(Interrupted):
        ppgen.fit(GaussianEnergy(2), data, inference=Signalled(signal_at=6, **SMALL), out=run, **LOOP)
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    change(state)
    torch.save(state, run / "checkpoint.pt")
    record_again(run)
    model = GaussianEnergy(2)
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(ValueError) as error:
        ppgen.fit(model, data, inference=Signalled(signal_at=6, **SMALL), out=run, resume=True, **LOOP)
    message = str(error.value)
    assert message.startswith(f"{run / 'checkpoint.pt'}: field '{field}' is damaged: expected") and \
        expected in message, message
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())  # untouched


def test_chains_in_the_checkpoint_of_a_run_that_keeps_none_are_refused(data, tmp_path):
    run = tmp_path / "run"
    ppgen.fit(GaussianModel(2), data, inference=inference.MLE(), out=run, **LOOP)
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    state["objective"] = {"chains": torch.zeros(24, 2)}
    torch.save(state, run / "checkpoint.pt")
    record_again(run)
    with pytest.raises(ValueError, match=r"field 'objective' is damaged: expected absent: the run's objective carries "
                                         r"no state between steps"):
        ppgen.fit(GaussianModel(2), data, inference=inference.MLE(), out=run, resume=True, **LOOP)


# --- the guard -----------------------------------------------------------------------------------------------------

EXPLODING = dict(sampler=Langevin(step_size=1e4, steps=100), buffer=24)  # 5,000-fold a move: past 1e308


def test_chains_that_leave_the_finite_numbers_make_a_bad_step_and_restart_from_noise(data):
    model = GaussianEnergy(2)
    backend = ContrastiveDivergence(**EXPLODING)
    with pytest.raises(Diverged, match=r"diverged at step 1 \(epoch 1\): the loss is nan") as error:
        ppgen.fit(model, data, inference=backend, **LOOP)
    assert error.value.step == 1 and torch.equal(model.loc.detach(), torch.zeros(2))  # never updated
    with pytest.raises(Diverged, match="every batch was skipped"):
        ppgen.fit(GaussianEnergy(2), data, inference=backend, on_nan="skip", **LOOP)


def test_the_guard_restarts_diverged_chains_so_the_buffer_stays_finite(data):
    structure = inspect(GaussianEnergy(2), data)
    batch = as_batch(data)
    prepared = ContrastiveDivergence(**EXPLODING).prepare(GaussianEnergy(2), structure, batch)
    loss = prepared.loss(GaussianEnergy(2), structure, batch.head(16))
    chains = prepared.persistent_state()["chains"]
    assert math.isnan(loss.item()) and bool(torch.isfinite(chains).all())


# --- refusals ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("argument, value", [("distributed", True), ("compile", "capture"), ("compile", True)])
def test_what_cannot_carry_the_chains_is_refused_by_name(data, argument, value):
    model = GaussianEnergy(2)
    with pytest.raises(ValueError, match=rf"^{argument}: ContrastiveDivergence\(\) keeps persistent Markov chains "
                                         rf"from step to step, which {argument}={value!r} does not take yet"):
        ppgen.fit(model, data, inference=ContrastiveDivergence(), **{argument: value}, **LOOP)
    assert torch.equal(model.loc.detach(), torch.zeros(2))


def test_models_it_cannot_fit_are_refused_before_any_work(data):
    vae = models.VAE(x_dim=2, likelihood="gaussian")
    with pytest.raises(ValueError, match=r"ContrastiveDivergence\(\) needs the model's log-density as a function of x"):
        ppgen.fit(vae, data, inference=ContrastiveDivergence(), **LOOP)
    binary = torch.bernoulli(torch.full((40, 3), 0.5))
    with pytest.raises(ValueError, match=r"ContrastiveDivergence\(\) moves or draws points in R\^D"):
        ppgen.fit(models.FVSBN(x_dim=3), binary, inference=ContrastiveDivergence(), **LOOP)

    def conditional(x, y):  # E(x given y) = a ||x - y||^2
        a = pyro.param("a", torch.ones(()))
        with pyro.plate("data", len(x)):
            pyro.sample("x", ppgen.Unnormalized(lambda v: -a * (v - y).square().sum(-1), event_shape=(2,)), obs=x)

    with pytest.raises(ValueError, match=r"chains are draws of x alone, but the model takes 2 inputs"):
        ppgen.fit((conditional, None), (data, data), inference=ContrastiveDivergence(), **LOOP)


@pytest.mark.parametrize("build, error, words", [
    (lambda: ContrastiveDivergence(sampler="langevin"), TypeError, "sampler must be an inference.Langevin(step_size"),
    (lambda: ContrastiveDivergence(sampler={"steps": 0}), ValueError, "steps must be a positive int"),
    (lambda: ContrastiveDivergence(buffer=0), ValueError, "buffer must be a positive int"),
    (lambda: ContrastiveDivergence(restart=1.5), ValueError, "restart must be a probability, a number from 0 to 1"),
    (lambda: ContrastiveDivergence(restart="often"), TypeError, "restart must be a probability"),
    (lambda: ContrastiveDivergence(alpha=-1.0), ValueError, "alpha must be a finite number >= 0, got -1.0"),
    (lambda: Langevin(step_size=0), ValueError, "step_size must be a positive finite number"),
    (lambda: Langevin(noise=math.inf), ValueError, "noise must be a positive finite number"),
    (lambda: Langevin(adjusted=1), TypeError, "adjusted must be True (MALA) or False (ULA)"),
    (lambda: Langevin(noise=0.5, adjusted=True), ValueError, "noise=0.5 with adjusted=True: the Metropolis-Hastings"),
])
def test_bad_arguments_are_refused_naming_them(build, error, words):
    with pytest.raises(error) as raised:
        build()
    assert words in str(raised.value)


def test_the_defaults_are_du_and_mordatchs_and_the_settings_rebuild():
    cd = ContrastiveDivergence()
    assert (cd.buffer, cd.restart, cd.alpha, cd.sampler) == (10_000, 0.05, 0.0, Langevin())
    assert cd.config == {"sampler": {"step_size": 0.01, "steps": 20, "noise": 1.0, "adjusted": False},
                         "buffer": 10_000, "restart": 0.05, "alpha": 0.0}
    assert ContrastiveDivergence(**cd.config) == cd
    with pytest.raises(ValueError, match=r"the buffer of chains is made before the first step, by ppgen.fit"):
        cd.loss(None, None, None)
