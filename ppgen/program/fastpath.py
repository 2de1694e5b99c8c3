"""A computation of a program captured once per batch shape and replayed, the program staying the Pyro program the
user wrote: :class:`ShapeCapture`, on which the training step (:class:`ppgen.training.step.Gradients`) and the passes of
the importance-sampled log p(x) over chunks of points (:class:`ppgen.queries.density.Estimates`) are built.

The plain step runs Pyro's effect handlers (the particle plate, the guide's trace, the model replayed on it, each site's
``log_prob``) and autograd's graph again at every step, in Python. Here the whole step, guide, model, the [K, B] log
weights, the objective and its gradient (``torch.autograd.grad``), is traced once per batch shape into one graph of
tensor operations by ``make_fx`` on fake tensors, with the parameters, buffers, data and row indices as inputs and the
random draws as operations of the graph (so that replaying it draws from torch's random stream exactly as the plain step
does), and the tensors a subclass reads besides the module's (an optimiser's state, see :meth:`ShapeCapture.state`) as
inputs too. The graph is then replayed as it is (``compile="capture"``), or compiled by ``torch.compile``'s inductor
(``compile=True``), called on the graph directly, with no dynamo guards to check at each call, on its second call, once
the shape has come back: a fit's full batch at its second step and the last, smaller batch of an epoch at the second
epoch, as JAX compiles each shape that NumPyro's step meets, while a shape met once, such as the last chunk of a query,
is not worth seconds of compilation and is replayed as captured. A query's pass over a chunk of points is captured the
same way, without the gradient. Each compilation's seconds are recorded beside inductor's on-disk cache
(:mod:`ppgen.program.records`), so that ``compile="auto"`` knows the next compilation of the same graph warm.

Correctness before speed. Tracing on fake tensors, which hold no values, fails on data-dependent control flow (a Python
``if`` on a tensor's value, a shape read from the data) instead of recording one branch of it; and the first step of
every batch shape runs both paths on the same random draws and compares the loss, every gradient, every buffer and the
random stream's position afterwards (a parameter that the program reads other than through the module, which the graph
would hold as a constant, shows there): any difference, or any failure to trace, leaves that batch shape on the plain
path for the rest of the fit, with a :class:`FastPathFallback` warning that says why. A compiled graph is checked the
same way on its first run; one that fails to compile or disagrees leaves the shape replaying the graph as traced. The
parameters of plain functions, in a param store of their own, are read from the graph's inputs. The comparison is
repeated every :data:`VERIFY_EVERY` replays of a graph, for a program whose set of sites could change with Python state
that no trace sees.

References:
    PyTorch 2: Faster Machine Learning Through Dynamic Python Bytecode Transformation and Graph Compilation (Ansel
    et al., 2024). https://doi.org/10.1145/3620665.3640366
    Composable Effects for Flexible and Accelerated Probabilistic Programming in NumPyro (Phan, Pradhan and
    Jankowiak, 2019). https://arxiv.org/abs/1912.11554
"""

from __future__ import annotations

import contextlib
import copy as copies
import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.fx.experimental.proxy_tensor import make_fx

from ppgen.program import records
from ppgen.program.agreement import disagreement
from ppgen.program.inputs import Batch
from ppgen.program.protocol import ProgramCall, PyroFunctions
from ppgen.utils.checks import first_line

#: the values of ``fit(..., compile=...)``: the plain step, the captured graph replayed, the graph compiled, and the
#: choice among them made per batch shape as the fit runs (``"auto"``, the default: :mod:`ppgen.program.automatic`).
COMPILE_MODES = (False, "capture", True, "auto")
#: replays of a captured graph between two comparisons with the plain step on the same draws.
VERIFY_EVERY = 200
#: inductor's options for a graph on the CPU: the code that calls its kernels in C++, not Python (each input's assert
#: and each buffer's allocation without the interpreter): 4-9% off the 64-128-8 VAE's compiled step, 1% off the
#: 784-400-32 VAE's (one thread, interleaved with the Python wrapper), its cold compilation no slower.
CPU_OPTIONS = {"cpp_wrapper": True}

