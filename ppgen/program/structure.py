"""What ppgen learns about a program by tracing it, before fitting: its sites, its plates, its data plate.

Every fact here is learnt once, on a real batch of the data (the size of the fit's mini-batches), with Pyro's
validation on, so that a program Pyro would refuse is refused before anything changes, with Pyro's own message
where Pyro has one. How the program takes its data is learnt first, by running it (:mod:`ppgen.program.intake`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import pyro
import pyro.poutine as poutine
import torch
from pyro.util import (check_model_guide_match, check_site_shape, check_traceenum_requirements, get_rng_state,
                       set_rng_state)
from torch import Tensor, nn
from torch.distributions import constraints

from ppgen.program.broadcasting import broadcasting_failure, without_broadcasting
from ppgen.program.inputs import Batch, as_batch
from ppgen.program.intake import PROGRAM_ERRORS, Placement, fails, floating_x, learn, observes
from ppgen.program.pointwise import per_point_terms
from ppgen.program.protocol import as_model_input, bounds_itself
from ppgen.program.traces import Plan, point_mass, sample_sites, trace_particles
from ppgen.program.unnormalized import unnormalized_of
from ppgen.utils.checks import coordinate_support

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
        exact: whether log p(x) is available exactly (a ``log_prob`` method that is not marked a bound, or all latents
            enumerated in the model); never for an unnormalised or an implicit model.
        unreparameterized: the guide's sampled (not enumerated) sites without a reparameterised sampler (``rsample``).
        data_support: the support of the likelihood of the observed input, to check data against before fitting.
        own_batch_size: the number of points per step the program requires, ``None`` where any batch size runs.
            For a program called with the whole data set (``plan.whole_data``): its data plate's own
            ``subsample_size``, or all of its points where the plate cannot be given a batch's rows (parameters made
            per point, as an AutoGuide's on local latents in ``pyro.plate("data", len(x))``, or data observed whole).
            Else the batch size it was first run at, where it takes no other (an AutoGuide's plate of
            ``pyro.plate("data", N, subsample_size=len(x))`` keeps its first subsample size).
        data_size: for a program called with the whole data set, N: the number of its data plate's points.
        integer_x: whether an integer x (the first input) is given to the program as it is, because the program
            fails on it as floating point (word ids that index, as in Pyro's LDA); an integer x is otherwise made
            floating point, as the likelihoods of reals and Bernoulli's need.
        unnormalized: whether an observed site's density is known only up to its normaliser, exp(-E(x)) through
            :class:`~ppgen.program.unnormalized.Unnormalized`: an energy-based model, whose log p(x) lacks log Z.
        implicit: whether the model observes its data through a point mass (a ``Delta``, under any ``to_event``,
            ``expand`` or ``mask``), x = G(z), with latents z drawn from their prior alone (no guide draws them, no
            enumeration sums them out) or none: a generator, whose log-density at the data is 0 or -inf, no density
            (see :mod:`ppgen.program.implicit`). Where a guide draws every latent, the point mass holds on its draws
            (``DequantizedFlow``'s q(v|x) keeps v in x's bin, so that floor(v) = x): a latent-variable program.
        forward_unreparameterized: the model's sites that a run of the model alone draws (its latents, and its data
            site once unobserved) from a distribution without a reparameterised sampler (``rsample``; or, for the data
            site, whose draw fails): a draw of x made so carries no gradient through them.
        trainable_draws: whether a draw of the data site, x ~ p_theta(x | z) given the model's own draws of z,
            depends on a parameter that is learnt (``rsample`` carries a gradient); ``False`` where it has no
            ``rsample``.
        reweighted: the sites whose log-density a ``poutine.scale`` weighs beyond the N / B of a subsampled plate,
            or a mask of ``False`` leaves out (a diffusion model's sampled step, weighted T - 1, and the draws it is
            taken at). The program's log w is then an estimate of the ELBO's terms (unbiased where the program says
            so) but no log importance weight, so that the importance-weighted bounds and queries refuse it
            (:func:`check_importance_weights`).
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
    own_batch_size: int | None = None
    data_size: int | None = None
    integer_x: bool = False
    unnormalized: bool = False
    implicit: bool = False
    forward_unreparameterized: tuple[str, ...] = ()
    trainable_draws: bool = False
    reweighted: tuple[str, ...] = ()

    @property
    def reparameterized(self) -> bool:
        """Whether every guide site that is sampled has a reparameterised sampler."""
        return not self.unreparameterized

    @property
    def particle_dim(self) -> int:
        """The batch dimension of the particle plate: left of every plate of the program."""
        return self.plan.particle_dim

    def program_data(self, batch: Batch) -> Batch:
        """The data as the program takes them: an integer x made floating point unless ``integer_x``; for a program
        called with the whole data set (``plan.whole_data``) all of its inputs as one batch whose points are those of
        its data plate."""
        batch = floating_x(batch) if not self.integer_x else batch
        if not self.plan.whole_data:
            return batch
        return Batch(batch.args, torch.arange(self.data_size, device=batch.rows.device), self.data_size, whole=True)

    def points_per_chunk(self, points: int) -> int:
        """The points a query runs the program on at once, given the ``points`` its budget allows: at least the
        program's own batch size, where it takes no other (its queries then hold K times that many draws)."""
        return max(points, self.own_batch_size or 1)

    def check_data(self, batch: Batch, name: str) -> None:
        """Raise a ``ValueError`` naming ``name`` if a row of the observed input lies outside the likelihood's support."""
        if self.data_support is None or self.observed_input is None:
            return
        x = batch.args[self.observed_input]
        ok = self.data_support.check(x)
        if not bool(ok.all()):
            bad = (~ok).reshape(ok.shape[0] if ok.dim() else 1, -1).any(1).nonzero()[:, 0]
            support = coordinate_support(self.data_support)
            hint = ": values in {0, 1}, as a Bernoulli likelihood needs" if support is constraints.boolean else ""
            where = name if self.num_inputs == 1 else f"{name}[{self.observed_input}]"
            raise ValueError(
                f"{where}: {bad.numel()} data point(s) lie outside the support of the model's likelihood "
                f"({self.data_support}{hint}), the first at row {bad[0].item()}")


