"""How a program takes its data, learnt by running it: a batch of rows at a time, or the whole data set at every step.

:func:`learn` runs the program on a real batch of the fit's size (the data set's last rows, so that a program that
indexes its inputs by its plate's indices shows it), then on a batch of another size, replayed with its log-densities
computed: that tells which plate follows the batch (:mod:`ppgen.program.plates`), whether the program takes other
sizes, whether it makes parameters one per point of its first batch, and whether it takes the whole data set (Pyro's
LDA subsamples its documents itself), in which case it is run so. It also decides whether an integer x stays integer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import pyro
import pyro.poutine as poutine
import torch
from pyro.poutine.indep_messenger import CondIndepStackFrame
from torch import nn

from ppgen.program.inputs import Batch
from ppgen.program.plates import (declared_size, find_data_plate, plate_frames, plate_size, sizeless,
                                  subsampled_plates)
from ppgen.program.protocol import PyroFunctions, has_guide
from ppgen.program.traces import sample_sites, trace_alone
from ppgen.utils.checks import first_line

#: how the batches a program runs on are placed: on the device and in the dtype of its parameters, or as given.
Placement = Callable[[Batch], Batch]

#: the number of points per step where neither the user nor the program chooses it.
DEFAULT_BATCH_SIZE = 128

#: exceptions that mean "the program fails on these inputs", turned into one ValueError that says so: any that a
#: user's program may raise while it is traced (a KeyError of its own is no less its failure than torch's errors).
PROGRAM_ERRORS = (Exception,)



def floating_x(batch: Batch) -> Batch:
    """The batch with an integer or bool x (its first input) in torch's default floating-point dtype."""
    x = batch.args[0]
    if x.is_floating_point():
        return batch
    return Batch((x.to(torch.get_default_dtype()), *batch.args[1:]), batch.rows, batch.size, batch.whole)


@dataclass(frozen=True)
class Traced:
    """One run of the guide and the model alone, on ``batch``, and the data plate read off it."""

    batch: Batch
    guide_trace: poutine.Trace | None
    model_trace: poutine.Trace
    data_plate: CondIndepStackFrame
    own_batch_size: int | None = None


def _run_alone(module: nn.Module, batch: Batch, plate: str | None = None, replayed: bool = False
               ) -> tuple[poutine.Trace | None, poutine.Trace]:
    """The guide and the model each run once on ``batch`` as the program wrote them, with Pyro's validation on (no
    particles, no enumeration), the batch's rows given to the plate ``plate`` (to none where ``None``: each plate
    draws its own subsample); ``replayed``: the model replayed on the guide's draws, as one particle of Pyro's
    ``Trace_ELBO`` runs it, which shows a guide whose own sizes are not the batch's."""
    rows = plate is not None
    with poutine.block(), pyro.validation_enabled(True):
        guide_trace = trace_alone(module.guide, batch, plate, rows) if has_guide(module) else None
        if not replayed:
            return guide_trace, trace_alone(module.model, batch, plate, rows)
        model = poutine.replay(module.model, trace=guide_trace) if guide_trace is not None else module.model
        model_trace = trace_alone(model, batch, plate, rows)
        for trace in filter(None, (guide_trace, model_trace)):
            trace.compute_log_prob()
        return guide_trace, model_trace


def observes(site: dict) -> bool:
    """Whether a sample site observes data: ``obs=`` given, and not a ``pyro.deterministic`` site, which records a
    value (its log-density masked out) and observes nothing."""
    return site["is_observed"] and not site["infer"].get("_deterministic", False)


def observed_sites(model_trace: poutine.Trace) -> list[dict]:
    sites = sample_sites(model_trace)
    observed = [s for s in sites if observes(s)]
    if not observed:
        recorded = [s["name"] for s in sites if s["is_observed"]]
        because = (f": site(s) {', '.join(map(repr, recorded))} are pyro.deterministic sites, which record a value "
                   f"and observe no data" if recorded else "")
        generator = (" (a generator x = G(z) observes it through a point mass, pyro.sample('x', dist.Delta(G(z), "
                     "event_dim=1), obs=x))" if recorded else "")
        raise ValueError(f"the model observes nothing{because}: pass the data with pyro.sample(..., obs=x){generator}")
    return observed


