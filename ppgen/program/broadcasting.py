"""How a program that does not broadcast over a plate of particles runs its K particles: mapped by ``torch.func.vmap``
where that gives the values of one particle at a time, else one at a time, with a warning that names the operation.

:func:`ppgen.program.structure.inspect` calls :func:`without_broadcasting` once, on a real batch, after the program has
run one particle at a time with Pyro's checks. Mapping is tried on two particles: their log weights, per particle and
point, must equal (to float rounding) those of the program run one particle at a time on the same draws (each
particle's draws given to the guide's sites, :class:`~ppgen.program.mapping.Given`), and every continuous draw must
differ between the two particles (a program that makes its noise otherwise than by torch's random functions would
draw the same noise for all K). A program that runs in the plate of particles is held to the same standard
(:func:`broadcasting_failure`): one that mixes its particles there (``w.sum()`` over a draw) is mapped instead.
"""

from __future__ import annotations

import dataclasses
import linecache
import os
import re
import sysconfig
import warnings
from types import TracebackType
from typing import TYPE_CHECKING

import pyro
import pyro.poutine as poutine
import torch
from torch import Tensor, nn

from ppgen.program.inputs import Batch
from ppgen.program.intake import PROGRAM_ERRORS
from ppgen.program.mapping import Given, mapped
from ppgen.program.pointwise import per_point_terms
from ppgen.program.traces import point_mass, sample_sites, trace_particles
from ppgen.utils.checks import first_line

if TYPE_CHECKING:
    from ppgen.program.structure import Structure

#: how closely the mapped log weights must equal those of one particle at a time on the same draws.
RTOL, ATOL = 1e-4, 1e-5


def without_broadcasting(module: nn.Module, structure: Structure, batch: Batch,
                         vectorised_error: Exception) -> Structure:
    """``structure`` (run one particle at a time) with its particles mapped by ``vmap`` where
    :func:`mapping_failure` finds nothing; else as it is, with a warning that says why either way failed and how to
    rewrite the operation that stops the program from broadcasting."""
    failure = mapping_failure(module, structure, batch)
    if failure is None:
        return dataclasses.replace(structure, plan=structure.plan.mapped_over_particles())
    warnings.warn(f"the program does not broadcast over a plate of particles left of its own plates "
                  f"({described(vectorised_error)}), and torch.func.vmap cannot map it over the particles ({failure}); "
                  f"ppgen draws the K particles one at a time, which is slower. {advice(vectorised_error)}",
                  stacklevel=5)
    return structure


def broadcasting_failure(module: nn.Module, structure: Structure, batch: Batch) -> str | None:
    """Why the program's pass of two particles in a plate of particles is not two passes of one particle, or ``None``:
    its log weights [2, B] must equal, per particle and point, those of each particle alone on the same draws. A
    program that reduces over a draw's leading dimensions (``w.sum()``, ``w.mean()``, ``len(w)``) runs in the plate
    but mixes its particles. Checked in eval mode (dropout draws its own masks in each pass), the module's modes put
    back; the caller's random stream is the caller's to keep."""
    if structure.guide_enumerated:  # a particle is not one draw of every latent
        return None
    sequential = dataclasses.replace(structure, plan=structure.plan.one_particle_at_a_time())
    modes = [(part, part.training) for part in module.modules()]
    module.eval()
    try:
        with poutine.block(), pyro.validation_enabled(False), torch.no_grad():
            guide_trace, model_trace = trace_particles(module, structure, batch, 2)
            log_w = per_point_terms(guide_trace, model_trace, structure, batch, 2)
            alone = sample_sites(trace_particles(module, sequential, batch, 1)[0])  # each site's shape, one particle
            draws = {s["name"]: s["value"] for s in sample_sites(guide_trace) if not point_mass(s["fn"])}
            axis = {s["name"]: s["value"].dim() - s["fn"].event_dim + structure.plan.particle_dim
                    for s in sample_sites(guide_trace)}
            each = []
            for k in range(2):
                given = {s["name"]: draws[s["name"]].select(axis[s["name"]], k).reshape(s["value"].shape)
                         for s in alone if s["name"] in draws}
                with Given(given):
                    each.append(per_point_terms(*trace_particles(module, sequential, batch, 1), sequential, batch, 1))
    finally:
        for part, mode in modes:
            part.training = mode
    each = torch.cat(each)
    if torch.allclose(log_w, each, rtol=RTOL, atol=ATOL):
        return None
    return (f"its log weights in a plate of particles differ from those of one particle at a time on the same draws "
            f"(by {(log_w - each).abs().max().item():.3g}): an operation mixes the particles, such as a sum, a mean or "
            f"len() over a draw's leading dimensions (w.sum(), w.mean(), w.norm(), len(w))")


