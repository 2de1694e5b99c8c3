"""Run state, checkpoints, resuming, and the divergence guard, in-process with tiny fits."""

from __future__ import annotations

import copy
import json
import math
import os
import signal
import subprocess
import sys
import warnings
from dataclasses import dataclass

import pyro
import pyro.distributions as dist
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import ppgen
import ppgen.training.guard
from ppgen import inference, models
from ppgen.run.folder import digest
from ppgen.run.signals import Interrupted
from ppgen.run.state import RunState
from ppgen.training.guard import DeviceGuard, Diverged, Guard, guard_for
from programs import coin_rows, small_vae

SETTINGS = dict(epochs=3, batch_size=16, progress=False)


@pytest.fixture
def binary():
    return coin_rows()


@dataclass(frozen=True, kw_only=True)
class Scripted(inference.ELBO):
    """The ELBO, except at chosen calls: a signal sent, or the loss replaced (NaN, infinity, a blow-up)."""

    signal_at: int = 0
    signum: int = signal.SIGINT
    bad_at: tuple[int, ...] = ()
    bad: float = math.nan

    def loss(self, module, structure, x):
        CALLS.append(copy.deepcopy(module.state_dict()))
        loss = super().loss(module, structure, x)
        if len(CALLS) == self.signal_at:
            os.kill(os.getpid(), self.signum)
        if len(CALLS) in self.bad_at:
            return loss * 0 + self.bad if math.isnan(self.bad) or math.isinf(self.bad) else loss * self.bad
        return loss


CALLS: list[dict] = []


@pytest.fixture(autouse=True)
def fresh_calls():
    CALLS.clear()


@pytest.fixture(params=["host", "device"])
def each_guard(request, monkeypatch):
    """Runs a test under each guard: the host's verdict every step, and the device's, read back once an epoch
    (the default on CUDA, put on CPU here)."""
    if request.param == "device":
        monkeypatch.setattr(ppgen.training.guard, "DEFERRED_DEVICES", ("cpu", "cuda"))
    return request.param


def same_parameters(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


@pytest.mark.usefixtures("each_guard")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("stop_at", [3, 4, 7, 12])  # mid-epoch, at an epoch's end (4 steps each), later ones
def test_a_stopped_run_resumes_bitwise(binary, tmp_path, signum, stop_at):
    """Stopped at a step by a signal and resumed, a fit ends with the very parameters of one never stopped."""
    whole = ppgen.fit(small_vae(), binary, inference=Scripted(), **SETTINGS)
    CALLS.clear()
    backend = Scripted(signal_at=stop_at, signum=signum)
    with pytest.raises(Interrupted, match=rf"{signal.Signals(signum).name} at step {stop_at} .*resume=True") as stop:
        ppgen.fit(small_vae(), binary, inference=backend, out=tmp_path / "run", checkpoint_every=5, **SETTINGS)
    assert stop.value.checkpoint == str(tmp_path / "run" / "checkpoint.pt")
    resumed = ppgen.fit(small_vae(), binary, inference=backend, out=tmp_path / "run", checkpoint_every=5,
                        resume=True, **SETTINGS)
    assert same_parameters(resumed.model, whole.model)
    assert resumed.history == whole.history and len(CALLS) == 12  # each step ran once, none twice


def test_a_stop_without_a_run_folder_says_nothing_was_saved(binary):
    with pytest.raises(Interrupted, match="nothing was saved"):
        ppgen.fit(small_vae(), binary, inference=Scripted(signal_at=2), **SETTINGS)


def test_resume_with_other_settings_is_refused(binary, tmp_path):
    ppgen.fit(small_vae(), binary, out=tmp_path / "run", **SETTINGS)
    with pytest.raises(ValueError, match="differs in lr"):
        ppgen.fit(small_vae(), binary, out=tmp_path / "run", resume=True, **{**SETTINGS, "lr": 0.1})
    with pytest.raises(ValueError, match="differs in data"):
        ppgen.fit(small_vae(), 1 - binary, out=tmp_path / "run", resume=True, **SETTINGS)


def gaussian_pair():
    """A (model_fn, guide_fn) pair: z_n ~ N(0, 1), x_n ~ N(loc + z_n, 1); q(z_n | x_n) = N(x_n w, 1)."""
    def model(x):
        loc = pyro.param("loc", torch.zeros(x.shape[-1]))
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(torch.zeros(x.shape[0], 1), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(loc + z, 1.0).to_event(1), obs=x)

    def guide(x):
        w = pyro.param("w", torch.zeros(x.shape[-1], 1))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(x @ w, 1.0).to_event(1))
    return model, guide


