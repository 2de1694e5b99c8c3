"""VIMCO: the importance-weighted bound with a score-function gradient and leave-one-out baselines (Mnih and Rezende, 2016)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ppgen.objective.base import Objective
from ppgen.objective.bounds import log_mean_exp
from ppgen.objective.estimators import check_draws_guide, detached_draws, with_gradient_of
from ppgen.program.inputs import Batch
from ppgen.program.structure import Structure
from ppgen.utils.checks import check_positive_int


@dataclass(frozen=True, kw_only=True)
class VIMCO(Objective):
    """Variational inference for Monte Carlo objectives, for guides that cannot be reparameterised.

    The objective is IWAE_K(x) = log (1/K) sum_k w_k per data point, z_k ~ q(z|x) held fixed. Its gradient
    is estimated as

        sum_k (L - L_{-k}) d log q(z_k|x) + sum_k w~_k d log w_k,

    where L_{-k} is L with w_k replaced by the geometric mean of the other K - 1 weights: a baseline for
    particle k that does not depend on z_k, so the estimate stays unbiased while each particle's learning
    signal is its own contribution to the bound. The loss value is -IWAE_K, in nats per point.

    Arguments:
        k: K >= 2, the importance samples per data point (the baselines need the others).

    References:
        Variational Inference for Monte Carlo Objectives (Mnih and Rezende, 2016). https://arxiv.org/abs/1602.06725
    """

    k: int = 5

    def __post_init__(self) -> None:
        object.__setattr__(self, "k", check_positive_int(self.k, "k"))
        if self.k < 2:
            raise ValueError(f"k must be at least 2 for VIMCO, whose baseline for each particle averages the "
                             f"others, got {self.k}")

    def check(self, structure: Structure) -> None:
        check_draws_guide(self, structure)

    def loss(self, module: nn.Module, structure: Structure, batch: Batch) -> Tensor:
        log_p, log_q = detached_draws(module, structure, batch, self.k)
        log_w = log_p - log_q
        bound = log_mean_exp(log_w)
        signal = (bound - leave_one_out(log_w.detach())).detach()
        return -with_gradient_of(bound, (signal * log_q).sum(0) + bound).mean()


def leave_one_out(log_w: Tensor) -> Tensor:
    """L_{-k} = log (1/K) (sum_{j != k} w_j + exp(mean_{j != k} log w_j)) for each particle k, Tensor[K, N]."""
    k = log_w.shape[0]
    others = (log_w.sum(0, keepdim=True) - log_w) / (k - 1)
    diagonal = torch.eye(k, dtype=torch.bool, device=log_w.device).unsqueeze(-1)
    replaced = torch.where(diagonal, others.unsqueeze(1), log_w.unsqueeze(0))  # [k, j, N]: w_k swapped out
    return replaced.logsumexp(1) - math.log(k)
