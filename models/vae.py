"""The variational autoencoder: z ~ N(0, I), x ~ p_theta(x|z) with an MLP decoder, q_phi(z|x) an MLP encoder."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyro
import pyro.distributions as dist
from torch import Tensor
from torch.nn.functional import softplus

from ppgen.models.layers import check_widths, mlp
from ppgen.models.likelihoods import build_likelihood
from ppgen.program.protocol import DATA_PLATE, Model
from ppgen.utils.checks import check_positive_int


class VAE(Model):
    """Variational autoencoder with a diagonal-Gaussian encoder q(z|x) and an MLP decoder p(x|z).

    Arguments:
        x_dim: D, the size of a data point.
        z_dim: the size of the latent code z.
        hidden: widths of the hidden layers of the encoder (the decoder mirrors them).
        likelihood: p(x|z), one of :data:`ppgen.models.likelihoods.LIKELIHOODS`: ``"bernoulli"`` for binary
            data, ``"gaussian"`` (a mean from the decoder, a scale learnt per dimension or fixed by ``scale``),
            ``"continuous_bernoulli"`` for data in [0, 1], ``"discretised_logistic"`` for 8-bit levels 0..255.
        scale: the fixed standard deviation of a Gaussian likelihood; ``None`` learns one per dimension.

    References:
        Auto-Encoding Variational Bayes (Kingma and Welling, 2014). https://arxiv.org/abs/1312.6114
    """

    def __init__(self, *, x_dim: int, z_dim: int = 8, hidden: Sequence[int] = (400,),
                 likelihood: str = "bernoulli", scale: float | None = None) -> None:
        super().__init__()
        hidden = check_widths(hidden, "hidden")
        x_dim, z_dim = check_positive_int(x_dim, "x_dim"), check_positive_int(z_dim, "z_dim")
        self.x_dim, self.z_dim, self.likelihood = x_dim, z_dim, likelihood
        self.observation_model = build_likelihood(likelihood, x_dim, scale)
        self.encoder = mlp((x_dim, *hidden, 2 * z_dim))
        self.decoder = mlp((z_dim, *hidden[::-1], self.observation_model.params_per_dim * x_dim))
        self._register_load_state_dict_pre_hook(_moved_log_scale)

    def observation(self, z: Tensor) -> dist.Distribution:
        """p(x|z) for one data point per leading index of z."""
        return self.observation_model(self.decoder(z), (self.x_dim,))

    def model(self, x: Tensor) -> None:
        with pyro.plate(DATA_PLATE, x.shape[0]):
            prior = dist.Normal(x.new_zeros(self.z_dim), x.new_ones(self.z_dim)).to_event(1)
            z = pyro.sample("z", prior)
            pyro.sample("x", self.observation(z), obs=x)

    def guide(self, x: Tensor) -> None:
        loc, scale = self.encoder(x).chunk(2, dim=-1)
        with pyro.plate(DATA_PLATE, x.shape[0]):
            pyro.sample("z", dist.Normal(loc, softplus(scale) + 1e-4).to_event(1))


def _moved_log_scale(state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
    """Checkpoints written before the likelihoods had a module of their own hold the Gaussian's learnt log sigma
    as ``log_scale``; it now lives at ``observation_model.log_scale``."""
    if prefix + "log_scale" in state_dict:
        state_dict[prefix + "observation_model.log_scale"] = state_dict.pop(prefix + "log_scale")
