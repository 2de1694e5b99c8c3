"""``compile="auto"``, the default (ppgen.program.automatic): the steps a fit has left of each batch shape, counted as
the training loop takes them; a short fit stays on the plain step and traces nothing; a fit long enough captures (and
compiles) with the plain fit's history; a fall-back is logged, never warned; the records of compilations go beside
inductor's cache, never into the working folder."""

import json
import logging
import math
import os
import tempfile
import warnings
from pathlib import Path

import pyro
import pytest
import torch

import ppgen
from ppgen.program import automatic, fastpath, records
from ppgen.program.automatic import Automatic, planned_steps
from ppgen.program.fastpath import FastPathFallback
from ppgen.queries import density
from ppgen.run.distributed import Group
from ppgen.training import registry
from ppgen.training.step import Gradients
from ppgen.training.streaming import epoch_batches, epoch_order

from test_fastpath import Branching, prepared

pytestmark = pytest.mark.usefixtures("one_thread")

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture(scope="module")
def data():
    pyro.set_rng_seed(1)
    return torch.bernoulli(torch.full((40, 6), 0.4))


def private_cache(monkeypatch, tmp_path) -> None:
    """A cache folder of inductor's (and of ppgen's records) for each test: none finds another's records, nor the
    user's."""
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))


def quick_rule(monkeypatch) -> None:
    """The rule with break-evens of a few steps, so that a test's short fit captures."""
    monkeypatch.setattr(automatic, "CAPTURE_BREAK_EVEN", 3)
    monkeypatch.setattr(automatic, "FIRST_CAPTURE_BREAK_EVEN", 3)


@pytest.fixture(autouse=True)
def cache(monkeypatch, tmp_path):
    private_cache(monkeypatch, tmp_path)


@pytest.fixture
def eager(monkeypatch):
    quick_rule(monkeypatch)


class Clock:
    """``time`` as the rule reads it, under which the step it times takes 2 ms plain, 1 ms captured and 0.5 ms
    compiled: the rule's choices, not the loaded machine's timings, are under test."""

    SECONDS = {False: 2e-3, "capture": 1e-3, True: 5e-4}

    def __init__(self) -> None:
        self.now, self.reads, self.steps = 0.0, 0, []

    def perf_counter(self) -> float:
        self.reads += 1
        if self.reads % 2 == 0:  # the reading after a call: the call took the time of its path
            self.now += self.SECONDS[self.steps[-1].capture.compile]
        return self.now


def fake_clock(monkeypatch) -> Clock:
    """A :class:`Clock` for the rule, which times the last step built under ``compile="auto"``."""
    fake = Clock()
    original = automatic.Automatic.__init__

    def keep(self, *args, **kwargs):
        original(self, *args, **kwargs)
        fake.steps.append(self)

    monkeypatch.setattr(automatic.Automatic, "__init__", keep)
    monkeypatch.setattr(automatic, "time", fake)
    return fake


@pytest.fixture
def clock(monkeypatch):
    return fake_clock(monkeypatch)


def choices(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "ppgen.program.automatic"]


def traced(caplog) -> list[tuple]:
    return [r.args[2] for r in caplog.records if r.name == "ppgen.program.fastpath" and r.args[3] == "traced"]


def fit(data, compile, epochs, **options):
    """A VAE of the zoo, the same initial weights each call, fitted by ELBO in batches of 16 (and the last of 8)."""
    torch.manual_seed(0)
    return ppgen.fit(registry.MODELS["vae"](x_dim=6), data, inference=ppgen.inference.ELBO(), epochs=epochs,
                     batch_size=16, progress=False, compile=compile, **options)


@pytest.mark.parametrize("epoch, position, drop_last, ranks", [(0, 0, False, 1), (1, 1, False, 1), (1, 2, False, 1),
                                                               (2, 0, True, 1), (0, 1, False, 2), (1, 0, False, 3)])
