"""Sampling-importance-resampling: posterior draws that correct a poor guide with the model's own weights.

For each point x_n, K proposals z_k ~ q(z|x_n) are weighted by w_k = p(x_n, z_k) / q(z_k|x_n) (the [K, N] log
weights every ppgen bound is built on) and S draws are taken among them with probabilities w_k / sum_j w_j. As K
grows the draws follow p(z|x_n) whatever the guide, provided its tails are heavy enough: the effective sample size
(sum_k w_k)^2 / sum_k w_k^2 and the PSIS Pareto shape k-hat of the weights
(:func:`ppgen.queries.evaluation.weight_diagnostics`) come with the draws, and k-hat above 0.7 is warned of.

Memory stays bounded for any N and K: points go through in chunks of about ``particle_points / K`` and the
proposals of a chunk in passes of at most ``particle_points`` (for a program that does not broadcast over particles:
mapped over them, or of one, :mod:`ppgen.objective.particles`); each pass resamples S draws among its own
proposals, and a running draw is replaced by the pass's with probability sum(pass weights) / sum(weights so far),
which is the same as resampling among all K proposals at once.

References:
    Using the SIR algorithm to simulate posterior distributions (Rubin, 1988). Bayesian Statistics 3, 395-402.
    Pareto Smoothed Importance Sampling (Vehtari, Simpson, Gelman, Yao and Gabry, 2024).
    https://jmlr.org/papers/v25/19-556.html
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn

from ppgen.objective.particles import in_passes, passes
from ppgen.program.inputs import Batch
from ppgen.program.structure import Structure, check_importance_weights
from ppgen.queries.evaluation import KHAT_THRESHOLD, khat_text, weight_diagnostics
from ppgen.queries.posterior import Posterior
from ppgen.queries.representation import observed_data, weighted_draws


def check_importance(module: nn.Module, structure: Structure) -> None:
    """A ``ValueError`` where the model's weights cannot be resampled: no guide, global latents, or a guide that
    enumerates (then a particle is not one draw of every latent)."""
    if not structure.guided or structure.unguided:
        raise ValueError(f"method='importance' reweighs draws of a guide q(z|x), but {type(module).__name__} has "
                         f"latent(s) {structure.unguided or structure.enumerated} that no guide draws: use "
                         f"method='guide' (exact where the model sums its latents out) or method='nuts'")
    if structure.global_sites:
        raise ValueError(f"method='importance' weighs each point's local latents, but the model's global latent(s) "
                         f"{structure.global_sites} are shared by the whole data set: use method='guide', or draw them "
                         f"by inference.NUTS()")
    if structure.guide_enumerated:
        raise ValueError(f"method='importance' needs one draw of every latent per proposal, but the guide enumerates "
                         f"{structure.guide_enumerated}: ask encode(x, site=...) for q(c|x) instead")
    check_importance_weights(structure, "method='importance'")


def posterior(module: nn.Module, structure: Structure, batch: Batch, num_samples: int, k: int,
              particle_points: int) -> Posterior:
    """``num_samples`` draws for each point, resampled from ``k`` weighted proposals of the guide.

    Arguments:
        module: the fitted program.
        structure: its structure, checked by :func:`check_importance`.
        batch: the points, checked and on the module's device.
        num_samples: S, the draws per point.
        k: K, the proposals per point.
        particle_points: proposals times points of one pass.

    Returns:
        A :class:`~ppgen.queries.posterior.Posterior` with ``ess`` and ``khat`` per point, the log weight of the
        proposal each draw came from, and log p(x_n | z_s); a ``UserWarning`` names how many points have k-hat > 0.7.
    """
    points = structure.points_per_chunk(particle_points // k)
    sizes = [count for _, count in passes(k, structure.plan, particle_points)]
    parts = [_chunk(module, structure, batch.take(rows), num_samples, sizes)
             for rows in torch.arange(len(batch), device=batch.rows.device).split(points)]
    samples = {name: torch.cat([p[0][name] for p in parts], dim=1) for name in parts[0][0]}
    log_w, log_lik, diagnostics = (torch.cat([p[i] for p in parts], dim=-1) for i in (1, 2, 3))
    ess, khat = diagnostics
    unreliable = int((khat > KHAT_THRESHOLD).sum())
    if unreliable:
        warnings.warn(f"{unreliable} of {len(batch)} points have a Pareto k-hat above {KHAT_THRESHOLD} (max "
                      f"{khat_text(khat.nan_to_num(0).max().item())}): the guide's tails are too light there for K={k} "
                      f"importance draws to reach p(z|x); resampled draws stay near q(z|x). A better guide or "
                      f"method='nuts' is the fix", UserWarning, stacklevel=3)
    return Posterior(samples, method="importance", log_likelihood=log_lik, log_weights=log_w, ess=ess, khat=khat,
                     observed=observed_data(structure, batch))


def _chunk(module: nn.Module, structure: Structure, batch: Batch, num_samples: int,
           sizes: list[int]) -> tuple[dict[str, Tensor], Tensor, Tensor, Tensor]:
    """The draws of one chunk of B points from K proposals in passes of ``sizes`` (:func:`passes`): samples
    [S, B, ...], the log weights and log-likelihoods of the chosen proposals [S, B], and the ESS and k-hat of the K
    weights, stacked [2, B]."""
    chosen: dict[str, Tensor] | None = None
    all_log_w = []
    total = None
    for particles in sizes:
        draws, every = _pass(module, structure, batch, num_samples, particles)
        all_log_w.append(every)
        mass = every.logsumexp(0)
        if chosen is None:
            chosen, total = draws, mass
            continue
        total = torch.logaddexp(total, mass)
        keep_new = torch.rand(num_samples, len(batch), device=mass.device) < (mass - total).exp()
        for name, value in draws.items():
            where = keep_new.reshape(*keep_new.shape, *(1,) * (value.dim() - 2))
            chosen[name] = torch.where(where, value, chosen[name])
    report = weight_diagnostics(torch.cat(all_log_w))
    log_w, log_lik = chosen.pop("log_w"), chosen.pop("log_lik")
    return chosen, log_w, log_lik, torch.stack([report["ess"], report["khat"]])


def _pass(module: nn.Module, structure: Structure, batch: Batch, num_samples: int,
          particles: int) -> tuple[dict[str, Tensor], Tensor]:
    """One pass of ``particles`` proposals for B points, resampled to S: the draws [S, B, ...] of every site, with
    their log weights (``"log_w"``) and log-likelihoods (``"log_lik"``), and the log weights of every proposal,
    Tensor[K, B]."""
    proposals, log_w, log_lik = in_passes(lambda start, count: weighted_draws(module, structure, batch, count),
                                          particles, structure.plan)
    index = torch.multinomial((log_w - log_w.logsumexp(0)).exp().T, num_samples, replacement=True).T  # [S, B]
    points = torch.arange(len(batch), device=index.device)
    draws = {name: value[index, points] for name, value in proposals.items()}  # c ~ p(c | x, z_k) of the chosen z_k
    draws["log_w"], draws["log_lik"] = log_w[index, points], log_lik[index, points]
    return draws, log_w
