"""How good is a fitted model, and how far can its importance-sampled estimates be trusted? ``fit.evaluate``.

For each data point x_n, from K draws z_k ~ q(z|x_n) and their log weights log w_k = log p(x_n, z_k) -
log q(z_k|x_n):

* the ELBO, (1/K) sum_k log w_k, and the importance-weighted bound IWAE_K, log (1/K) sum_k w_k;
* the exact log p(x_n) where the model has it;
* the effective sample size of the weights, ESS = (sum_k w_k)^2 / sum_k w_k^2, between 1 and K;
* the Pareto shape k-hat of the weights' right tail (Pareto-smoothed importance sampling, ArviZ's ``psislw``):
  below 0.5 the estimate converges fast, up to 0.7 it is usable, above 0.7 the variance of the weights is
  practically infinite and IWAE_K is not to be trusted for that point.

And for every model that samples, a density or none, its draws x~ ~ p(x) against the data by metrics that need no
likelihood (MMD, a classifier two-sample test, a Fréchet distance, modes captured):
:mod:`ppgen.queries.sample_quality`.

References:
    Pareto Smoothed Importance Sampling (Vehtari, Simpson, Gelman, Yao and Gabry, 2024).
    https://jmlr.org/papers/v25/19-556.html
    Importance Weighted Autoencoders (Burda, Grosse and Salakhutdinov, 2015). https://arxiv.org/abs/1509.00519
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyro
import torch
from torch import Tensor, nn

from ppgen.objective.bounds import exact_log_prob
from ppgen.program.fastpath import check_compile
from ppgen.program.implicit import check_density
from ppgen.program.inputs import Batch
from ppgen.program.structure import Structure, check_importance_weights
from ppgen.program.unnormalized import refuse_unnormalized
from ppgen.queries.annealing import LogZ
from ppgen.queries.density import NEEDS_LOG_Z, Passes
from ppgen.queries.sample_quality import SampleQuality
from ppgen.run.distributed import current
from ppgen.utils.checks import check_positive_int
from ppgen.utils.progress import query_bar

#: above this Pareto shape the importance-sampled estimate of a point is not to be trusted (Vehtari et al., 2024).
KHAT_THRESHOLD = 0.7
#: log weights of a point that differ by less than this (nats) are taken as equal, w_k / w_j = 1 to 1e-8: an exact
#: guide, whose weights have no tail to fit.
EQUAL_WEIGHTS = 1e-8


@dataclass(frozen=True)
class Evaluation:
    """The per-point bounds, log-likelihood and weight diagnostics of :func:`evaluate`; each Tensor[N] or ``None``
    where the model has no such quantity (no guide: no importance weights; no closed form: no exact value; no density,
    as a generator's: none of them), and the scores of the model's draws.

    Attributes:
        k: K, the draws per point behind the ELBO, IWAE_K, ESS and k-hat.
        elbo: (1/K) sum_k log w_k.
        iwae: log (1/K) sum_k w_k, a lower bound on log p(x) in expectation.
        exact: log p(x).
        ess: (sum_k w_k)^2 / sum_k w_k^2, in [1, K].
        khat: the Pareto shape of the weights' tail; NaN where it cannot be fitted: the K weights all equal (an
            exact guide: no tail), or too few draws in the tail (K < 21; PSIS fits the largest min(K/5, 3 sqrt(K))).
        samples: the sample metrics of the model's draws against the data (:mod:`ppgen.queries.sample_quality`),
            ``None`` where none were asked for.
        estimated: for an energy-based model, the estimate log p(x) = -E(x) - log Zhat (``fit.log_prob``), every
            point off by the error of log Zhat alike.
        log_z: that estimate of log Z by annealed importance sampling, with its standard error
            (:class:`~ppgen.queries.annealing.LogZ`).
        learnt_log_z: the model's own estimate c of log Z, learnt by ``inference.NCE``; ``None`` otherwise.
    """

    k: int
    elbo: Tensor | None
    iwae: Tensor | None
    exact: Tensor | None
    ess: Tensor | None
    khat: Tensor | None
    samples: SampleQuality | None = None
    estimated: Tensor | None = None
    log_z: LogZ | None = None
    learnt_log_z: float | None = None

    @property
    def n(self) -> int:
        """The number of data points evaluated."""
        bounds = [len(t) for t in (self.exact, self.iwae, self.estimated) if t is not None]
        return bounds[0] if bounds else next(iter(self.samples.scores.values())).n[1]

    @property
    def unreliable(self) -> int:
        """How many points have k-hat above 0.7."""
        return 0 if self.khat is None else int((self.khat > KHAT_THRESHOLD).sum())

    def means(self) -> dict[str, float | None]:
        """The mean of each per-point quantity (k-hat: its maximum too), ``None`` where it is absent."""
        out = {name: _known(getattr(self, name), torch.mean) for name in ("elbo", "iwae", "exact", "ess", "khat")}
        out["khat_max"] = _known(self.khat, torch.max)
        if self.estimated is not None:
            out["estimated"] = _known(self.estimated, torch.mean)
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain Python, JSON-ready: the means, k, n, the count of points with k-hat > 0.7, and every per-point
        value (``None`` for a k-hat that could not be fitted)."""
        per_point = {name: getattr(self, name) for name in ("elbo", "iwae", "exact", "ess", "khat")}
        return {"n": self.n, "k": self.k, "mean": self.means(), "khat_above_0.7": self.unreliable,
                "per_point": {name: None if values is None else [None if math.isnan(v) else v for v in values.tolist()]
                              for name, values in per_point.items()},
                "samples": None if self.samples is None else self.samples.to_dict(),
                **({} if self.log_z is None else {
                    "estimated": self.estimated.tolist(), "learnt_log_z": self.learnt_log_z,
                    "log_z": {"estimate": self.log_z.estimate, "standard_error": self.log_z.standard_error,
                              "ess": self.log_z.ess, "chains": len(self.log_z.log_weights)}})}

    def __str__(self) -> str:
        sample_lines = [] if self.samples is None else str(self.samples).splitlines()
        if self.log_z is not None:
            return "\n".join([*self._energy_lines(), *sample_lines])
        if self.exact is None and self.iwae is None:
            return "\n".join(["evaluation of a model without a density: its samples alone", *sample_lines])
        means = self.means()
        lines = [f"evaluation of {self.n} points, K={self.k} draws each (nats per point, means):"]
        for name, label in (("exact", "exact log p(x)"), ("iwae", f"IWAE_{self.k}"), ("elbo", "ELBO")):
            if means[name] is not None:
                lines.append(f"  {label:<16}{means[name]:.4f}")
        if means["ess"] is not None:
            lines.append(f"  {'ESS':<16}{means['ess']:.1f} of {self.k}")
            if means["khat"] is None:
                lines.append(f"  {'PSIS k-hat':<16}not estimable: weights all equal, or K too small to fit a tail")
            else:
                lines.append(f"  {'PSIS k-hat':<16}mean {means['khat']:.3f}, max {khat_text(means['khat_max'], 3)}; "
                             f"{self.unreliable} point(s) above {KHAT_THRESHOLD}")
        return "\n".join(lines + sample_lines)


    def _energy_lines(self) -> list[str]:
        """An energy model's report: the estimate of log p(x), of log Z with its standard error, and NCE's c."""
        z = self.log_z
        lines = [f"evaluation of {self.n} points of an energy-based model (nats per point, mean):",
                 f"  {'log p(x)':<16}{self.means()['estimated']:.4f}  an estimate: -E(x) - log Zhat, every point off "
                 f"by the error of log Zhat",
                 f"  {'log Zhat (AIS)':<16}{z.estimate:.4f} +- {z.standard_error:.4f} (standard error), ESS "
                 f"{z.ess:.1f} of {len(z.log_weights)} chains"]
        if self.learnt_log_z is not None:
            lines.append(f"  {'c (NCE)':<16}{self.learnt_log_z:.4f}, the model's learnt log Z, for comparison")
        return lines


