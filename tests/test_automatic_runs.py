"""``compile="auto"`` in a run: the shapes it compiles take the default Adam's update inside the step (as
``compile=True`` does), the others torch's fused Adam, in one fit; the guard skips and restores bitwise whichever a
step took; checkpoints resume across ``compile`` settings; the paths the rule settled go into the checkpoint, and a
resumed run takes them without probing, ending bitwise as the run never stopped.

The rule runs on a fake clock with break-evens of a few steps (``test_automatic``), and inductor's compilation is
the traced graph itself (``test_update``): every part of the compiled path but the C++ compilation."""

from __future__ import annotations

import logging
import math
import os
import signal
import warnings
from dataclasses import dataclass

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensor

import ppgen
from ppgen import inference
from ppgen.program import automatic, fastpath
from ppgen.run.signals import Interrupted
from ppgen.training import loop
from ppgen.training.guard import Diverged
from ppgen.training.step import Gradients
from ppgen.training.update import AdamUpdate
from programs import coin_rows, small_vae
from run_files import record_again
from test_automatic import fake_clock, private_cache, quick_rule
from test_update import BadRow

pytestmark = pytest.mark.usefixtures("one_thread")

#: 40 rows in batches of 16: two of 16 rows and one of 8 an epoch.
SETTINGS = dict(batch_size=16, progress=False)


@pytest.fixture(autouse=True)
def compiling(monkeypatch, tmp_path):
    """The rule on a fake clock, whose compilations repay at once, in a cache folder of the test's own; inductor's
    compilation stands for itself as the traced graph. A shape then goes plain (its calls 1-4), captured (5-8), and
    compiled (9: traced again with the update, 10: compiled, 11-13: timed; settled there)."""
    private_cache(monkeypatch, tmp_path)
    quick_rule(monkeypatch)
    monkeypatch.setattr(automatic, "COLD_COMPILE_TRACES", 0.0)
    monkeypatch.setattr(fastpath, "_inductor", lambda graph, inputs: graph)
    return fake_clock(monkeypatch)


@pytest.fixture
def steps(monkeypatch):
    """Each step's path (``compile`` at the call) and the parameters before it, cloned, in the order of the steps."""
    seen = []
    call = Gradients.__call__

    def recording(self, batch):
        seen.append((self.compile, len(batch), [p.detach().clone() for p in self.params]))
        return call(self, batch)

    monkeypatch.setattr(Gradients, "__call__", recording)
    return seen


@pytest.fixture
def updates(monkeypatch):
    """How many steps each kind of update made: the update computed in the step, applied by the guard
    (``"in step"``), and torch's own ``Adam.step()`` (``"torch"``)."""
    counts = {"in step": 0, "torch": 0}
    apply, step = AdamUpdate.apply, torch.optim.Adam.step

    def applying(self, outputs, good):
        counts["in step"] += 1
        return apply(self, outputs, good)

    def stepping(self, *args, **kwargs):
        counts["torch"] += 1
        return step(self, *args, **kwargs)

    monkeypatch.setattr(AdamUpdate, "apply", applying)
    monkeypatch.setattr(torch.optim.Adam, "step", stepping)
    return counts


def auto_choices(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "ppgen.program.automatic"]


def test_the_compiled_shapes_of_an_auto_fit_take_the_update_into_the_step(steps, updates):
    x = coin_rows(40)
    auto = ppgen.fit(small_vae(), x, epochs=12, **SETTINGS)
    paths = [path for path, _, _ in steps]
    assert {rows: path for path, rows, _ in steps[-3:]} == {16: True, 8: True}  # both shapes compiled, in the end
    assert updates == {"in step": paths.count(True), "torch": len(paths) - paths.count(True)}
    assert 0 < paths.count(True) < len(paths)
    compiled = ppgen.fit(small_vae(), x, epochs=12, compile=True, **SETTINGS)
    torch.testing.assert_close(torch.tensor(auto.history), torch.tensor(compiled.history), rtol=1e-6, atol=0)
    for a, b in zip(compiled.model.parameters(), auto.model.parameters()):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)


