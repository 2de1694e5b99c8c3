"""Density estimation: log p(x) for each point, exact where the model allows, importance-sampled otherwise."""

from __future__ import annotations

import math
from collections import OrderedDict

import pyro
import torch
from torch import Tensor, nn

from ppgen.objective.bounds import exact_log_prob, log_weights
from ppgen.program.automatic import Automatic, planned_steps
from ppgen.program.fastpath import ShapeCapture
from ppgen.program.inputs import Batch
from ppgen.program.protocol import bounds_itself
from ppgen.program.records import identity
from ppgen.program.structure import Structure, check_importance_weights
from ppgen.program.unnormalized import refuse_unnormalized
from ppgen.run.distributed import current
from ppgen.utils.budget import check_particle_budget
from ppgen.utils.progress import query_bar

#: particles times data points evaluated in one pass of an importance-sampled query; bounds memory.
PARTICLE_POINTS_PER_PASS = 2**15
#: what a density query on an energy-based model says it lacks, and the way out.
NEEDS_LOG_Z = ("an energy-based model has no guide whose draws it could weigh: fit.log_prob(x) estimates log p(x) = "
               "-E(x) - log Zhat, log Z by annealed importance sampling (fit.log_normalizer()), and fit.evaluate(x) "
               "reports it")


def log_prob(module: nn.Module, structure: Structure, batch: Batch, k: int, compile: bool | str = "auto",
             passes: Passes | None = None) -> Tensor:
    """log p(x_n), Tensor[N]: exact for a model with a closed form, the model's own bound for a model whose
    ``log_prob`` is marked a bound (``log_prob_is_bound = True``), else :func:`importance_log_prob` with K = k; a
    ``ValueError`` for an unnormalised model (``structure.unnormalized``), whose log-density lacks log Z.

    Under an initialised ``torch.distributed`` process group every rank passes the same x, evaluates its share
    of the rows, and receives every rank's values (see :mod:`ppgen.run.distributed`).
    """
    refuse_unnormalized(structure, "log_prob", NEEDS_LOG_Z)
    group = current()
    group.check_same_rows(len(batch), "log_prob")
    local = group.local(batch)
    if structure.exact:
        values = exact_log_prob(module, structure, local)
    elif bounds_itself(module):
        values = module.log_prob(*local.args)
    else:
        values = importance_log_prob(module, structure, local, k, compile, passes)
    return group.gather_rows(values, len(batch))