def test_a_run_folder_that_names_a_moved_class_resumes_bitwise(tmp_path):
    """The run folder of a function pair written before ppgen/ was grouped into rooms names the pair's program by
    its old path, ppgen.program:PyroFunctions, in its manifest and its checkpoint: it resumes all the same."""
    x = torch.randn(64, 3, generator=torch.Generator().manual_seed(0))
    pyro.clear_param_store()
    whole = ppgen.fit(gaussian_pair(), x, inference=Scripted(), **SETTINGS)
    CALLS.clear()
    backend, run = Scripted(signal_at=5, signum=signal.SIGTERM), tmp_path / "run"
    with pytest.raises(Interrupted):
        ppgen.fit(gaussian_pair(), x, inference=backend, out=run, checkpoint_every=2, **SETTINGS)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["config"]["model"] == "ppgen.program.protocol:PyroFunctions"
    manifest["config"]["model"] = "ppgen.program:PyroFunctions"
    (run / "manifest.json").write_text(json.dumps(manifest))
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    state["config"]["model"] = "ppgen.program:PyroFunctions"
    torch.save(state, run / "checkpoint.pt")
    manifest["files"]["checkpoint.pt"] = digest(run / "checkpoint.pt")  # as the earlier ppgen recorded it
    (run / "manifest.json").write_text(json.dumps(manifest))
    resumed = ppgen.fit(gaussian_pair(), x, inference=backend, out=run, checkpoint_every=2, resume=True, **SETTINGS)
    assert same_parameters(resumed.model, whole.model) and resumed.history == whole.history
    manifest["config"]["model"] = "ppgen.program:Elsewhere"  # a path that no class moved from is another program
    (run / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="differs in model"):
        ppgen.fit(gaussian_pair(), x, inference=backend, out=run, checkpoint_every=2, resume=True, **SETTINGS)


def test_a_finished_run_is_kept_unless_overwritten(binary, tmp_path):
    run = tmp_path / "run"
    first = ppgen.fit(small_vae(), binary, out=run, **SETTINGS)
    before = (run / "fit.pt").read_bytes()
    with pytest.raises(FileExistsError, match="overwrite"):
        ppgen.fit(small_vae(), binary, out=run, **SETTINGS)
    assert (run / "fit.pt").read_bytes() == before
    (run / ".tmp-abc-checkpoint.pt").write_bytes(b"the user's own")  # a name ppgen's temporaries once had
    again = ppgen.fit(small_vae(), binary, out=run, overwrite=True, **SETTINGS)
    assert same_parameters(first.model, again.model)
    assert [p.name for p in run.glob(".tmp-*")] == [".tmp-abc-checkpoint.pt"]
    assert (run / ".tmp-abc-checkpoint.pt").read_bytes() == b"the user's own"
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["complete"] and set(manifest["files"]) == {"checkpoint.pt", "fit.pt"}


@pytest.mark.parametrize("bad, reason", [(math.nan, "the loss is nan"), (math.inf, "the loss is inf"),
                                         (1e12, "the loss jumped")])
@pytest.mark.usefixtures("each_guard")
def test_divergence_stops_at_its_step_with_the_last_good_model(binary, bad, reason):
    """NaN, infinity and a finite blow-up each stop training at that step; the model is as it was at the step
    before (the last the guard passed), in eval mode, and the history so far is on the error."""
    model = small_vae()
    with pytest.raises(Diverged, match=rf"step 11 \(epoch 3\): {reason}.*lower lr") as error:
        ppgen.fit(model, binary, inference=Scripted(bad_at=(11,), bad=bad), **SETTINGS)
    assert error.value.step == 11 and error.value.epoch == 3 and len(error.value.history) == 2
    assert same_parameters_dict(model.state_dict(), CALLS[9]) and not model.training
    assert set(error.value.terms) == {"log q(z)", "log p(z)", "log p(x)"}  # the sample sites, not the plate's


def same_parameters_dict(a: dict, b: dict) -> bool:
    return all(torch.equal(a[name], b[name]) for name in b)


@pytest.mark.usefixtures("each_guard")
def test_a_non_finite_gradient_is_caught(binary):
    """A finite loss with a NaN gradient (the sqrt of 0 has an infinite derivative, times 0 is NaN)."""

    @dataclass(frozen=True, kw_only=True)
    class NaNGradient(inference.ELBO):
        def loss(self, module, structure, x):
            loss = super().loss(module, structure, x)
            return loss + 0 * torch.sqrt(loss * 0)

    with pytest.raises(Diverged, match=r"step 1 \(epoch 1\): the gradient norm is nan"):
        ppgen.fit(small_vae(), binary, inference=NaNGradient(), **SETTINGS)


