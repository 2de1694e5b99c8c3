"""The evidence lower bound, ELBO = E_q[log p(x, z) - log q(z|x)] <= log p(x), fitted by SVI."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from ppgen.bounds import elbo_terms
from ppgen.checks import check_positive_int
from ppgen.data import Batch
from ppgen.objective import Objective
from ppgen.structure import Structure


@dataclass(frozen=True, kw_only=True)
class ELBO(Objective):
    """Stochastic variational inference on the ELBO, estimated with K reparameterised particles.

    Discrete latents that the model enumerates are summed out exactly inside log p(x, z), and those that the
    guide enumerates are summed over weighted by q (the estimators of Pyro's ``TraceEnum_ELBO``); the rest come
    from the guide (``Trace_ELBO``). Global latents count once for the data set: 1/N of their terms per point.

    Arguments:
        num_particles: K, the particles averaged per data point; the particles are vectorised.

    References:
        Auto-Encoding Variational Bayes (Kingma and Welling, 2014). https://arxiv.org/abs/1312.6114
    """

    num_particles: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "num_particles", check_positive_int(self.num_particles, "num_particles"))  # np.int64(5) saves as 5

    def loss(self, module: nn.Module, structure: Structure, batch: Batch) -> Tensor:
        return -elbo_terms(module, structure, batch, self.num_particles).mean()