def inspect(module: nn.Module, data: Batch | Any, name: str = "data", batch_size: int | None = None,
            placed: bool = False, training: bool | None = None) -> Structure:
    """Trace the guide and the model on a real batch of ``data`` and read off their :class:`Structure`.

    ``data`` is the whole data set (a :class:`~ppgen.program.inputs.Batch`, or anything :func:`ppgen.fit` takes as
    data), or a stream's first batch; ``batch_size`` is the number of points per step, or ``None`` for the
    program's own choice: its data plate's own ``subsample_size``, the whole data set where it runs at one batch
    size only, or else :data:`~ppgen.program.intake.DEFAULT_BATCH_SIZE`. ``placed``: the program runs on its inputs
    moved to the device and dtype of its parameters (:func:`~ppgen.program.protocol.as_model_input`), as a fit runs
    it; else as given. ``training``: the mode the program will run in, train (``True``) or eval (``False``), set
    while it is traced and put back as each submodule had it (a BatchNorm maps over particles in eval mode, not in
    train mode); ``None``: the module's own.

    How the program takes its data, a batch of rows or the whole data set, and the plate of its data points are
    learnt by running it (:func:`ppgen.program.intake.learn`). Then the whole computation of the bounds runs once on
    two particles with Pyro's validation on: Pyro's checks of site shapes, of model-guide agreement and of enumeration
    run there. A program that does not broadcast over the particle plate (or mixes its particles in it, by the log
    weights of each particle alone on the same draws) is run one particle at a time instead, that
    pass mapped over the particles by ``torch.func.vmap`` where it gives the same values
    (:mod:`ppgen.program.broadcasting`), else one at a time, with a warning.

    Raises:
        ValueError: the program fails on the inputs (data of the wrong shape, for one), or breaks the protocol
            (no observed site, no plate that holds the data points, a guide site the model lacks, an enumerated
            latent outside the data plate, a sequentially enumerated site, per-point parameters made for one batch
            size when the batches have several).
    """
    data = as_batch(data, name=name, keep_integer_x=True)
    rng = get_rng_state()  # tracing draws; the caller's random stream is left where it was
    buffers = {key: value.clone() for key, value in module.named_buffers()}  # and so are a BatchNorm's statistics
    modes = [(part, part.training) for part in module.modules()]
    try:
        if training is not None:
            module.train(training)
        place = functools.partial(as_model_input, module=module) if placed else (lambda batch: batch)
        return _inspect(module, data, name, batch_size, place)
    finally:
        for part, mode in modes:
            part.training = mode
        set_rng_state(rng)
        with torch.no_grad():
            for key, value in module.named_buffers():
                if key in buffers:
                    value.copy_(buffers[key])