@pytest.mark.usefixtures("each_guard")
def test_on_nan_skip_counts_the_skipped_batches(binary):
    fit = ppgen.fit(small_vae(), binary, inference=Scripted(bad_at=(2, 7)), on_nan="skip", **SETTINGS)
    assert fit.skipped == 2 and len(fit.history) == 3 and all(math.isfinite(v) for v in fit.history)


def test_the_skipped_count_is_saved_and_a_fit_saved_without_it_loads_with_none(binary, tmp_path):
    fit = ppgen.fit(small_vae(), binary, **SETTINGS)
    fit.skipped = 3
    fit.save(tmp_path / "fit.pt")
    assert ppgen.load(tmp_path / "fit.pt").skipped == 3
    state = torch.load(tmp_path / "fit.pt", weights_only=True)
    del state["skipped"]
    torch.save(state, tmp_path / "old.pt")
    assert ppgen.load(tmp_path / "old.pt").skipped == 0
    state["skipped"] = -1
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match=r"bad.pt: field 'skipped' is damaged"):
        ppgen.load(tmp_path / "bad.pt")


@pytest.mark.usefixtures("each_guard")
def test_adam_at_a_huge_learning_rate_is_caught():
    """The issue's case: Adam at lr=1e6 used to return "successfully" with a loss of 8e31."""
    x = torch.randn(256, 4, generator=torch.Generator().manual_seed(0))
    with pytest.raises(Diverged, match="diverged at step"):
        ppgen.fit(models.GMM(x_dim=4, n_components=2), x, lr=1e6, epochs=20, batch_size=32, progress=False)


@pytest.mark.usefixtures("each_guard")
def test_the_guard_can_be_turned_off_for_jumps(binary):
    fit = ppgen.fit(small_vae(), binary, inference=Scripted(bad_at=(11,), bad=1e12), divergence_factor=None,
                    **SETTINGS)
    assert len(fit.history) == 3


@pytest.mark.parametrize("backend, on_nan, skipped", [
    (Scripted(), "raise", 0), (Scripted(bad_at=(2, 7)), "skip", 2),
    (Scripted(bad_at=(3, 11), bad=1e12), "skip", 1),  # the jump at step 3 comes before the test's warm-up
])
def test_the_device_guard_trains_bitwise_as_the_host_guard(binary, monkeypatch, backend, on_nan, skipped):
    """Judged on the device and read back once an epoch, the same steps are taken and skipped: the same history,
    skipped count and parameters, bit for bit."""
    host = ppgen.fit(small_vae(), binary, inference=backend, on_nan=on_nan, **SETTINGS)
    CALLS.clear()
    monkeypatch.setattr(ppgen.training.guard, "DEFERRED_DEVICES", ("cpu",))
    device = ppgen.fit(small_vae(), binary, inference=backend, on_nan=on_nan, **SETTINGS)
    assert device.history == host.history and device.skipped == host.skipped == skipped
    assert same_parameters(device.model, host.model)


def batch_normed_vae():
    """The small VAE with a BatchNorm in its encoder: buffers that every training forward pass moves."""
    vae = small_vae()
    vae.encoder = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU(),
                                      torch.nn.Linear(8, 4))
    return vae


@pytest.mark.parametrize("build", [small_vae, batch_normed_vae])
@pytest.mark.parametrize("bad_at, bad", [((6,), math.nan), ((11,), 1e12), ((4, 11), math.inf)])
def test_the_device_guard_raises_as_the_host_guard(binary, monkeypatch, build, bad_at, bad):
    """A divergence read back at the epoch's end, steps after it run: the same error (step, message, per-site
    terms, loss) and the same parameters and buffers as the host guard's, raised at the step."""
    errors, models_ = [], []
    for deferred in ((), ("cpu",)):
        monkeypatch.setattr(ppgen.training.guard, "DEFERRED_DEVICES", deferred)
        models_.append(build())
        CALLS.clear()
        with pytest.raises(Diverged) as error:
            ppgen.fit(models_[-1], binary, inference=Scripted(bad_at=bad_at, bad=bad), **SETTINGS)
        errors.append(error.value)
    host, device = errors
    assert (str(device), device.step, device.terms, device.history) == (str(host), host.step, host.terms, host.history)
    assert device.loss == host.loss or math.isnan(device.loss) and math.isnan(host.loss)
    assert same_parameters(*models_)  # the state dicts: parameters and buffers