def importance_log_prob(module: nn.Module, structure: Structure, batch: Batch, k: int,
                        compile: bool | str = "auto", passes: Passes | None = None) -> Tensor:
    """The K-sample importance-weighted estimate log (1/K) sum_k p(x_n, z_k) / q(z_k|x_n), z_k ~ q(z|x_n), Tensor[N].

    A lower bound on log p(x_n) in expectation that tightens as K grows (IWAE_K). For a model with global latents
    theta, each particle draws theta_k ~ q(theta) and the local terms are weighted given it: the estimate is of the
    posterior predictive density log E_q(theta)[p(x_n | theta)], the global latents drawn from q for the whole
    data set. Particles and points are evaluated in chunks of at most ``PARTICLE_POINTS_PER_PASS`` (set that
    attribute of :mod:`ppgen.queries.density` to choose the chunk budget: peak memory follows it, not N or K); a long
    query shows its progress on a terminal (:func:`ppgen.utils.progress.query_bar`). ``compile="capture"`` or ``True``
    traces each chunk's pass once per chunk shape and replays it, or also compiles it with ``torch.compile`` when
    the shape comes back (:class:`ppgen.queries.density.Estimates`): the same estimate on the same draws; ``"auto"``
    chooses among them and the plain pass per chunk shape, as ``fit`` does per batch shape
    (:mod:`ppgen.program.automatic`). ``passes``
    keeps those captured passes for the next query (a :class:`~ppgen.Fit` keeps one for its queries; passes of another
    module or structure are not used); by default they last this query.

    Raises:
        ValueError: the model has latents that no guide draws, or is unnormalised (its weights would lack log Z).
    """
    refuse_unnormalized(structure, "the importance-sampled log_prob", NEEDS_LOG_Z)
    check_particle_budget(k, len(batch))
    check_importance_weights(structure, "the importance-sampled estimate of log p(x)")
    if structure.unguided:
        raise ValueError(f"importance sampling needs a guide q(z|x) that draws the latent site(s) "
                         f"{structure.unguided}; no guide draws them")
    points = structure.points_per_chunk(PARTICLE_POINTS_PER_PASS // k)
    estimates = Passes.of_program(module, structure, passes).of(k, PARTICLE_POINTS_PER_PASS, compile, len(batch))
    out = []
    # The data were checked against the model's support (Fit's queries check them): Pyro's checks of every
    # distribution's arguments and values, on every chunk, would be that work again, a fifth of the query's time.
    with pyro.validation_enabled(False), query_bar(k * len(batch), "log_prob") as bar:
        for rows in torch.arange(len(batch)).split(points):
            chunk = batch.take(rows.to(batch.rows.device))
            sums = [weights(chunk).logsumexp(0) for weights in estimates]
            out.append(torch.stack(sums).logsumexp(0) - math.log(k))
            bar.update(k * len(rows))
    return torch.cat(out)


class Passes:
    """The passes of K particles over chunks of points that the importance-sampled queries of one program make, each
    a :class:`~ppgen.queries.density.Estimates`, kept so that a later query reuses the graphs an earlier one captured
    (and compiled: seconds, paid once for the program rather than once a query). Each query compares every graph it
    reuses with the plain pass again on its first chunk of that shape, as the program's Python state may have
    changed in between; the passes of the last :data:`KEPT` (pass size, compile) pairs are kept.

    Arguments:
        module: the program.
        structure: its :class:`~ppgen.program.structure.Structure`.
    """

    #: how many (pass size, compile) pairs' passes are kept.
    KEPT = 8

    def __init__(self, module: nn.Module, structure: Structure) -> None:
        self.module, self.structure = module, structure
        self._estimates: OrderedDict[tuple[int, bool | str], Estimates] = OrderedDict()

    @classmethod
    def of_program(cls, module: nn.Module, structure: Structure, kept: Passes | None = None) -> Passes:
        """``kept`` where those are the passes of ``module`` with ``structure`` (a model put in a fit's place, say,
        has none yet), else new, empty passes of theirs."""
        if kept is not None and kept.module is module and kept.structure is structure:
            return kept
        return cls(module, structure)

    def of(self, k: int, particles: int, compile: bool | str = False,
           points: int | None = None) -> list[Estimates | Automatic]:
        """K particles in passes of at most ``particles``, for one query: one :class:`~ppgen.queries.density.Estimates`
        per pass, each computing that pass's log weights of a chunk of points (passes of one size share one, and its
        graphs), each kept graph to be checked again on its first call. Under ``compile="auto"`` each is chosen
        plain, captured or compiled per chunk shape (:class:`~ppgen.program.automatic.Automatic`) for the passes
        of a query over ``points`` points in chunks of ``structure.points_per_chunk(particles // k)``."""
        sizes = [min(particles, k - start) for start in range(0, k, particles)]
        for n in dict.fromkeys(sizes):
            kept = self._estimates.pop((n, compile), None)
            if kept is None or not kept.reads_module():  # module.to(...) replaced the buffers the graphs read
                kept = Estimates(self.module, self.structure, n, False if compile == "auto" else compile)
            kept.recheck()
            self._estimates[n, compile] = kept
        while len(self._estimates) > self.KEPT:
            self._estimates.popitem(last=False)
        if compile != "auto":
            return [self._estimates[n, compile] for n in sizes]
        chunk = self.structure.points_per_chunk(particles // k)
        chunks = planned_steps(points, chunk, 1, 0, 0, False)  # one pass over the points, in chunks
        automatic = {n: Automatic(self._estimates[n, compile], {rows: count * sizes.count(n)
                                                                for rows, count in chunks.items()}, unit="passes")
                     for n in dict.fromkeys(sizes)}
        return [automatic[n] for n in sizes]


class Estimates(ShapeCapture):
    """The log importance weights log w_k(x_n) = log p(x_n, z_k) - log q(z_k|x_n) of K particles z_k ~ q(z|x_n) for
    each point of a batch, Tensor[K, B], without gradients (the terms of global latents left out): a pass of
    :func:`importance_log_prob` or :func:`ppgen.queries.evaluation.evaluate` over a chunk of points.

    Arguments:
        module, compile: see :class:`~ppgen.program.fastpath.ShapeCapture`.
        structure: the program's :class:`~ppgen.program.structure.Structure`.
        num_particles: K.
    """

    what = "log weights"

    def __init__(self, module: nn.Module, structure: Structure, num_particles: int,
                 compile: bool | str = False) -> None:
        super().__init__(module, compile)
        self.structure, self.num_particles = structure, num_particles

    def identity(self) -> str:
        return identity(self.module, f"log weights of {self.num_particles} particles")

    def plain(self, batch: Batch) -> list[Tensor | None]:
        return self.outputs(batch, ())

    def outputs(self, batch: Batch, params: tuple[Tensor, ...]) -> list[Tensor | None]:
        with torch.no_grad():
            return [log_weights(self.module, self.structure, batch, self.num_particles, global_terms=False)]

    def finish(self, outputs: list[Tensor | None]) -> Tensor:
        return outputs[0]
