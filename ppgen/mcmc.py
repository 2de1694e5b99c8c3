"""Markov chain Monte Carlo over a program's latents: Pyro's NUTS on the model conditioned on data, parameters fixed.

Two uses share this module: ``fit.posterior(x, method="nuts")`` (the local latents of the given points, under the
fitted parameters) and the backend ``inference.NUTS`` (a :class:`Sampler`: the global latents of a model whose
parameters are random variables, given the whole data set). Chains run one after another, each from the RNG state
left by the one before, so that a seed fixes every draw.

References:
    The No-U-Turn Sampler: Adaptively Setting Path Lengths in Hamiltonian Monte Carlo (Hoffman and Gelman, 2014).
    https://jmlr.org/papers/v15/hoffman14a.html
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import pyro.poutine as poutine
import torch
from pyro.infer.mcmc import MCMC
from pyro.infer.mcmc import NUTS as PyroNUTS
from pyro.poutine.messenger import Messenger
from torch import Tensor, nn

from ppgen.bounds import trace_log_density
from ppgen.budget import BUDGET
from ppgen.data import Batch
from ppgen.posterior import Posterior
from ppgen.representation import site_draws
from ppgen.structure import Structure
from ppgen.traces import BatchRows, in_particles, sample_sites, trace_alone

#: the statistics recorded for each draw, as ArviZ names them.
SAMPLE_STATS = ("diverging", "step_size", "tree_depth", "lp")
#: draws times points of one pass when the log-likelihood of every point is computed under every draw.
DRAW_POINTS_PER_PASS = 2**15


@dataclass(frozen=True)
class Draws:
    """What a sampler leaves: S = ``chains`` x draws of the latents, chain after chain.

    Attributes:
        samples: each latent site's draws, Tensor[S, ...] with the site's shape as the program lays it out.
        chains: the number of chains.
        sample_stats: each statistic of :data:`SAMPLE_STATS`, Tensor[S].
    """

    samples: dict[str, Tensor]
    chains: int
    sample_stats: dict[str, Tensor]

    @property
    def num_draws(self) -> int:
        """S, the draws of all chains together."""
        return len(next(iter(self.samples.values())))


class Sampler(abc.ABC):
    """A backend that draws from the posterior p(theta | x) of a model's global latents instead of minimising a
    loss: :func:`ppgen.fit` calls :meth:`draw` once, on the whole data set, in place of its gradient steps, and the
    :class:`~ppgen.Fit` it returns keeps the draws (``fit.draws``). Like an objective, a sampler is a frozen
    dataclass of keyword arguments, so that a saved fit records it."""

    @abc.abstractmethod
    def draw(self, module: nn.Module, structure: Structure, batch: Batch, progress: bool) -> Draws:
        """Draws of the latents of ``module`` given every point of ``batch``."""

    def check(self, structure: Structure) -> None:
        """A ``ValueError`` before any work where the sampler cannot handle a model of this structure."""
        local = [s for s in structure.guided + structure.unguided if s not in structure.global_sites]
        if local:
            raise ValueError(f"{type(self).__name__}() draws the global latents of a model (sites outside the data "
                             f"plate), but site(s) {tuple(local)} are local to each point: fit the model by "
                             f"inference.ELBO() and ask fit.posterior(x, method='nuts') for them")
        if not structure.global_sites:
            raise ValueError(f"{type(self).__name__}() draws latents, but the model has none outside the data plate "
                             f"(all its randomness is observed or summed out): fit it by inference.MLE()")

    @property
    def config(self) -> dict[str, Any]:
        """The keyword arguments that rebuild this sampler."""
        return asdict(self)  # type: ignore[call-overload]


def conditioned(module: nn.Module, structure: Structure, batch: Batch) -> Callable[[], None]:
    """The model run on ``batch`` as a function of nothing: its observed sites hold the data, its parameters are
    hidden from Pyro's handlers (held fixed: only the latents move), and each point counts once (a data plate that
    subsamples the data set has its scale N / B undone)."""
    run = BatchRows(batch)(module.model)

    def model() -> None:
        with poutine.block(hide_types=["param"]), _PerPoint(structure.plan.data_plate):
            run(*batch.args)
    return model


def check_size(module: nn.Module, structure: Structure, batch: Batch, names: tuple[str, ...]) -> int:
    """The number of latent coordinates NUTS would move, or a ``ValueError`` past ``BUDGET.nuts_coordinates``."""
    trace = trace_alone(module.model, batch)
    size = sum(trace.nodes[name]["value"].numel() for name in names)
    if size > BUDGET.nuts_coordinates:
        raise ValueError(f"NUTS over {size} latent coordinates ({', '.join(names)} for {len(batch)} points) is over "
                         f"the budget of {BUDGET.nuts_coordinates}: each draw would cost minutes. Ask for fewer "
                         f"points, use method='importance', or raise ppgen.budget.BUDGET.nuts_coordinates")
    return size


def nuts(model: Callable[[], None], *, num_samples: int, warmup_steps: int, num_chains: int, max_plate_nesting: int,
         target_accept_prob: float = 0.8, max_tree_depth: int = 10, progress: bool = False) -> Draws:
    """``num_chains`` chains of Pyro's NUTS on ``model`` (a function of no inputs), one after the other.

    Arguments:
        model: the conditioned program, from :func:`conditioned`.
        num_samples: draws kept per chain.
        warmup_steps: adaptation steps per chain (step size and a diagonal mass matrix), discarded.
        num_chains: independent chains, each started from a uniform draw in [-2, 2] on the unconstrained space.
        max_plate_nesting: the program's plate nesting, so that the model's enumerated latents are summed out.
        target_accept_prob: the acceptance rate the step size adapts to.
        max_tree_depth: the most doublings of a trajectory.
        progress: show Pyro's progress bar.

    Returns:
        The :class:`Draws`, with ``diverging``, ``step_size``, ``tree_depth`` (doublings of the trajectory) and
        ``lp`` (the log joint density on the unconstrained space) of each draw.
    """
    samples: list[dict[str, Tensor]] = []
    stats: list[list[tuple[float, ...]]] = []
    for _ in range(num_chains):
        kernel = _RecordedNUTS(model, max_plate_nesting=max_plate_nesting, target_accept_prob=target_accept_prob,
                               max_tree_depth=max_tree_depth, jit_compile=False)
        chain = MCMC(kernel, num_samples=num_samples, warmup_steps=warmup_steps, num_chains=1,
                     disable_progbar=not progress)
        with torch.enable_grad():  # the queries run under no_grad; NUTS follows the gradient of log p(x, z) in z
            chain.run()
        samples.append({name: value.detach() for name, value in chain.get_samples().items()})
        stats.append(kernel.recorded)
    names = samples[0]
    columns = zip(*[row for chain in stats for row in chain])
    return Draws(samples={name: torch.cat([chain[name] for chain in samples]) for name in names}, chains=num_chains,
                 sample_stats={name: torch.tensor(column, dtype=torch.bool if name == "diverging" else None)
                               for name, column in zip(SAMPLE_STATS, columns)})


def log_likelihood(module: nn.Module, structure: Structure, batch: Batch, samples: dict[str, Tensor]) -> Tensor:
    """log p(x_n | theta_s) for every draw s and point n, Tensor[S, N]: the observed sites' log-density given the
    drawn latents (laid out as :class:`Draws` has them), the model's enumerated latents summed out.

    Draws and points go through in passes of about :data:`DRAW_POINTS_PER_PASS`; a program that does not broadcast
    over particles is run once per draw.
    """
    events = {name: site["fn"].event_dim for name, site in trace_alone(module.model, batch).nodes.items()
              if name in samples}
    total = len(next(iter(samples.values())))
    per_pass = max(1, DRAW_POINTS_PER_PASS // len(batch)) if structure.plan.vectorized else 1
    return torch.cat([_log_likelihood(module, structure, batch, {n: v[s:s + per_pass] for n, v in samples.items()},
                                      events) for s in range(0, total, per_pass)])


def predictive_log_prob(module: nn.Module, structure: Structure, batch: Batch, draws: Draws) -> Tensor:
    """The posterior predictive log p(x_n | data) = log (1/S) sum_s p(x_n | theta_s) over a sampler's S draws,
    Tensor[N]."""
    return log_likelihood(module, structure, batch, draws.samples).logsumexp(0) - math.log(draws.num_draws)


def _log_likelihood(module: nn.Module, structure: Structure, batch: Batch, samples: dict[str, Tensor],
                    events: dict[str, int]) -> Tensor:
    count = len(next(iter(samples.values())))
    plan = structure.plan
    if plan.vectorized:  # the draws in the particle plate, left of the program's plates
        values = {name: in_particle_layout(v, events[name], plan.max_plate_nesting) for name, v in samples.items()}
    else:
        values = {name: v[0] for name, v in samples.items()}
    model = in_particles(BatchRows(batch)(poutine.condition(module.model, data=values)), count, plan)
    if structure.enumerated:
        model = poutine.enum(model, first_available_dim=structure.particle_dim - 1)
    trace = poutine.trace(model).get_trace(*batch.args)
    for name in samples:
        trace.remove_node(name)
    return trace_log_density(trace, structure, batch, count, global_terms=False)


def in_particle_layout(value: Tensor, event_dim: int, max_plate_nesting: int) -> Tensor:
    """Draws Tensor[S, *site_shape] with the draw dimension where the particle plate puts it: dimensions of size
    one inserted after it for the plates the site's own shape leaves out."""
    missing = max_plate_nesting - (value.dim() - 1 - event_dim)
    return value.reshape(len(value), *(1,) * missing, *value.shape[1:])