def test_a_skipped_step_of_either_path_changes_nothing(steps, tmp_path):
    """Row 5 makes its batch's loss NaN: each skipped step, compiled or not, leaves the parameters bit for bit, and
    Adam counts the good steps only."""
    fit = ppgen.fit(small_vae(), coin_rows(40), inference=BadRow(), epochs=12, on_nan="skip", out=tmp_path / "run",
                    **SETTINGS)
    assert fit.skipped == 12  # row 5 in one batch an epoch
    after = [*(params for _, _, params in steps[1:]), [p.detach() for p in fit.model.parameters()]]
    unchanged = [path for (path, _, before), now in zip(steps, after) if all(map(torch.equal, before, now))]
    assert len(unchanged) == 12 and True in unchanged and "capture" in unchanged  # skipped steps of both paths
    saved = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["optimizer"]["state"]
    assert {float(entry["step"]) for entry in saved.values()} == {36 - 12}


def test_a_compiled_shape_whose_traced_update_disagrees_goes_back_to_its_captured_graph(monkeypatch, caplog):
    """The update traced into the graph 1% off (on fake tensors only: the check's own update is Adam's): the check
    of that graph against the plain step catches it, and the shape replays its captured graph, without a warning."""
    new = AdamUpdate.new

    def off(self, params, grads, state):
        outputs = new(self, params, grads, state)
        return [outputs[0] * 1.01, *outputs[1:]] if isinstance(params[0], FakeTensor) else outputs

    monkeypatch.setattr(AdamUpdate, "new", off)
    with caplog.at_level(logging.INFO, logger="ppgen.program.automatic"), warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = ppgen.fit(small_vae(), coin_rows(40), epochs=12, **SETTINGS)
    assert any("batches of 16 rows replay the captured graph, uncompiled: the captured step's update of parameter 0 "
               "differs" in m for m in auto_choices(caplog))
    assert len(fit.history) == 12


@dataclass(frozen=True, kw_only=True)
class Poisoned(inference.ELBO):
    """The ELBO plus the program's buffer ``poison`` (0, until a callback makes it NaN) on batches of ``rows`` rows:
    a bad step that a graph holds, at a step of the test's choosing."""

    rows: int = 16

    def loss(self, module, structure, batch):
        loss = super().loss(module, structure, batch)
        return loss + module.poison if len(batch) == self.rows else loss


@pytest.mark.parametrize("rows, bad, before", [(16, True, "capture"), (8, "capture", True)],
                         ids=["a compiled step after a captured one", "a captured step after a compiled one"])
def test_a_diverged_auto_fit_holds_the_parameters_of_its_last_good_step(steps, rows, bad, before):
    """Poisoned from epoch 7 on: the bad step is the first of its shape in epoch 7 (the 16-row shape compiled from
    its 9th call, the 8-row one still captured); the model holds, bit for bit, the parameters at which the loss of
    the step before was computed, whichever update that step took."""
    model = small_vae()
    model.register_buffer("poison", torch.zeros(()))

    def poison(end):
        if end.epoch == 6:
            model.poison.fill_(math.nan)

    with pytest.raises(Diverged, match=r"diverged at step \d+ \(epoch 7\): the loss is nan") as error:
        ppgen.fit(model, coin_rows(40), inference=Poisoned(rows=rows), epochs=12, callbacks=[poison], **SETTINGS)
    step = error.value.step
    assert len(steps) == step and steps[step - 1][:2] == (bad, rows) and steps[step - 2][0] == before
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), steps[step - 2][2], strict=True))


@pytest.fixture
def stop_at(monkeypatch):
    """Sends the next fit a SIGINT after the given step (between checkpoints), as a user's Ctrl-C."""
    step = loop.step

    def arm(at):
        def stepping(gradients, guard, batch, state, **options):
            step(gradients, guard, batch, state, **options)
            if state.step == at:
                monkeypatch.setattr(loop, "step", step)
                os.kill(os.getpid(), signal.SIGINT)

        monkeypatch.setattr(loop, "step", stepping)

    return arm


