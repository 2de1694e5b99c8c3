"""What ppgen learns about a program by tracing it once, before fitting: its sites, its plates, its data plate.

Every fact here is learnt once, on a few rows of the data, with Pyro's validation on, so that a program Pyro
would refuse is refused before anything changes, with Pyro's own message where Pyro has one.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import pyro
import pyro.poutine as poutine
import torch
from pyro.distributions import Delta
from pyro.util import (check_model_guide_match, check_site_shape, check_traceenum_requirements, get_rng_state,
                       set_rng_state)
from torch import nn
from torch.distributions import constraints

from ppgen.program.inputs import Batch, as_batch
from ppgen.program.pointwise import per_point_terms
from ppgen.program.protocol import DATA_PLATE, has_guide
from ppgen.program.traces import Plan, sample_sites, trace_alone, trace_particles
from ppgen.utils.checks import first_line

#: exceptions that mean "the program fails on these inputs", turned into one ValueError that says so: any that a
#: user's program may raise while it is traced (a KeyError of its own is no less its failure than torch's errors).
PROGRAM_ERRORS = (Exception,)


@dataclass(frozen=True)
class Structure:
    """What one trace of a program shows: its sites and plates, learnt once before fitting.

    Attributes:
        plan: how to run the program (its plate nesting, its data plate, whether its particles vectorise).
        num_inputs: how many aligned inputs the program takes, ``model(x)`` or ``model(x, y, ...)``.
        observed: the names of the observed sites.
        observed_input: which input the data site receives as ``obs=`` (0 for x), or ``None``.
        data_site: the observed site that receives an input unchanged as ``obs=``, the one ``sample`` draws.
        guided: the latent sites that the guide draws from q(z|x).
        guide_enumerated: the guide's discrete sites that it sums over exactly, weighted by q (``config_enumerate``).
        enumerated: the model's discrete latents that are summed out exactly (marked in the model itself).
        unguided: the model's latents that neither the guide draws nor enumeration can sum out.
        global_sites: the model's latent sites outside the data plate, shared by every data point.
        point_estimates: the guide's sites that are point masses (``Delta``, as ``AutoDelta`` draws them), in a guide
            without auxiliary draws (``AutoNormal``'s Delta sites transform a Normal draw: they are not point masses).
        exact: whether log p(x) is available exactly (a ``log_prob`` method, or all latents enumerated in the model).
        unreparameterized: the guide's sampled (not enumerated) sites without a reparameterised sampler (``rsample``).
        data_support: the support of the likelihood of the observed input, to check data against before fitting.
    """

    plan: Plan
    num_inputs: int
    observed: tuple[str, ...]
    observed_input: int | None
    data_site: str | None
    guided: tuple[str, ...]
    guide_enumerated: tuple[str, ...]
    enumerated: tuple[str, ...]
    unguided: tuple[str, ...]
    global_sites: tuple[str, ...]
    point_estimates: tuple[str, ...]
    exact: bool
    unreparameterized: tuple[str, ...]
    data_support: constraints.Constraint | None

    @property
    def reparameterized(self) -> bool:
        """Whether every guide site that is sampled has a reparameterised sampler."""
        return not self.unreparameterized

    @property
    def particle_dim(self) -> int:
        """The batch dimension of the particle plate: left of every plate of the program."""
        return self.plan.particle_dim

    def check_data(self, batch: Batch, name: str) -> None:
        """Raise a ``ValueError`` naming ``name`` if a row of the observed input lies outside the likelihood's support."""
        if self.data_support is None or self.observed_input is None:
            return
        x = batch.args[self.observed_input]
        ok = self.data_support.check(x)
        if not bool(ok.all()):
            bad = (~ok).reshape(x.shape[0], -1).any(1).nonzero()[:, 0]
            support = self.data_support
            while isinstance(support, constraints.independent):  # the support of one coordinate of x
                support = support.base_constraint
            hint = ": values in {0, 1}, as a Bernoulli likelihood needs" if support is constraints.boolean else ""
            where = name if self.num_inputs == 1 else f"{name}[{self.observed_input}]"
            raise ValueError(
                f"{where}: {bad.numel()} data point(s) lie outside the support of the model's likelihood "
                f"({self.data_support}{hint}), the first at row {bad[0].item()}")


def inspect(module: nn.Module, batch: Batch | Any, name: str = "data") -> Structure:
    """Trace the guide and the model on a few rows and read off their :class:`Structure`.

    ``batch`` is a :class:`~ppgen.program.inputs.Batch`, or anything :func:`ppgen.fit` takes as data.

    The model is traced alone (its own marks decide what it sums out), the guide alone, and then the whole
    computation of the bounds runs once on two particles with Pyro's validation on: Pyro's checks of site shapes,
    of model-guide agreement and of enumeration run there. A program that does not broadcast over the particle
    plate is run one particle at a time instead, with a warning.

    Raises:
        ValueError: the program fails on the inputs (data of the wrong shape, for one), or breaks the protocol
            (no observed site, no plate of the batch's size, a guide site the model lacks, an enumerated latent
            outside the data plate, a sequentially enumerated site).
    """
    batch = as_batch(batch, name=name)
    rng = get_rng_state()  # tracing draws; the caller's random stream is left where it was
    try:
        return _inspect(module, batch, name)
    finally:
        set_rng_state(rng)


def _inspect(module: nn.Module, batch: Batch, name: str) -> Structure:
    with poutine.block(), pyro.validation_enabled(True):
        try:
            guide_trace = trace_alone(module.guide, batch) if has_guide(module) else None
            model_trace = trace_alone(module.model, batch)
        except PROGRAM_ERRORS as error:
            raise _fails(name, module, batch, error) from error
    guide_sites = sample_sites(guide_trace) if guide_trace else []
    model_sites = sample_sites(model_trace)
    observed = [s for s in model_sites if s["is_observed"]]
    if not observed:
        raise ValueError("the model observes nothing: pass the data with pyro.sample(..., obs=x)")
    data_plate = _find_data_plate(observed, len(batch))
    declared = next(f.full_size for f in observed[0]["cond_indep_stack"] if f.name == data_plate)
    if declared not in (None, len(batch), batch.size):
        raise ValueError(f"pyro.plate('{data_plate}', {declared}, subsample_size=...) declares {declared} data points, "
                         f"but the data set has {batch.size}: declare its size, or give the plate the batch's size")
    for site in guide_sites + model_sites:
        _check_site_plates(site, data_plate)
    latent = [s for s in model_sites if not s["is_observed"]]
    guide_site = {s["name"]: s for s in guide_sites}
    orphans = set(guide_site) - {s["name"] for s in latent} - {n for n, s in guide_site.items() if _auxiliary(s)}
    if orphans:
        raise ValueError(f"guide site(s) {', '.join(map(repr, sorted(orphans)))} are not latent sites of the model: "
                         f"q(z|x) must draw the model's own latents, under the same names")
    for site in guide_sites + latent:
        if site["infer"].get("enumerate") == "sequential":
            raise ValueError(f"site '{site['name']}' asks for sequential enumeration; ppgen sums out "
                             f"discrete latents in parallel: use infer={{'enumerate': 'parallel'}}")
    guided = tuple(s["name"] for s in guide_sites if not _auxiliary(s))
    guide_enumerated = tuple(s["name"] for s in guide_sites if _enumerable(s))
    enumerated = tuple(s["name"] for s in latent if s["name"] not in guide_site and _enumerable(s))
    unguided = tuple(s["name"] for s in latent if s["name"] not in guide_site and s["name"] not in enumerated)
    global_sites = tuple(s["name"] for s in latent if not _in_plate(s, data_plate))
    _check_enumeration(model_trace, guide_sites, enumerated, guide_enumerated, data_plate)
    dims = [-frame.dim for s in guide_sites + model_sites for frame in s["cond_indep_stack"] if frame.vectorized]
    data_dim = next(f.dim for f in observed[0]["cond_indep_stack"] if f.name == data_plate)
    plan = Plan(max_plate_nesting=max(dims, default=0), data_plate=data_plate, data_dim=data_dim, vectorized=True)
    data_site, observed_input = next(((s, i) for i, arg in enumerate(batch.args) for s in observed
                                      if s["value"] is arg), (None, None))  # x first, then the labels
    structure = Structure(
        plan=plan,
        num_inputs=len(batch.args),
        observed=tuple(s["name"] for s in observed),
        observed_input=observed_input,
        data_site=data_site["name"] if data_site else None,
        guided=guided,
        guide_enumerated=guide_enumerated,
        enumerated=enumerated,
        unguided=unguided,
        global_sites=global_sites,
        point_estimates=() if any(map(_auxiliary, guide_sites)) else tuple(  # else a Delta carries an auxiliary draw
            s["name"] for s in guide_sites if _point_mass(s["fn"])),
        exact=callable(getattr(module, "log_prob", None)) or all(_enumerable(s) for s in latent),
        unreparameterized=tuple(s["name"] for s in guide_sites if not _enumerable(s) and not s["fn"].has_rsample),
        data_support=data_site["fn"].support if data_site else None,
    )
    structure.check_data(batch, name)  # before the bounds run: out-of-support data is the data's fault, said so
    if unguided:  # no bound is defined; the backend's check says why, naming the latents
        return structure
    return _with_particles_checked(module, structure, batch, name)


def _with_particles_checked(module: nn.Module, structure: Structure, batch: Batch, name: str) -> Structure:
    """Run the bounds' own path on two particles, vectorised, with Pyro's checks; fall back to one particle at a
    time where the program does not broadcast over the particle plate (and say so once)."""
    def run(candidate: Structure, particles: int) -> None:
        with poutine.block(), pyro.validation_enabled(True), torch.no_grad():
            guide_trace, model_trace = trace_particles(module, candidate, batch, particles)
            for trace in filter(None, (guide_trace, model_trace)):
                trace.compute_log_prob()
            nesting = candidate.plan.max_plate_nesting + candidate.plan.vectorized
            if guide_trace is not None:
                check_model_guide_match(model_trace, guide_trace, nesting)
                try:
                    check_traceenum_requirements(model_trace, guide_trace)
                except ValueError as error:  # Pyro's words name plate symbols; say which sites are summed
                    raise ValueError(f"enumerated site(s) {', '.join(map(repr, candidate.enumerated))}: {error}") \
                        from error
            for trace in filter(None, (guide_trace, model_trace)):
                for site in sample_sites(trace):
                    check_site_shape(site, nesting)
            _check_no_hidden_dims(guide_trace, model_trace, nesting)
            per_point_terms(guide_trace, model_trace, candidate, batch, particles)

    try:
        run(structure, 2 if structure.guided else 1)  # with nothing drawn, one particle stands for all
        return structure
    except PROGRAM_ERRORS as vectorised_error:
        sequential = Structure(**{**structure.__dict__, "plan": structure.plan.one_particle_at_a_time()})
        try:
            run(sequential, 1)
        except PROGRAM_ERRORS as error:
            raise _fails(name, module, batch, error) from error
        warnings.warn(
            f"the program does not broadcast over a plate of particles left of its own plates "
            f"({first_line(vectorised_error)}); ppgen draws the K particles one at a time, which is slower. To "
            f"vectorise, let every tensor keep its leading batch dimensions: z.shape[:-1] rather than z.view(-1, d), "
            f"x.expand(z.shape[:-1] + x.shape[-1:]) rather than a reshape to the batch", stacklevel=3)
        return sequential


def _check_no_hidden_dims(guide_trace: poutine.Trace | None, model_trace: poutine.Trace, nesting: int) -> None:
    """A ``ValueError`` where a site's log-density has a dimension left of every plate that no enumeration made:
    a program that adds one (an ``unsqueeze`` of a particle-batched latent) would have its terms summed over it."""
    traces = [t for t in (guide_trace, model_trace) if t is not None]
    enumerated = {s["infer"]["_enumerate_dim"] for t in traces for s in sample_sites(t)
                  if s["infer"].get("_enumerate_dim") is not None}
    for trace in traces:
        for site in sample_sites(trace):
            shape = site["log_prob"].shape
            for i in range(len(shape) - nesting):
                if shape[i] > 1 and i - len(shape) not in enumerated:
                    raise ValueError(
                        f"site '{site['name']}' has a batch dimension of size {shape[i]} left of every plate (batch "
                        f"shape {list(shape)}, {nesting} plate dimension(s)) that no enumeration made")


def _fails(name: str, module: nn.Module, batch: Batch, error: Exception) -> ValueError:
    shapes = ", ".join(f"{list(arg.shape[1:])} {arg.dtype}" for arg in batch.args)
    program = getattr(getattr(module, "model_fn", None), "__qualname__", type(module).__qualname__)
    return ValueError(f"{name}: the program fails on rows of shape {shapes}: {program} raised "
                      f"{type(error).__name__}: {first_line(error)}")  # not Pyro's table of the trace's shapes


def _find_data_plate(observed: list[dict], batch_size: int) -> str:
    """The plate of the data points: around every observed site, of the batch's size; ``"data"`` if several are."""
    common = None
    for site in observed:
        frames = [f for f in site["cond_indep_stack"] if f.vectorized]
        unsized = [f.name for f in frames if f.size is None or f.size < 0]  # pyro.plate(name) without a size
        if unsized:
            raise ValueError(f"pyro.plate('{unsized[0]}') around site '{site['name']}' has no size: give the plate of "
                             f"the data points its size, pyro.plate('{unsized[0]}', x.shape[0])")
        names = {f.name for f in frames if f.size == batch_size}
        common = names if common is None else common & names
    if not common:
        raise ValueError(
            f"no pyro.plate around the observed site(s) {', '.join(repr(s['name']) for s in observed)} has the "
            f"batch's size {batch_size}: observe the data inside pyro.plate('{DATA_PLATE}', x.shape[0]) (or declare "
            f"the data set's size with pyro.plate('{DATA_PLATE}', N, subsample_size=x.shape[0]))")
    if len(common) > 1:
        if DATA_PLATE in common:
            return DATA_PLATE
        raise ValueError(f"plates {sorted(common)} all have the batch's size {batch_size}: name the plate of the "
                         f"data points '{DATA_PLATE}'")
    return common.pop()


def _in_plate(site: dict, plate: str) -> bool:
    return any(f.name == plate for f in site["cond_indep_stack"])


def _check_site_plates(site: dict, data_plate: str) -> None:
    """A site inside the data plate must have the data plate left of any other plate of its own: a point is a row."""
    plates = {frame.name: frame.dim for frame in site["cond_indep_stack"] if frame.vectorized}
    if data_plate in plates and plates[data_plate] != min(plates.values()):
        raise ValueError(
            f"site '{site['name']}' has a plate left of pyro.plate('{data_plate}', ...): give the data plate the "
            f"leftmost dim (e.g. dim=-2 around a plate with dim=-1), so that a point is a row")


def _check_enumeration(model_trace: poutine.Trace, guide_sites: list[dict], enumerated: tuple[str, ...],
                       guide_enumerated: tuple[str, ...], data_plate: str) -> None:
    """Refuse the enumerations whose sums are not per data point, before any of them runs."""
    for name in enumerated:
        if not _in_plate(model_trace.nodes[name], data_plate):
            raise ValueError(
                f"enumerated latent '{name}' sits outside pyro.plate('{data_plate}', ...): summing it out couples "
                f"every data point, but ppgen's bounds are per data point. Move it into the data plate, or give "
                f"the guide a distribution for it")
    if guide_enumerated and enumerated:
        raise ValueError(
            f"the guide enumerates {guide_enumerated} and the model enumerates {enumerated}: ppgen sums each "
            f"program's discrete latents in one place; enumerate them all in the model (no guide for them), or all "
            f"in the guide")
    for site in guide_sites:
        plates = {f.name for f in site["cond_indep_stack"] if f.vectorized}
        if site["name"] in guide_enumerated and plates != {data_plate}:
            raise ValueError(
                f"guide site '{site['name']}' is enumerated in plates {sorted(plates)}: ppgen sums a guide's "
                f"discrete latent per data point, inside pyro.plate('{data_plate}', ...) and no other plate; "
                f"enumerate it in the model instead")


def _enumerable(site: dict) -> bool:
    return site["infer"].get("enumerate") == "parallel" and site["fn"].has_enumerate_support


def _point_mass(fn: Any) -> bool:
    """Whether a distribution is a Delta, under any ``to_event``, ``expand`` or ``mask`` wrapper."""
    while hasattr(fn, "base_dist"):
        fn = fn.base_dist
    return isinstance(fn, Delta)


def _auxiliary(site: dict) -> bool:
    """A guide site the model does not have by design, such as an AutoGuide's joint latent."""
    return bool(site["infer"].get("is_auxiliary"))


def example_batch(batch: Batch, size: int = 3) -> Batch:
    """A few rows of the data to trace a program on."""
    return batch.head(size)

