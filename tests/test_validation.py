"""Validation while training, early stopping, callbacks and TensorBoard: ``fit(validation=, patience=, keep=,
callbacks=, log_dir=)``, checked against closed forms, against a fit without them, and across a stop and a resume."""

from __future__ import annotations

import copy
import logging
import math
import os
import signal
import sys
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

import ppgen
from ppgen import inference, models
from ppgen.program.inputs import Batch
from ppgen.run.signals import Interrupted
from run_files import record_again
from programs import GaussianEnergy, coin_rows, correlated_gaussian, regression, regression_data, small_vae

pytestmark = pytest.mark.usefixtures("one_thread")


def ppca_rows(n: int, scale: float = 1.0, seed: int = 0) -> torch.Tensor:
    """n rows of a 4-D Gaussian with correlated coordinates, float64, seeded."""
    generator = torch.Generator().manual_seed(seed)
    mixing = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.8, 0.6, 0.0, 0.0], [0.0, 0.5, 0.9, 0.0], [0.3, 0.0, 0.0, 0.4]],
                          dtype=torch.float64)
    return scale * torch.randn(n, 4, generator=generator, dtype=torch.float64) @ mixing.T + 1.0


def ppca() -> models.PPCA:
    ppgen.seed(0)
    return models.PPCA(x_dim=4, z_dim=2)


def held_out_log_likelihood(fit: ppgen.Fit, x: torch.Tensor) -> float:
    """(1/M) sum_m log N(x_m; mu, W W^T + sigma^2 I) at the fit's parameters, by SciPy's dense Gaussian."""
    weight, loc, sigma = (fit.model.weight.detach().numpy(), fit.model.loc.detach().numpy(),
                          float(fit.model.log_sigma.detach().exp()))
    covariance = weight @ weight.T + sigma**2 * np.eye(4)
    return float(multivariate_normal(loc, covariance).logpdf(x.numpy()).mean())


def same_parameters(a: ppgen.Fit, b: ppgen.Fit) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values(),
                                                 strict=True))


# -------------------------------------------------------------------------------------------------
# the validation loss against the truth


@pytest.mark.parametrize("backend", [inference.MLE(), inference.ELBO(), inference.IWAE(k=5)], ids=repr)
def test_the_validation_loss_of_ppca_is_minus_the_held_out_log_likelihood(backend):
    """PPCA's guide is its exact posterior, so that -ELBO and -IWAE_K equal -log p(x) on every draw, as maximum
    likelihood's loss does: the validation loss of the last epoch is minus the mean held-out log-likelihood at the
    fitted parameters, by SciPy's Gaussian."""
    x, x_val = ppca_rows(200), ppca_rows(50, seed=1)
    fit = ppgen.fit(ppca(), x, inference=backend, validation=x_val, epochs=3, batch_size=32, lr=0.05, progress=False)
    assert len(fit.validation_history) == 3 and fit.best_epoch is None and fit.stopped is None
    assert fit.validation_history[-1] == pytest.approx(-held_out_log_likelihood(fit, x_val), rel=1e-10, abs=1e-10)
    assert fit.validation_history[-1] == pytest.approx(-float(fit.log_prob(x_val).mean()), rel=1e-10)


def test_the_validation_loss_is_the_training_loss_estimator_on_other_rows():
    """Given the training rows as validation rows, the validation loss of maximum likelihood (no draws) at the final
    parameters is the full-batch training loss at them, -log p(x) averaged over the rows."""
    x = ppca_rows(64)
    fit = ppgen.fit(ppca(), x, inference=inference.MLE(), validation=x, epochs=2, batch_size=64, progress=False)
    with torch.no_grad():
        full_batch = float(inference.MLE().loss(fit.model, fit.structure, Batch((x,), torch.arange(64), 64)))
    assert fit.validation_history[-1] == pytest.approx(full_batch, rel=1e-12)


