"""Reweighted wake-sleep: the model climbs IWAE_K, the guide descends KL(p(z|x) || q(z|x)) (Bornschein and Bengio, 2015)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from ppgen.objective.base import Objective
from ppgen.objective.bounds import log_mean_exp
from ppgen.objective.estimators import check_draws_guide, detached_draws, with_gradient_of
from ppgen.program.inputs import Batch
from ppgen.program.structure import Structure
from ppgen.utils.checks import check_positive_int


@dataclass(frozen=True, kw_only=True)
class RWS(Objective):
    """Reweighted wake-sleep with mini-batches, for guides that need not be reparameterised (discrete latents).

    With z_k ~ q(z|x) held fixed and w~_k = w_k / sum_j w_j the normalised importance weights, per data point:

    * wake phase for the model: theta climbs sum_k w~_k d/dtheta log p(x, z_k), the gradient of
      IWAE_K = log (1/K) sum_k w_k;
    * wake phase for the guide: phi climbs sum_k w~_k d/dphi log q(z_k|x), a self-normalised estimate of
      -d/dphi KL(p(z|x) || q(z|x)).

    Neither differentiates through z, so any guide works. The sleep phase (fitting q to the model's own dreams)
    is left out, as Le et al. (2019) recommend. The loss value is -IWAE_K, in nats per point. Every term is
    one per data point, so mini-batches estimate the full-data objective without bias in the gradient of the
    model (Pyro's ``ReweightedWakeSleep`` takes no mini-batches).

    Arguments:
        k: K, the importance samples per data point.

    References:
        Reweighted Wake-Sleep (Bornschein and Bengio, 2015). https://arxiv.org/abs/1406.2751
        Revisiting Reweighted Wake-Sleep for Models with Stochastic Control Flow (Le et al., 2019).
        https://arxiv.org/abs/1805.10469
    """

    k: int = 5

    def __post_init__(self) -> None:
        object.__setattr__(self, "k", check_positive_int(self.k, "k"))

    def check(self, structure: Structure) -> None:
        check_draws_guide(self, structure)

    def loss(self, module: nn.Module, structure: Structure, batch: Batch) -> Tensor:
        log_p, log_q = detached_draws(module, structure, batch, self.k)
        log_w = log_p - log_q
        normalised = log_w.detach().softmax(0)
        wake = (normalised * (log_p + log_q)).sum(0)
        return -with_gradient_of(log_mean_exp(log_w), wake).mean()
