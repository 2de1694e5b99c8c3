"""The Rényi variational bound L_alpha = 1/(1 - alpha) log E_q[(p(x, z) / q(z|x))^(1 - alpha)] (Li and Turner, 2016)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from ppgen.objective.aggregate import (check_latent_mmd, check_latent_mmd_weight, latent_mmd_field,
                                      latent_mmd_points, latent_mmd_units, penalised, penalised_repr)
from ppgen.objective.base import Objective
from ppgen.objective.bounds import log_mean_exp, log_weights
from ppgen.program.inputs import Batch
from ppgen.program.structure import Structure, check_importance_weights
from ppgen.utils.checks import check_finite_float, check_positive_int


@dataclass(frozen=True, kw_only=True)
class RenyiVI(Objective):
    """Variational inference on the Rényi bound, estimated per data point with K reparameterised particles:

        L_alpha(x) ~= 1/(1 - alpha) log (1/K) sum_k w_k^(1 - alpha),  w_k = p(x, z_k) / q(z_k|x),  z_k ~ q(z|x).

    alpha = 1 is the ELBO (the limit, taken as (1/K) sum_k log w_k), alpha = 0 the importance-weighted bound
    IWAE_K; for 0 <= alpha <= 1 the estimate is a lower bound on log p(x) in expectation, for alpha < 0 it can
    lie above it. Unlike Pyro's ``RenyiELBO``, whose particles weigh the joint density of the whole mini-batch,
    the bound here is one per data point, so the batch size does not change the objective.

    Arguments:
        alpha: the order of the Rényi divergence, any finite number.
        k: K, the importance samples per data point.
        latent_mmd: lambda >= 0, the weight of the aggregate posterior's MMD^2 from the prior added to the loss
            (as in :class:`ELBO`); 0 (the default) is the bound itself, computed exactly as without the argument.

    References:
        Rényi Divergence Variational Inference (Li and Turner, 2016). https://arxiv.org/abs/1602.02311
    """

    alpha: float = 0.5
    k: int = 5
    latent_mmd: float = latent_mmd_field()

    __repr__ = penalised_repr
    min_points = latent_mmd_points
    units = latent_mmd_units

    def __post_init__(self) -> None:
        object.__setattr__(self, "alpha", check_finite_float(self.alpha, "alpha"))
        object.__setattr__(self, "k", check_positive_int(self.k, "k"))
        object.__setattr__(self, "latent_mmd", check_latent_mmd_weight(self.latent_mmd))

    def check(self, structure: Structure) -> None:
        super().check(structure)
        check_importance_weights(structure, repr(self))
        if self.latent_mmd:
            check_latent_mmd(self, structure)

    def loss(self, module: nn.Module, structure: Structure, batch: Batch) -> Tensor:
        log_w = log_weights(module, structure, batch, self.k)
        if self.alpha == 1:
            loss = -log_w.mean(0).mean()
        else:
            loss = -(log_mean_exp((1 - self.alpha) * log_w) / (1 - self.alpha)).mean()
        return penalised(self, loss, module, structure, batch)
