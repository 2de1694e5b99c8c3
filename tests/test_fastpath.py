"""The captured training step (ppgen.program.fastpath): the same loss and gradients as the plain step on the same draws,
for every model of the zoo under every backend that takes it and for the reference set of users' Pyro programs, and the
plain step, never a wrong answer, for a program that a trace cannot take."""

import contextlib
import copy
import math
import pickle
import warnings

import pyro
import pyro.distributions as dist
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from pyro_programs import CASES as PROGRAMS

import ppgen
from ppgen.objective.adversary import Adversary
from ppgen.program import fastpath
from ppgen.program.fastpath import FastPathFallback
from ppgen.program.inputs import Batch
from ppgen.program.protocol import as_module
from ppgen.program.structure import inspect
from ppgen.queries import density
from ppgen.queries.density import Estimates
from ppgen.training import registry
from ppgen.training.step import Gradients

pytestmark = pytest.mark.usefixtures("one_thread")

ZOO = sorted(registry.MODELS)
#: a two-player objective (a critic's) does not take the captured step: ppgen.fit refuses compile= for it.
BACKENDS = sorted(name for name, backend in registry.INFERENCE.items() if not issubclass(backend, Adversary))


@pytest.fixture(scope="module")
def data():
    pyro.set_rng_seed(1)
    return torch.bernoulli(torch.full((40, 6), 0.4))


def prepared(module, backend, x, rows=20):
    """The module, its structure and the backend ready for a step on the first ``rows`` points of ``x`` (of N = 40),
    or a skip where the backend refuses the model."""
    batch = Batch((x[:rows],), torch.arange(rows), len(x))
    if callable(getattr(module, "initialize", None)):
        module.initialize(x)
    structure = inspect(module, batch)
    try:
        backend.check(structure)
    except ValueError as refusal:
        pytest.skip(f"the backend refuses the model: {refusal}")
    module.train()
    return structure, batch


def step_results(gradients, batch, seed):
    pyro.set_rng_seed(seed)
    loss = gradients(batch)
    return loss, [None if p.grad is None else p.grad.clone() for p in gradients.params]


def assert_same_step(plain, fast, batch, seeds):
    for seed in seeds:
        (loss, grads), (fast_loss, fast_grads) = step_results(plain, batch, seed), step_results(fast, batch, seed)
        torch.testing.assert_close(fast_loss, loss, rtol=1e-5, atol=1e-6)
        assert [g is None for g in fast_grads] == [g is None for g in grads]
        for g, h in zip(grads, fast_grads):
            if g is not None:
                torch.testing.assert_close(h, g, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ZOO)
def test_the_captured_step_gives_the_plain_steps_loss_and_gradients(name, backend, data):
    module, objective = registry.MODELS[name](x_dim=6), registry.INFERENCE[backend]()
    structure, batch = prepared(module, objective, data)
    with pyro.validation_enabled(False):
        plain = Gradients(module, structure, objective, False)
        plain(batch)
        fast = Gradients(module, structure, objective, "capture")
        fast(batch)  # the first step of a batch shape traces it, and checks the graph against the plain step
        assert len(fast.capture_seconds) == 1 and not fast.fallbacks
        assert_same_step(plain, fast, batch, seeds=(2, 3))


@pytest.mark.parametrize("wrap", [lambda x: x, TensorDataset], ids=["in memory", "streamed"])
def test_a_fit_with_the_captured_step_has_the_plain_fits_history(data, wrap):
    histories = []
    for compile in (False, "capture"):
        torch.manual_seed(0)
        fit = ppgen.fit(registry.MODELS["vae"](x_dim=6), wrap(data), inference=ppgen.inference.IWAE(k=3), epochs=3,
                        batch_size=16, progress=False, compile=compile)  # two batch shapes: 16 and the last 8
        histories.append(fit.history)
    torch.testing.assert_close(torch.tensor(histories[1]), torch.tensor(histories[0]), rtol=1e-6, atol=0)


def test_the_capture_of_each_batch_shape_is_timed_and_logged(data, caplog):
    with caplog.at_level("INFO", logger="ppgen.program.fastpath"):
        ppgen.fit(registry.MODELS["vae"](x_dim=6), data, inference=ppgen.inference.ELBO(), epochs=2, batch_size=16,
                  progress=False, compile="capture")  # batch shapes 16 and the last 8, each captured once
    records = [record for record in caplog.records if record.name == "ppgen.program.fastpath"]
    assert [record.args[2] for record in records] == [((16, 6),), ((8, 6),)]
    assert all(record.args[1] == "step" and record.args[4] > 0 for record in records)


