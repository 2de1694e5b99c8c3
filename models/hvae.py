"""The hierarchical VAE with two stochastic layers: z2 ~ N(0, I), z1 | z2 ~ N(mu(z2), sigma(z2)), x | z1 ~ p(x|z1)."""

from __future__ import annotations

from collections.abc import Sequence

import pyro
import pyro.distributions as dist
from torch import Tensor, nn
from torch.nn.functional import softplus

from ppgen.models.layers import check_widths, mlp
from ppgen.models.likelihoods import build_likelihood
from ppgen.program.protocol import DATA_PLATE, Model
from ppgen.utils.checks import check_positive_int


def gaussian(net: nn.Module, inputs: Tensor) -> dist.Distribution:
    """A diagonal Gaussian whose mean and softplus-scale are the two halves of ``net(inputs)``."""
    loc, raw_scale = net(inputs).chunk(2, dim=-1)
    return dist.Normal(loc, softplus(raw_scale) + 1e-4).to_event(1)


class HVAE(Model):
    """A VAE with two stochastic layers, z2 -> z1 -> x, and a guide that runs the other way, x -> z1 -> z2.

    The generative story: a top code z2 ~ N(0, I) chooses a distribution over a lower code,
    z1 | z2 ~ N(mu(z2), diag sigma(z2)^2), which chooses the data, x | z1 ~ p(x|z1). The guide factorises
    as q(z1, z2 | x) = q(z1|x) q(z2|z1). The defaults are the two-stochastic-layer architecture of
    Burda et al. (2015, Table 1): deterministic layers of 100 and 50 tanh units, z1 of 100 and z2 of 50
    dimensions. Queries about one code name it: ``fit.encode(x, site="z1")``.

    Arguments:
        x_dim: D, the size of a data point.
        z_dim: the size of the lower code z1.
        z2_dim: the size of the top code z2.
        hidden: the hidden widths between x and z1 (both ways).
        hidden2: the hidden widths between z1 and z2 (both ways).
        activation: ``"tanh"`` (as Burda et al.) or ``"relu"``.
        likelihood: p(x|z1), one of :data:`ppgen.models.likelihoods.LIKELIHOODS`.
        scale: the fixed standard deviation of a Gaussian likelihood; ``None`` learns one per dimension.

    References:
        Importance Weighted Autoencoders (Burda, Grosse and Salakhutdinov, 2015), section 5 and Table 1.
        https://arxiv.org/abs/1509.00519
    """

    def __init__(self, *, x_dim: int, z_dim: int = 100, z2_dim: int = 50, hidden: Sequence[int] = (100, 100),
                 hidden2: Sequence[int] = (50, 50), activation: str = "tanh", likelihood: str = "bernoulli",
                 scale: float | None = None) -> None:
        super().__init__()
        x_dim, z_dim = check_positive_int(x_dim, "x_dim"), check_positive_int(z_dim, "z_dim")
        z2_dim = check_positive_int(z2_dim, "z2_dim")
        hidden, hidden2 = check_widths(hidden, "hidden"), check_widths(hidden2, "hidden2")
        self.x_dim, self.z_dim, self.z2_dim, self.likelihood = x_dim, z_dim, z2_dim, likelihood
        self.observation_model = build_likelihood(likelihood, x_dim, scale)
        self.encoder = mlp((x_dim, *hidden, 2 * z_dim), activation)  # q(z1|x)
        self.encoder2 = mlp((z_dim, *hidden2, 2 * z2_dim), activation)  # q(z2|z1)
        self.prior1 = mlp((z2_dim, *hidden2[::-1], 2 * z_dim), activation)  # p(z1|z2)
        self.decoder = mlp((z_dim, *hidden[::-1], self.observation_model.params_per_dim * x_dim), activation)

    def observation(self, z1: Tensor) -> dist.Distribution:
        """p(x|z1) for one data point per leading index of z1."""
        return self.observation_model(self.decoder(z1), (self.x_dim,))

    def model(self, x: Tensor) -> None:
        with pyro.plate(DATA_PLATE, x.shape[0]):
            z2 = pyro.sample("z2", dist.Normal(x.new_zeros(self.z2_dim), x.new_ones(self.z2_dim)).to_event(1))
            z1 = pyro.sample("z1", gaussian(self.prior1, z2))
            pyro.sample("x", self.observation(z1), obs=x)

    def guide(self, x: Tensor) -> None:
        with pyro.plate(DATA_PLATE, x.shape[0]):
            z1 = pyro.sample("z1", gaussian(self.encoder, x))
            pyro.sample("z2", gaussian(self.encoder2, z1))
