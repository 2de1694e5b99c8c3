"""The evidence lower bound, ELBO = E_q[log p(x, z) - log q(z|x)] <= log p(x), fitted by SVI."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from torch import Tensor, nn

from ppgen.objective.aggregate import (check_latent_mmd, check_latent_mmd_weight, latent_mmd_field,
                                      latent_mmd_points, latent_mmd_units, penalised, penalised_repr)
from ppgen.objective.base import Objective
from ppgen.objective.bounds import elbo_terms
from ppgen.objective.estimators import analytic_log_weights, check_analytic_kl, scored_elbo_terms
from ppgen.program.inputs import Batch
from ppgen.program.structure import Structure
from ppgen.utils.checks import check_choice, check_positive_int

KL_ESTIMATES = ("sampled", "analytic")


@dataclass(frozen=True, kw_only=True)
class ELBO(Objective):
    """Stochastic variational inference on the ELBO, estimated per data point with K reparameterised particles:

        ELBO(x) = E_q(z|x)[log p(x|z)] - KL(q(z|x) || p(z)) ~= (1/K) sum_k log p(x, z_k) - log q(z_k|x).

    Discrete latents that the model enumerates are summed out exactly inside log p(x, z), and those that the
    guide enumerates are summed over weighted by q (the estimators of Pyro's ``TraceEnum_ELBO``); the rest come
    from the guide (``Trace_ELBO``), a site without a reparameterised sampler (a guide's ``Categorical``) through
    the score-function term log q(z_k|x) (log w_k held fixed), as ``Trace_ELBO`` differentiates it. Global latents count once for the data set: 1/N of their terms per point.
    With ``kl="analytic"`` each latent site's KL(q || p) is taken in closed form instead of from the draws
    (the mean-field estimator of Pyro's ``TraceMeanField_ELBO``): the same ELBO, with less variance. A site
    whose pair of distributions has no closed-form KL is named in a ``ValueError`` on the first step, before
    any parameter changes.

    With ``latent_mmd=lambda > 0`` the loss is -ELBO + lambda MMD^2(q(z), p(z)), the aggregate posterior of the
    local latents held near their prior (InfoVAE, Zhao et al., 2019; see :mod:`ppgen.objective.aggregate`): the
    reported loss includes the penalty, so that it is no longer -ELBO in nats (the penalty is in the kernel's units).

    Arguments:
        num_particles: K, the particles averaged per data point; the particles are vectorised.
        kl: ``"sampled"`` or ``"analytic"``.
        latent_mmd: lambda >= 0, the weight of the aggregate posterior's MMD^2 from the prior; 0 (the default) is the
            ELBO itself, computed exactly as without the argument.

    References:
        Auto-Encoding Variational Bayes (Kingma and Welling, 2014). https://arxiv.org/abs/1312.6114
        Pyro: Deep Universal Probabilistic Programming (Bingham et al., 2019). https://arxiv.org/abs/1810.09538
    """

    num_particles: int = 1
    kl: str = "sampled"
    latent_mmd: float = latent_mmd_field()

    __repr__ = penalised_repr
    min_points = latent_mmd_points
    units = latent_mmd_units

    def __post_init__(self) -> None:
        object.__setattr__(self, "num_particles", check_positive_int(self.num_particles, "num_particles"))  # np.int64(5) saves as 5
        check_choice(self.kl, KL_ESTIMATES, "kl")
        object.__setattr__(self, "latent_mmd", check_latent_mmd_weight(self.latent_mmd))

    def check(self, structure: Structure) -> None:
        scored = self.kl == "sampled" and not structure.guide_enumerated  # score-function terms where no rsample
        super().check(dataclasses.replace(structure, unreparameterized=()) if scored else structure)
        if self.kl == "analytic":
            check_analytic_kl(structure)
        if self.latent_mmd:
            check_latent_mmd(self, structure)

    def loss(self, module: nn.Module, structure: Structure, batch: Batch) -> Tensor:
        if self.kl == "analytic":
            loss = -analytic_log_weights(module, structure, batch, self.num_particles).mean()
        elif structure.unreparameterized:
            loss = -scored_elbo_terms(module, structure, batch, self.num_particles).mean()
        else:
            loss = -elbo_terms(module, structure, batch, self.num_particles).mean()
        return penalised(self, loss, module, structure, batch)