def latent_names(structure: Structure) -> tuple[str, ...]:
    """The model's latents NUTS moves: every latent it does not sum out."""
    return tuple(s for s in structure.guided + structure.unguided if s not in structure.enumerated)


class _PerPoint(Messenger):
    """Undoes the scale N / B of a data plate that subsamples the data set: each point of the batch counts once.
    Entered outside the program, it sees each site after the plate has scaled it."""

    def __init__(self, data_plate: str) -> None:
        super().__init__()
        self.data_plate = data_plate

    def _pyro_sample(self, msg: dict) -> None:
        for frame in msg["cond_indep_stack"]:
            if frame.name == self.data_plate and frame.full_size:
                msg["scale"] = msg["scale"] * frame.size / frame.full_size


class _CountDoublings(Messenger):
    """Counts the trajectory doublings of one NUTS step, by the direction draws that Pyro's NUTS names per depth."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def _pyro_sample(self, msg: dict) -> None:
        if msg["name"].startswith("direction_t="):
            self.count += 1


class _RecordedNUTS(PyroNUTS):
    """Pyro's NUTS, recording each kept draw's divergence, step size, tree depth and log density."""

    def setup(self, warmup_steps: int, *args: Any, **kwargs: Any) -> None:
        self.recorded: list[tuple[float, ...]] = []
        super().setup(warmup_steps, *args, **kwargs)

    def sample(self, params: dict[str, Tensor]) -> dict[str, Tensor]:
        divergences = len(self._divergences)
        with _CountDoublings() as doublings:
            params = super().sample(params)
        if self._t > self._warmup_steps:
            self.recorded.append((len(self._divergences) > divergences, float(self.step_size), doublings.count,
                                  -float(self._potential_energy_last)))
        return params


def site_shapes(module: nn.Module, batch: Batch) -> dict[str, Any]:
    """Each sample site of one run of the model on ``batch``: the site's record, for the layout of its draws."""
    return {site["name"]: site for site in sample_sites(trace_alone(module.model, batch))}


