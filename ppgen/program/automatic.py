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
   caches on (a record of ppgen's beside them, :func:`record_path`, says so), the compilation finds them (warm): C
   is the warm compilation it recorded, or :data:`WARM_OF_COLD` of the cold one, and t_k / t_c as it measured; else
   C = :data:`COLD_COMPILE_TRACES` x T and t_k = :data:`COMPILED_RATIO` x t_c (the least gain measured).

Measured (``bench/auto_compile.py``, CPU time, one thread, batch 128; docs/benchmarks.md): on the 64-128-8 VAE's ELBO
step a plain step takes 2.3 ms, a replay 1.5, a compiled step 0.4; a trace 0.16 s (0.32 s as a process's first), so a
capture repays after about 210 steps of a shape (430 in a fresh process); a compilation 10.7 s cold and 2.2 s warm,
repaying against the captured step after about 9,400 steps cold and 3,300 warm.

A capture that falls back (a program the trace cannot take) or a compilation that fails is logged at level INFO by this
module's logger, ``ppgen.program.automatic``, with every choice the rule makes, and warns of nothing: under
``"auto"`` the user asked for no path, and the plain step gives the same fit. The choice is made from timings, so it
may differ between two runs of one script; a captured step gives the plain step's floats, a compiled one differs from
them in rounding: a fit that must repeat bitwise (a resumed run on CPU among them) passes ``compile=False`` or
``"capture"``. On CUDA the times are the host's.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ppgen.program.fastpath import FastPathFallback, ShapeCapture
from ppgen.program.inputs import Batch

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
    compile_seconds: float = math.nan

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
        identity: what names the program and objective in the records of earlier compilations (:func:`identity`).
        unit: what a call is, in messages: ``"steps"`` of a fit, ``"passes"`` of a query.

    Attributes:
        choices: the path each batch shape is on (by rows): ``False``, ``"capture"`` or ``True``.
    """

    #: whether this process has traced a step under ``"auto"`` (its first trace pays torch's one-time set-up).
    traced_in_process = False

    def __init__(self, capture: ShapeCapture, plan: dict[int, int], identity: str, unit: str = "steps") -> None:
        self.capture, self.plan, self.identity, self.unit = capture, plan, identity, unit
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
            shape = self._shapes[rows] = _Shape(self.plan.get(rows, 0))
        shape.left -= 1
        if shape.stage == "settled":
            self.capture.compile = shape.mode
            return self.capture(batch) if shape.mode is False else self._quiet(rows, shape, batch)
        shape.seen += 1
        self.capture.compile = shape.mode
        start = time.perf_counter()
        loss = self.capture(batch) if shape.mode is False else self._quiet(rows, shape, batch)
        seconds = time.perf_counter() - start
        if shape.stage != "settled":
            self._next(rows, shape, seconds)
        return loss

    def _quiet(self, rows: int, shape: _Shape, batch: Batch) -> Tensor:
        """The captured or compiled call, its :class:`FastPathFallback` warnings turned into INFO records and the
        shape put on the path it fell back to."""
        fallbacks, uncompiled = len(self.capture.fallbacks), len(self.capture.uncompiled)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FastPathFallback)
            loss = self.capture(batch)
        if len(self.capture.fallbacks) > fallbacks:
            why = list(self.capture.fallbacks.values())[-1]
            self._settle(rows, shape, False, f"run the plain path: {why}")
        elif len(self.capture.uncompiled) > uncompiled:
            why = list(self.capture.uncompiled.values())[-1]
            self._settle(rows, shape, "capture", f"replay the traced graph, uncompiled: {why}")
        return loss

    def _next(self, rows: int, shape: _Shape, seconds: float) -> None:
        """After a timed call of the shape: the next stage, and the rule's choice where its probes are done."""
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
        elif shape.stage == "compile":
            shape.compile_seconds = max(seconds - shape.captured, 0.0)
            shape.stage = "compiled"
        elif shape.stage == "compiled":
            fastest = shape.probe(seconds)
            if fastest is not None:
                ratio = fastest / shape.captured
                write_record(self.identity, rows, shape.compile_seconds, ratio)
                self._settle(rows, shape, True, f"run compiled: compiled in {shape.compile_seconds:.2f} s, the "
                             f"compiled path {ratio:.2f} of the captured one")

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
        seconds, ratio, how = compile_cost(self.identity, rows, shape.trace)
        saving = shape.left * shape.captured * (1.0 - ratio)
        why = (f"{shape.left} {self.unit} left would save {saving:.2f} s against a {how} compilation of {seconds:.2f} "
               f"s (captured {shape.captured * 1e3:.3g} ms, plain {shape.plain * 1e3:.3g} ms)")
        if saving >= seconds:
            shape.mode, shape.stage = True, "compile"
            logger.info("compile='auto': batches of %d rows are compiled: %s", rows, why)
        else:
            self._settle(rows, shape, "capture", f"replay the captured graph: {why}")

    @staticmethod
    def _settle(rows: int, shape: _Shape, mode: bool | str, why: str) -> None:
        shape.mode, shape.stage = mode, "settled"
        logger.info("compile='auto': batches of %d rows %s", rows, why)


def identity(module: torch.nn.Module, objective: Any) -> str:
    """What names a program's step in the records of its compilations: the program's class, its parameters' names,
    shapes and dtypes, the objective, torch's version."""
    params = [(name, tuple(p.shape), str(p.dtype)) for name, p in module.named_parameters()]
    kind = type(module)
    return repr((f"{kind.__module__}.{kind.__qualname__}", params, repr(objective), torch.__version__))


def inductor_cache() -> Path | None:
    """The folder of inductor's on-disk caches (``TORCHINDUCTOR_CACHE_DIR``, by default ``torchinductor_<user>`` in the
    system's temporary folder, never the working directory), or ``None`` where its FX-graph cache is off, so that a
    second compilation of a graph is as cold as the first."""
    import torch._inductor.config as inductor

    if not getattr(inductor, "fx_graph_cache", False):  # off, or not a setting of this torch
        return None
    folder = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if folder is None:
        from torch._inductor.runtime.cache_dir_utils import default_cache_dir

        folder = default_cache_dir()
    return Path(folder).absolute()


def record_path(identity: str, rows: int) -> Path | None:
    """Where ppgen records the compilation of a program's step for batches of ``rows`` rows: in a folder ``ppgen`` of
    inductor's cache (:func:`inductor_cache`), so that the record goes with the cache it describes."""
    cache = inductor_cache()
    if cache is None:
        return None
    digest = hashlib.sha256(f"{identity}|{rows}".encode()).hexdigest()[:32]
    return cache / "ppgen" / f"{digest}.json"


def compile_cost(identity: str, rows: int, trace: float) -> tuple[float, float, str]:
    """The expected seconds of compiling the step of ``rows`` rows, the compiled step's expected time over the captured
    step's, and whether that compilation is ``"warm"`` or ``"cold"`` (see the module's rule); ``trace``: the seconds
    its capture took."""
    record = read_record(identity, rows)
    if record is None:
        return COLD_COMPILE_TRACES * trace, COMPILED_RATIO, "cold"
    seconds = record.get("warm", record["cold"] * WARM_OF_COLD)
    return seconds, min(record["ratio"], 1.0), "warm"


def read_record(identity: str, rows: int) -> dict | None:
    """The record of an earlier compilation of this step (``cold`` and maybe ``warm`` seconds, the compiled step's
    ``ratio`` to the captured one), or ``None``."""
    path = record_path(identity, rows)
    try:
        record = json.loads(path.read_text()) if path is not None else None
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("identity") == identity else None


def write_record(identity: str, rows: int, seconds: float, ratio: float) -> None:
    """Records a compilation of the step of ``rows`` rows that took ``seconds``: the first as ``cold``, a later one
    (which found the cache) as ``warm``; written whole or not at all, and nothing where the cache's folder cannot be
    written."""
    path = record_path(identity, rows)
    if path is None:
        return
    earlier = read_record(identity, rows)
    record = {"identity": identity, "ratio": ratio,
              **({"cold": seconds} if earlier is None else {"cold": earlier["cold"], "warm": seconds})}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as file:
            json.dump(record, file)
        os.replace(file.name, path)
    except OSError as error:
        logger.info("compile='auto': no record of the compilation written to %s: %s", path.parent, error)
