"""The importance-weighted bound IWAE_K = E[log (1/K) sum_k p(x, z_k) / q(z_k|x)] (Burda et al., 2015)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from ppgen.bounds import log_mean_exp, log_weights
from ppgen.checks import check_positive_int
from ppgen.objective import Objective
from ppgen.program import Structure


@dataclass(frozen=True, kw_only=True)
class IWAE(Objective):
    """The K-sample importance-weighted bound, one per data point, with the K particles vectorised.

    ELBO = IWAE_1 <= IWAE_K <= IWAE_{K+1} <= log p(x), and IWAE_K -> log p(x) as K grows.

    Arguments:
        k: K, the number of importance samples per data point.

    References:
        Importance Weighted Autoencoders (Burda, Grosse and Salakhutdinov, 2015).
        https://arxiv.org/abs/1509.00519
    """

    k: int = 5

    def __post_init__(self) -> None:
        object.__setattr__(self, "k", check_positive_int(self.k, "k"))  # np.int64(5) saves as 5

    def loss(self, module: nn.Module, structure: Structure, x: Tensor) -> Tensor:
        return -log_mean_exp(log_weights(module, structure, x, self.k)).mean()