@pytest.mark.slow
def test_the_compiled_step_gives_the_plain_steps_loss_and_gradients(data):
    module, objective = registry.MODELS["vae"](x_dim=6), ppgen.inference.ELBO()
    structure, batch = prepared(module, objective, data)
    with pyro.validation_enabled(False):
        plain, fast = Gradients(module, structure, objective, False), Gradients(module, structure, objective, True)
        fast(batch)  # traced, and checked
        fast(batch)  # come back: compiled, and checked
        assert not fast.fallbacks and fast._graphs[next(iter(fast._graphs))].compiled
        assert_same_step(plain, fast, batch, seeds=(2,))


def test_a_graph_on_the_cpu_is_compiled_with_its_call_in_cpp_and_left_as_it_was(monkeypatch):
    graph = torch.fx.symbolic_trace(lambda x: (x.exp() + 1,))
    calls = []
    monkeypatch.setattr(torch._inductor, "compile", lambda gm, inputs, options: calls.append((gm, options)) or gm)
    fastpath._inductor(graph, [torch.zeros(3)])
    (compiled, options), = calls
    assert options == {"cpp_wrapper": True} and compiled is not graph and compiled.graph is not graph.graph


def test_a_compilation_that_fails_leaves_the_shape_replaying_the_traced_step(data, monkeypatch):
    def broken(graph, inputs):
        def run(*inputs):
            raise RuntimeError("inductor found no C++ compiler")
        return run

    module, objective = registry.MODELS["vae"](x_dim=6), ppgen.inference.ELBO()
    structure, batch = prepared(module, objective, data)
    monkeypatch.setattr(fastpath, "_inductor", broken)
    with pyro.validation_enabled(False):
        plain, fast = Gradients(module, structure, objective, False), Gradients(module, structure, objective, True)
        fast(batch)
        with pytest.warns(FastPathFallback, match="replay the traced step, uncompiled: .*no C\\+\\+ compiler"):
            fast(batch)
        assert not fast.fallbacks and list(fast.uncompiled) == list(fast._graphs)
        assert_same_step(plain, fast, batch, seeds=(3, 4))


class Branching(nn.Module):
    """A model whose Python control flow depends on the data's values: no single graph computes it."""

    def __init__(self) -> None:
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(6))

    def model(self, x):
        with pyro.plate("data", x.shape[0]):
            scale = 1.0 if float(x.sum()) > 50 else 2.0
            pyro.sample("x", dist.Normal(self.loc, scale).to_event(1), obs=x)


class Counting(nn.Module):
    """A model whose set of sites changes from call to call with Python state that no trace sees."""

    def __init__(self) -> None:
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(6))
        self.calls = 0

    def model(self, x):
        self.calls += 1
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", dist.Normal(self.loc, 1.0).to_event(1), obs=x)
            if self.calls % 3 == 0:
                pyro.factor("extra", -(self.loc - 1).square().sum().expand(x.shape[0]))


def test_data_dependent_control_flow_falls_back_to_the_plain_fit(data):
    histories = []
    for compile in (False, "capture"):
        torch.manual_seed(0)
        with pytest.warns(FastPathFallback, match="could not be traced") if compile else contextlib.nullcontext():
            fit = ppgen.fit(Branching(), data, epochs=2, batch_size=16, progress=False, compile=compile)
        histories.append(fit.history)
    assert histories[1] == histories[0]


def test_a_changing_set_of_sites_is_caught_by_the_check_and_falls_back(data, monkeypatch):
    monkeypatch.setattr(fastpath, "VERIFY_EVERY", 1)
    module, objective = Counting(), ppgen.inference.MLE()
    structure, batch = prepared(module, objective, data)
    fast = Gradients(module, structure, objective, "capture")
    with pytest.warns(FastPathFallback, match="differs from the plain step"), pyro.validation_enabled(False):
        losses = []
        for _ in range(4):
            pyro.set_rng_seed(0)
            losses.append(fast(batch))
    assert fast.fallbacks
    base = torch.distributions.Normal(0.0, 1.0).log_prob(batch.args[0]).sum(-1).mean().neg()
    # every loss returned is a plain step's: the model's term, with the extra factor (6 nats at loc = 0) or not
    for loss in losses:
        assert torch.isclose(loss, base) or torch.isclose(loss, base + 6)


