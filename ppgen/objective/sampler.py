"""The interface of a backend that draws instead of minimising a loss (:class:`Sampler`), and the chains of Pyro's
NUTS it runs over a program conditioned on data, its parameters fixed.

Three uses share these chains: the backend ``inference.NUTS`` (the global latents of a model whose parameters are
random variables, given the whole data set), ``fit.posterior(x, method="nuts")`` (the local latents of the given
points under the fitted parameters: :mod:`ppgen.queries.mcmc`), and draws from an unnormalised density through its
potential -log f (:mod:`ppgen.objective.hamiltonian`). Chains run one after another (:func:`run_chains`), each from
the RNG state left by the one before, so that a seed fixes every draw.

References:
    The No-U-Turn Sampler: Adaptively Setting Path Lengths in Hamiltonian Monte Carlo (Hoffman and Gelman, 2014).
    https://jmlr.org/papers/v15/hoffman14a.html
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import pyro.poutine as poutine
import torch
from pyro.infer.mcmc import MCMC
from pyro.infer.mcmc import NUTS as PyroNUTS
from pyro.poutine.messenger import Messenger
from torch import Tensor, nn

from ppgen.program.inputs import Batch
from ppgen.program.structure import Structure
from ppgen.program.traces import BatchRows, trace_alone
from ppgen.utils.budget import BUDGET

#: the statistics recorded for each draw, as ArviZ names them.
SAMPLE_STATS = ("diverging", "step_size", "tree_depth", "lp")


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
    dataclass of keyword arguments, so that a saved fit records it. ``likelihood_free``: as an objective's
    (:class:`~ppgen.objective.base.Objective`), whether the sampler never evaluates the model's density; ``False``."""

    likelihood_free: ClassVar[bool] = False

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
                         f"points, use method='importance', or raise ppgen.utils.budget.BUDGET.nuts_coordinates")
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
    def kernel() -> RecordedNUTS:
        return RecordedNUTS(model, max_plate_nesting=max_plate_nesting, target_accept_prob=target_accept_prob,
                            max_tree_depth=max_tree_depth, jit_compile=False)
    return run_chains(kernel, [None] * num_chains, num_samples=num_samples, warmup_steps=warmup_steps,
                      progress=progress)


def run_chains(kernel: Callable[[], RecordedNUTS], starts: Sequence[dict[str, Tensor] | None], *, num_samples: int,
               warmup_steps: int, progress: bool = False) -> Draws:
    """One chain of Pyro's MCMC per entry of ``starts``, one after the other, each with a fresh ``kernel()``.

    Arguments:
        kernel: builds the chain's kernel, a :class:`RecordedNUTS` on a model or a potential function.
        starts: each chain's initial parameters (the site names and their unconstrained values), or None for
            Pyro's own start; a kernel on a potential function needs them.
        num_samples: draws kept per chain.
        warmup_steps: adaptation steps per chain, discarded.
        progress: show Pyro's progress bar.
    """
    samples: list[dict[str, Tensor]] = []
    stats: list[list[tuple[float, ...]]] = []
    for start in starts:
        chain_kernel = kernel()
        chain = MCMC(chain_kernel, num_samples=num_samples, warmup_steps=warmup_steps, num_chains=1,
                     initial_params=start, disable_progbar=not progress)
        with torch.enable_grad():  # the queries run under no_grad; NUTS follows the gradient of log p(x, z) in z
            chain.run()
        samples.append({name: value.detach() for name, value in chain.get_samples().items()})
        stats.append(chain_kernel.recorded)
    names = samples[0]
    columns = zip(*[row for chain in stats for row in chain])
    return Draws(samples={name: torch.cat([chain[name] for chain in samples]) for name in names}, chains=len(starts),
                 sample_stats={name: torch.tensor(column, dtype=torch.bool if name == "diverging" else None)
                               for name, column in zip(SAMPLE_STATS, columns)})


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


class RecordedNUTS(PyroNUTS):
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