def learn(module: nn.Module, data: Batch, name: str, batch_size: int | None, place: Placement) -> Traced:
    """The program run alone on a real batch, and how it takes its data: a batch of rows at a time, or the whole data
    set at every step (:func:`_whole_data`)."""
    size = min(batch_size or DEFAULT_BATCH_SIZE, len(data))
    first = data.take(torch.arange(len(data) - size, len(data)))  # real rows, not rows 0..B-1 where B < N
    data = _with_x_decided(module, data, first, place)
    first = place(data.take(torch.arange(len(data) - size, len(data))))
    in_memory = not data.whole and len(data) == data.size
    before = set(module._store["params"]) if isinstance(module, PyroFunctions) else set()
    try:
        guide_trace, model_trace = _run_alone(module, first)
    except PROGRAM_ERRORS as error:
        if not in_memory or len(first) == len(data):
            raise fails(name, module, first, error) from error
        return _whole_data(module, data, name, batch_size, place, error)  # it may take the data laid out otherwise
    sized = _batch_sized_params(module, before, len(first)) if len(first) < data.size else []
    if sized:  # pyro.param("loc", torch.zeros(len(x))): one parameter per point of this batch, by its position
        if batch_size is not None or not in_memory:
            raise ValueError(
                f"batch_size: parameter(s) {', '.join(map(repr, sized))} of the program are made with the first "
                f"batch's size {len(first)}, one per point of a batch by its position, which each batch of other "
                f"points would share: leave batch_size out to fit the program on its whole data set at every step "
                f"(in memory), or index them by the plate's indices, pyro.plate('data', {data.size}, "
                f"subsample_size=len(x)) as ind, loc[ind]")
        module.forget(sized)
        whole = learn(module, data, name, len(data), place)  # the parameters made again, one per point of the data
        return dataclasses.replace(whole, own_batch_size=whole.own_batch_size or len(data))
    observed = observed_sites(model_trace)
    other = first.take(torch.arange(len(first) - 1)) if len(first) > 1 else None
    followers, other_error = None, None
    if other is not None:
        try:
            _, other_model = _run_alone(module, other, replayed=True)
            before = {f.name: plate_size(s, f) for s in observed for f in plate_frames(s)}
            followers = {f.name for s in observed_sites(other_model) for f in plate_frames(s)
                         if before.get(f.name) != plate_size(s, f)}
        except PROGRAM_ERRORS as error:  # where the batch itself fails so (data outside the support), not its size
            other_error = error if _runs(module, first) else None
    subsampled = subsampled_plates((guide_trace, model_trace), data.size)
    frame = find_data_plate(observed, data.size, len(first), followers, subsampled)
    if frame.name not in subsampled and (sizeless(frame) or frame.size == len(first)) and other_error is None:
        return Traced(first, guide_trace, model_trace, frame)
    if (other_error is not None and frame.name not in subsampled and not sizeless(frame)
            and frame.size == len(first) < declared_size(frame) == data.size):
        # given the batch's rows, it runs at this batch size only (an AutoGuide's subsample_size is fixed at its first
        # call): batches of this size, an epoch's last, smaller one dropped
        return Traced(first, guide_trace, model_trace, frame, own_batch_size=len(first))
    if other_error is not None and batch_size is not None and len(first) < data.size:
        try:
            whole = _whole_data(module, data, name, batch_size, place, None) if in_memory else None
        except PROGRAM_ERRORS:  # it takes no whole data set either: the batch's size is what it cannot take
            whole = None
        if whole is not None and whole.own_batch_size == batch_size:  # it subsamples batches of this size itself
            return whole
        raise ValueError(
            f"batch_size: the program runs on a batch of {len(first)} points but fails on one of {len(other)} "
            f"({first_line(other_error)}): something in it, such as an AutoGuide's parameters for latents inside "
            f"pyro.plate('{frame.name}', len(x)), is made for one batch size. Leave batch_size out to fit it on the "
            f"whole data set at every step, or declare the data set's size, pyro.plate('{frame.name}', {data.size}, "
            f"subsample_size=len(x)), so that per-point parameters are indexed by the batch's rows")
    if not in_memory:
        raise takes_the_whole_data_set(name, frame.name)
    return _whole_data(module, data, name, batch_size, place, None)


def takes_the_whole_data_set(name: str, plate: str) -> ValueError:
    """The error for a program that takes the whole data set at every step, given data it cannot have whole."""
    return ValueError(f"{name}: the program takes the whole data set at every step (its data plate "
                      f"pyro.plate('{plate}', ...) subsamples it, or it runs at one batch size only): pass the data in "
                      f"memory, as a tensor or a tuple of tensors")


def _batch_sized_params(module: nn.Module, before: set[str], size: int) -> list[str]:
    """The ``pyro.param`` parameters of a function pair made since ``before`` whose leading dimension is ``size``:
    its own, not those of a network (``pyro.module``'s ``name$$$...``) or of an AutoGuide passed as a function."""
    if not isinstance(module, PyroFunctions):
        return []
    owned = tuple(f"{fn._pyro_name}." for fn in (module.model_fn, module.guide_fn) if hasattr(fn, "_pyro_name"))
    return sorted(name for name, value in module._store["params"].items()
                  if name not in before and "$$$" not in name and not (owned and name.startswith(owned))
                  and value.dim() and value.shape[0] == size)