@pytest.mark.usefixtures("float64")
@pytest.mark.filterwarnings("ignore:the program does not broadcast")
@pytest.mark.parametrize("backend", ["elbo", "iwae"])
@pytest.mark.parametrize("case", PROGRAMS, ids=[case.name for case in PROGRAMS])
def test_users_pyro_programs_give_the_plain_steps_loss_and_gradients(case, backend):
    """The reference set of Pyro programs (plain function pairs with a param store, modules, autoguides, enumerated
    and global latents): each step equal to the plain one, captured where the trace takes the program, else on the
    plain path with a warning saying why (a shape that depends on the data's values; a ``pyro.module`` whose
    parameters the program reads from the module itself, which the check against the plain step catches)."""
    if case.refused or (backend == "iwae" and case.iwae is None):
        pytest.skip("Pyro refuses the program, or IWAE is not per point for it")
    program, _, _ = case.make()
    module, args = as_module(program), case.data()
    batch = Batch(args, torch.arange(len(args[0])), len(args[0]))
    objective = registry.INFERENCE[backend]()
    try:
        structure = inspect(module, batch)
        objective.check(structure)
    except ValueError as refusal:
        pytest.skip(f"ppgen refuses the program: {refusal}")
    if next(module.parameters(), None) is None:
        pytest.skip("the program has no parameters to fit")
    with pyro.validation_enabled(False), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FastPathFallback)
        plain, fast = Gradients(module, structure, objective, False), Gradients(module, structure, objective, "capture")
        fast(batch)
        assert_same_step(plain, fast, batch, seeds=(2, 3))
    assert len(fast.capture_seconds) + len(fast.fallbacks) == 1
    shape = tuple(tuple(a.shape) for a in args)
    assert [str(w.message) for w in caught] == [f"compile='capture': batches of shape {shape} run on the plain path: "
                                                f"{why}" for why in fast.fallbacks.values()]
    for why in fast.fallbacks.values():
        assert why.startswith(("the step could not be traced: GuardOnDataDependentSymNode",
                               "the captured step's gradient of parameter"))


def test_a_fit_of_plain_functions_with_a_param_store_is_captured_and_equal(data):
    def model(x):
        loc = pyro.param("loc", torch.zeros(6))
        scale = pyro.param("scale", torch.ones(6), constraint=dist.constraints.positive)
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(loc, 1.0).to_event(1))
            pyro.sample("x", dist.Normal(z, scale).to_event(1), obs=x)

    def guide(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(pyro.param("m", torch.zeros(6)), 1.0).to_event(1))

    fast = ppgen.fit((model, guide), data, epochs=3, batch_size=16, progress=False, compile="capture")
    pyro.clear_param_store()
    plain = ppgen.fit((model, guide), data, epochs=3, batch_size=16, progress=False)
    torch.testing.assert_close(torch.tensor(fast.history), torch.tensor(plain.history), rtol=1e-6, atol=0)
    for name, value in plain.params.items():
        torch.testing.assert_close(fast.params[name], value, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("value, error", [("yes", ValueError), (1.5, TypeError), (None, TypeError)])
def test_a_bad_compile_argument_is_refused_before_any_work(value, error, data):
    module = registry.MODELS["vae"](x_dim=6)
    before = [p.clone() for p in module.parameters()]
    with pytest.raises(error, match="compile"):
        ppgen.fit(module, data, epochs=1, progress=False, compile=value)
    assert all(torch.equal(p, q) for p, q in zip(module.parameters(), before))


@pytest.mark.parametrize("name", ZOO)
def test_the_captured_log_p_estimate_gives_the_plain_one_on_the_same_draws(name, data):
    module = registry.MODELS[name](x_dim=6)
    if callable(getattr(module, "initialize", None)):
        module.initialize(data)
    batch = Batch((data[:20],), torch.arange(20), len(data))
    structure = inspect(module, batch)
    if structure.unguided:
        pytest.skip(f"no guide draws {structure.unguided}: log p(x) is not importance-sampled for this model")
    module.eval()
    with pyro.validation_enabled(False):
        plain, fast = Estimates(module, structure, 7, False), Estimates(module, structure, 7, "capture")
        for seed in (3, 4):  # the first call captures and checks the graph, the second replays it
            pyro.set_rng_seed(seed)
            expected = plain(batch)
            pyro.set_rng_seed(seed)
            got = fast(batch)
            assert got.shape == (7, 20)
            torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-4)
    assert not fast.fallbacks and len(fast.capture_seconds) == 1