def _inspect(module: nn.Module, data: Batch, name: str, batch_size: int | None, place: Placement) -> Structure:
    traced = learn(module, data, name, batch_size, place)
    integer_x = not traced.batch.args[0].is_floating_point()
    batch, guide_trace, model_trace = traced.batch, traced.guide_trace, traced.model_trace
    guide_sites = sample_sites(guide_trace) if guide_trace else []
    model_sites = sample_sites(model_trace)
    observed = [s for s in model_sites if observes(s)]
    data_plate = traced.data_plate.name
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
    implicit = any(point_mass(s["fn"]) for s in observed) and (bool(unguided) or not latent)
    _check_enumeration(model_trace, guide_sites, enumerated, guide_enumerated, data_plate)
    dims = [-frame.dim for s in guide_sites + model_sites for frame in s["cond_indep_stack"] if frame.vectorized]
    plan = Plan(max_plate_nesting=max(dims, default=0), data_plate=data_plate, data_dim=traced.data_plate.dim,
                vectorized=True, whole_data=batch.whole)
    unnormalized = any(unnormalized_of(s["fn"]) is not None for s in observed)
    data_site, observed_input = next(((s, i) for i, arg in enumerate(batch.args) for s in observed
                                      if s["value"] is arg), (None, None))  # x first, then the labels
    drawn = data_site or (observed[0] if len(observed) == 1 else None)  # the site that sample draws
    draw = _draw_gradient(drawn["fn"]) if drawn is not None else None
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
            s["name"] for s in guide_sites if point_mass(s["fn"])),
        exact=not unnormalized and not implicit and (
            (callable(getattr(module, "log_prob", None)) and not bounds_itself(module)) or all(map(_enumerable, latent))),
        unreparameterized=tuple(s["name"] for s in guide_sites if not _enumerable(s) and not s["fn"].has_rsample),
        data_support=data_site["fn"].support if data_site else None,
        own_batch_size=traced.own_batch_size,
        data_size=batch.size if batch.whole else None,
        integer_x=integer_x,
        unnormalized=unnormalized,
        implicit=implicit,
        forward_unreparameterized=tuple(s["name"] for s in latent if not s["fn"].has_rsample) + (
            (drawn["name"],) if drawn is not None and draw is None else ()),
        trainable_draws=bool(draw),
        reweighted=tuple(dict.fromkeys(s["name"] for s in guide_sites + model_sites if _reweighted(s))),
    )
    structure.check_data(batch, name)  # before the bounds run: out-of-support data is the data's fault, said so
    if unguided or implicit:  # no bound is defined; the backend's check says why
        return structure
    return _with_particles_checked(module, structure, batch, name)


def _reweighted(site: dict) -> bool:
    """Whether a ``poutine.scale`` weighs the site's log-density beyond its subsampled plates' N / B, or a mask of
    ``False`` (``poutine.mask(mask=False)``) leaves it out."""
    if site["mask"] is False:
        return True
    plates = math.prod(f.full_size / f.size for f in site["cond_indep_stack"] if f.full_size and f.size)
    scale = site["scale"]
    if isinstance(scale, Tensor):
        return bool((scale != plates).any())
    return not math.isclose(scale, plates)


