"""``fit(..., compile="auto")``, the default: the path each batch shape of a fit takes, the plain step, the captured
graph replayed or the graph compiled (:mod:`ppgen.program.fastpath`), chosen from the steps of that shape the fit has
left and the costs measured as it runs.

The rule, for a batch shape with R steps left in the fit (epochs x its batches per epoch, less what a resumed run has
done), t_p, t_c and t_k the seconds of a plain, a captured and a compiled step of that shape:

1. Its first step runs the plain step untimed (first-use costs), its next :data:`PROBES` plain steps are timed: t_p,
   the least of them (a loaded machine only adds time), as each time below.
2. Capture when R >= B, the steps that repay a trace. Before any trace of this fit's step, B is a prior from the
   break-evens that ``bench/auto_compile.py`` measured (:data:`CAPTURE_BREAK_EVEN`, and
   :data:`FIRST_CAPTURE_BREAK_EVEN` in a process that has traced nothing yet, where the first trace also pays torch's
   one-time set-up of ``make_fx``); once a shape has been captured, B = T / (t_p - t_c) as measured, T the seconds
   its capture took beyond a plain step.
3. Keep the capture only if it is faster: the next :data:`PROBES` replays are timed (t_c), and t_c >= t_p puts the
   shape back on the plain step.
4. Compile when R x (t_c - t_k) >= C, C the seconds that compiling the shape's graph is expected to take and t_k the
   compiled step's expected time. Where this program's graph of that shape was compiled before with inductor's on-disk
   caches on, by any run (``compile=True`` or ``"auto"``: each compilation is recorded beside the caches,
   :mod:`ppgen.program.records`), the compilation finds them (warm): C is the warm compilation recorded, or
   :data:`WARM_OF_COLD` of the cold one, and t_k / t_c as ``"auto"`` measured it (:data:`COMPILED_RATIO` before it
   has); else C = :data:`COLD_COMPILE_TRACES` x T and t_k = :data:`COMPILED_RATIO` x t_c (the least gain measured).
   Not where torch's deterministic algorithms are on (``torch.use_deterministic_algorithms(True)``): there the shape
   stays captured, whose step gives the plain step's floats (logged at level INFO).
5. The next :data:`PROBES` compiled steps are timed (t_k), and t_k / t_c is recorded; the shape stays compiled.

A compiled shape's step computes the default optimiser's update too, in its graph, with the pair that the divergence
guard judges (:meth:`~ppgen.training.step.Gradients.updating`: a single process's fit with torch's Adam), as under
``compile=True``; the plain and captured shapes of the same fit leave their gradients to the fused Adam's
``step()``, which is faster there than an update replayed as traced. So the compiled shape's graph is traced once more,
with the update, before it is compiled, and t_k holds the update where t_c does not (the ratio errs against
compiling).

Measured (``bench/auto_compile.py``, CPU time, one thread, batch 128, a quiet machine; docs/benchmarks.md): on the
64-128-8 VAE's ELBO step a plain step takes 1.8 ms, a replay 1.0, a compiled step 0.28; a trace 0.12 s (0.25 s as a
process's first), so a capture repays after about 150 steps of a shape (310 in a fresh process); a compilation 5.3 s
cold and 1.4 s warm, repaying against the captured step after about 7,300 steps cold and 1,900 warm.

A capture that falls back (a program the trace cannot take) or a compilation that fails is logged at level INFO by this
module's logger, ``ppgen.program.automatic``, with every choice the rule makes, and warns of nothing: under
``"auto"`` the user asked for no path, and the plain step gives the same fit. The choice is made from timings, so it
may differ between two runs of one script; a captured step gives the plain step's floats, a compiled one differs from
them in rounding: a fit that must repeat bitwise from one run to the next passes ``compile=False`` or ``"capture"``,
or turns deterministic algorithms on. A run's checkpoints hold the path each shape settled on
(:class:`~ppgen.run.state.RunState` ``compile_choices``), and a resumed run takes those paths without probing them
again: on CPU it ends bitwise as the run never stopped where the shapes settled plain or captured; a compiled shape's
first two steps after the resume trace and compile its graph and give the plain step's floats, where the run never
stopped gave the compiled graph's, so such a run ends as it to float rounding. A shape not yet settled when the run
stopped is probed again. On CUDA the times are the host's.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ppgen.program.fastpath import FastPathFallback, ShapeCapture
from ppgen.program.inputs import Batch
from ppgen.program.records import read_record, record_ratio

#: timed plain steps, then timed replays, then timed compiled steps of a shape, before each choice.
PROBES = 3
#: steps of a batch shape that repay its capture, before this fit has measured its own: in a process that has traced
#: before, and in one that has not (``FIRST_...``: the first trace also pays torch's one-time set-up of ``make_fx``).
#: ``bench/auto_compile.py`` measured at most 212 and 433 (the small VAE's ELBO step, in CPU time); the rule times
#: with the wall clock, which a loaded machine stretches, the trace's seconds more than a step's milliseconds: the
#: same measurement in wall time, under a load average of 18 on 2 cores, gave 779 and 1330. The priors are those.
CAPTURE_BREAK_EVEN = 700
FIRST_CAPTURE_BREAK_EVEN = 1500
#: a cold compilation (no cache of this graph; inductor's precompiled header made) in traces of the same graph:
#: ``bench/auto_compile.py`` measured 43 and 68 in CPU time (the mixture's and the small VAE's step), 84 in wall time
#: under load.
COLD_COMPILE_TRACES = 60
#: a warm compilation (the graph in inductor's caches) as a fraction of the cold one before one is recorded: measured
#: 0.21 and 0.39, in CPU time.
WARM_OF_COLD = 0.5
#: a compiled step's time over the captured step's where this step was never compiled: the largest measured, on the
#: 784-400-32 VAE (``bench/results.json``: the compiled and captured steps of IWAE(k=5), 23.9 ms and 28.8 ms), where
#: the matrix products, not the operations' dispatch, take the time.
COMPILED_RATIO = 0.85

#: why ``"auto"`` compiles nothing while ``torch.use_deterministic_algorithms(True)`` is on.
DETERMINISTIC = ("deterministic algorithms are on (torch.use_deterministic_algorithms), and a compiled graph's floats "
                 "differ from the plain step's, where a captured one gives them")

logger = logging.getLogger(__name__)


def planned_steps(size: int | None, batch_size: int, epochs: int, epoch: int, position: int, drop_last: bool,
                  local_rows: Callable[[int], int] | None = None, steps_per_epoch: int | None = None) -> dict[int, int]:
    """The steps a fit has left, by the rows of each batch shape: ``epochs - epoch`` more epochs of ``size`` points in
    batches of ``batch_size`` (the last smaller, unless ``drop_last``), ``position`` batches of the current epoch done;
    ``local_rows``: a global batch's rows as this process sees them (its shard, in a distributed fit). A stream of
    unknown length has ``steps_per_epoch`` full batches an epoch, or none known."""
    if size is None:
        full, last = steps_per_epoch or 0, 0
    else:
        full, last = size // batch_size, 0 if drop_last else size % batch_size
    epochs_left = epochs - epoch
    plan: dict[int, int] = {}
    counts = ((batch_size, epochs_left * full - min(position, full)),
              (last, (epochs_left - (position > full)) if last else 0))
    for rows, count in counts:
        if count > 0:
            local = rows if local_rows is None else local_rows(rows)
            plan[local] = plan.get(local, 0) + count
    return plan


@dataclass
class _Shape:
    """What the rule knows of one batch shape: the steps it has left, the path it is on, and the times measured."""

    left: int
    mode: bool | str = False
    stage: str = "plain"  # plain: probing t_p; capture; replay: probing t_c; compile; compiled: probing t_k; settled
    seen: int = 0
    times: list[float] = field(default_factory=list)
    plain: float = math.nan
    captured: float = math.nan
    trace: float = math.nan

    def probe(self, seconds: float) -> float | None:
        """Record a timed call of this stage; the fastest of its :data:`PROBES` calls once they are all in (the
        record then starts afresh for the next stage), else ``None``."""
        self.times.append(seconds)
        if len(self.times) < PROBES:
            return None
        fastest, self.times = min(self.times), []
        return fastest


class Automatic:
    """A computation under ``compile="auto"``: ``capture`` (a :class:`~ppgen.program.fastpath.ShapeCapture` built with
    ``compile=False``: the training step, or a query's pass), set per batch shape to the plain computation, the
    captured graph or the compiled graph by the rule of this module.

    Arguments:
        capture: the step (:class:`~ppgen.training.step.Gradients`); its other attributes are read through.
        plan: the steps the fit has left, by rows of each batch shape (:func:`planned_steps`).
        unit: what a call is, in messages: ``"steps"`` of a fit, ``"passes"`` of a query.
        settled: the choices settled earlier in the fit, by rows (a resumed run's, :class:`~ppgen.run.state.RunState`
            ``compile_choices``): those shapes take them without probing; each choice settled here is added to it.

    Attributes:
        choices: the path each batch shape is on (by rows): ``False``, ``"capture"`` or ``True``.
    """

    #: whether this process has traced a step under ``"auto"`` (its first trace pays torch's one-time set-up).
    traced_in_process = False

    def __init__(self, capture: ShapeCapture, plan: dict[int, int], unit: str = "steps",
                 settled: dict[int, bool | str] | None = None) -> None:
        self.capture, self.plan, self.unit = capture, plan, unit
        self.identity = capture.identity()
        self.settled = settled if settled is not None else {}
        self._shapes: dict[int, _Shape] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.capture, name)

    @property
    def choices(self) -> dict[int, bool | str]:
        return {rows: shape.mode for rows, shape in self._shapes.items()}

    def __call__(self, batch: Batch) -> Tensor:
        rows = len(batch)
        shape = self._shapes.get(rows)
        if shape is None:
            shape = self._shapes[rows] = self._start(rows)
        shape.left -= 1
        self.capture.compile = shape.mode
        if shape.stage == "settled":
            return self.capture(batch) if shape.mode is False else self._quiet(rows, shape, batch)
        shape.seen += 1
        compilations = len(self.capture.compile_seconds)
        start = time.perf_counter()
        loss = self.capture(batch) if shape.mode is False else self._quiet(rows, shape, batch)
        seconds = time.perf_counter() - start
        if shape.stage != "settled":
            self._next(rows, shape, seconds, len(self.capture.compile_seconds) > compilations)
        return loss

    def _start(self, rows: int) -> _Shape:
        """A batch shape met for the first time: on the plain path, to be probed; or on the path settled for it
        before the fit was resumed (a compiled one replays its graph where deterministic algorithms are on)."""
        shape = _Shape(self.plan.get(rows, 0))
        if rows in self.settled:
            mode = self.settled[rows]
            if mode is True and torch.are_deterministic_algorithms_enabled():
                self._settle(rows, shape, "capture", f"replay the captured graph, settled compiled before the fit "
                             f"was resumed: {DETERMINISTIC}")
            else:
                shape.mode, shape.stage = mode, "settled"
                logger.info("compile='auto': batches of %d rows take the path settled before the fit was resumed: "
                            "%r", rows, mode)
        return shape

    def _quiet(self, rows: int, shape: _Shape, batch: Batch) -> Tensor:
        """The captured or compiled call, its :class:`FastPathFallback` warnings turned into INFO records and the
        shape put on the path it fell back to: a compiled shape whose graph with the optimiser's update could not be
        traced or disagrees goes back to its captured graph, which has none."""
        fallbacks, uncompiled = len(self.capture.fallbacks), len(self.capture.uncompiled)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FastPathFallback)
            loss = self.capture(batch)
        if len(self.capture.fallbacks) > fallbacks and shape.mode is True:
            why = list(self.capture.fallbacks.values())[-1]
            self._settle(rows, shape, "capture", f"replay the captured graph, uncompiled: {why}")
        elif len(self.capture.fallbacks) > fallbacks:
            why = list(self.capture.fallbacks.values())[-1]
            self._settle(rows, shape, False, f"run the plain path: {why}")
        elif len(self.capture.uncompiled) > uncompiled:
            why = list(self.capture.uncompiled.values())[-1]
            self._settle(rows, shape, "capture", f"replay the traced graph, uncompiled: {why}")
        return loss

    def _next(self, rows: int, shape: _Shape, seconds: float, compiled: bool) -> None:
        """After a timed call of the shape (``compiled``: the call compiled its graph): the next stage, and the rule's
        choice where its probes are done."""
        if shape.stage == "plain":
            fastest = shape.probe(seconds) if shape.seen > 1 else None  # the first call pays first-use costs
            if fastest is not None:
                shape.plain = fastest
                self._choose_capture(rows, shape)
        elif shape.stage == "capture":
            shape.trace = max(seconds - shape.plain, 0.0)
            Automatic.traced_in_process = True
            shape.stage = "replay"
        elif shape.stage == "replay":
            fastest = shape.probe(seconds)
            if fastest is not None:
                shape.captured = fastest
                self._choose_compile(rows, shape)
        elif shape.stage == "compile" and compiled:  # the calls before, if any, traced the graph with the update
            shape.stage = "compiled"
        elif shape.stage == "compiled":
            fastest = shape.probe(seconds)
            if fastest is not None:
                ratio = fastest / shape.captured
                record_ratio(self.identity, rows, ratio)
                self._settle(rows, shape, True, f"run compiled: the compiled path {ratio:.2f} of the captured one")

    def _choose_capture(self, rows: int, shape: _Shape) -> None:
        measured = [s for s in self._shapes.values() if s.captured < s.plain and not math.isnan(s.trace)]
        if measured:
            best = max(measured, key=lambda s: s.plain - s.captured)
            break_even, source = best.trace / (best.plain - best.captured), "measured on this fit's step"
        elif Automatic.traced_in_process:
            break_even, source = CAPTURE_BREAK_EVEN, "prior, bench/auto_compile.py"
        else:
            break_even, source = FIRST_CAPTURE_BREAK_EVEN, "prior for a process's first trace, bench/auto_compile.py"
        why = (f"{shape.left} {self.unit} left, a capture repays after {break_even:.0f} ({source}); plain "
               f"{shape.plain * 1e3:.3g} ms")
        if shape.left >= break_even:
            shape.mode, shape.stage = "capture", "capture"
            logger.info("compile='auto': batches of %d rows are captured: %s", rows, why)
        else:
            self._settle(rows, shape, False, f"stay on the plain path: {why}")

    def _choose_compile(self, rows: int, shape: _Shape) -> None:
        if shape.captured >= shape.plain:
            self._settle(rows, shape, False, f"run the plain path: the captured one took {shape.captured * 1e3:.3g} "
                         f"ms, the plain one {shape.plain * 1e3:.3g} ms")
            return
        if torch.are_deterministic_algorithms_enabled():
            self._settle(rows, shape, "capture", f"replay the captured graph: {DETERMINISTIC}")
            return
        seconds, ratio, how = compile_cost(self.identity, rows, shape.trace)
        saving = shape.left * shape.captured * (1.0 - ratio)
        why = (f"{shape.left} {self.unit} left would save {saving:.2f} s against a {how} compilation of {seconds:.2f} "
               f"s (captured {shape.captured * 1e3:.3g} ms, plain {shape.plain * 1e3:.3g} ms)")
        if saving >= seconds:
            shape.mode, shape.stage = True, "compile"
            logger.info("compile='auto': batches of %d rows are compiled: %s", rows, why)
        else:
            self._settle(rows, shape, "capture", f"replay the captured graph: {why}")

    def _settle(self, rows: int, shape: _Shape, mode: bool | str, why: str) -> None:
        shape.mode, shape.stage = mode, "settled"
        self.settled[rows] = mode
        logger.info("compile='auto': batches of %d rows %s", rows, why)


def compile_cost(identity: str, rows: int, trace: float) -> tuple[float, float, str]:
    """The expected seconds of compiling the step of ``rows`` rows, the compiled step's expected time over the captured
    step's, and whether that compilation is ``"warm"`` or ``"cold"`` (see the module's rule); ``trace``: the seconds
    its capture took."""
    record = read_record(identity, rows)
    if record is None:
        return COLD_COMPILE_TRACES * trace, COMPILED_RATIO, "cold"
    seconds = record.get("warm", record["cold"] * WARM_OF_COLD)
    return seconds, min(record.get("ratio", COMPILED_RATIO), 1.0), "warm"