def has_density(structure: Structure) -> bool:
    """Whether the program gives log p(x) or bounds on it: exactly, or through a guide for all its latents."""
    return structure.exact or (bool(structure.guided) and not structure.unguided)


def khat_text(khat: float, digits: int = 2) -> str:
    """k-hat to ``digits`` decimals, or as many more as it takes to read on the same side of :data:`KHAT_THRESHOLD` as
    it lies: 0.7004 reads 0.7004, not 0.70, in a message that says it is above 0.7."""
    for places in range(digits, 18):
        text = f"{khat:.{places}f}"
        if (float(text) > KHAT_THRESHOLD) == (khat > KHAT_THRESHOLD):
            return text
    return repr(khat)


def _known(values: Tensor | None, reduce: Callable[[Tensor], Tensor]) -> float | None:
    """``reduce`` over the values that are not NaN, ``None`` where there are none."""
    if values is None or bool(values.isnan().all()):
        return None
    return reduce(values[~values.isnan()].double()).item()


def evaluate(module: nn.Module, structure: Structure, batch: Batch, k: int = 5000, *,
             particle_points: int = 2**15, compile: bool | str = "auto", passes: Passes | None = None) -> Evaluation:
    """Bounds, log-likelihood and importance-weight diagnostics for each row of x.

    Memory stays bounded for any N and K: the points go through in chunks of about ``particle_points / K``,
    the particles of a point in passes of at most ``particle_points``, so that one pass holds
    ``particle_points`` draws and a chunk's log weights max(K, ``particle_points``) numbers. A long evaluation
    shows its progress on a terminal (:func:`ppgen.utils.progress.query_bar`).

    Arguments:
        module: the fitted program.
        structure: its :class:`~ppgen.program.structure.Structure`.
        batch: the data, checked and on the module's device. With global latents theta, the weights are those
            of the local latents given theta_k ~ q(theta), as in :func:`ppgen.queries.density.importance_log_prob`.
        k: K, the draws per point.
        particle_points: the draws times points of one pass.
        compile: ``"capture"`` or ``True``: each pass's log weights traced once per chunk shape and replayed, or also
            compiled by ``torch.compile`` when the shape comes back, checked against the plain pass on the same draws
            (:class:`ppgen.queries.density.Estimates`); ``"auto"``: chosen per chunk shape
            (:mod:`ppgen.program.automatic`); ``False``: the plain passes.
        passes: the :class:`~ppgen.queries.density.Passes` of this program that keep those graphs for later queries; by
            default they last this call.

    Returns:
        An :class:`Evaluation`; a ``UserWarning`` says how many points have k-hat > 0.7. Under an initialised
        ``torch.distributed`` process group every rank passes the same x, evaluates its share of the rows, and
        receives the evaluation of every row.

    Raises:
        ValueError: the model is unnormalised (``structure.unnormalized``): its bounds would lack log Z.
        ValueError: an implicit model (``structure.implicit``), which has no density to bound: its samples are
            judged by metrics that need none.
    """
    check_density(structure, "evaluate(), for its bounds ELBO, IWAE_K and log p(x),")
    k = check_positive_int(k, "k")
    if structure.guided and not structure.unguided:  # the importance weights it diagnoses
        check_importance_weights(structure, "evaluate")
    particle_points = check_positive_int(particle_points, "particle_points")
    compile = check_compile(compile)
    refuse_unnormalized(structure, "evaluate", NEEDS_LOG_Z)
    group = current()
    group.check_same_rows(len(batch), "evaluate")
    with torch.no_grad():
        local = _evaluate(group.local(batch), k, particle_points, compile, Passes.of_program(module, structure, passes))
    report = Evaluation(k, **{name: None if values is None else group.gather_rows(values, len(batch))
                              for name, values in vars(local).items() if name != "k"})
    if report.unreliable:
        warnings.warn(f"{report.unreliable} of {report.n} points have a Pareto k-hat above {KHAT_THRESHOLD}: the "
                      f"importance weights of q(z|x) have too heavy a tail there for IWAE_{k} to be trusted "
                      f"(max k-hat {khat_text(report.means()['khat_max'])}); a better guide, not a larger K, is the "
                      f"fix",
                      UserWarning, stacklevel=2)
    return report


