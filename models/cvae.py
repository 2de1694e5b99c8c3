"""The conditional VAE: z ~ N(0, I), x ~ p(x | c, z) given a condition c, q(z | x, c) an MLP encoder."""

from __future__ import annotations

from collections.abc import Sequence

import pyro
import pyro.distributions as dist
import torch
from torch import Tensor
from torch.nn.functional import one_hot, softplus

from ppgen.models.layers import check_widths, mlp
from ppgen.models.likelihoods import build_likelihood
from ppgen.program.protocol import DATA_PLATE, Model
from ppgen.utils.checks import check_positive_int


class CVAE(Model):
    """A VAE of x given a condition c, called as ``model(x, c)``: p(x | c) = integral of p(x | c, z) N(z; 0, I) dz.

    The story: the condition c is given (a class, an attribute vector); a code is drawn, z ~ N(0, I); the
    decoder draws the point from both, x ~ p(x | c, z). The guide is q(z | x, c). The condition is either
    real-valued, Tensor[N, c_dim] (a one-hot class is the special case), or integer class labels
    LongTensor[N] in 0..c_dim-1, turned into one-hot vectors inside the program. ``fit.sample(n, c)`` draws
    x ~ p(x | c) for each of the n rows of c; ``fit.log_prob(x, c)`` estimates log p(x | c).

    Arguments:
        x_dim: D, the size of a data point.
        c_dim: the size of the condition (the number of classes, for labels).
        z_dim: the size of the code z.
        hidden: widths of the hidden layers of the encoder (the decoder mirrors them).
        likelihood: p(x | c, z), one of :data:`ppgen.models.likelihoods.LIKELIHOODS`.
        scale: the fixed standard deviation of a Gaussian likelihood; ``None`` learns one per dimension.

    Example:
        >>> fit = ppgen.fit(models.CVAE(x_dim=64, c_dim=10), (x, labels), epochs=50)  # doctest: +SKIP
        >>> fit.sample(10, torch.arange(10))  # one draw of each class  # doctest: +SKIP

    References:
        Learning Structured Output Representation using Deep Conditional Generative Models (Sohn, Lee and Yan,
        2015). https://papers.nips.cc/paper/5775-learning-structured-output-representation-using-deep-conditional-generative-models
    """

    def __init__(self, *, x_dim: int, c_dim: int = 10, z_dim: int = 8, hidden: Sequence[int] = (400,),
                 likelihood: str = "bernoulli", scale: float | None = None) -> None:
        super().__init__()
        x_dim, z_dim = check_positive_int(x_dim, "x_dim"), check_positive_int(z_dim, "z_dim")
        c_dim = check_positive_int(c_dim, "c_dim")
        hidden = check_widths(hidden, "hidden")
        self.x_dim, self.c_dim, self.z_dim, self.likelihood = x_dim, c_dim, z_dim, likelihood
        self.observation_model = build_likelihood(likelihood, x_dim, scale)
        self.encoder = mlp((x_dim + c_dim, *hidden, 2 * z_dim))
        self.decoder = mlp((z_dim + c_dim, *hidden[::-1], self.observation_model.params_per_dim * x_dim))

    def condition(self, c: Tensor, like: Tensor) -> Tensor:
        """The condition as Tensor[N, c_dim] in the dtype of ``like``: one-hot for integer labels.

        Raises:
            ValueError: c is neither labels 0..c_dim-1 nor rows of c_dim numbers.
        """
        if not c.is_floating_point():
            if c.dim() != 1 or c.dtype == torch.bool or (c.numel() and not 0 <= int(c.min()) <= int(c.max())
                                                         < self.c_dim):
                raise ValueError(f"c as labels must be LongTensor[N] with values 0..{self.c_dim - 1}, got dtype "
                                 f"{c.dtype} and shape {list(c.shape)}")
            return one_hot(c.long(), self.c_dim).to(like.dtype)
        if c.dim() != 2 or c.shape[1] != self.c_dim:
            raise ValueError(f"c must be Tensor[N, {self.c_dim}] (c_dim={self.c_dim}), got shape {list(c.shape)}")
        return c.to(like.dtype)

    def observation(self, c: Tensor, z: Tensor) -> dist.Distribution:
        """p(x | c, z) for conditions c [N, c_dim] and codes z [..., N, z_dim]."""
        out = self.decoder(torch.cat([z, c.expand(*z.shape[:-1], -1)], -1))
        return self.observation_model(out, (self.x_dim,))

    def model(self, x: Tensor, c: Tensor) -> None:
        c = self.condition(c, x)
        with pyro.plate(DATA_PLATE, x.shape[0]):
            z = pyro.sample("z", dist.Normal(x.new_zeros(self.z_dim), x.new_ones(self.z_dim)).to_event(1))
            pyro.sample("x", self.observation(c, z), obs=x)

    def guide(self, x: Tensor, c: Tensor) -> None:
        loc, scale = self.encoder(torch.cat([x, self.condition(c, x)], -1)).chunk(2, dim=-1)
        with pyro.plate(DATA_PLATE, x.shape[0]):
            pyro.sample("z", dist.Normal(loc, softplus(scale) + 1e-4).to_event(1))
