"""The importance-weighted bound IWAE_K = E[log (1/K) sum_k p(x, z_k) / q(z_k|x)] (Burda et al., 2015)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from ppgen.objective.aggregate import (check_latent_mmd, check_latent_mmd_weight, latent_mmd_field,
                                      latent_mmd_points, latent_mmd_units, penalised, penalised_repr)
from ppgen.objective.base import Objective
from ppgen.objective.bounds import log_mean_exp, log_weights
from ppgen.objective.estimators import stopped_log_weights
from ppgen.program.inputs import Batch
from ppgen.program.structure import Structure, check_importance_weights
from ppgen.utils.checks import check_choice, check_positive_int

ESTIMATORS = ("standard", "dreg", "stl")


@dataclass(frozen=True, kw_only=True)
class IWAE(Objective):
    """The K-sample importance-weighted bound, one per data point, with the K particles vectorised:

        IWAE_K(x) = E[log (1/K) sum_k w_k],  w_k = p(x, z_k) / q(z_k|x),  z_k ~ q(z|x).

    ELBO = IWAE_1 <= IWAE_K <= IWAE_{K+1} <= log p(x), and IWAE_K -> log p(x) as K grows.

    The estimator chooses the gradient for the guide's parameters phi (the model's parameters always get
    sum_k w~_k d log w_k, w~_k = w_k / sum_j w_j); the loss value is the bound in every case:

    * ``"standard"``: the gradient of the estimate as it is, which includes the score term d/dphi log q; its
      signal-to-noise ratio for phi falls as K grows (Rainforth et al., 2018).
    * ``"stl"``: sticking the landing, sum_k w~_k d log w_k/dz_k dz_k/dphi, the score term dropped.
    * ``"dreg"``: doubly reparameterised, sum_k w~_k^2 d log w_k/dz_k dz_k/dphi, unbiased for the standard
      gradient's expectation, with an SNR that grows with K.

    Arguments:
        k: K, the number of importance samples per data point.
        estimator: ``"standard"``, ``"dreg"`` or ``"stl"``.
        latent_mmd: lambda >= 0, the weight of the aggregate posterior's MMD^2 from the prior added to the loss
            (as in :class:`ELBO`); 0 (the default) is the bound itself, computed exactly as without the argument.

    References:
        Importance Weighted Autoencoders (Burda, Grosse and Salakhutdinov, 2015).
        https://arxiv.org/abs/1509.00519
        Doubly Reparameterized Gradient Estimators for Monte Carlo Objectives (Tucker, Lawson, Gu and Maddison,
        2019). https://arxiv.org/abs/1810.04152
        Sticking the Landing: Simple, Lower-Variance Gradient Estimators for Variational Inference (Roeder, Wu
        and Duvenaud, 2017). https://arxiv.org/abs/1703.09194
        Tighter Variational Bounds are Not Necessarily Better (Rainforth et al., 2018).
        https://arxiv.org/abs/1802.04537
    """

    k: int = 5
    estimator: str = "standard"
    latent_mmd: float = latent_mmd_field()

    __repr__ = penalised_repr
    min_points = latent_mmd_points
    units = latent_mmd_units

    def __post_init__(self) -> None:
        object.__setattr__(self, "k", check_positive_int(self.k, "k"))  # np.int64(5) saves as 5
        check_choice(self.estimator, ESTIMATORS, "estimator")
        object.__setattr__(self, "latent_mmd", check_latent_mmd_weight(self.latent_mmd))

    def check(self, structure: Structure) -> None:
        super().check(structure)
        check_importance_weights(structure, repr(self))
        if structure.guide_enumerated:
            raise ValueError(
                f"IWAE() weights one draw of every latent per particle, but the guide enumerates "
                f"{structure.guide_enumerated}: sum them out in the model (infer={{'enumerate': 'parallel'}} there, "
                f"no guide site), or fit by inference.ELBO()")
        if structure.global_sites:
            raise ValueError(
                f"IWAE() is a bound per data point, but latent site(s) {structure.global_sites} sit outside the data "
                f"plate and are shared by every point: fit a model with global latents by inference.ELBO()")
        if self.latent_mmd:
            check_latent_mmd(self, structure)

    def loss(self, module: nn.Module, structure: Structure, batch: Batch) -> Tensor:
        if self.estimator == "standard":
            log_w = log_weights(module, structure, batch, self.k)
        else:
            log_w = stopped_log_weights(module, structure, batch, self.k,
                                        doubly_reparameterised=self.estimator == "dreg")
        return penalised(self, -log_mean_exp(log_w).mean(), module, structure, batch)