#: reports, at level INFO, the seconds each batch shape's capture (and compilation) took; ``logging.getLogger("ppgen")
#: .setLevel(logging.INFO)`` with a handler (``logging.basicConfig()``) shows them.
logger = logging.getLogger(__name__)


class FastPathFallback(UserWarning):
    """A batch shape that the fast path could not capture, or whose capture disagreed with the plain step: that shape
    runs on the plain path for the rest of the fit; or whose compilation failed or disagreed: that shape replays its
    graph as traced."""


def check_compile(value: Any, automatic: bool = True) -> bool | str:
    """``compile``: ``False``, ``"capture"``, ``True`` or (where ``automatic``) ``"auto"``; a ``TypeError``/
    ``ValueError`` naming it otherwise."""
    modes = COMPILE_MODES if automatic else tuple(mode for mode in COMPILE_MODES if mode != "auto")
    expected = ", ".join(repr(mode) for mode in modes[:-1]) + f" or {modes[-1]!r}"
    if not isinstance(value, (bool, str)):
        raise TypeError(f"compile must be {expected}, got {type(value).__name__}")
    if value not in modes:
        raise ValueError(f"compile must be {expected}, got {value!r}")
    return value


@dataclass
class _Captured:
    """One batch shape's graph, as traced, and ``run``, which maps (parameters, buffers, state, rows, inputs) to the
    outputs: that graph, or the graph compiled (``compiled``). ``checked``: whether ``run`` has been compared with
    the plain computation since :meth:`ShapeCapture.recheck`."""

    graph: torch.fx.GraphModule
    run: Callable[..., Any]
    compiled: bool = False
    checked: bool = True
    replays: int = 0