def test_a_captured_query_in_chunks_gives_the_plain_querys_log_p(data, monkeypatch):
    monkeypatch.setattr(density, "PARTICLE_POINTS_PER_PASS", 8)  # passes of 8 particles x 1 point: k = 20
    fit = ppgen.fit(registry.MODELS["vae"](x_dim=6), data, epochs=2, batch_size=16, progress=False)
    estimates = []
    with warnings.catch_warnings():
        warnings.simplefilter("error", FastPathFallback)
        for compile in (False, "capture"):  # passes of 8, 8 and 4 particles: two graphs, each replayed per point
            torch.manual_seed(5)
            estimates.append(fit.log_prob(data[:6], k=20, compile=compile))
    torch.testing.assert_close(estimates[1], estimates[0], rtol=1e-5, atol=1e-5)


def test_a_captured_evaluation_gives_the_plain_evaluation(data, monkeypatch):
    monkeypatch.setattr(density, "PARTICLE_POINTS_PER_PASS", 16)  # passes of 16 and 4 particles, 1 point a chunk
    fit = ppgen.fit(registry.MODELS["vae"](x_dim=6), data, epochs=2, batch_size=16, progress=False)
    reports = []
    with warnings.catch_warnings():
        warnings.simplefilter("error", FastPathFallback)
        warnings.filterwarnings("ignore", message=".*k-hat", category=UserWarning)
        for compile in (False, "capture"):
            torch.manual_seed(7)
            reports.append(fit.evaluate(data[:5], k=20, compile=compile))
    for name in ("elbo", "iwae", "ess", "khat"):
        torch.testing.assert_close(getattr(reports[1], name), getattr(reports[0], name), rtol=1e-5, atol=1e-5,
                                   equal_nan=True)


def test_a_fits_later_queries_replay_the_graphs_its_first_query_captured(data, monkeypatch):
    monkeypatch.setattr(density, "PARTICLE_POINTS_PER_PASS", 8)
    fit = ppgen.fit(registry.MODELS["vae"](x_dim=6, likelihood="gaussian", scale=0.5), data, epochs=1, batch_size=16,
                    progress=False)
    traced = []
    trace = Estimates._trace
    monkeypatch.setattr(Estimates, "_trace",
                        lambda self, batch: traced.append(batch.args[0].shape) or trace(self, batch))
    for query in range(2):
        torch.manual_seed(5)
        estimate = fit.log_prob(data[:6], k=20, compile="capture")
        assert len(traced) == 2  # passes of 8 and 4 particles over chunks of 1 point: two graphs, the first query's
    torch.manual_seed(5)
    torch.testing.assert_close(estimate, fit.log_prob(data[:6], k=20), rtol=1e-5, atol=1e-5)
    fit.model.observation_model.log_scale = torch.full((6,), math.log(0.25))  # a new buffer: the kept graphs read
    torch.manual_seed(5)                                                       # the old one
    estimate = fit.log_prob(data[:6], k=20, compile="capture")
    assert len(traced) == 4
    torch.manual_seed(5)
    torch.testing.assert_close(estimate, fit.log_prob(data[:6], k=20), rtol=1e-5, atol=1e-5)


class ScaledPrior(nn.Module):
    """A model whose prior scale is a Python float: a captured graph holds it as a constant."""

    prior_scale = 1.0

    def __init__(self) -> None:
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(6))

    def model(self, x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(0.0, self.prior_scale).expand([6]).to_event(1))
            pyro.sample("x", dist.Normal(z, 1.0).to_event(1), obs=x)

    def guide(self, x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(self.loc + x / 2, 0.5).to_event(1))