class ReadBacks(TorchDispatchMode):
    """Counts the times the host waits for a tensor's device: on CPU, the reads of its values (item, bool, float,
    tolist), on CUDA every synchronising operation (CUDA's sync debug mode)."""

    def __init__(self, monkeypatch, device):
        super().__init__()
        self.count, self.device = 0, device
        tolist = torch.Tensor.tolist

        def counted(tensor):
            self.count += device == "cpu"
            return tolist(tensor)

        monkeypatch.setattr(torch.Tensor, "tolist", counted)  # a CPU tensor's tolist reads without dispatching

    def __enter__(self):
        if self.device == "cuda":
            self.warnings = warnings.catch_warnings(record=True)
            self.caught = self.warnings.__enter__()
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
        return super().__enter__()

    def __exit__(self, *exc):
        super().__exit__(*exc)
        if self.device == "cuda":
            torch.cuda.set_sync_debug_mode("default")
            self.count += sum("synchroniz" in str(w.message) for w in self.caught)
            self.warnings.__exit__(*exc)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += self.device == "cpu" and func is torch.ops.aten._local_scalar_dense.default
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device"))])
def test_the_device_guard_reads_the_loss_back_once_an_epoch(binary, monkeypatch, device):
    """The host waits as often in an epoch of 16 steps as in one of 8 under the device guard (on CPU twice: the
    epoch's record, the finiteness of the parameters), where the host guard reads each step's loss back."""
    data = torch.cat([binary, binary])

    def waits_per_epoch(batch_size):
        counts = []
        for epochs in (2, 4):
            with ReadBacks(monkeypatch, device) as counter:
                ppgen.fit(small_vae(), data, epochs=epochs, batch_size=batch_size, device=device, progress=False)
            counts.append(counter.count)
        return (counts[1] - counts[0]) / 2

    monkeypatch.setattr(ppgen.training.guard, "DEFERRED_DEVICES", ("cpu", "cuda"))
    per_epoch = waits_per_epoch(16)
    assert waits_per_epoch(8) == per_epoch and (per_epoch == 2 or device == "cuda")  # CUDA: the order's copy too
    monkeypatch.setattr(ppgen.training.guard, "DEFERRED_DEVICES", ())
    assert waits_per_epoch(8) - waits_per_epoch(16) == 16 - 8


def test_the_guard_is_judged_on_the_device_only_where_it_leaves_the_model_as_the_host_guard(monkeypatch):
    """The fused Adam skips an update whole; the fused SGD would leave a momentum buffer unset, and a distributed
    step reads back anyway."""
    vae, state = small_vae(), RunState()

    def kind(module=vae, optimizer=None, distributed=False):
        optimizer = optimizer or torch.optim.Adam(module.parameters(), fused=True)
        return type(guard_for(module, optimizer, state, "raise", 100.0, distributed=distributed))

    assert kind() is Guard  # CPU: reading back is free
    monkeypatch.setattr(ppgen.training.guard, "DEFERRED_DEVICES", ("cpu",))
    assert kind() is DeviceGuard
    assert kind(optimizer=torch.optim.AdamW(vae.parameters(), fused=True)) is DeviceGuard
    assert kind(optimizer=torch.optim.Adam(vae.parameters())) is Guard
    assert kind(optimizer=torch.optim.SGD(vae.parameters(), momentum=0.9, fused=True)) is Guard
    assert kind(module=batch_normed_vae()) is DeviceGuard
    assert kind(distributed=True) is Guard


SCRIPT = """
import ppgen
from ppgen import datasets, inference, models
train = datasets.digits(split="train", binarize=True)[:128]
model = models.VAE(x_dim=64, z_dim=2, hidden=(8,))
fit = ppgen.fit(model, train, inference=inference.IWAE(k=2), epochs=1, batch_size=64, progress=False)
print(fit.history[0], fit.log_prob(train[:8], k=3).sum().item())
"""


@pytest.mark.slow
def test_a_script_prints_the_same_numbers_in_fresh_processes():
    """ppgen seeds the RNGs on first use, so the initial weights drawn before `fit` repeat too."""
    runs = [subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True).stdout
            for _ in range(2)]
    assert runs[0] == runs[1] and runs[0].strip()


def test_ppgen_seed_repeats_the_initial_weights():
    ppgen.seed(3)
    a = models.VAE(x_dim=4, z_dim=2, hidden=(4,))
    ppgen.seed(3)
    b = models.VAE(x_dim=4, z_dim=2, hidden=(4,))
    assert same_parameters(a, b)
