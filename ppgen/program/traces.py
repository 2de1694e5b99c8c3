"""Running a program: the guide's K particles, the model replayed on them, the data plate given the batch's rows.

Everything that runs a user's program for a bound or a query goes through :func:`trace_particles` (or
:func:`trace_alone`, once, to learn its structure), so that every query sees the program the same way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyro
import pyro.poutine as poutine
import torch
from pyro.distributions import Delta
from pyro.poutine.messenger import Messenger
from pyro.poutine.subsample_messenger import _Subsample
from torch import Tensor

from ppgen.program.inputs import Batch
from ppgen.program.protocol import has_guide

PARTICLE_PLATE = "particles"


@dataclass(frozen=True)
class Plan:
    """How to run a program, learnt once by :func:`ppgen.program.structure.inspect`.

    Attributes:
        max_plate_nesting: how many batch dimensions the program's plates use.
        data_plate: the name of the plate of the data points.
        data_dim: its batch dimension (any of the program's plate dimensions).
        vectorized: whether the program broadcasts over a plate of particles left of its own plates; if not,
            each particle is drawn without a particle plate, as Pyro's ``Trace_ELBO`` runs a program that it does
            not vectorise: mapped over the K particles where ``mapped``, else one at a time.
        whole_data: whether the program is called with the whole data set and subsamples its data plate itself
            (``pyro.plate("documents", N, subsample_size=B) as ind`` and ``data[ind]``): ppgen then passes the whole
            inputs at every step and gives the data plate the batch's rows as its subsample.
    """

    max_plate_nesting: int
    data_plate: str
    data_dim: int
    vectorized: bool
    whole_data: bool = False
    mapped: bool = False

    @property
    def particle_dim(self) -> int:
        """The batch dimension of the particle plate: left of every plate of the program."""
        return -self.max_plate_nesting - 1

    @property
    def many_at_once(self) -> bool:
        """Whether a pass may hold several particles: in a particle plate (``vectorized``) or mapped (``mapped``)."""
        return self.vectorized or self.mapped

    def one_particle_at_a_time(self) -> Plan:
        """The same plan, for a program that does not broadcast over particles and is run one particle at a time."""
        return dataclasses.replace(self, vectorized=False, mapped=False)

    def mapped_over_particles(self) -> Plan:
        """The same plan, for a program that does not broadcast over particles, its one-particle pass mapped over K
        by ``torch.func.vmap`` (:mod:`ppgen.program.mapping`)."""
        return dataclasses.replace(self, vectorized=False, mapped=True)


class BatchRows(Messenger):
    """Gives the batch's rows as the subsample of a plate that declares the data set's size N, ``pyro.plate(name, N)``
    or ``pyro.plate(name, N, subsample_size=B)``, so that per-data-point parameters (an AutoGuide's, or indexed by the
    plate's indices) and data indexed by them are those of the points in the batch; Pyro then scales the plate's
    log-densities by N / B, as for any subsampled plate. Only the plate called ``plate`` where one is named (the
    data plate, once known); a plate whose own ``subsample_size`` is not the batch's keeps its own (Pyro refuses a
    subsample of another size)."""

    def __init__(self, batch: Batch, plate: str | None = None) -> None:
        super().__init__()
        self.batch = batch
        self.plate = plate

    def _pyro_sample(self, msg: dict) -> None:
        fn = msg["fn"]
        if (isinstance(fn, _Subsample) and msg["value"] is None and (self.plate is None or msg["name"] == self.plate)
                and fn.size == self.batch.size and len(self.batch) < fn.size
                and fn.subsample_size in (None, len(self.batch))):
            msg["value"] = self.batch.rows


def sample_sites(trace: poutine.Trace) -> list[dict]:
    """The sample sites of a trace, without the subsample sites that plates add."""
    return [s for s in trace.nodes.values() if s["type"] == "sample" and not isinstance(s["fn"], _Subsample)]


def point_mass(fn: Any) -> bool:
    """Whether a distribution is a Delta, under any ``to_event``, ``expand`` or ``mask`` wrapper."""
    while hasattr(fn, "base_dist"):
        fn = fn.base_dist
    return isinstance(fn, Delta)


def trace_alone(fn: Callable[..., Any], batch: Batch, plate: str | None = None, rows: bool = True) -> poutine.Trace:
    """One run of a model or a guide on its own, as the program wrote it: no particles, no replay, no enumeration;
    ``rows``: the batch's rows given to the plate ``plate`` (any plate of the data set's size where ``None``, see
    :class:`BatchRows`), else to none (each plate draws its own subsample, as the program alone does)."""
    return poutine.trace(BatchRows(batch, plate)(fn) if rows else fn).get_trace(*batch.args)


def draw_particles(module: Any, structure: Any, batch: Batch, num_particles: int) -> poutine.Trace | None:
    """z_k ~ q(z|x) for K particles in one vectorised pass, in a plate left of the program's own plates; the
    guide's discrete sites marked for enumeration are enumerated, in dimensions left of that plate.

    Returns:
        The guide's trace, or ``None`` for a program without a guide.
    """
    if not has_guide(module):
        return None
    guide = in_particles(BatchRows(batch, structure.plan.data_plate)(module.guide), num_particles, structure.plan)
    if structure.guide_enumerated:
        guide = poutine.enum(guide, first_available_dim=structure.particle_dim - 1)
    return poutine.trace(guide).get_trace(*batch.args)


def trace_particles(module: Any, structure: Any, batch: Batch, num_particles: int,
                    use_guide: bool = True) -> tuple[poutine.Trace | None, poutine.Trace]:
    """K particles of the program: z_k ~ q(z|x) from :func:`draw_particles`, and the model replayed on them, with
    its discrete latents that are marked for enumeration left as enumerated tensor dimensions, to be summed out.

    Arguments:
        module: the program (protocol of :mod:`ppgen.program.protocol`).
        structure: its :class:`~ppgen.program.structure.Structure`.
        batch: the inputs, a :class:`~ppgen.program.inputs.Batch` of B points.
        num_particles: K.
        use_guide: draw z from the guide; ``False`` runs the model alone, every latent enumerated.

    Returns:
        The guide's trace (``None`` without a guide, or with ``use_guide=False``) and the model's trace.
    """
    guide_trace = draw_particles(module, structure, batch, num_particles) if use_guide else None
    model = in_particles(BatchRows(batch, structure.plan.data_plate)(module.model), num_particles, structure.plan)
    if structure.enumerated or not use_guide:  # left of the guide's enumerated dimensions, as TraceEnum_ELBO does
        after_guide = guide_trace is not None and bool(structure.guide_enumerated)
        model = poutine.enum(model, first_available_dim=None if after_guide else structure.particle_dim - 1)
    if guide_trace is not None:
        model = poutine.replay(model, trace=guide_trace)
    return guide_trace, poutine.trace(model).get_trace(*batch.args)


def in_particles(fn: Callable[..., Any], num_particles: int, plan: Plan) -> Callable[..., Any]:
    """``fn`` run inside the particle plate, which thus broadcasts its sites before any handler around it (replay,
    enumeration) marks them done, as Pyro's vectorised particles do; a program that does not broadcast over
    particles runs as it is, one particle."""
    if not plan.vectorized:
        if num_particles != 1:
            raise ValueError(f"this program is run one particle at a time, not {num_particles} at once")
        return fn

    def run(*args: Any) -> Any:
        with pyro.plate(PARTICLE_PLATE, num_particles, dim=plan.particle_dim):
            return fn(*args)
    return run


class Unobserve(Messenger):
    """Turns one observed site back into a latent one, drawn from its distribution; every other ``obs=`` stays."""

    def __init__(self, site: str) -> None:
        super().__init__()
        self.site = site

    def _pyro_sample(self, msg: dict) -> None:
        if msg["name"] == self.site and msg["is_observed"]:
            msg["is_observed"], msg["value"] = False, None


def as_rows(value: Tensor, node: dict, structure: Any, shape: torch.Size) -> Tensor:
    """The drawn x with one point per row, [n, ...] as the training data: the data plate's dimension moved first where
    the program lays it out elsewhere (dim=-1 inside a plate at dim=-2); a ``ValueError`` where x has no n points."""
    if value.shape == shape:
        return value
    data_dim = value.dim() - node["fn"].event_dim + structure.plan.data_dim
    if 0 <= data_dim < value.dim() and value.movedim(data_dim, 0).shape == shape:
        return value.movedim(data_dim, 0)
    raise ValueError(f"sample: the model draws its data site {node['name']!r} with shape {list(value.shape)}, not "
                     f"{list(shape)}, one point per row: it does not lay the points of pyro.plate("
                     f"'{structure.plan.data_plate}') along them (a plate without a size cannot broadcast a draw to "
                     f"them; give it the size, pyro.plate('{structure.plan.data_plate}', len(x)))")