def _evaluate(batch: Batch, k: int, particle_points: int, compile: bool | str, passes: Passes) -> Evaluation:
    module, structure = passes.module, passes.structure
    points = structure.points_per_chunk(particle_points // k)
    chunks = [batch.take(rows) for rows in torch.arange(len(batch), device=batch.rows.device).split(points)]
    exact = torch.cat([exact_log_prob(module, structure, xb) for xb in chunks]) if structure.exact else None
    if not structure.guided or structure.unguided:  # no importance weights to diagnose
        return Evaluation(k, None, None, exact, None, None)
    columns: dict[str, list[Tensor]] = {"elbo": [], "iwae": [], "ess": [], "khat": []}
    estimates = passes.of(k, particle_points, compile, len(batch))
    # The data were checked against the model's support: Pyro's argument checks on every pass would repeat that
    # work, and their Python branch on a tensor's value is one a captured pass cannot take.
    with pyro.validation_enabled(False), query_bar(k * len(batch), "evaluate") as bar:
        for xb in chunks:
            log_w = torch.cat([weights(xb) for weights in estimates])
            for name, value in weight_diagnostics(log_w).items():
                columns[name].append(value)
            bar.update(k * len(xb))
    return Evaluation(k, exact=exact, **{name: torch.cat(values) for name, values in columns.items()})


def weight_diagnostics(log_w: Tensor) -> dict[str, Tensor]:
    """ELBO, IWAE_K, ESS and PSIS k-hat of each column of log weights, Tensor[K, N] -> four Tensor[N]."""
    k = log_w.shape[0]
    log_sum = log_w.logsumexp(0)
    weights = log_w.detach().double().T.cpu().numpy()
    khat = np.full(weights.shape[0], np.nan)
    spread = weights.max(1) - weights.min(1) > EQUAL_WEIGHTS  # else there is no tail to fit
    if spread.any():
        khat[spread] = _psis_khat(weights[spread])
    khat[np.isinf(khat)] = np.nan  # psislw's answer where at most 4 draws lie in the tail: too few to fit it
    return {"elbo": log_w.mean(0), "iwae": log_sum - math.log(k),
            "ess": (2 * log_sum - (2 * log_w).logsumexp(0)).exp(),
            "khat": torch.as_tensor(khat, dtype=log_w.dtype, device=log_w.device)}


def _psis_khat(log_w: np.ndarray) -> np.ndarray:
    """ArviZ's Pareto shape estimate for each row of log weights, [N, K] -> [N]."""
    import arviz as az  # imported on use: it is slow to import and only k-hat needs it

    return np.asarray(az.psislw(log_w, reff=1.0)[1])
