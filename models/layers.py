"""Building blocks that several families of the zoo share: multilayer perceptrons and convolutional stacks."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

from ppgen.utils.checks import check_positive_int

#: the activations by name; SiLU and Softplus are smooth, so that a network's second derivatives in its input exist
#: (score matching differentiates an energy's gradient in x).
ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "silu": nn.SiLU, "softplus": nn.Softplus}


def mlp(sizes: Sequence[int], activation: str = "relu") -> nn.Sequential:
    """A multilayer perceptron with ``activation`` between the linear layers of the given widths.

    Arguments:
        sizes: the widths, input first and output last.
        activation: one of :data:`ACTIVATIONS`.

    Returns:
        ``nn.Sequential`` of ``Linear`` layers, with no activation after the last.
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        if i:
            layers.append(ACTIVATIONS[activation]())
        layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers)


def check_widths(widths: Sequence[int], name: str) -> tuple[int, ...]:
    """``widths`` as a tuple of positive ints, or a ``TypeError``/``ValueError`` naming ``name``."""
    if isinstance(widths, (str, bytes)) or not isinstance(widths, Sequence):
        raise TypeError(f"{name} must be a sequence of layer widths such as (400,), got {type(widths).__name__}")
    return tuple(check_positive_int(width, f"{name}[{i}]") for i, width in enumerate(widths))


def square_shape(x_dim: int) -> tuple[int, int, int]:
    """(1, H, W) with H W = D and H the largest divisor of D not above sqrt(D): a square where D is one."""
    height = max(h for h in range(1, math.isqrt(x_dim) + 1) if x_dim % h == 0)
    return 1, height, x_dim // height


def check_image(x_dim: int, image_shape: Sequence[int] | None, channels: Sequence[int]
                ) -> tuple[tuple[int, int, int], tuple[int, ...]]:
    """The (C, H, W) of a convolutional network's images of D = ``x_dim`` values (``image_shape``, by default one
    channel as square as D allows) and its ``channels``, at least one; a ``TypeError``/``ValueError`` naming the
    argument otherwise."""
    channels = check_widths(channels, "channels")
    if not channels:
        raise ValueError("channels must name at least one convolution, got ()")
    shape = square_shape(x_dim) if image_shape is None else check_widths(image_shape, "image_shape")
    if len(shape) != 3 or math.prod(shape) != x_dim:
        raise ValueError(f"image_shape must be (C, H, W) with C H W = x_dim ({x_dim}), got {tuple(shape)}")
    return tuple(shape), channels  # type: ignore[return-value]


def halved(size: int, times: int) -> int:
    """The size of a side after ``times`` convolutions of kernel 3, stride 2 and padding 1: ceil(size / 2) each."""
    for _ in range(times):
        size = (size - 1) // 2 + 1
    return size


def upsampling(image_shape: tuple[int, int, int], channels: Sequence[int], out_channels: int
               ) -> tuple[tuple[int, int, int], list[tuple[int, int, tuple[int, int]]]]:
    """The transposed convolutions (kernel 3, stride 2, padding 1) that mirror ``len(channels)`` halvings of images
    (C, H, W): from ``channels[-1]`` feature maps at the smallest side, through ``channels`` in reverse, up to
    ``out_channels`` maps of side (H, W).

    Returns:
        The shape (channels[-1], h, w) of the feature maps they start from, and per layer, first to last, (channels
        in, channels out, output padding): the output padding, 0 or 1 per side, restores the rounding of a halving.
    """
    _, h, w = image_shape
    depth = len(channels)
    sides = [(halved(h, i), halved(w, i)) for i in range(depth + 1)]  # sides[i]: after i halvings
    steps = []
    for i, (n_in, n_out) in enumerate(zip(channels[::-1], (*channels[-2::-1], out_channels))):
        (h_in, w_in), (h_out, w_out) = sides[depth - i], sides[depth - i - 1]
        steps.append((n_in, n_out, (h_out - 2 * h_in + 1, w_out - 2 * w_in + 1)))
    return (channels[-1], *sides[depth]), steps


def upsampled(z: Tensor, head: nn.Module, start: tuple[int, int, int], convolutions: nn.Module) -> Tensor:
    """``convolutions`` applied to ``head(z)`` seen as feature maps of shape ``start``, for z [..., d] with any batch
    dimensions: images [..., C, H, W]."""
    batch = z.shape[:-1]
    images = convolutions(head(z.reshape(-1, z.shape[-1])).reshape(-1, *start))
    return images.reshape(*batch, *images.shape[1:])


class ConvEncoder(nn.Module):
    """Images [..., C, H, W] to a vector [..., out]: stride-2 convolutions (kernel 3, padding 1), ReLU, then an MLP.

    Arguments:
        image_shape: (C, H, W).
        channels: the output channels of each convolution; each halves the height and width (rounding up).
        hidden: the width of the hidden layer between the last convolution and the output.
        out: the size of the output vector.
        activation: the activation after each layer but the last, one of :data:`ACTIVATIONS`.
    """

    def __init__(self, image_shape: tuple[int, int, int], channels: Sequence[int], hidden: int, out: int,
                 activation: str = "relu") -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        act = ACTIVATIONS[activation]
        c, h, w = image_shape
        layers: list[nn.Module] = []
        for n_in, n_out in zip((c, *channels[:-1]), channels):
            layers += [nn.Conv2d(n_in, n_out, 3, stride=2, padding=1), act()]
        self.image_shape = tuple(image_shape)
        self.convolutions = nn.Sequential(*layers, nn.Flatten())
        flat = channels[-1] * halved(h, len(channels)) * halved(w, len(channels))
        self.head = nn.Sequential(nn.Linear(flat, hidden), act(), nn.Linear(hidden, out))

    def forward(self, x: Tensor) -> Tensor:
        batch = x.shape[:-3]
        features = self.convolutions(x.reshape(-1, *self.image_shape))
        return self.head(features).reshape(*batch, -1)


class ConvDecoder(nn.Module):
    """A vector [..., z] to images [..., out_channels, H, W]: the mirror of :class:`ConvEncoder`, with transposed
    convolutions whose output padding restores each side to its exact size.

    Arguments:
        z_dim: the size of the input vector.
        image_shape: (C, H, W) of the images the matching encoder reads.
        channels: the encoder's channels (the decoder runs them in reverse).
        hidden: the width of the hidden layer after the input.
        out_channels: channels of the output: C times the likelihood's parameters per pixel.
    """

    def __init__(self, z_dim: int, image_shape: tuple[int, int, int], channels: Sequence[int], hidden: int,
                 out_channels: int) -> None:
        super().__init__()
        self.start, steps = upsampling(image_shape, channels, out_channels)
        self.head = nn.Sequential(nn.Linear(z_dim, hidden), nn.ReLU(), nn.Linear(hidden, math.prod(self.start)),
                                  nn.ReLU())
        layers: list[nn.Module] = []
        for i, (n_in, n_out, padding) in enumerate(steps):
            if i:
                layers.append(nn.ReLU())
            layers.append(nn.ConvTranspose2d(n_in, n_out, 3, stride=2, padding=1, output_padding=padding))
        self.convolutions = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return upsampled(z, self.head, self.start, self.convolutions)
