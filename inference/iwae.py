"""The importance-weighted bound IWAE_K = E[log (1/K) sum_k p(x, z_k) / q(z_k|x)] (Burda et al., 2015)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from ppgen.bounds import log_mean_exp, log_weights
from ppgen.checks import check_positive_int
from ppgen.data import Batch
from ppgen.objective import Objective
from ppgen.structure import Structure


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

    def check(self, structure: Structure) -> None:
        super().check(structure)
        if structure.guide_enumerated:
            raise ValueError(
                f"IWAE() weights one draw of every latent per particle, but the guide enumerates "
                f"{structure.guide_enumerated}: sum them out in the model (infer={{'enumerate': 'parallel'}} there, "
                f"no guide site), or fit by inference.ELBO()")
        if structure.global_sites:
            raise ValueError(
                f"IWAE() is a bound per data point, but latent site(s) {structure.global_sites} sit outside the data "
                f"plate and are shared by every point: fit a model with global latents by inference.ELBO()")

    def loss(self, module: nn.Module, structure: Structure, batch: Batch) -> Tensor:
        return -log_mean_exp(log_weights(module, structure, batch, self.k)).mean()
