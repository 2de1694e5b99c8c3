"""The default Adam's update inside the compiled step (ppgen.training.update): torch's own Adam, up to float rounding;
applied by the guard by swapping tensors, so that a skipped step changes nothing and a diverged run holds the very
parameters of its last good step; checked against the plain step; resumable with torch's optimiser and back.

Most tests compile with inductor replaced by the traced graph itself (``uncompiled``): every part of the compiled
path but the C++ compilation, in a second; one slow test compiles for real."""

from __future__ import annotations

import math
import os
import signal
import warnings
from dataclasses import dataclass

import pytest
import torch

import ppgen
from ppgen import inference
from ppgen.program import fastpath
from ppgen.program.fastpath import FastPathFallback
from ppgen.run.signals import Interrupted
from ppgen.training import loop
from ppgen.training.guard import Diverged
from ppgen.training.step import Gradients
from ppgen.training.update import AdamUpdate
from programs import coin_rows, small_vae

pytestmark = pytest.mark.usefixtures("one_thread")

SETTINGS = dict(epochs=3, batch_size=16, progress=False)


@pytest.fixture
def recorded(monkeypatch):
    """The parameters before each step's loss, cloned, in the order of the steps."""
    seen = []
    call = Gradients.__call__

    def recording(self, batch):
        seen.append([p.detach().clone() for p in self.params])
        return call(self, batch)

    monkeypatch.setattr(Gradients, "__call__", recording)
    return seen


@dataclass(frozen=True, kw_only=True)
class BadRow(inference.ELBO):
    """The ELBO, NaN on every batch that holds row ``row`` of the data: a bad step a graph can hold."""

    row: int = 5

    def loss(self, module, structure, batch):
        loss = super().loss(module, structure, batch)
        return loss + torch.where((batch.rows == self.row).any(), math.nan, 0.0)


def adam_steps(optimizer_options: dict, steps: int = 4) -> tuple[list[torch.Tensor], list[torch.Tensor], dict]:
    """Parameters after ``steps`` of torch's Adam (with ``optimizer_options``) and of AdamUpdate applied, on the same
    gradients; and torch's state_dict."""
    generator = torch.Generator().manual_seed(0)
    start = [torch.randn(5, 3, generator=generator), torch.randn(3, generator=generator)]
    grads = [[torch.randn(p.shape, generator=generator) for p in start] for _ in range(steps)]
    theirs = [torch.nn.Parameter(p.clone()) for p in start]
    ours = [torch.nn.Parameter(p.clone()) for p in start]
    optimizer = torch.optim.Adam(theirs, lr=0.01, **optimizer_options)
    update = AdamUpdate.of(torch.optim.Adam(ours, lr=0.01, **optimizer_options), ours)
    good = [p.detach().clone() for p in ours]
    for step_grads in grads:
        for p, g in zip(theirs, step_grads):
            p.grad = g
        optimizer.step()
        update.apply(update.new([p.detach() for p in ours], step_grads, update.state()), good)
    return theirs, ours, (optimizer.state_dict(), update.optimizer.state_dict())


@pytest.mark.parametrize("options", [dict(fused=True), dict(foreach=True), dict(fused=True, weight_decay=0.1),
                                     dict(betas=(0.5, 0.9), eps=1e-3)])
def test_the_update_is_torchs_adam_and_keeps_its_state_dict(options):
    theirs, ours, (their_state, our_state) = adam_steps(options)
    for a, b in zip(theirs, ours):
        torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-7)
    assert their_state["param_groups"] == our_state["param_groups"]
    for i, state in their_state["state"].items():
        for name, value in state.items():
            mine = our_state["state"][i][name]
            assert (mine.dtype, mine.device, mine.shape) == (value.dtype, value.device, value.shape)
            torch.testing.assert_close(mine, value, rtol=1e-6, atol=1e-9)


@pytest.mark.usefixtures("float64")
@pytest.mark.parametrize("options", [dict(fused=True), dict(foreach=True)])
def test_the_update_keeps_torchs_state_in_float64(options):
    """float64 parameters: torch keeps a fused Adam's step count in float32, the others' in float64."""
    theirs, ours, (their_state, our_state) = adam_steps(options)
    for a, b in zip(theirs, ours):
        torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-14)
    for i, state in their_state["state"].items():
        assert {name: (value.dtype, value.device) for name, value in state.items()} == \
            {name: (value.dtype, value.device) for name, value in our_state["state"][i].items()}


@pytest.mark.parametrize("build", [
    lambda ps: torch.optim.AdamW(ps), lambda ps: torch.optim.Adam(ps, amsgrad=True),
    lambda ps: torch.optim.Adam(ps, maximize=True), lambda ps: torch.optim.Adam(ps, lr=torch.tensor(0.01)),
    lambda ps: torch.optim.Adam([{"params": ps[:1]}, {"params": ps[1:]}]), lambda ps: torch.optim.SGD(ps, lr=0.1),
    lambda ps: torch.optim.Adam(ps, decoupled_weight_decay=True),
], ids=["AdamW", "amsgrad", "maximize", "tensor lr", "two groups", "SGD", "decoupled decay"])
def test_other_optimisers_keep_their_own_step(build):
    params = list(small_vae().parameters())
    assert AdamUpdate.of(build(params), params) is None
    assert AdamUpdate.of(torch.optim.Adam(params), params) is not None
    assert AdamUpdate.of(torch.optim.Adam(params), params[::-1]) is None


