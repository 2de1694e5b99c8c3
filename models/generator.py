"""Generators, implicit models with no density: z ~ N(0, I), x = G(z), the data site a point mass at G(z).

They answer ``sample`` alone, and are fitted by objectives that compare their samples with the data (see
:mod:`ppgen.program.implicit`); every likelihood-based objective and query refuses them by name.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pyro
import pyro.distributions as dist
from torch import Tensor, nn

from ppgen.models.layers import check_image, check_widths, mlp, upsampled, upsampling
from ppgen.program.protocol import DATA_PLATE, Model
from ppgen.utils.checks import check_positive_int


class Generator(Model):
    """A generator with an MLP: z ~ N(0, I_d), x = G(z), observed as a point mass ``Delta(G(z))`` at the data.

    Its samples cover a manifold of at most d dimensions in R^D, so it has no density there: fit it by a
    likelihood-free objective, as generative adversarial networks and moment-matching networks are fitted.

    Arguments:
        x_dim: D, the size of a data point.
        z_dim: d, the size of the noise z.
        hidden: widths of the hidden layers of G (ReLU between them; the output is linear, x in R^D).

    References:
        Generative Adversarial Nets (Goodfellow et al., 2014). https://arxiv.org/abs/1406.2661
    """

    def __init__(self, *, x_dim: int, z_dim: int = 8, hidden: Sequence[int] = (128, 128)) -> None:
        super().__init__()
        hidden = check_widths(hidden, "hidden")
        x_dim, z_dim = check_positive_int(x_dim, "x_dim"), check_positive_int(z_dim, "z_dim")
        self.x_dim, self.z_dim = x_dim, z_dim
        self.net = mlp((z_dim, *hidden, x_dim))

    def model(self, x: Tensor) -> None:
        with pyro.plate(DATA_PLATE, x.shape[0]):
            z = pyro.sample("z", dist.Normal(x.new_zeros(self.z_dim), x.new_ones(self.z_dim)).to_event(1))
            pyro.sample("x", dist.Delta(self.net(z), event_dim=1), obs=x)


class ConvGenerator(Model):
    """A DCGAN-style generator for images (C, H, W): z ~ N(0, I_d), x = G(z), a point mass at the data.

    G maps z by a linear layer to ``channels[-1]`` feature maps of a quarter (an eighth, ...) of the image's side,
    then doubles the side with each stride-2 transposed convolution (kernel 3, the output padding that restores the
    exact size, as :class:`~ppgen.models.layers.ConvDecoder` does), each hidden layer followed by batch
    normalisation and a ReLU, the last by a sigmoid: pixels in [0, 1], the range of ``datasets.digits`` and
    ``datasets.fashion_mnist``. Data come as rows of D = C H W values or as images [N, C, H, W], as for
    :class:`~ppgen.models.ConvVAE`, and samples take the shape the model was fitted on.

    Batch normalisation normalises each feature map by its statistics over the batch (and the map's pixels) in
    training mode, and by the running averages of those statistics in eval mode. A fit ends in eval mode (and
    ``ppgen.load`` sets it), so that each sample x = G(z) depends on its own z alone, the same drawn alone as in a
    batch of many; a model left in training mode makes each sample depend on the others drawn with it. In training
    mode a batch of one point is normalised over the pixels of its maps, which torch refuses where the smallest
    map is 1 x 1 (images of side at most 2^len(channels)): fit such small images in batches of two points or more.

    Arguments:
        x_dim: D = C H W, the size of a data point.
        z_dim: d, the size of the noise z.
        image_shape: (C, H, W); by default one channel, as square as D allows (8 x 8 for D = 64).
        channels: the feature maps of each hidden layer, from the image up (the generator runs them in reverse:
            ``channels[-1]`` maps at the smallest side); one halving of the side per entry.

    References:
        Unsupervised Representation Learning with Deep Convolutional Generative Adversarial Networks (Radford, Metz
        and Chintala, 2016). https://arxiv.org/abs/1511.06434
    """

    def __init__(self, *, x_dim: int, z_dim: int = 16, image_shape: Sequence[int] | None = None,
                 channels: Sequence[int] = (32, 64)) -> None:
        super().__init__()
        x_dim, z_dim = check_positive_int(x_dim, "x_dim"), check_positive_int(z_dim, "z_dim")
        shape, channels = check_image(x_dim, image_shape, channels)
        self.x_dim, self.z_dim, self.image_shape = x_dim, z_dim, tuple(shape)
        self.net = DCGAN(z_dim, self.image_shape, channels)

    def model(self, x: Tensor) -> None:
        if math.prod(x.shape[1:]) != self.x_dim:
            raise ValueError(f"x: rows of shape {list(x.shape[1:])} do not hold x_dim = {self.x_dim} values "
                             f"(image_shape {self.image_shape})")
        with pyro.plate(DATA_PLATE, x.shape[0]):
            z = pyro.sample("z", dist.Normal(x.new_zeros(self.z_dim), x.new_ones(self.z_dim)).to_event(1))
            images = self.net(z)
            point = images.reshape(*images.shape[:-3], *x.shape[1:])  # the layout of x: rows or images
            pyro.sample("x", dist.Delta(point, event_dim=x.dim() - 1), obs=x)


class DCGAN(nn.Module):
    """The network of :class:`ConvGenerator`: z [..., d] to images [..., C, H, W] with values in (0, 1).

    Arguments:
        z_dim: d.
        image_shape: (C, H, W).
        channels: the hidden feature maps, one halving of the side each, from the image up: ``channels[-1]`` maps,
            projected from z, at the smallest side.
    """

    def __init__(self, z_dim: int, image_shape: tuple[int, int, int], channels: Sequence[int]) -> None:
        super().__init__()
        self.start, steps = upsampling(image_shape, channels, image_shape[0])
        self.project = nn.Linear(z_dim, math.prod(self.start), bias=False)
        layers: list[nn.Module] = [nn.BatchNorm2d(channels[-1]), nn.ReLU()]
        for i, (n_in, n_out, padding) in enumerate(steps):
            last = i == len(steps) - 1
            layers.append(nn.ConvTranspose2d(n_in, n_out, 3, stride=2, padding=1, output_padding=padding, bias=last))
            layers += [nn.Sigmoid()] if last else [nn.BatchNorm2d(n_out), nn.ReLU()]
        self.convolutions = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return upsampled(z, self.project, self.start, self.convolutions)