def check_importance_weights(structure: Structure, who: str) -> None:
    """A ``ValueError`` naming ``who`` where the program's log w is no log importance weight (``reweighted``)."""
    if structure.reweighted:
        raise ValueError(f"{who} takes log w = log p(x, z) - log q(z|x) as a log importance weight, but a "
                         f"poutine.scale or a mask of False weighs the site(s) "
                         f"{', '.join(map(repr, structure.reweighted))} of the program, so that log w is an estimate "
                         f"of the ELBO's terms and no importance weight: fit it by inference.ELBO(), and ask log_prob "
                         f"for the model's own bound where it has one")


def _with_particles_checked(module: nn.Module, structure: Structure, batch: Batch, name: str) -> Structure:
    """Run the bounds' own path on two particles, vectorised, with Pyro's checks; where the program does not broadcast
    over the particle plate, run it one particle at a time with the same checks, and map that pass over the particles
    where it can be (:func:`~ppgen.program.broadcasting.without_broadcasting`; else say so once)."""
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
        mixed = broadcasting_failure(module, structure, batch) if structure.guided else None
        if mixed is None:
            return structure
        vectorised_error: Exception = ValueError(mixed)
    except PROGRAM_ERRORS as error:
        vectorised_error = error
    sequential = Structure(**{**structure.__dict__, "plan": structure.plan.one_particle_at_a_time()})
    try:
        run(sequential, 1)
    except PROGRAM_ERRORS as error:
        raise fails(name, module, batch, error) from error
    return without_broadcasting(module, sequential, batch, vectorised_error)


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


def _in_plate(site: dict, plate: str) -> bool:
    return any(f.name == plate for f in site["cond_indep_stack"])


def _check_enumeration(model_trace: poutine.Trace, guide_sites: list[dict], enumerated: tuple[str, ...],
                       guide_enumerated: tuple[str, ...], data_plate: str) -> None:
    """Refuse the enumerations whose sums are not per data point, before any of them runs."""
    for name in enumerated:
        if not _in_plate(model_trace.nodes[name], data_plate):
            raise ValueError(
                f"enumerated latent '{name}' sits outside pyro.plate('{data_plate}', ...): summing it out couples "
                f"every data point (log sum_c p(c) prod_n p(x_n | c) is no sum of per-point terms), so it has no "
                f"per-point weight [K, N]. Give the guide a distribution for it (a global latent), or move it into "
                f"the data plate")
    for site in guide_sites:
        plates = {f.name for f in site["cond_indep_stack"] if f.vectorized}
        if site["name"] in guide_enumerated and plates != {data_plate}:
            raise ValueError(
                f"guide site '{site['name']}' is enumerated in plates {sorted(plates)}: ppgen sums a guide's "
                f"discrete latent per data point, inside pyro.plate('{data_plate}', ...) and no other plate; "
                f"enumerate it in the model instead")


def _enumerable(site: dict) -> bool:
    return site["infer"].get("enumerate") == "parallel" and site["fn"].has_enumerate_support


def _draw_gradient(fn: Any) -> bool | None:
    """Whether a reparameterised draw of ``fn``, made as ``pyro.sample`` makes it (``fn()``), carries a gradient to a
    parameter being learnt (one draw, with gradients on; the caller's random stream is restored by :func:`inspect`);
    ``None`` where ``fn`` has no ``rsample``, or a draw fails."""
    if not fn.has_rsample:
        return None
    try:
        with torch.enable_grad():
            return fn().requires_grad
    except PROGRAM_ERRORS:
        return None


def _auxiliary(site: dict) -> bool:
    """A guide site the model does not have by design, such as an AutoGuide's joint latent."""
    return bool(site["infer"].get("is_auxiliary"))


def sampled_site(structure: Structure) -> str:
    """The observed site that :func:`sample` draws: the one that observes the data input.

    Raises:
        ValueError: the model observes several sites and none of them receives an input as it is.
    """
    if structure.data_site is not None:
        return structure.data_site
    if len(structure.observed) != 1:
        raise ValueError(f"sample() returns the model's observed site, but it has {len(structure.observed)} "
                         f"({structure.observed}) and none receives the data as obs= unchanged")
    return structure.observed[0]


def example_batch(data: Batch) -> Batch:
    """The rows a fit keeps to answer queries about the training data's shapes and to rebuild its program on load: a
    few rows, or for a program called with the whole data set (``plan.whole_data``) all of its inputs."""
    return data.head(3)