class ShapeCapture:
    """A computation on a batch of the program, its graph traced once per batch shape and replayed (or compiled),
    checked against the plain computation on the same draws; subclasses say what it computes (:meth:`plain`, the
    traced :meth:`outputs`) and what a caller receives of its outputs (:meth:`finish`).

    Arguments:
        module: the program (protocol of :mod:`ppgen.program.protocol`).
        compile: ``False``: the plain computation, Pyro's handlers at every call; ``"capture"``: traced once per
            batch shape and replayed; ``True``: the graph of a batch shape also compiled by ``torch.compile``
            (inductor) when the shape comes back, on its second call.

    Attributes:
        capture_seconds: seconds spent tracing (and, with ``compile=True``, compiling) each batch shape, by shape.
        compile_seconds: seconds each compilation took, by shape; each is recorded beside inductor's cache too
            (:func:`~ppgen.program.records.record_compilation`), for ``compile="auto"`` to know it warm.
        fallbacks: why each batch shape that runs on the plain path does so, by shape.
        uncompiled: with ``compile=True``, why each batch shape whose compilation failed or disagreed replays its
            graph as traced, by shape.
    """

    #: what the computation is called in messages.
    what = "computation"

    def __init__(self, module: nn.Module, compile: bool | str = False) -> None:
        self.module = module
        self.compile = check_compile(compile, automatic=False)  # "auto" chooses one of these per shape
        self.params = [p for _, p in module.named_parameters()]
        self.buffers = [b for _, b in module.named_buffers()]
        self.capture_seconds: dict[tuple, float] = {}
        self.compile_seconds: dict[tuple, float] = {}
        self.fallbacks: dict[tuple, str] = {}
        self.uncompiled: dict[tuple, str] = {}
        self._graphs: dict[tuple, _Captured] = {}

    def __call__(self, batch: Batch) -> Tensor:
        if self.compile is False:
            return self.finish(self._plain(batch))
        key = (*_shape_key(batch, self.module.training), self.variant(),
               tuple(p.requires_grad for p in self.params))  # a frozen parameter has no gradient to compute
        if key in self.fallbacks:
            return self.finish(self._plain(batch))
        captured = self._graphs.get(key)
        if captured is None:
            return self._capture(key, batch)
        captured.replays += 1
        if self.compile is True and not captured.compiled and key not in self.uncompiled:
            return self._compiled(key, captured, batch)
        if not captured.checked or captured.replays % VERIFY_EVERY == 0:
            return self._verified(key, captured, batch)
        return self.finish(self._replay(captured.run, batch))

    def recheck(self) -> None:
        """Compare each kept graph with the plain computation again on its next call: a caller that keeps this
        computation between uses (a :class:`~ppgen.Fit`'s queries) calls it at each use, as a graph holds the
        program's Python state (a float attribute, a flag) as constants, which may have changed since."""
        for captured in self._graphs.values():
            captured.checked = False

    def reads_module(self) -> bool:
        """Whether the module still holds the very parameters and buffers this computation reads (``module.to``
        replaces its buffers, and a program may make parameters on a later run)."""
        return _same(self.params, self.module.parameters()) and _same(self.buffers, self.module.buffers())

    def identity(self) -> str:
        """What names this computation in the records of its compilations (:func:`~ppgen.program.records.identity`)."""
        return records.identity(self.module, self.what)

    def variant(self) -> Any:
        """What a batch shape's graph depends on besides the batch, for a subclass whose :meth:`extend` computes more
        at some calls than at others (the training step: whether it computes the optimiser's update); none here."""
        return None

    def plain(self, batch: Batch) -> list[Tensor | None]:
        """The outputs computed through Pyro's handlers, as they are."""
        raise NotImplementedError

    def outputs(self, batch: Batch, params: tuple[Tensor, ...]) -> list[Tensor | None]:
        """The outputs as a trace records them: the module's parameters are ``params`` (the graph's inputs, swapped
        in), with respect to which a gradient may be taken."""
        raise NotImplementedError

    def finish(self, outputs: list[Tensor | None]) -> Tensor:
        """What a call returns, given the outputs."""
        raise NotImplementedError

    def state(self) -> list[Tensor]:
        """Tensors other than the module's that the computation reads (an optimiser's state), inputs of the graph
        as the parameters are; none by default."""
        return []

    def extend(self, outputs: list[Tensor | None], params: list[Tensor], state: list[Tensor]) -> list[Tensor | None]:
        """The outputs, with more computed from them, the parameters and the :meth:`state` (an optimiser's update),
        outside the program: in the graph when traced, eagerly on the plain path; none more by default."""
        return outputs

    def reference(self, expected: list[Tensor | None], replayed: list[Tensor | None]) -> list[Tensor | None]:
        """What the graph's outputs ``replayed`` are compared with: the plain outputs ``expected``, by default. A
        subclass may compute again those outputs that follow from others (an optimiser's update, from the gradients)
        from the graph's own, where a faithful graph's rounding could be amplified past any tolerance (Adam's first
        step moves a parameter by about lr g / (|g| + eps), +-lr where a gradient is rounding noise about 0)."""
        return expected

    def names(self, count: int) -> list[str]:
        """What each of ``count`` outputs is, for messages."""
        return [f"output {i}" for i in range(count)]

    def _plain(self, batch: Batch) -> list[Tensor | None]:
        """:meth:`plain`'s outputs, :meth:`extend`-ed."""
        outputs = self.plain(batch)
        with torch.no_grad():
            return self.extend(outputs, [p.detach() for p in self.params], self.state())

    def _replay(self, run: Callable[..., Any], batch: Batch) -> list[Tensor | None]:
        with torch.no_grad():
            return list(run([p.detach() for p in self.params], self.buffers, self.state(), batch.rows, *batch.args))

    def _capture(self, key: tuple, batch: Batch) -> Tensor:
        """The plain outputs on ``batch``; the graph traced, checked against them, and kept for its shape."""
        start = time.perf_counter()
        try:
            graph = self._trace(batch)
        except Exception as error:  # anything a trace cannot take: data-dependent control flow, for one
            self._warn(key, f"the {self.what} could not be traced: {type(error).__name__}: {first_line(error)}")
            return self.finish(self._plain(batch))
        expected, why = self._checked(_flat(graph), batch)
        if why is not None:
            self._warn(key, why)
            return self.finish(expected)
        self._graphs[key] = _Captured(graph, _flat(graph))  # kept once checked, never before
        self._took(key, start, "traced")
        return self.finish(expected)

    def _compiled(self, key: tuple, captured: _Captured, batch: Batch) -> Tensor:
        """The plain outputs on ``batch``; the shape's graph compiled by inductor and checked against them. A
        compilation that fails (no C++ compiler for inductor, say) or disagrees leaves the shape replaying the graph
        as traced, which its first call checked, with a :class:`FastPathFallback` warning that says why."""
        start = time.perf_counter()
        with warnings.catch_warnings():  # inductor's first use imports modules of torch.jit, which warn of it
            warnings.filterwarnings("ignore", message=r".*torch\.jit", category=DeprecationWarning)
            run = _flat(_inductor(captured.graph, [p.detach() for p in self.params] + self.buffers + self.state()
                                  + [batch.rows, *batch.args]))
            expected, why = self._checked(run, batch)
        if why is None:
            captured.run, captured.compiled, captured.checked = run, True, True
            self.compile_seconds[key] = self._took(key, start, "compiled")
            records.record_compilation(self.identity(), len(batch), self.compile_seconds[key])
        else:
            self.uncompiled[key] = why
            warnings.warn(f"compile=True: batches of shape {key[1]} replay the traced {self.what}, uncompiled: {why}",
                          FastPathFallback, stacklevel=4)
        return self.finish(expected)

    def _took(self, key: tuple, start: float, done: str) -> float:
        """The seconds since ``start``, added to the shape's capture seconds and logged."""
        seconds = time.perf_counter() - start
        self.capture_seconds[key] = self.capture_seconds.get(key, 0.0) + seconds
        logger.info("compile=%r: the %s of batches of shape %s %s and checked in %.2f s",
                    self.compile, self.what, key[1], done, seconds)
        return seconds

    def _trace(self, batch: Batch) -> torch.fx.GraphModule:
        """The outputs as one graph of (parameters, buffers, state, rows, inputs), traced on fake tensors."""
        wrapper = ProgramCall(self.module, self._outputs_of)
        names = [f"program.{n}" for n, _ in self.module.named_parameters()]
        buffer_names = [f"program.{n}" for n, _ in self.module.named_buffers()]
        state = self.state()
        num_params, num_buffers, num_state = len(names), len(buffer_names), len(state)

        def outputs(*flat: Tensor) -> list[Tensor | None]:
            params, buffers = flat[:num_params], flat[num_params:num_params + num_buffers]
            state = list(flat[num_params + num_buffers:num_params + num_buffers + num_state])
            rows, args = flat[num_params + num_buffers + num_state], flat[num_params + num_buffers + num_state + 1:]
            tensors = {**dict(zip(names, params)), **dict(zip(buffer_names, buffers))}
            results = torch.func.functional_call(wrapper, tensors, (Batch(tuple(args), rows, batch.size), params))
            return self.extend(results, [p.detach() for p in params], state)

        inputs = ([p.detach().requires_grad_(p.requires_grad) for p in self.params] + self.buffers + state
                  + [batch.rows, *batch.args])
        with torch.enable_grad():
            graph = make_fx(outputs, tracing_mode="fake", _allow_non_fake_inputs=True)(*inputs)
        # Pyro's bookkeeping leaves results no one reads (log-densities summed for a trace, detached copies):
        # dropping them leaves the operations that make the outputs, and every random draw.
        graph.graph.eliminate_dead_code()
        graph.recompile()
        return graph

    def _outputs_of(self, batch: Batch, params: tuple[Tensor, ...]) -> list[Tensor | None]:
        with _store_reads_inputs(self.module):
            return self.outputs(batch, params)

    def _verified(self, key: tuple, captured: _Captured, batch: Batch) -> Tensor:
        """The plain outputs on ``batch``, checked against the shape's graph (:meth:`_checked`). A graph that a
        :meth:`recheck` finds out of date is dropped, to be traced again at the shape's next call (the program's
        Python state changed between two uses); any other difference puts this shape on the plain path."""
        expected, why = self._checked(captured.run, batch)
        if why is not None:
            del self._graphs[key]
            if captured.checked:
                self._warn(key, why)
            else:
                logger.info("compile=%r: the kept %s of batches of shape %s no longer agrees with the plain one (%s): "
                            "it is traced again", self.compile, self.what, key[1], why)
            return self.finish(expected)
        captured.checked = True
        return self.finish(expected)

    def _checked(self, run: Callable[..., Any], batch: Batch) -> tuple[list[Tensor | None], str | None]:
        """The plain outputs on ``batch``, and why the graph ``run`` on the same draws from the same buffers differs
        from them, in an output, a buffer or the random stream's position (``None`` where it agrees)."""
        device = self.params[0].device if self.params else torch.device("cpu")
        before, buffers = _rng_state(device), [b.clone() for b in self.buffers]
        expected = self._plain(batch)
        after, updated = _rng_state(device), [b.clone() for b in self.buffers]
        _set_rng_state(device, before)
        _copy(self.buffers, buffers)
        try:
            replayed = self._replay(run, batch)
            why = disagreement(self.what, self.names(len(expected)), self.reference(expected, replayed), replayed,
                               updated, self.buffers, after, _rng_state(device))
        except Exception as error:  # a compiled graph that fails to build or run: the plain outputs stand
            why = f"the captured {self.what} failed to run: {type(error).__name__}: {first_line(error)}"
        _set_rng_state(device, after)
        _copy(self.buffers, updated)
        return expected, why

    def _warn(self, key: tuple, why: str) -> None:
        self.fallbacks[key] = why
        warnings.warn(f"compile={self.compile!r}: batches of shape {key[1]} run on the plain path: {why}",
                      FastPathFallback, stacklevel=4)


