"""Energy-based models: p_theta(x) = exp(-E_theta(x)) / Z_theta, E a neural network, Z never computed.

Both observe x through :class:`~ppgen.program.unnormalized.Unnormalized` and are fitted by objectives that need no
log Z: ``inference.ScoreMatching`` (the default) and ``inference.NCE``. Their activations are smooth (SiLU by
default): score matching differentiates the score -grad_x E(x) once more, in x (sliced score matching's v^T grad_x s v)
and in theta, and Langevin dynamics follows the score; with ReLU the energy is piecewise linear in x, its Hessian zero
almost everywhere, so sliced score matching would see no curvature at all.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence

import pyro
import torch
from torch import Tensor, nn

from ppgen.models.layers import ACTIVATIONS, ConvEncoder, check_image, check_widths, mlp
from ppgen.program.protocol import DATA_PLATE, Model
from ppgen.program.unnormalized import Unnormalized
from ppgen.utils.checks import check_choice, check_positive_int


class _Energy(Model, abc.ABC):
    """The program both energies share: x observed through exp(-E(x)) in the data plate, with a learnt log Z."""

    def _setup(self, noise_conditional: bool, activation: str) -> None:
        if not isinstance(noise_conditional, bool):
            raise TypeError(f"noise_conditional must be True or False, got {noise_conditional!r}")
        check_choice(activation, tuple(ACTIVATIONS), "activation")
        self.noise_conditional = noise_conditional
        #: c, the estimate of log Z that inference.NCE learns (other backends leave it where it starts, at 0).
        self.log_normalizer = nn.Parameter(torch.zeros(()))

    @abc.abstractmethod
    def energy(self, x: Tensor, sigma: Tensor | None = None) -> Tensor:
        """E_theta(x), or E_theta(x, sigma) at noise level sigma (Tensor[N]) for a noise-conditional energy; Tensor[N]
        for x of Tensor[N, *x_shape]."""

    def _log_density(self, x: Tensor, sigma: Tensor | None = None) -> Tensor:
        return -self.energy(x, sigma)

    def model(self, x: Tensor) -> None:
        with pyro.plate(DATA_PLATE, x.shape[0]):
            density = Unnormalized(self._log_density, event_shape=x.shape[1:], log_normalizer=self.log_normalizer,
                                   noise_conditional=self.noise_conditional)
            pyro.sample("x", density, obs=x)


class EnergyModel(_Energy):
    """An energy-based model of vectors x in R^D, E_theta(x) a multilayer perceptron with one output.

    With ``noise_conditional=True`` the network also reads the noise level sigma, E_theta(x, sigma) (a noise-conditional
    score network, Song and Ermon, 2019): ``inference.ScoreMatching(noise=(sigma_1, ..., sigma_L))`` fits the density
    of the data perturbed by N(0, sigma^2 I) at each level, and sigma = 0 is the data's own density, which
    ``log_prob`` and the samplers' last step evaluate. A plain energy is used at every level alike.

    Arguments:
        x_dim: D, the size of a data point.
        hidden: the widths of the hidden layers.
        activation: one of :data:`ppgen.models.layers.ACTIVATIONS`; a smooth one (``"silu"``, ``"softplus"``) for
            score matching, whose loss differentiates the energy twice in x.
        noise_conditional: whether the energy reads the noise level sigma as a further input.

    References:
        A Tutorial on Energy-Based Learning (LeCun, Chopra, Hadsell, Ranzato and Huang, 2006).
        Generative Modeling by Estimating Gradients of the Data Distribution (Song and Ermon, 2019).
        https://arxiv.org/abs/1907.05600
    """

    def __init__(self, *, x_dim: int, hidden: Sequence[int] = (128, 128), activation: str = "silu",
                 noise_conditional: bool = False) -> None:
        super().__init__()
        self.x_dim = check_positive_int(x_dim, "x_dim")
        hidden = check_widths(hidden, "hidden")
        self._setup(noise_conditional, activation)
        self.net = mlp((self.x_dim + noise_conditional, *hidden, 1), activation)

    def energy(self, x: Tensor, sigma: Tensor | None = None) -> Tensor:
        if x.shape[-1] != self.x_dim:
            raise ValueError(f"x must have x_dim = {self.x_dim} values per row, got shape {list(x.shape)}")
        if self.noise_conditional:
            sigma = x.new_zeros(x.shape[:-1]) if sigma is None else sigma.expand(x.shape[:-1])
            x = torch.cat([x, sigma.unsqueeze(-1)], -1)
        return self.net(x).squeeze(-1)


class ConvEnergy(_Energy):
    """An energy-based model of images [C, H, W]: stride-2 convolutions, a dense layer, one output E_theta(x).

    Data come as rows of D = C H W values or as images [N, C, H, W], as :class:`~ppgen.models.ConvVAE` takes them.
    ``noise_conditional``: the dense head also reads the noise level sigma (see :class:`EnergyModel`).

    Arguments:
        x_dim: D = C H W, the size of a data point.
        image_shape: (C, H, W); by default one channel, as square as D allows (8 x 8 for D = 64).
        channels: the output channels of the stride-2 convolutions.
        dense: the width of the dense layer after the convolutions.
        activation: one of :data:`ppgen.models.layers.ACTIVATIONS`, smooth for score matching.
        noise_conditional: whether the energy reads the noise level sigma as a further input.

    References:
        Implicit Generation and Modeling with Energy-Based Models (Du and Mordatch, 2019).
        https://arxiv.org/abs/1903.08689
    """

    def __init__(self, *, x_dim: int, image_shape: Sequence[int] | None = None, channels: Sequence[int] = (32, 64),
                 dense: int = 128, activation: str = "silu", noise_conditional: bool = False) -> None:
        super().__init__()
        self.x_dim = check_positive_int(x_dim, "x_dim")
        dense = check_positive_int(dense, "dense")
        shape, channels = check_image(x_dim, image_shape, channels)
        self._setup(noise_conditional, activation)
        self.image_shape = tuple(shape)
        self.features = ConvEncoder(self.image_shape, channels, dense, dense, activation)
        self.activation = ACTIVATIONS[activation]()
        self.out = nn.Linear(dense + noise_conditional, 1)

    def energy(self, x: Tensor, sigma: Tensor | None = None) -> Tensor:
        batch = x.shape[:-3] if x.shape[-3:] == self.image_shape else x.shape[:-1]
        if math.prod(x.shape[len(batch):]) != self.x_dim:
            raise ValueError(f"x: rows of shape {list(x.shape[len(batch):])} do not hold x_dim = {self.x_dim} values "
                             f"(image_shape {self.image_shape})")
        h = self.activation(self.features(x.reshape(*batch, *self.image_shape)))
        if self.noise_conditional:
            sigma = x.new_zeros(batch) if sigma is None else sigma.expand(batch)
            h = torch.cat([h, sigma.unsqueeze(-1)], -1)
        return self.out(h).squeeze(-1)