def test_the_planned_steps_are_those_the_training_loop_takes(epoch, position, drop_last, ranks):
    size, batch_size, epochs = 40, 16, 4
    batch = ppgen.program.inputs.as_batch(torch.zeros(size, 2))
    group = Group(rank=ranks - 1, world_size=ranks, active=ranks > 1)
    taken: dict[int, int] = {}
    generator = torch.Generator().manual_seed(0)
    for e in range(epoch, epochs):
        order = epoch_order(batch, generator, batch_size)
        for _, local in epoch_batches(batch, order, batch_size, position if e == epoch else 0, group.shard, drop_last):
            taken[len(local)] = taken.get(len(local), 0) + 1
    local_rows = (lambda rows: len(group.shard(torch.arange(rows)))) if ranks > 1 else None
    assert planned_steps(size, batch_size, epochs, epoch, position, drop_last, local_rows) == taken


def test_a_stream_without_a_length_plans_its_steps_per_epoch_or_none():
    assert planned_steps(None, 16, 3, 1, 2, False, steps_per_epoch=5) == {16: 8}
    assert planned_steps(None, 16, 3, 0, 0, False) == {}


def test_a_fit_counts_down_every_step_of_its_plan(data, clock):
    fit(data, "auto", 3)
    (step,) = clock.steps
    assert step.plan == {16: 6, 8: 3}
    assert all(shape.left == 0 for shape in step._shapes.values())


def test_a_short_fit_by_default_takes_the_plain_step_and_traces_nothing(data, caplog):
    with caplog.at_level(logging.INFO, logger="ppgen"):
        auto = fit(data, "auto", 6)
    plain = fit(data, False, 6)
    assert traced(caplog) == []
    assert [m.split(":")[1].strip() for m in choices(caplog)] == ["batches of 16 rows stay on the plain path",
                                                                 "batches of 8 rows stay on the plain path"]
    assert auto.history == plain.history


def test_a_fit_long_enough_captures_with_the_plain_fits_history(data, eager, clock, monkeypatch, caplog):
    monkeypatch.setattr(automatic, "COLD_COMPILE_TRACES", math.inf)  # a compilation never repays
    with caplog.at_level(logging.INFO, logger="ppgen"), warnings.catch_warnings():
        warnings.simplefilter("error")
        auto = fit(data, "auto", 8)
    plain = fit(data, False, 8)
    assert traced(caplog)[0] == ((16, 6),)
    assert any("batches of 16 rows are captured" in m for m in choices(caplog))
    assert clock.steps[0].choices == {16: "capture", 8: "capture"}
    torch.testing.assert_close(torch.tensor(auto.history), torch.tensor(plain.history), rtol=1e-6, atol=0)


def test_a_program_the_trace_cannot_take_falls_back_with_a_record_and_no_warning(data, eager, caplog):
    with caplog.at_level(logging.INFO, logger="ppgen"), warnings.catch_warnings():
        warnings.simplefilter("error")  # FastPathFallback among them: compile="auto" asked for no path
        auto = ppgen.fit(Branching(), data, epochs=4, batch_size=16, progress=False, seed=0)
    plain = ppgen.fit(Branching(), data, epochs=4, batch_size=16, progress=False, seed=0, compile=False)
    assert any("run the plain path: the step could not be traced" in m for m in choices(caplog))
    assert auto.history == plain.history


def test_an_explicit_capture_of_the_same_program_still_warns(data):
    with pytest.warns(FastPathFallback, match="could not be traced"):
        ppgen.fit(Branching(), data, epochs=1, batch_size=16, progress=False, compile="capture")


def uncompiled(graph, inputs):
    """Inductor (``fastpath._inductor``, which ``compile=True`` calls) as a stand-in that returns the graph: what
    compiling decides and records, in milliseconds."""
    return graph


def test_a_compilation_that_repays_is_made_and_recorded_beside_inductors_cache(data, eager, clock, monkeypatch,
                                                                               tmp_path, caplog):
    monkeypatch.setattr(automatic, "COLD_COMPILE_TRACES", 0.0)
    monkeypatch.setattr(fastpath, "_inductor", uncompiled)
    with caplog.at_level(logging.INFO, logger="ppgen"):
        fit(data, "auto", 12)
    assert any("batches of 16 rows are compiled" in m and "cold compilation" in m for m in choices(caplog))
    assert any("batches of 16 rows run compiled" in m for m in choices(caplog))
    record = records.record_path(clock.steps[0].identity, 16)
    assert record.parent == tmp_path / "inductor" / "ppgen"
    written = json.loads(record.read_text())
    assert set(written) == {"identity", "cold", "ratio"}
    # as a compilation on the fake clock's scale that halved the step would leave
    record.write_text(json.dumps({**written, "cold": 1e-3, "ratio": 0.5}))
    caplog.clear()
    monkeypatch.setattr(automatic, "COLD_COMPILE_TRACES", math.inf)  # a second run finds the record: warm, not cold
    with caplog.at_level(logging.INFO, logger="ppgen"):
        fit(data, "auto", 12)
    assert any("batches of 16 rows are compiled" in m and "warm compilation" in m for m in choices(caplog))
    assert set(json.loads(record.read_text())) == {"identity", "cold", "warm", "ratio"}