def test_validation_leaves_the_training_as_it_was():
    """A fit with validation data trains exactly as one without: the validation draws come from RNGs of their own."""
    x, x_val = coin_rows(64), coin_rows(64)[:20]
    plain = ppgen.fit(small_vae(), x, inference=inference.IWAE(k=3), epochs=3, batch_size=16, progress=False)
    watched = ppgen.fit(small_vae(), x, inference=inference.IWAE(k=3), epochs=3, batch_size=16, progress=False,
                        validation=x_val)
    assert watched.history == plain.history
    assert same_parameters(watched, plain)
    assert len(watched.validation_history) == 3 and all(math.isfinite(v) for v in watched.validation_history)


def test_validation_puts_back_the_chains_an_objective_carries():
    """Contrastive divergence's loss moves its persistent chains; the validation passes put them back, so that a fit
    with validation trains as one without, chains included."""
    x = correlated_gaussian(96)[0]
    fits = [ppgen.fit(GaussianEnergy(2), x[:64], inference=inference.ContrastiveDivergence(buffer=32), epochs=2,
                      batch_size=16, progress=False, seed=0, **extra) for extra in ({}, {"validation": x[64:]})]
    assert fits[1].history == fits[0].history and len(fits[1].validation_history) == 2
    assert same_parameters(fits[1], fits[0])
    chains = [fit.inference.persistent_state()["chains"] for fit in fits]
    assert torch.equal(chains[1], chains[0])


def test_the_validation_draws_are_the_same_every_epoch():
    """Two fits whose parameters stay where they are (lr tiny) see the same validation loss each epoch: the draws of
    z ~ q(z|x) are fixed, so that epochs differ by their parameters alone."""
    x = coin_rows(32)
    fit = ppgen.fit(small_vae(), x, inference=inference.ELBO(), epochs=3, batch_size=32, progress=False,
                    validation=x, optim=torch.optim.SGD, lr=1e-300)
    assert fit.validation_history[0] == fit.validation_history[1] == fit.validation_history[2]


# -------------------------------------------------------------------------------------------------
# the best parameters and early stopping


class Snapshots:
    """A callback that keeps a copy of the parameters at each epoch's end."""

    def __init__(self):
        self.states = []

    def __call__(self, end):
        self.states.append({name: t.clone() for name, t in end.model.state_dict().items()})


def diverging_fit(**settings) -> tuple[ppgen.Fit, Snapshots]:
    """PPCA fitted to rows of small spread and validated on rows of a large one: as sigma shrinks towards the
    training rows', the held-out rows' likelihood falls, so that the validation loss rises after the first epochs."""
    snapshots = Snapshots()
    fit = ppgen.fit(ppca(), ppca_rows(200, scale=0.1), inference=inference.MLE(), epochs=30, batch_size=50, lr=0.05,
                    validation=ppca_rows(50, scale=3.0, seed=1), progress=False, callbacks=[snapshots], **settings)
    return fit, snapshots


def test_keep_best_returns_the_parameters_of_the_lowest_validation_loss():
    fit, snapshots = diverging_fit(keep="best")
    history = fit.validation_history
    assert len(history) == 30 and fit.best_epoch == 1 + int(np.argmin(history)) < 30
    best = snapshots.states[fit.best_epoch - 1]
    assert all(torch.equal(t, best[name]) for name, t in fit.model.state_dict().items())
    assert history[fit.best_epoch - 1] == pytest.approx(-float(fit.log_prob(ppca_rows(50, scale=3.0, seed=1)).mean()),
                                                        rel=1e-10)


def test_patience_stops_after_that_many_epochs_without_improvement():
    whole, _ = diverging_fit()
    best = 1 + int(np.argmin(whole.validation_history))
    fit, snapshots = diverging_fit(patience=3, keep="best")
    assert len(fit.history) == len(fit.validation_history) == best + 3 == len(snapshots.states)
    assert fit.history == whole.history[:best + 3] and fit.validation_history == whole.validation_history[:best + 3]
    assert fit.best_epoch == best and fit.stopped.startswith("early stopping") and f"epoch {best}" in fit.stopped


def test_a_saved_fit_keeps_its_validation_record(tmp_path):
    fit, _ = diverging_fit(patience=2, keep="best")
    fit.save(tmp_path / "fit.pt")
    loaded = ppgen.load(tmp_path / "fit.pt")
    assert (loaded.validation_history, loaded.best_epoch, loaded.stopped) == (fit.validation_history, fit.best_epoch,
                                                                             fit.stopped)