def _with_x_decided(module: nn.Module, data: Batch, first: Batch, place: Placement) -> Batch:
    """``data`` with an integer x made floating point, unless the program fails on it so and runs on it as it is: on
    ``first``, or else on the whole data set (a program may take only all of it); a floating-point x is left alone."""
    if data.args[0].is_floating_point():
        return data
    for batch in (first, data.as_whole()) if len(first) < len(data) == data.size else (first,):
        if _runs(module, place(floating_x(batch))):
            break
        if _runs(module, place(batch)):
            return data
    return floating_x(data)


def _whole_data(module: nn.Module, data: Batch, name: str, batch_size: int | None, place: Placement,
                error: Exception | None) -> Traced:
    """A program called with the whole data set, laid out as it takes it, at every step: its data plate is given the
    rows of a batch where it declares its size (it then indexes its data by the plate's indices), and spans all of the
    data set where it does not. ``error`` is what running it on a batch of rows raised, reported if this fails too."""
    whole = place(data.as_whole())
    try:
        guide_trace, model_trace = _run_alone(module, whole)
        subsampled = subsampled_plates((guide_trace, model_trace))
        observed = observed_sites(model_trace)
        frame = find_data_plate(observed, len(data), None, subsampled=subsampled)
    except PROGRAM_ERRORS as whole_error:
        if error is None:
            raise
        raise fails(name, module, data.head(1), error) from whole_error
    n = declared_size(frame) if not sizeless(frame) else plate_size(observed[0], frame)
    whole = Batch(whole.args, torch.arange(n), n, whole=True)
    own = subsampled.get(frame.name)
    if own is None:  # ppgen's rows where the plate takes them, else all of its points at every step
        size = min(batch_size or DEFAULT_BATCH_SIZE, n)
        own = None if size < n and _runs(module, whole.take(torch.arange(n - size, n)), frame.name) else n
    batch = whole.take(torch.arange(n - (own or size), n))
    try:
        guide_trace, model_trace = _run_alone(module, batch, frame.name)
    except PROGRAM_ERRORS as run_error:
        raise fails(name, module, batch, run_error) from run_error
    observed = observed_sites(model_trace)
    frame = next(f for s in observed for f in plate_frames(s) if f.name == frame.name)
    _check_set_up_whole(guide_trace, frame.name, n)
    given = [s["name"] for s in observed if any(s["value"] is arg for arg in batch.args)]
    if frame.size < n == len(data) and given and batch_size in (None, frame.size):
        # it observes the rows it is given, of the number its plate subsamples: batches of that size
        return learn(module, data, name, frame.size, place)
    if frame.size < n and given:
        raise ValueError(f"pyro.plate('{frame.name}', {n}, subsample_size={frame.size}) declares {n} data points, but "
                         f"site '{given[0]}' observes the data it is given whole ({len(data)} rows): declare the data "
                         f"set's size, pyro.plate('{frame.name}', {len(data)}, subsample_size=len(x)), or observe the "
                         f"points of the plate's indices, obs=x[ind]")
    return Traced(batch, guide_trace, model_trace, frame, own_batch_size=own)


def _check_set_up_whole(guide_trace: poutine.Trace | None, plate: str, n: int) -> None:
    """A ``ValueError`` where the guide's own plate of the data points has another size than the program's N: it was
    set up on the batch ppgen ran it on first (an AutoGuide sets its plates up on its first call), and would draw its
    own subsample of the wrong points."""
    frames = [f for site in (guide_trace.nodes.values() if guide_trace is not None else ())
              if site["type"] == "sample" for f in plate_frames(site) if f.name == plate]
    sizes = sorted({declared_size(f) for f in frames if not sizeless(f)} - {n})
    if sizes:
        raise ValueError(f"the guide's pyro.plate('{plate}') has {sizes[0]} points where the program's has {n}: it was "
                         f"set up on the first batch ppgen ran it on (an AutoGuide sets itself up on its first call), "
                         f"but this program takes the whole data set. Call the guide once on the whole data set "
                         f"before ppgen.fit, guide(x), so that it sets itself up on all of it")


def _runs(module: nn.Module, batch: Batch, plate: str | None = None) -> bool:
    """Whether the program runs alone on ``batch``, its data plate ``plate`` (any plate of the data set's size where
    ``None``) given the batch's rows."""
    try:
        _run_alone(module, batch, plate, replayed=True)
    except PROGRAM_ERRORS:
        return False
    return True



def fails(name: str, module: nn.Module, batch: Batch, error: Exception) -> ValueError:
    shapes = ", ".join(f"{list(arg.shape[1:])} {arg.dtype}" for arg in batch.args)
    program = getattr(getattr(module, "model_fn", None), "__qualname__", type(module).__qualname__)
    return ValueError(f"{name}: the program fails on rows of shape {shapes}: {program} raised "
                      f"{type(error).__name__}: {first_line(error)}")  # not Pyro's table of the trace's shapes