def _store_reads_inputs(module: nn.Module) -> contextlib.AbstractContextManager:
    """Inside ``functional_call``, the param store of a :class:`~ppgen.program.protocol.PyroFunctions` pair holds the
    tensors swapped in for its parameters, so that ``pyro.param`` reads the graph's inputs; restored after."""
    return module.store_reads_params() if isinstance(module, PyroFunctions) else contextlib.nullcontext()


def _inductor(graph: torch.fx.GraphModule, inputs: list[Tensor]) -> Callable[..., Any]:
    """``graph`` compiled by inductor for ``inputs``, as it is: ``torch.compile`` would trace it again with dynamo,
    whose guards, checked at every call, cost as much as the kernels of a small step. Their checks are ours: one graph
    per batch shape, and inductor's compiled code asserts its inputs' sizes and strides. The graph is compiled on a
    copy, and left as it was; on the CPU, with :data:`CPU_OPTIONS`."""
    import torch._inductor  # noqa: F401 - torch.compile's backend, loaded on first use

    copy = torch.fx.GraphModule(graph, copies.deepcopy(graph.graph))
    on_cpu = all(t.device.type == "cpu" for t in inputs)
    return torch._inductor.compile(copy, inputs, options=dict(CPU_OPTIONS) if on_cpu else None)