# -------------------------------------------------------------------------------------------------
# resume


@dataclass(frozen=True, kw_only=True)
class SignalAt(inference.ELBO):
    """The ELBO, with SIGINT sent at the training step ``STOP["at"]`` counted in ``STEPS`` (validation passes, without
    gradient, are not counted); a module global, so that the runs stopped and resumed have the same objective."""

    def loss(self, module, structure, batch):
        if torch.is_grad_enabled():
            STEPS.append(1)
            if len(STEPS) == STOP["at"]:
                os.kill(os.getpid(), signal.SIGINT)
        return super().loss(module, structure, batch)


STEPS: list[int] = []
STOP: dict[str, int | None] = {"at": None}


@pytest.fixture(autouse=True)
def no_signal():
    STEPS.clear()
    STOP["at"] = None


@pytest.mark.parametrize("stop_at", [3, 4, 13, 17])  # mid-epoch, at an epoch's end, after the best epoch (3), one more
def test_a_stopped_run_with_validation_resumes_bitwise(tmp_path, stop_at):
    """Stopped by a signal and resumed, a run with validation, patience and keep="best" ends as one never stopped:
    parameters, history, validation history, best epoch, patience counter and the point where it stopped."""
    x, x_val = coin_rows(64), coin_rows(128)[64:84]
    settings = dict(epochs=8, batch_size=16, progress=False, validation=x_val, patience=2, keep="best", lr=0.2,
                    inference=SignalAt())
    whole = ppgen.fit(small_vae(), x, **settings)
    assert whole.best_epoch == 3 and len(whole.history) == 5 and whole.stopped  # 4 steps an epoch: stopped at step 20
    STEPS.clear()
    STOP["at"] = stop_at
    with pytest.raises(Interrupted):
        ppgen.fit(small_vae(), x, out=tmp_path / "run", checkpoint_every=3, **settings)
    resumed = ppgen.fit(small_vae(), x, out=tmp_path / "run", checkpoint_every=3, resume=True, **settings)
    assert resumed.history == whole.history and resumed.validation_history == whole.validation_history
    assert (resumed.best_epoch, resumed.stopped) == (whole.best_epoch, whole.stopped)
    assert same_parameters(resumed, whole)
    again = ppgen.fit(small_vae(), x, out=tmp_path / "run", checkpoint_every=3, resume=True, **settings)
    assert again.validation_history == whole.validation_history and again.best_epoch == whole.best_epoch
    assert same_parameters(again, whole)


def test_an_early_stopped_run_resumed_trains_no_further(tmp_path):
    """A run that stopped early, resumed from its last checkpoint (its fit.pt removed), stays stopped."""
    settings = dict(inference=inference.MLE(), epochs=30, batch_size=50, lr=0.05, patience=2, keep="best",
                    validation=ppca_rows(50, scale=3.0, seed=1), progress=False, out=tmp_path / "run")
    first = ppgen.fit(ppca(), ppca_rows(200, scale=0.1), **settings)
    assert first.stopped is not None
    again = ppgen.fit(ppca(), ppca_rows(200, scale=0.1), resume=True, **settings)
    assert again.history == first.history and again.stopped == first.stopped and again.best_epoch == first.best_epoch
    assert same_parameters(again, first)


@pytest.mark.parametrize("field, value", [("waited", -1), ("best_epoch", 7), ("history", ["4.2"]), ("best", None)])
def test_a_damaged_validation_state_is_refused_naming_its_field(tmp_path, field, value):
    x = coin_rows(64)
    settings = dict(validation=x[:10], keep="best", epochs=3, batch_size=16, progress=False, out=tmp_path / "run")
    ppgen.fit(small_vae(), x, checkpoint_every=5, **settings)
    saved = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    saved["callbacks"]["states"]["validation"][field] = value
    torch.save(saved, tmp_path / "run" / "checkpoint.pt")
    record_again(tmp_path / "run")
    model = small_vae()
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(ValueError, match=rf"field 'callbacks.states.validation.{field}' is damaged"):
        ppgen.fit(model, x, checkpoint_every=5, resume=True, **settings)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_resume_with_other_validation_rows_is_refused(tmp_path):
    x = coin_rows(64)
    ppgen.fit(small_vae(), x, validation=x[:10], epochs=1, batch_size=16, progress=False, out=tmp_path / "run")
    with pytest.raises(ValueError, match=r"differs in validation\)"):
        ppgen.fit(small_vae(), x, validation=x[:11], epochs=1, batch_size=16, progress=False, out=tmp_path / "run",
                  resume=True)


