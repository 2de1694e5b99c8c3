"""An audit of Adam's update inside the compiled step (ppgen.training.update, ``compile=True``) against torch's own
``torch.optim.Adam`` stepping eagerly, on what users' programs hold: ``pyro.param`` parameters with constraints (kept
unconstrained), a parameter without a gradient at some steps, weight decay and other betas, a frozen parameter; and
a pyro.optim learning-rate scheduler, whose schedule a fit would lose, refused.

As in tests/test_update.py, inductor's compilation is replaced by the traced graph itself (``uncompiled``): the update
is computed in the graph all the same."""

from __future__ import annotations

import warnings

import pyro
import pyro.distributions as dist
import pytest
import torch
from torch import nn
from torch.distributions import constraints

import ppgen
from ppgen.program import fastpath
from ppgen.training.update import AdamUpdate

pytestmark = pytest.mark.usefixtures("one_thread")

ROWS = torch.randn(20, 3, generator=torch.Generator().manual_seed(0))
SETTINGS = dict(epochs=3, batch_size=8, seed=0, progress=False)  # batches of 8, 8 and 4 rows


def constrained_model(x):
    loc = pyro.param("loc", torch.zeros(3))
    scale = pyro.param("scale", torch.ones(3), constraint=constraints.positive)
    weights = pyro.param("weights", torch.ones(3) / 3, constraint=constraints.simplex)
    gain = pyro.param("gain", torch.tensor(0.5), constraint=constraints.interval(0.0, 2.0))
    with pyro.plate("data", len(x)):
        z = pyro.sample("z", dist.Normal(0.0, 1.0))
        pyro.sample("x", dist.Normal(loc + gain * z.unsqueeze(-1) * weights, scale).to_event(1), obs=x)


def constrained_guide(x):
    a = pyro.param("a", torch.tensor(0.1))
    s = pyro.param("s", torch.tensor(0.8), constraint=constraints.positive)
    with pyro.plate("data", len(x)):
        pyro.sample("z", dist.Normal(a * x.sum(-1), s))


class Branchy(nn.Module):
    """A local-latent program whose parameter ``extra`` is used only on batches of 8 rows (so it has no gradient on an
    epoch's last batch, of 4) and whose ``frozen`` offset does not train where ``frozen=True``."""

    def __init__(self, frozen=False):
        super().__init__()
        torch.manual_seed(0)
        self.decoder, self.encoder = nn.Linear(1, 3), nn.Linear(3, 2)
        self.extra = nn.Parameter(torch.tensor([0.3, -0.2, 0.1]))
        self.offset = nn.Parameter(torch.tensor([0.5, 0.5, 0.5]), requires_grad=not frozen)

    def model(self, x):
        with pyro.plate("data", len(x)):
            z = pyro.sample("z", dist.Normal(torch.zeros(1), 1.0).to_event(1))
            loc = self.decoder(z) + self.offset
            if len(x) == 8:
                loc = loc + self.extra
            pyro.sample("x", dist.Normal(loc, 1.0).to_event(1), obs=x)

    def guide(self, x):
        h = self.encoder(x)
        with pyro.plate("data", len(x)):
            pyro.sample("z", dist.Normal(h[:, :1], h[:, 1:].exp()).to_event(1))


def fits(make, tmp_path, **settings):
    """The same fit with torch's Adam stepping eagerly (compile=False) and with the update in the graph
    (compile=True), and the optimiser state each saved."""
    results = []
    for compile in (False, True):
        fit = ppgen.fit(make(), ROWS, compile=compile, out=tmp_path / str(compile), **SETTINGS, **settings)
        saved = torch.load(tmp_path / str(compile) / "checkpoint.pt", weights_only=True)["optimizer"]
        results.append((fit, saved))
    return results


def assert_same_run(eager, compiled):
    (plain, plain_state), (graph, graph_state) = eager, compiled
    torch.testing.assert_close(torch.tensor(graph.history), torch.tensor(plain.history), rtol=1e-6, atol=0)
    for (name, a), b in zip(plain.model.state_dict().items(), graph.model.state_dict().values(), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6, msg=name)
    assert plain_state["param_groups"] == graph_state["param_groups"]
    for index, state in plain_state["state"].items():
        for key, value in state.items():
            torch.testing.assert_close(graph_state["state"][index][key], value, rtol=1e-5, atol=1e-7)


def test_constrained_pyro_params_update_in_the_graph_as_torchs_adam(uncompiled, applied, tmp_path):
    """pyro.param with positive, simplex and interval constraints: their unconstrained values, Adam's m, v and step,
    and the losses of a compiled fit equal those of torch's Adam stepping eagerly."""
    eager, compiled = fits(lambda: (constrained_model, constrained_guide), tmp_path, lr=0.05)
    assert len(applied) == 9  # every step of the compiled fit, and none of the eager one
    assert_same_run(eager, compiled)
    weights = compiled[0].params["weights"]
    assert weights.sum().item() == pytest.approx(1.0) and bool((weights > 0).all())