def test_a_compilation_under_compile_true_is_recorded_and_auto_finds_it_warm(data, eager, clock, monkeypatch,
                                                                             caplog):
    """compile=True writes the record of its compilation (seconds, no ratio: only "auto" times the steps), beside the
    test's own inductor cache; a later "auto" fit of the same program finds it warm, with the prior ratio."""
    monkeypatch.setattr(fastpath, "_inductor", uncompiled)
    trained = fit(data, True, 2)
    identity = records.identity(trained.model, ppgen.inference.ELBO())
    record = records.record_path(identity, 16)
    assert record.parent == Path(os.environ["TORCHINDUCTOR_CACHE_DIR"]) / "ppgen"
    written = json.loads(record.read_text())
    assert set(written) == {"identity", "cold"} and 0 < written["cold"] < 60
    monkeypatch.setattr(automatic, "COLD_COMPILE_TRACES", math.inf)  # only a warm compilation could repay
    record.write_text(json.dumps({**written, "cold": 0.0}))  # a compilation that costs nothing: it repays
    assert automatic.compile_cost(identity, 16, 1.0) == (0.0, automatic.COMPILED_RATIO, "warm")
    with caplog.at_level(logging.INFO, logger="ppgen"):
        fit(data, "auto", 12)
    assert clock.steps[0].identity == identity
    assert any("batches of 16 rows are compiled" in m and "warm compilation" in m for m in choices(caplog))
    assert set(json.loads(record.read_text())) == {"identity", "cold", "warm", "ratio"}  # "auto" measured the ratio


def test_a_damaged_record_is_no_record(tmp_path):
    path = records.record_path("step", 16)
    path.parent.mkdir(parents=True)
    for text in ("{", json.dumps({"identity": "other", "cold": 1.0}), json.dumps({"identity": "step", "cold": -1})):
        path.write_text(text)
        assert records.read_record("step", 16) is None
    records.record_ratio("step", 16, 0.5)  # no compilation recorded: nothing to add the ratio to
    assert records.read_record("step", 16) is None



def test_a_warm_compilation_is_priced_at_the_largest_seen():
    """A compilation that finds the graph in the process's memory (a second fit in one process) does not lower the
    price of a warm one, which a fresh process pays reading inductor's on-disk cache."""
    for seconds in (10.0, 2.0, 0.05):
        records.record_compilation("step", 16, seconds)
    assert records.read_record("step", 16) == {"identity": "step", "cold": 10.0, "warm": 2.0}
    assert automatic.compile_cost("step", 16, 1.0) == (2.0, automatic.COMPILED_RATIO, "warm")

@pytest.fixture
def deterministic():
    torch.use_deterministic_algorithms(True)
    yield
    torch.use_deterministic_algorithms(False)


@pytest.mark.usefixtures("deterministic")
def test_with_deterministic_algorithms_auto_captures_and_never_compiles(data, eager, clock, monkeypatch, caplog):
    monkeypatch.setattr(automatic, "COLD_COMPILE_TRACES", 0.0)  # a compilation would repay at once
    monkeypatch.setattr(fastpath, "_inductor", lambda graph, inputs: pytest.fail("compiled"))
    with caplog.at_level(logging.INFO, logger="ppgen"):
        auto = fit(data, "auto", 12)
    plain = fit(data, False, 12)
    assert clock.steps[0].choices == {16: "capture", 8: "capture"}
    assert any("batches of 16 rows replay the captured graph: deterministic algorithms are on" in m
               for m in choices(caplog))
    assert auto.history == plain.history  # the captured step gives the plain step's floats