# -------------------------------------------------------------------------------------------------
# callbacks


def test_a_callback_sees_each_epoch_and_may_stop_the_fit():
    seen = []

    def stop_at_two(end):
        seen.append((end.epoch, end.epochs, list(end.history), dict(end.metrics), end.step))
        assert end.fit.log_prob(coin_rows(64)[:5], k=2).shape == (5,)  # the fit so far answers queries
        if end.epoch == 2:
            end.stop("two epochs are enough")

    fit = ppgen.fit(small_vae(), coin_rows(64), epochs=5, batch_size=16, lr=0.01, progress=False,
                    callbacks=[stop_at_two])
    assert len(fit.history) == 2 and fit.stopped == "two epochs are enough"
    assert [s[0] for s in seen] == [1, 2] and seen[1][2] == fit.history and seen[1][4] == 8
    assert seen[1][3]["loss"] == fit.history[1] and seen[1][3]["lr"] == 0.01 and seen[1][3]["skipped"] == 0
    assert seen[1][3]["seconds"] > 0


class Beta(ppgen.Callback):
    """A user's stateful callback: a KL weight annealed over the epochs, written into the model's buffer, and a count
    of its calls kept in the run's checkpoints."""

    def __init__(self):
        self.calls = 0

    def __call__(self, end):
        self.calls += 1
        end.model.beta.fill_(min(1.0, end.epoch / 4))

    def state_dict(self):
        return {"calls": self.calls}

    def load_state_dict(self, state):
        self.calls = state["calls"]

    def check_state(self, state, bad):
        if not (isinstance(state, dict) and type(state.get("calls")) is int):
            raise bad("calls", "an int")