def test_a_parameter_without_a_gradient_at_a_step_keeps_adams_state_as_torch_does(uncompiled, applied, tmp_path):
    """``extra`` has no gradient on each epoch's last batch (4 rows): torch's Adam leaves it and its m, v and step
    count alone there, and so does the update in the graph: its step count is 6 of 9, and the runs agree."""
    eager, compiled = fits(Branchy, tmp_path, lr=0.05)
    assert len(applied) == 9
    assert_same_run(eager, compiled)
    index = [name for name, _ in Branchy().named_parameters()].index("extra")
    assert {float(state["step"]) for i, state in compiled[1]["state"].items() if i != index} == {9.0}
    assert float(compiled[1]["state"][index]["step"]) == 6.0


def test_weight_decay_and_betas_of_a_pyro_adam_are_honoured_in_the_graph(uncompiled, applied, tmp_path):
    optim = pyro.optim.Adam({"lr": 0.05, "weight_decay": 0.1, "betas": (0.8, 0.95), "eps": 1e-6})
    eager, compiled = fits(Branchy, tmp_path, optim=optim)
    assert len(applied) == 9
    assert_same_run(eager, compiled)


@pytest.mark.filterwarnings("ignore::ppgen.program.fastpath.FastPathFallback")
def test_a_frozen_parameter_stays_as_it_was(uncompiled, tmp_path):
    """A parameter with requires_grad=False: neither fit moves it, and they agree on the others."""
    eager, compiled = fits(lambda: Branchy(frozen=True), tmp_path, lr=0.05)
    assert_same_run(eager, compiled)
    for fit, _ in (eager, compiled):
        assert torch.equal(fit.model.offset, torch.tensor([0.5, 0.5, 0.5]))


def test_the_update_skips_a_parameter_whose_gradient_is_none_as_torchs_adam():
    """Step by step, a parameter whose gradient is None at steps 2 and 3 (of 5): AdamUpdate's parameters and state
    equal torch's eager Adam's after every step."""
    generator = torch.Generator().manual_seed(1)
    start = [torch.randn(4, generator=generator), torch.randn(2, 3, generator=generator)]
    theirs, ours = [nn.Parameter(p.clone()) for p in start], [nn.Parameter(p.clone()) for p in start]
    optimizer = torch.optim.Adam(theirs, lr=0.1, weight_decay=0.01)
    update = AdamUpdate.of(torch.optim.Adam(ours, lr=0.1, weight_decay=0.01), ours)
    good = [p.detach().clone() for p in ours]
    for step in range(5):
        grads = [torch.randn(p.shape, generator=generator) for p in start]
        if step in (1, 2):
            grads[1] = None
        for p, g in zip(theirs, grads):
            p.grad = g
        optimizer.step()
        update.apply(update.new([p.detach() for p in ours], grads, update.state()), good)
        for a, b in zip(theirs, ours):
            torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-7)
        assert [float(optimizer.state[p]["step"]) for p in theirs] == \
               [float(update.optimizer.state[p]["step"]) for p in ours]
    assert float(update.optimizer.state[ours[1]]["step"]) == 3.0


def test_a_pyro_learning_rate_scheduler_is_refused_not_dropped():
    """Regression: pyro.optim.ExponentialLR({"optimizer": torch.optim.Adam, "optim_args": {"lr": 0.05}, "gamma": 0.5})
    was taken as Adam(lr=0.05) with its schedule silently lost (the learning rate stayed 0.05 every epoch). A fit never
    calls a scheduler's step(), so it says so, before any work."""
    scheduler = pyro.optim.ExponentialLR({"optimizer": torch.optim.Adam, "optim_args": {"lr": 0.05}, "gamma": 0.5})
    model = Branchy()
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(TypeError, match=r"optim: a pyro.optim learning-rate scheduler \(ExponentialLR\)"):
        ppgen.fit(model, ROWS, optim=scheduler, **SETTINGS)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_a_frozen_parameter_keeps_the_captured_step(tmp_path):
    """A parameter with requires_grad=False has no gradient in the traced graph either, so the graph agrees with the
    plain step and the fit keeps the captured path (no fall-back), with the plain fit's floats."""
    plain = ppgen.fit(Branchy(frozen=True), ROWS, compile=False, **SETTINGS)
    with warnings.catch_warnings():
        warnings.simplefilter("error", fastpath.FastPathFallback)
        captured = ppgen.fit(Branchy(frozen=True), ROWS, compile="capture", **SETTINGS)
    assert captured.history == plain.history
    assert torch.equal(captured.model.offset, torch.tensor([0.5, 0.5, 0.5]))


def test_a_parameter_unfrozen_by_a_callback_trains_on_the_captured_step(tmp_path):
    """Unfreezing a parameter between epochs traces the step again, with its gradient: the captured fit moves it
    exactly as the plain fit does."""

    def unfreeze(end):
        if end.epoch == 1:
            end.model.offset.requires_grad_(True)

    fits = [ppgen.fit(Branchy(frozen=True), ROWS, compile=compile, callbacks=[unfreeze], **SETTINGS)
            for compile in (False, "capture")]
    assert fits[1].history == fits[0].history
    assert torch.equal(fits[1].model.offset, fits[0].model.offset)
    assert not torch.equal(fits[1].model.offset, torch.tensor([0.5, 0.5, 0.5]))