def test_a_later_query_checks_the_kept_graphs_again_and_sees_a_changed_python_state(data):
    fit = ppgen.fit(ScaledPrior(), data, epochs=1, progress=False)
    estimates = []
    for scale in (1.0, 3.0):
        fit.model.prior_scale = scale
        for compile in ("capture", False):
            torch.manual_seed(5)
            estimates.append(fit.log_prob(data[:6], k=20, compile=compile))
    torch.testing.assert_close(estimates[0], estimates[1], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(estimates[0], estimates[2])
    torch.testing.assert_close(estimates[2], estimates[3], rtol=1e-5, atol=1e-5)
    torch.manual_seed(5)  # the out-of-date graph was dropped, not left to the plain path: this query traces anew
    torch.testing.assert_close(fit.log_prob(data[:6], k=20, compile="capture"), estimates[3], rtol=1e-5, atol=1e-5)
    (kept,) = fit._kept_passes().of(20, density.PARTICLE_POINTS_PER_PASS, "capture")
    assert not kept.fallbacks and kept._graphs


def test_a_fits_queries_follow_a_model_put_in_its_place(data):
    fit = ppgen.fit(registry.MODELS["vae"](x_dim=6), data, epochs=1, progress=False)
    fit.log_prob(data[:6], k=20, compile="capture")
    other = registry.MODELS["vae"](x_dim=6)
    fit.model = other
    for compile in (False, "capture"):
        torch.manual_seed(5)
        got = fit.log_prob(data[:6], k=20, compile=compile)
        torch.manual_seed(5)
        expected = density.importance_log_prob(other, fit.structure, Batch((data[:6],), torch.arange(6), len(data)), 20)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_a_fit_whose_queries_keep_graphs_pickles_and_copies_without_them(data):
    fit = ppgen.fit(registry.MODELS["vae"](x_dim=6), data, epochs=1, progress=False)
    fit.log_prob(data[:6], k=20, compile="capture")
    for other in (pickle.loads(pickle.dumps(fit)), copy.deepcopy(fit)):
        assert other._passes.module is other.model and not other._passes._estimates
        torch.manual_seed(5)
        got = other.log_prob(data[:6], k=20, compile="capture")
        torch.manual_seed(5)
        torch.testing.assert_close(got, other.log_prob(data[:6], k=20), rtol=1e-5, atol=1e-5)


def test_a_check_cut_short_keeps_no_graph_unchecked(data, monkeypatch):
    fit = ppgen.fit(registry.MODELS["vae"](x_dim=6), data, epochs=1, progress=False)
    plain = Estimates.plain
    calls = []

    def interrupted(self, batch):  # Ctrl-C while the first query compares its graph with the plain pass
        calls.append(batch)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return plain(self, batch)

    monkeypatch.setattr(Estimates, "plain", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fit.log_prob(data[:6], k=20, compile="capture")
    assert not any(estimate._graphs for estimate in fit._kept_passes().of(20, density.PARTICLE_POINTS_PER_PASS,
                                                                             "capture"))
    torch.manual_seed(5)
    got = fit.log_prob(data[:6], k=20, compile="capture")
    torch.manual_seed(5)
    torch.testing.assert_close(got, fit.log_prob(data[:6], k=20), rtol=1e-5, atol=1e-5)


class BranchingGuide(nn.Module):
    """A guide whose Python control flow depends on the data's values."""

    def __init__(self) -> None:
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(6))

    def model(self, x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(self.loc, 1.0).to_event(1))
            pyro.sample("x", dist.Normal(z, 1.0).to_event(1), obs=x)

    def guide(self, x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(x, 0.5 if float(x.sum()) > 50 else 1.0).to_event(1))


def test_a_query_that_cannot_be_traced_falls_back_to_the_plain_estimate(data):
    fit = ppgen.fit(BranchingGuide(), data, epochs=1, progress=False)
    torch.manual_seed(2)
    expected = fit.log_prob(data, k=10)
    torch.manual_seed(2)
    with pytest.warns(FastPathFallback, match="could not be traced"):
        assert torch.equal(fit.log_prob(data, k=10, compile="capture"), expected)


@pytest.mark.parametrize("value, error", [("yes", ValueError), (1, TypeError)])
def test_a_bad_compile_argument_to_a_query_is_refused(value, error, data):
    fit = ppgen.fit(registry.MODELS["vae"](x_dim=6), data, epochs=1, progress=False)
    with pytest.raises(error, match="compile"):
        fit.log_prob(data, k=10, compile=value)
    with pytest.raises(error, match="compile"):
        fit.iwae_bound(data, k=10, compile=value)


@pytest.mark.slow
def test_the_compiled_query_gives_the_plain_querys_log_p(data, monkeypatch):
    monkeypatch.setattr(density, "PARTICLE_POINTS_PER_PASS", 500)  # 4 chunks of 10 points: the second is compiled
    fit = ppgen.fit(registry.MODELS["vae"](x_dim=6), data, epochs=1, progress=False)
    estimates = []
    for compile in (False, True):
        torch.manual_seed(6)
        estimates.append(fit.log_prob(data, k=50, compile=compile))
    torch.testing.assert_close(estimates[1], estimates[0], rtol=1e-5, atol=1e-5)
    (passes,) = fit._passes.of(50, 500, True)
    assert [graph.compiled for graph in passes._graphs.values()] == [True]