class AnnealedVAE(models.VAE):
    """The zoo's VAE with a buffer ``beta`` that a callback anneals (where a user's model would weight its KL term by
    it): a buffer is in the model's state_dict, so that the run's checkpoints hold what the callback set."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.register_buffer("beta", torch.zeros(()))


def test_a_stateful_callback_is_checkpointed_and_resumed(tmp_path):
    x = coin_rows(64)
    ppgen.seed(0)
    whole_beta = Beta()
    whole = ppgen.fit(AnnealedVAE(x_dim=6, z_dim=2, hidden=(8,)), x, epochs=4, batch_size=16, progress=False,
                      callbacks=[whole_beta], inference=SignalAt())
    STEPS.clear()
    STOP["at"] = 10
    with pytest.raises(Interrupted):
        ppgen.seed(0)
        ppgen.fit(AnnealedVAE(x_dim=6, z_dim=2, hidden=(8,)), x, epochs=4, batch_size=16, progress=False,
                  callbacks=[Beta()], inference=SignalAt(), out=tmp_path / "run")
    resumed_beta = Beta()
    ppgen.seed(0)
    resumed = ppgen.fit(AnnealedVAE(x_dim=6, z_dim=2, hidden=(8,)), x, epochs=4, batch_size=16, progress=False,
                        callbacks=[resumed_beta], inference=SignalAt(), out=tmp_path / "run", resume=True)
    assert resumed_beta.calls == whole_beta.calls == 4 and float(resumed.model.beta) == 1.0
    assert resumed.history == whole.history
    assert same_parameters(resumed, whole)
    with pytest.raises(ValueError, match="field 'callbacks' is damaged"):  # the run keeps Beta's state: not without it
        ppgen.seed(0)
        ppgen.fit(AnnealedVAE(x_dim=6, z_dim=2, hidden=(8,)), x, epochs=4, batch_size=16, progress=False,
                  inference=SignalAt(), out=tmp_path / "run", resume=True)


def test_an_exception_in_a_callback_propagates_and_the_run_resumes(tmp_path):
    x = coin_rows(64)
    whole = ppgen.fit(small_vae(), x, epochs=3, batch_size=16, progress=False)

    def fails_at_two(end):
        if end.epoch == 2:
            raise RuntimeError("the user's callback failed")

    with pytest.raises(RuntimeError, match="the user's callback failed"):
        ppgen.fit(small_vae(), x, epochs=3, batch_size=16, progress=False, callbacks=[fails_at_two],
                  out=tmp_path / "run")
    resumed = ppgen.fit(small_vae(), x, epochs=3, batch_size=16, progress=False, out=tmp_path / "run", resume=True)
    assert resumed.history == whole.history
    assert same_parameters(resumed, whole)


def test_each_epoch_is_a_line_of_the_epochs_logger(caplog):
    with caplog.at_level(logging.INFO, logger="ppgen.training.epochs"):
        fit = ppgen.fit(small_vae(), coin_rows(64), epochs=2, batch_size=16, progress=False,
                        validation=coin_rows(80)[64:])
    lines = [r.getMessage() for r in caplog.records if r.name == "ppgen.training.epochs"]
    assert len(lines) == 2
    for epoch, line in enumerate(lines, 1):
        assert line.startswith(f"epoch {epoch}/2: loss {fit.history[epoch - 1]:.4f}, validation "
                               f"{fit.validation_history[epoch - 1]:.4f}, ") and line.endswith(" s")


def test_a_fit_prints_nothing_unasked(capfd):
    """A library call writes nothing to stderr off a terminal: the epoch lines go to a logger nobody listens to."""
    ppgen.fit(small_vae(), coin_rows(64), epochs=2, batch_size=16, validation=coin_rows(80)[64:])
    assert capfd.readouterr().err == ""


# -------------------------------------------------------------------------------------------------
# TensorBoard


def scalars(log_dir) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}, events


def test_tensorboard_holds_the_curves_and_the_pictures(tmp_path):
    pytest.importorskip("tensorboard")
    x = coin_rows(64)
    fit = ppgen.fit(small_vae(), x, epochs=3, batch_size=16, lr=0.02, progress=False, validation=coin_rows(80)[64:],
                    log_dir=tmp_path / "tb")
    curves, events = scalars(tmp_path / "tb")
    as_float32 = [float(np.float32(v)) for v in fit.history]
    assert curves["train/loss"] == list(zip([1, 2, 3], as_float32))
    assert curves["validation/loss"] == list(zip([1, 2, 3], [float(np.float32(v)) for v in fit.validation_history]))
    assert curves["train/lr"] == [(e, float(np.float32(0.02))) for e in (1, 2, 3)]
    assert curves["train/skipped_batches"] == [(e, 0.0) for e in (1, 2, 3)]
    assert [step for step, seconds in curves["train/epoch_seconds"] if seconds > 0] == [1, 2, 3]
    images = events.Tags()["images"]
    assert {"pictures/samples", "pictures/latent"} <= set(images)
    assert [e.step for e in events.Images("pictures/samples")] == [3]  # every 10 epochs, and the last
    picture = events.Images("pictures/samples")[0]
    assert picture.width > 100 and picture.height > 100


def test_tensorboard_pictures_at_their_interval_and_a_model_without_latents(tmp_path):
    pytest.importorskip("tensorboard")
    board = ppgen.TensorBoard(tmp_path / "tb", pictures_every=2, x=ppca_rows(30))
    fit = ppgen.fit(ppca(), ppca_rows(100), inference=inference.MLE(), epochs=5, batch_size=50, progress=False,
                    callbacks=[board])
    board.close()
    curves, events = scalars(tmp_path / "tb")
    assert [value for _, value in curves["train/loss"]] == [float(np.float32(v)) for v in fit.history]
    assert "validation/loss" not in curves
    assert [e.step for e in events.Images("pictures/samples")] == [2, 4, 5]
    assert [e.step for e in events.Images("pictures/latent")] == [2, 4, 5]  # PPCA encodes: its exact posterior mean


def test_tensorboard_missing_is_said_with_the_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    model = small_vae()
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(ImportError, match=r"log_dir: .*pip install \"ppgen\[tensorboard\]\""):
        ppgen.fit(model, coin_rows(64), epochs=1, log_dir="never-made")
    assert not os.path.exists("never-made")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


# -------------------------------------------------------------------------------------------------
# bad arguments, refused before any work


@pytest.mark.parametrize("settings, error, message", [
    (dict(patience=3), ValueError, "patience=3 .* needs validation data"),
    (dict(keep="best"), ValueError, "keep='best' .* needs validation data"),
    (dict(keep="first", validation=coin_rows(8)), ValueError, "keep"),
    (dict(patience=0, validation=coin_rows(8)), ValueError, "patience must be a positive int"),
    (dict(patience=1.5, validation=coin_rows(8)), TypeError, "patience must be a positive int"),
    (dict(validation=coin_rows(8)[:, :5]), ValueError, r"validation must have shape \[N, 6\]"),
    (dict(validation=coin_rows(8) * 0.5), ValueError, "validation: .* outside the support"),
    (dict(validation=np.array([["a"] * 6])), TypeError, "validation"),
    (dict(validation=coin_rows(8).half()), TypeError, "validation has dtype torch.float16"),
    (dict(validation=[coin_rows(8), coin_rows(8)]), TypeError, "validation"),
    (dict(validation=(coin_rows(8), coin_rows(8))), TypeError, "validation: the model takes 1 input"),
    (dict(callbacks=print), TypeError, "callbacks must be a list"),
    (dict(callbacks=[1]), TypeError, r"callbacks\[0\] must be callable"),
    (dict(callbacks=[Beta(), Beta()]), ValueError, "share a name"),
    (dict(log_dir=5), TypeError, "log_dir must be a folder path"),
    (dict(log_dir=""), ValueError, "log_dir must name a folder"),
], ids=lambda v: str(v)[:40] if isinstance(v, str) else None)
def test_bad_arguments_are_refused_before_any_work(tmp_path, settings, error, message):
    model = small_vae()
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(error, match=message):
        ppgen.fit(model, coin_rows(64), epochs=1, progress=False, out=tmp_path / "run", **settings)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not (tmp_path / "run").exists()


def test_validation_is_refused_where_it_does_not_apply():
    with pytest.raises(ValueError, match="validation: .*critic"):
        ppgen.fit(models.Generator(x_dim=2), torch.randn(64, 2), inference=inference.Adversarial(),
                  validation=torch.randn(8, 2), epochs=1, progress=False)
    x, y = regression_data(20)
    with pytest.raises(ValueError, match="validation: .*draws from the posterior once"):
        ppgen.fit(regression, (x, y), inference=inference.NUTS(num_samples=5), validation=(x[:5], y[:5]))


def test_tensorboard_says_which_pictures_a_model_cannot_give(tmp_path):
    """A conditional model's draws and codes need its condition c: the pictures are left out, and a text entry says
    why, once."""
    pytest.importorskip("tensorboard")
    ppgen.seed(0)
    x, c = coin_rows(40), torch.randint(0, 3, (40,), generator=torch.Generator().manual_seed(0))
    ppgen.fit(models.CVAE(x_dim=6, c_dim=3, hidden=(8,)), (x, c), epochs=2, batch_size=20, progress=False,
              log_dir=tmp_path / "tb", callbacks=[ppgen.TensorBoard(tmp_path / "every", pictures_every=1)])
    for folder in ("tb", "every"):
        _, events = scalars(tmp_path / folder)
        assert events.Tags()["images"] == []
        texts = [e.tensor_proto.string_val[0].decode() for tag in events.Tags()["tensors"] if "pictures/skipped" in tag
                 for e in events.Tensors(tag)]
        assert sorted(texts) == [f"{name}: the model takes inputs besides x, which its draws and its codes need"
                                 for name in ("latent", "samples")]