def local_posterior(module: nn.Module, structure: Structure, batch: Batch, num_samples: int, *, warmup_steps: int,
                    num_chains: int, observed: dict[str, Tensor], progress: bool = False) -> Posterior:
    """NUTS over the local latents of the points of ``batch``, the fitted parameters fixed: ``num_chains`` chains of
    ``num_samples`` draws each (see :meth:`ppgen.Fit.posterior`).

    Raises:
        ValueError: the model has global latents (their posterior is a question about the whole data set:
            ``inference.NUTS``), or more latent coordinates than ``BUDGET.nuts_coordinates``.
    """
    if structure.global_sites:
        raise ValueError(f"method='nuts' draws the latents of the given points under the fitted parameters, but the "
                         f"model's global latent(s) {structure.global_sites} depend on the whole data set: draw them "
                         f"by ppgen.fit(..., inference=inference.NUTS()), or use method='guide'")
    names = latent_names(structure)
    check_size(module, structure, batch, names)
    draws = nuts(conditioned(module, structure, batch), num_samples=num_samples, warmup_steps=warmup_steps,
                 num_chains=num_chains, max_plate_nesting=structure.plan.max_plate_nesting, progress=progress)
    return to_posterior(module, structure, batch, draws, observed)


def to_posterior(module: nn.Module, structure: Structure, batch: Batch, draws: Draws,
                 observed: dict[str, Tensor]) -> Posterior:
    """NUTS draws as a :class:`~ppgen.posterior.Posterior` of the points of ``batch``: the draws laid out as
    ``Posterior`` has them, the sampler's statistics, and log p(x_n | draw) of each point."""
    sites = site_shapes(module, batch)
    samples = {name: site_draws({**sites[name], "value": in_particle_layout(value, sites[name]["fn"].event_dim,
                                                                            structure.plan.max_plate_nesting)},
                                structure.particle_dim)
               for name, value in draws.samples.items()}
    return Posterior(samples, global_sites=tuple(name for name in samples if name in structure.global_sites),
                     chains=draws.chains, method="nuts",
                     log_likelihood=log_likelihood(module, structure, batch, draws.samples),
                     sample_stats=draws.sample_stats, observed=observed)