def _same(tensors: list[Tensor], now: Any) -> bool:
    now = list(now)
    return len(tensors) == len(now) and all(a is b for a, b in zip(tensors, now))


def _flat(graph: Callable[..., Any]) -> Callable[..., Any]:
    """The graph called with (parameters, buffers, state, rows, *inputs) as one flat list of tensors."""

    def run(params: list[Tensor], buffers: list[Tensor], state: list[Tensor], rows: Tensor, *args: Tensor) -> Any:
        return graph(*params, *buffers, *state, rows, *args)

    return run


def _shape_key(batch: Batch, training: bool) -> tuple:
    """What a captured graph is specialised to: the inputs' shapes, dtypes and devices, N, train or eval mode, and the
    inputs' strides (which a compiled graph asserts)."""
    return (training, tuple(tuple(a.shape) for a in batch.args), tuple((a.dtype, a.device) for a in batch.args),
            batch.rows.device, batch.size, tuple(a.stride() for a in (batch.rows, *batch.args)))


def _rng_state(device: torch.device) -> Tensor:
    return torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.get_rng_state()


def _set_rng_state(device: torch.device, state: Tensor) -> None:
    if device.type == "cuda":
        torch.cuda.set_rng_state(state, device)
    else:
        torch.set_rng_state(state)


def _copy(targets: list[Tensor], sources: list[Tensor]) -> None:
    with torch.no_grad():
        for target, source in zip(targets, sources):
            target.copy_(source)