def test_a_compiled_fit_takes_the_update_into_its_step_and_trains_as_the_plain_fit(uncompiled, applied):
    x = coin_rows()
    plain = ppgen.fit(small_vae(), x, **SETTINGS)
    assert not applied
    compiled = ppgen.fit(small_vae(), x, compile=True, **SETTINGS)
    assert len(applied) == 12  # every step's update, the checks against the plain step included
    torch.testing.assert_close(torch.tensor(compiled.history), torch.tensor(plain.history), rtol=1e-6, atol=0)
    for a, b in zip(plain.model.parameters(), compiled.model.parameters()):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("optim", [torch.optim.AdamW, torch.optim.SGD])
def test_a_compiled_fit_with_another_optimiser_updates_with_its_step(uncompiled, monkeypatch, optim):
    monkeypatch.setattr(AdamUpdate, "apply", lambda *args: pytest.fail("the default Adam's update was applied"))
    fit = ppgen.fit(small_vae(), coin_rows(), compile=True, optim=optim, **SETTINGS)
    assert len(fit.history) == 3 and all(math.isfinite(v) for v in fit.history)


@pytest.mark.parametrize("compile", [False, True])
def test_a_diverged_compiled_fit_holds_the_parameters_of_its_last_good_step(uncompiled, recorded, compile):
    """Row 5 makes its batch's loss NaN: the model holds, bit for bit, the parameters at which the loss of the step
    before was computed (the initial ones, where the first step is the bad one)."""
    model = small_vae()
    with pytest.raises(Diverged, match=r"diverged at step \d+ \(epoch 1\): the loss is nan") as error:
        ppgen.fit(model, coin_rows(), inference=BadRow(), compile=compile, **SETTINGS)
    step = error.value.step
    assert len(recorded) == step
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), recorded[max(step - 2, 0)], strict=True))


@pytest.mark.parametrize("compile", [False, True])
def test_a_skipped_compiled_step_changes_neither_the_parameters_nor_adams_state(uncompiled, recorded, compile,
                                                                                 tmp_path):
    fit = ppgen.fit(small_vae(), coin_rows(), inference=BadRow(), compile=compile, on_nan="skip", out=tmp_path / "run",
                    **SETTINGS)
    assert fit.skipped == 3  # row 5 in one batch an epoch
    after = [*recorded[1:], [p.detach() for p in fit.model.parameters()]]
    unchanged = [i for i, (a, b) in enumerate(zip(recorded, after)) if all(map(torch.equal, a, b))]
    assert len(unchanged) == 3  # each skipped step left the parameters bit for bit; every other moved them
    saved = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["optimizer"]["state"]
    assert {float(entry["step"]) for entry in saved.values()} == {12 - 3}  # Adam counted the good steps only


@pytest.fixture
def stop_at_step_6(monkeypatch):
    """Sends the next fit a SIGINT after its sixth step (mid-epoch, between checkpoints), as a user's Ctrl-C."""
    step = loop.step

    def stepping(gradients, guard, batch, state, **options):
        step(gradients, guard, batch, state, **options)
        if state.step == 6:
            monkeypatch.setattr(loop, "step", step)
            os.kill(os.getpid(), signal.SIGINT)

    return lambda: monkeypatch.setattr(loop, "step", stepping)


@pytest.mark.parametrize("first, then", [(True, False), (False, True), (True, True)])
def test_a_compiled_run_resumes_with_torchs_adam_and_back(uncompiled, stop_at_step_6, tmp_path, first, then):
    """A compiled run stopped and resumed without compile (torch's own fused Adam on the optimiser state the compiled
    step left), and the other way round, ends as a run never stopped, to float rounding."""
    x = coin_rows()
    whole = ppgen.fit(small_vae(), x, **SETTINGS)
    run = tmp_path / "run"
    stop_at_step_6()
    with pytest.raises(Interrupted, match="SIGINT at step 6"):
        ppgen.fit(small_vae(), x, out=run, compile=first, checkpoint_every=5, **SETTINGS)
    resumed = ppgen.fit(small_vae(), x, out=run, resume=True, compile=then, checkpoint_every=5, **SETTINGS)
    torch.testing.assert_close(torch.tensor(resumed.history), torch.tensor(whole.history), rtol=1e-6, atol=0)
    for a, b in zip(whole.model.parameters(), resumed.model.parameters()):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)


def test_a_wrong_update_in_the_compiled_graph_is_caught_by_the_check(monkeypatch):
    """The check of a compiled graph against the plain step compares the update too: one 1% off leaves the shape
    replaying its graph as traced."""
    count = len(list(small_vae().parameters()))

    def wrong(graph, inputs):
        def run(*flat):
            outputs = list(graph(*flat))
            outputs[-4 * count] = outputs[-4 * count] * 1.01  # the new value of parameter 0
            return outputs
        return run

    monkeypatch.setattr(fastpath, "_inductor", wrong)
    with pytest.warns(FastPathFallback, match="uncompiled: the captured step's update of parameter 0 differs"):
        fit = ppgen.fit(small_vae(), coin_rows(), compile=True, **SETTINGS)
    assert len(fit.history) == 3


@pytest.mark.slow
def test_the_compiled_update_trains_as_the_plain_fit(applied):
    x = coin_rows()
    plain = ppgen.fit(small_vae(), x, **SETTINGS)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FastPathFallback)
        compiled = ppgen.fit(small_vae(), x, compile=True, **SETTINGS)
    assert len(applied) == 12
    torch.testing.assert_close(torch.tensor(compiled.history), torch.tensor(plain.history), rtol=1e-5, atol=0)
