"""Critics for the two-player objectives (``inference.Adversarial``, ``inference.Wasserstein``): networks from a batch
of x to one real score a point. They are not Pyro programs: ``ppgen.fit`` trains them beside the model."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from ppgen.models.layers import check_image, check_widths
from ppgen.utils.checks import check_positive_int

#: the slope of the LeakyReLU of both critics for negative inputs, as in Radford et al. (2016).
SLOPE = 0.2


class Critic(nn.Module):
    """A multilayer perceptron critic V: R^D -> R, with LeakyReLU activations and no normalisation across the batch
    (the gradient penalty of ``inference.Wasserstein`` is per point, which a batch norm would couple).

    Arguments:
        x_dim: D, the size of a data point; a point of any shape [..] of D values is read flattened.
        hidden: the widths of the hidden layers.

    Example:
        >>> Critic(x_dim=2)(torch.randn(5, 2)).shape
        torch.Size([5])
    """

    def __init__(self, *, x_dim: int, hidden: Sequence[int] = (128, 128)) -> None:
        super().__init__()
        self.x_dim = check_positive_int(x_dim, "x_dim")
        widths = (self.x_dim, *check_widths(hidden, "hidden"))
        layers: list[nn.Module] = []
        for n_in, n_out in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(n_in, n_out), nn.LeakyReLU(SLOPE)]
        self.net = nn.Sequential(*layers, nn.Linear(widths[-1], 1))

    def forward(self, x: Tensor) -> Tensor:
        """V(x): Tensor[B] for x of B points."""
        return self.net(x.reshape(len(x), self.x_dim)).reshape(len(x))


class ConvCritic(nn.Module):
    """A DCGAN discriminator as a critic, V: images (C, H, W) -> R: convolutions of kernel 4, stride 2 and padding 1,
    each halving the height and width, with LeakyReLU activations and no batch norm (see :class:`Critic`), then a
    linear layer to the score.

    Arguments:
        x_dim: D = C H W; data come as rows of D values or as images [B, C, H, W].
        image_shape: (C, H, W); by default one channel, as square as D allows (8 x 8 for D = 64).
        channels: the output channels of each convolution.

    Example:
        >>> ConvCritic(x_dim=784)(torch.rand(5, 1, 28, 28)).shape
        torch.Size([5])

    References:
        Unsupervised Representation Learning with Deep Convolutional Generative Adversarial Networks (Radford, Metz
        and Chintala, 2016). https://arxiv.org/abs/1511.06434
    """

    def __init__(self, *, x_dim: int, image_shape: Sequence[int] | None = None,
                 channels: Sequence[int] = (64, 128)) -> None:
        super().__init__()
        x_dim = check_positive_int(x_dim, "x_dim")
        shape, channels = check_image(x_dim, image_shape, channels)
        self.image_shape = tuple(shape)
        c, h, w = self.image_shape
        layers: list[nn.Module] = []
        for n_in, n_out in zip((c, *channels[:-1]), channels):
            layers += [nn.Conv2d(n_in, n_out, 4, stride=2, padding=1), nn.LeakyReLU(SLOPE)]
            h, w = (h - 2) // 2 + 1, (w - 2) // 2 + 1
        if h < 1 or w < 1:
            raise ValueError(f"channels: {len(channels)} halvings leave nothing of a {self.image_shape[1]} x "
                             f"{self.image_shape[2]} image: name fewer convolutions")
        self.net = nn.Sequential(*layers, nn.Flatten(), nn.Linear(channels[-1] * h * w, 1))

    def forward(self, x: Tensor) -> Tensor:
        """V(x): Tensor[B] for B images (or rows of C H W values)."""
        return self.net(x.reshape(len(x), *self.image_shape)).reshape(len(x))