@pytest.mark.parametrize("first, then", [("auto", False), ("auto", True), (True, "auto"), (False, "auto")])
def test_a_run_resumes_across_compile_settings(stop_at, tmp_path, first, then):
    """Stopped at step 28 (the 16-row shape compiled, with the update in its step, the 8-row one captured) and
    resumed under another setting, a run ends as a plain run never stopped, to float rounding."""
    x, run = coin_rows(40), tmp_path / "run"
    whole = ppgen.fit(small_vae(), x, epochs=12, compile=False, **SETTINGS)
    stop_at(28)
    with pytest.raises(Interrupted, match="SIGINT at step 28"):
        ppgen.fit(small_vae(), x, epochs=12, out=run, compile=first, checkpoint_every=5, **SETTINGS)
    resumed = ppgen.fit(small_vae(), x, epochs=12, out=run, resume=True, compile=then, checkpoint_every=5, **SETTINGS)
    torch.testing.assert_close(torch.tensor(resumed.history), torch.tensor(whole.history), rtol=1e-5, atol=0)
    for a, b in zip(whole.model.parameters(), resumed.model.parameters()):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)


def test_an_auto_run_resumes_on_its_settled_paths_bitwise(stop_at, monkeypatch, tmp_path, caplog):
    """Stopped at step 42, after both shapes settled compiled, and resumed: the checkpoint holds the settled paths,
    the resumed run takes them without probing, and ends with the very parameters and history of a run never
    stopped (the compiled step's first calls after the resume, which trace and compile, give the plain step's
    floats, as the graph does here)."""
    x, run = coin_rows(40), tmp_path / "run"
    whole = ppgen.fit(small_vae(), x, epochs=16, **SETTINGS)
    private_cache(monkeypatch, tmp_path / "again")  # no record of the first fit's compilations: the same choices
    stop_at(42)
    with pytest.raises(Interrupted, match="SIGINT at step 42"):
        ppgen.fit(small_vae(), x, epochs=16, out=run, checkpoint_every=5, **SETTINGS)
    saved = torch.load(run / "checkpoint.pt", weights_only=True)
    assert saved["compile_choices"] == {16: True, 8: True}
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="ppgen.program.automatic"):
        resumed = ppgen.fit(small_vae(), x, epochs=16, out=run, resume=True, checkpoint_every=5, **SETTINGS)
    assert sorted(auto_choices(caplog)) == [f"compile='auto': batches of {rows} rows take the path settled before "
                                            f"the fit was resumed: True" for rows in (16, 8)]
    assert resumed.history == whole.history
    assert all(torch.equal(a, b) for a, b in zip(whole.model.parameters(), resumed.model.parameters(), strict=True))


def test_a_checkpoint_without_settled_paths_resumes_and_probes_again(stop_at, tmp_path, caplog):
    """A checkpoint written before the settled paths were saved (none in it) loads; its run probes each shape again.
    A damaged record of them is refused, naming the field."""
    x, run = coin_rows(40), tmp_path / "run"
    stop_at(30)
    with pytest.raises(Interrupted):
        ppgen.fit(small_vae(), x, epochs=16, out=run, checkpoint_every=5, **SETTINGS)
    saved = torch.load(run / "checkpoint.pt", weights_only=True)
    assert saved["compile_choices"] == {16: True}
    torch.save({**saved, "compile_choices": {16: "fast"}}, run / "checkpoint.pt")
    record_again(run)
    with pytest.raises(ValueError, match="field 'compile_choices' is damaged"):
        ppgen.fit(small_vae(), x, epochs=16, out=run, resume=True, checkpoint_every=5, **SETTINGS)
    del saved["compile_choices"]
    torch.save(saved, run / "checkpoint.pt")
    record_again(run)
    with caplog.at_level(logging.INFO, logger="ppgen.program.automatic"):
        resumed = ppgen.fit(small_vae(), x, epochs=16, out=run, resume=True, checkpoint_every=5, **SETTINGS)
    assert len(resumed.history) == 16
    assert any("batches of 16 rows are captured" in m for m in auto_choices(caplog))