def mapping_failure(module: nn.Module, structure: Structure, batch: Batch) -> str | None:
    """Why the one-particle pass of the program cannot be mapped over particles, or ``None`` where it can: two
    particles mapped give each the log weights [1, B] of one particle at a time on the same draws, and different
    continuous draws. The caller's random stream and the module's buffers are the caller's to keep."""
    if structure.enumerated or structure.guide_enumerated:
        return "it sums discrete latents out by enumeration, which ppgen does not map over particles"

    continuous: set[str] = set()  # the drawn sites whose two particles cannot be equal but by a fault

    def one(given: dict[str, Tensor] | None = None) -> tuple[dict[str, Tensor], Tensor]:
        with Given(given or {}):
            guide_trace, model_trace = trace_particles(module, structure, batch, 1)
        sites = [s for s in sample_sites(guide_trace) if not point_mass(s["fn"])] if guide_trace is not None else []
        continuous.update(s["name"] for s in sites if not s["fn"].support.is_discrete)  # a Poisson's two may be equal
        return ({s["name"]: s["value"].unsqueeze(0) for s in sites},
                per_point_terms(guide_trace, model_trace, structure, batch, 1))

    with poutine.block(), torch.no_grad():
        try:
            draws, log_w = mapped(lambda _: one(), 2)
        except PROGRAM_ERRORS as error:
            return f"{described(error)}{mapping_advice(error)}"
        with pyro.validation_enabled(False):
            each = torch.cat([one({name: value[k] for name, value in draws.items()})[1] for k in range(2)])
    same = [name for name, value in draws.items() if name in continuous and torch.equal(value[0], value[1])]
    if same:
        return (f"its draws of {', '.join(map(repr, same))} are the same in every particle mapped: it draws them "
                f"otherwise than by torch's random functions")
    if log_w.shape != each.shape or not torch.allclose(log_w, each, rtol=RTOL, atol=ATOL):
        gap = (log_w - each).abs().max().item() if log_w.shape == each.shape else f"shape {list(log_w.shape)}"
        return f"its log weights mapped differ from those of one particle at a time on the same draws ({gap})"
    return None


def described(error: BaseException) -> str:
    """An error's type and first line (without vmap's request to file an issue), and the line of the user's program it
    came from where one can be found."""
    where = user_line(error)
    message = re.sub(r"\s*(We don't support that yet|If this is necessary for your usage).*", "", first_line(error))
    return f"{type(error).__name__}: {message}" + (f", at {where[0]}: `{where[1]}`" if where else "")


def user_line(error: BaseException) -> tuple[str, str] | None:
    """``(file:line, source)`` of the innermost frame outside torch, Pyro, ppgen's core and Python's own library in
    the traceback of ``error`` or of the errors it was raised from (``raise ... from``), the first cause first;
    ``None`` where there is none."""
    chain = []
    while error is not None and error not in chain:
        chain.append(error)
        error = error.__cause__
    for cause in reversed(chain):
        frames = [frame for frame in _frames(cause.__traceback__) if not _library(frame.tb_frame.f_code.co_filename)]
        if frames:
            code, line = frames[-1].tb_frame.f_code, frames[-1].tb_lineno
            return f"{os.path.basename(code.co_filename)}:{line}", linecache.getline(code.co_filename, line).strip()
    return None


def advice(vectorised_error: BaseException) -> str:
    """How to let the program broadcast over particles, for the operation that failed where it can be told."""
    where = user_line(vectorised_error)
    source = where[1] if where else ""
    if re.search(r"@|\bmatmul\(|\.mm\(|\bmv\(|\bbmm\(", source):
        return (f"To vectorise, write the product so that it broadcasts over leading dimensions (`{source}`): a "
                f"global draw w of shape [D] is [K, 1, D] in a plate of particles, which `@` takes for a stack of "
                f"matrices; for X [N, D], `X @ w` is `(X * w).sum(-1)`, and with a matrix W [D, M] `X @ W` is "
                f"`(X.unsqueeze(-1) * W).sum(-2)`")
    if re.search(r"\.view\(|\.reshape\(|\.flatten\(", source):
        return (f"To vectorise, keep the leading batch dimensions when reshaping (`{source}`): z.shape[:-1] rather "
                f"than z.view(-1, d), x.expand(z.shape[:-1] + x.shape[-1:]) rather than a reshape to the batch")
    return ("To vectorise, let every tensor keep its leading batch dimensions: z.shape[:-1] rather than "
            "z.view(-1, d), x.expand(z.shape[:-1] + x.shape[-1:]) rather than a reshape to the batch, "
            "(X * w).sum(-1) rather than X @ w")


def mapping_advice(error: BaseException) -> str:
    """What ``vmap`` could not take, in words, for the errors it raises on a program's operations."""
    message = str(error)
    if "data-dependent control flow" in message:
        return ": a Python if, while or bool() on a tensor's value; torch.where(condition, a, b) computes both sides"
    if ".item()" in message:
        return ": .item() reads one number out of a tensor; keep it a tensor"
    if "inplace randomness" in message:
        return (": a random draw into a tensor in place (x.bernoulli_(p), x.random_()); draw it out of place "
                "(torch.bernoulli(p), torch.randint)")
    if "inplace" in message or "in-place" in message:
        return (": an in-place write into a tensor made outside the pass (or a BatchNorm's running statistics in "
                "training mode); write a new tensor (x = x + y rather than x += y)")
    return ""


def _frames(traceback: TracebackType | None) -> list[TracebackType]:
    frames = []
    while traceback is not None:
        frames.append(traceback)
        traceback = traceback.tb_next
    return frames


#: where the code that is not the user's lives: torch, Pyro and every installed package, ppgen's core, Python's library.
_LIBRARIES = tuple(os.path.realpath(path) + os.sep for path in (
    os.path.dirname(torch.__file__), os.path.dirname(pyro.__file__), os.path.dirname(os.path.dirname(__file__)),
    *{sysconfig.get_paths()[key] for key in ("stdlib", "purelib", "platlib")}))


def _library(filename: str) -> bool:
    return filename.startswith("<") or os.path.realpath(filename).startswith(_LIBRARIES)
