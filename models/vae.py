"""The variational autoencoder: z ~ N(0, I), x ~ p_theta(x|z) with an MLP decoder, q_phi(z|x) an MLP encoder."""

from __future__ import annotations

from collections.abc import Sequence

import pyro
import pyro.distributions as dist
import torch
from torch import Tensor, nn
from torch.nn.functional import softplus

from ppgen.checks import check_positive_int
from ppgen.program import DATA_PLATE, Model

LIKELIHOODS = ("bernoulli", "gaussian")


def mlp(sizes: Sequence[int]) -> nn.Sequential:
    """A multilayer perceptron with ReLU between the linear layers of the given widths."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        if i:
            layers.append(nn.ReLU())
        layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers)


class VAE(Model):
    """Variational autoencoder with a diagonal-Gaussian encoder q(z|x) and an MLP decoder p(x|z).

    Arguments:
        x_dim: D, the size of a data point.
        z_dim: the size of the latent code z.
        hidden: widths of the hidden layers of the encoder (the decoder mirrors them).
        likelihood: ``"bernoulli"`` for binary data (logits from the decoder) or ``"gaussian"``
            (a mean from the decoder and a learnt scale per dimension).

    References:
        Auto-Encoding Variational Bayes (Kingma and Welling, 2014). https://arxiv.org/abs/1312.6114
    """

    def __init__(self, *, x_dim: int, z_dim: int = 8, hidden: Sequence[int] = (400,),
                 likelihood: str = "bernoulli") -> None:
        super().__init__()
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
        if not isinstance(hidden, Sequence):
            raise TypeError(f"hidden must be a sequence of layer widths such as (400,), got {type(hidden).__name__}")
        hidden = tuple(check_positive_int(width, f"hidden[{i}]") for i, width in enumerate(hidden))
        x_dim, z_dim = check_positive_int(x_dim, "x_dim"), check_positive_int(z_dim, "z_dim")
        self.x_dim, self.z_dim, self.likelihood = x_dim, z_dim, likelihood
        self.encoder = mlp((x_dim, *hidden, 2 * z_dim))
        self.decoder = mlp((z_dim, *hidden[::-1], x_dim))
        if likelihood == "gaussian":
            self.log_scale = nn.Parameter(torch.zeros(x_dim))

    def observation(self, z: Tensor) -> dist.Distribution:
        """p(x|z) for one data point per leading index of z."""
        out = self.decoder(z)
        if self.likelihood == "bernoulli":
            return dist.Bernoulli(logits=out).to_event(1)
        return dist.Normal(out, self.log_scale.exp()).to_event(1)

    def model(self, x: Tensor) -> None:
        with pyro.plate(DATA_PLATE, x.shape[0]):
            prior = dist.Normal(x.new_zeros(self.z_dim), x.new_ones(self.z_dim)).to_event(1)
            z = pyro.sample("z", prior)
            pyro.sample("x", self.observation(z), obs=x)

    def guide(self, x: Tensor) -> None:
        loc, scale = self.encoder(x).chunk(2, dim=-1)
        with pyro.plate(DATA_PLATE, x.shape[0]):
            pyro.sample("z", dist.Normal(loc, softplus(scale) + 1e-4).to_event(1))
