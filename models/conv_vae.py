"""The convolutional VAE: z ~ N(0, I), x ~ p(x | ConvDecoder(z)) for images (C, H, W), q(z|x) a ConvEncoder."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pyro
import pyro.distributions as dist
import torch
from torch import Tensor
from torch.nn.functional import softplus

from ppgen.models.layers import ConvDecoder, ConvEncoder, check_image
from ppgen.models.likelihoods import build_likelihood
from ppgen.program.protocol import DATA_PLATE, Model
from ppgen.utils.checks import check_positive_int


class ConvVAE(Model):
    """Variational autoencoder for images, with convolutional encoder q(z|x) and transposed-convolutional decoder.

    The story is the VAE's, z ~ N(0, I) and x ~ p(x|z); the networks see an image as an image, so nearby
    pixels share weights. Data come as rows of D = C H W values or as images [N, C, H, W]: the model reads
    either, and draws samples in the shape it was fitted on.

    Arguments:
        x_dim: D = C H W, the size of a data point.
        z_dim: the size of the latent code z.
        image_shape: (C, H, W); by default one channel, as square as D allows (8 x 8 for D = 64).
        channels: output channels of the encoder's stride-2 convolutions (the decoder mirrors them).
        dense: the width of the dense layer between the convolutions and z.
        likelihood: p(x|z), one of :data:`ppgen.models.likelihoods.LIKELIHOODS`.
        scale: the fixed standard deviation of a Gaussian likelihood; ``None`` learns one per pixel.

    References:
        Auto-Encoding Variational Bayes (Kingma and Welling, 2014). https://arxiv.org/abs/1312.6114

        Deep Convolutional Inverse Graphics Network (Kulkarni, Whitney, Kohli and Tenenbaum, 2015).
        https://arxiv.org/abs/1503.03167
    """

    def __init__(self, *, x_dim: int, z_dim: int = 8, image_shape: Sequence[int] | None = None,
                 channels: Sequence[int] = (32, 64), dense: int = 256, likelihood: str = "bernoulli",
                 scale: float | None = None) -> None:
        super().__init__()
        x_dim, z_dim = check_positive_int(x_dim, "x_dim"), check_positive_int(z_dim, "z_dim")
        dense = check_positive_int(dense, "dense")
        shape, channels = check_image(x_dim, image_shape, channels)
        self.x_dim, self.z_dim, self.image_shape, self.likelihood = x_dim, z_dim, tuple(shape), likelihood
        self.observation_model = build_likelihood(likelihood, x_dim, scale)
        out_channels = shape[0] * self.observation_model.params_per_dim
        self.encoder = ConvEncoder(self.image_shape, channels, dense, 2 * z_dim)
        self.decoder = ConvDecoder(z_dim, self.image_shape, channels, dense, out_channels)

    def _image(self, x: Tensor) -> Tensor:
        if math.prod(x.shape[1:]) != self.x_dim:
            raise ValueError(f"x: rows of shape {list(x.shape[1:])} do not hold x_dim = {self.x_dim} values "
                             f"(image_shape {self.image_shape})")
        return x.reshape(x.shape[0], *self.image_shape)

    def observation(self, z: Tensor, event_shape: torch.Size) -> dist.Distribution:
        """p(x|z) for one data point of shape ``event_shape`` per leading index of z."""
        return self.observation_model(self.decoder(z).flatten(-3), event_shape)

    def model(self, x: Tensor) -> None:
        self._image(x)
        with pyro.plate(DATA_PLATE, x.shape[0]):
            prior = dist.Normal(x.new_zeros(self.z_dim), x.new_ones(self.z_dim)).to_event(1)
            z = pyro.sample("z", prior)
            pyro.sample("x", self.observation(z, x.shape[1:]), obs=x)

    def guide(self, x: Tensor) -> None:
        loc, scale = self.encoder(self._image(x)).chunk(2, dim=-1)
        with pyro.plate(DATA_PLATE, x.shape[0]):
            pyro.sample("z", dist.Normal(loc, softplus(scale) + 1e-4).to_event(1))