@pytest.mark.usefixtures("deterministic")
def test_a_path_settled_compiled_before_a_resume_is_captured_under_deterministic_algorithms(data, caplog):
    module, objective = registry.MODELS["vae"](x_dim=6), ppgen.inference.ELBO()
    structure, _ = prepared(module, objective, data)
    settled = {16: True, 8: "capture"}
    step = Automatic(Gradients(module, structure, objective, False), {16: 100, 8: 10}, settled=settled)
    with caplog.at_level(logging.INFO, logger="ppgen.program.automatic"):
        shapes = {rows: step._start(rows) for rows in (16, 8)}
    assert {rows: (shape.mode, shape.stage) for rows, shape in shapes.items()} == {16: ("capture", "settled"),
                                                                                  8: ("capture", "settled")}
    assert settled == {16: "capture", 8: "capture"}  # what the run's next checkpoint holds
    assert any("settled compiled before the fit was resumed: deterministic algorithms are on" in m
               for m in choices(caplog))


def test_a_compilation_that_fails_under_auto_replays_the_graph_with_a_record_and_no_warning(data, eager, clock,
                                                                                          monkeypatch, caplog):
    def broken(graph, inputs):
        def run(*inputs):
            raise RuntimeError("inductor found no C++ compiler")
        return run

    monkeypatch.setattr(automatic, "COLD_COMPILE_TRACES", 0.0)
    monkeypatch.setattr(fastpath, "_inductor", broken)
    with caplog.at_level(logging.INFO, logger="ppgen"), warnings.catch_warnings():
        warnings.simplefilter("error")
        fit(data, "auto", 12)
    assert any("replay the traced graph, uncompiled" in m and "no C++ compiler" in m for m in choices(caplog))


def test_a_captured_step_no_faster_than_the_plain_one_goes_back_to_it(data):
    module, objective = registry.MODELS["vae"](x_dim=6), ppgen.inference.ELBO()
    structure, _ = prepared(module, objective, data)
    step = Automatic(Gradients(module, structure, objective, False), {16: 100})
    shape = automatic._Shape(left=100, mode="capture", stage="replay", plain=1e-3, captured=2e-3, trace=0.1)
    step._shapes[16] = shape
    step._choose_compile(16, shape)
    assert step.choices == {16: False}


def test_auto_is_resolved_above_the_captured_computation(data):
    module, objective = registry.MODELS["vae"](x_dim=6), ppgen.inference.ELBO()
    structure, _ = prepared(module, objective, data)
    with pytest.raises(ValueError, match="compile"):
        Gradients(module, structure, objective, "auto")


def test_a_query_of_many_passes_captures_them_with_the_plain_estimate(data, eager, monkeypatch, caplog):
    trained = fit(data, False, 1)
    monkeypatch.setattr(density, "PARTICLE_POINTS_PER_PASS", 40)  # K = 10: chunks of 4 points, 10 passes
    estimates = []
    for compile in (False, "auto"):
        pyro.set_rng_seed(3)
        with caplog.at_level(logging.INFO, logger="ppgen"):
            estimates.append(trained.log_prob(data, k=10, compile=compile))
    assert any("batches of 4 rows are captured" in m and "passes left" in m for m in choices(caplog))
    torch.testing.assert_close(estimates[1], estimates[0], rtol=1e-6, atol=1e-6)


def test_inductors_cache_is_where_torch_says_never_the_working_folder(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR")
    folder = records.inductor_cache()
    assert folder.is_relative_to(Path(tempfile.gettempdir())) and not folder.is_relative_to(tmp_path)
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))
    assert records.inductor_cache() == tmp_path / "mine"
    assert records.record_path("step", 16).parent == tmp_path / "mine" / "ppgen"
    import torch._inductor.config as inductor

    # a second compilation as cold as the first: no records (the config's own patch: monkeypatch's undo would delete
    # the setting, which torch's config module then hides from every later reader)
    with inductor.patch(fx_graph_cache=False):
        assert records.inductor_cache() is None and records.record_path("step", 16) is None
    assert list(tmp_path.iterdir()) == []  # nothing was written into the working folder


def test_the_rules_priors_are_those_the_committed_benchmark_ran_with():
    measured = json.loads((BENCH / "auto_compile.json").read_text())
    assert measured["priors"] == {name: getattr(automatic, name) for name in measured["priors"]}
    assert all(row["fits"] or row["costs"] for row in measured["rows"])
