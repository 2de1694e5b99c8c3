"""The semi-supervised VAE (M2): y ~ Cat(pi), z ~ N(0, I), x ~ p(x | y, z); y observed where known, else summed out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import torch
from torch import Tensor, nn
from torch.nn.functional import one_hot, softplus

from ppgen.models.layers import check_widths, mlp
from ppgen.models.likelihoods import build_likelihood
from ppgen.program.protocol import DATA_PLATE, Model
from ppgen.utils.checks import check_positive_int


class SSVAE(Model):
    """The M2 model of Kingma et al. (2014), a VAE whose data are partly labelled, called as ``model(x, y)``.

    The story: a point's class is drawn, y ~ Cat(pi); its style independently, z ~ N(0, I); the decoder draws
    the point from both, x ~ p(x | y, z). The labels y are integers 0..C-1, with ``-1`` (:attr:`UNLABELLED`)
    where the class is unknown: inside the program that label becomes a mask, and y is observed where it is
    known (the site ``"y_observed"``) and summed out exactly where it is not (the site ``"y"``, marked
    ``infer={"enumerate": "parallel"}``), so an unlabelled point's bound holds
    log p(x, z) = log sum_y pi_y p(x | y, z) + log N(z; 0, I). The guide draws only the style,
    z ~ q(z | x, y), its encoder fed the one-hot label where it is known and zeros where it is not.

    Classification is by the model's own posterior over y: ``fit.encode(x, SSVAE.unlabelled(len(x)), site="y")``
    returns p(y | x) = E_q(z|x)[p(y | x, z)], Tensor[N, C], with p(y | x, z) proportional to pi_y p(x | y, z)
    computed exactly by the sum over y (ask with every label unknown: where a label is given, x does not depend
    on the site ``"y"``, whose posterior there is the prior pi). Unlike Kingma's M2 there is no separate
    classifier q(y|x) and so no extra classification loss (M2's alpha term): every parameter is learnt by the
    bound on log p(x, y) (labelled points) and on log p(x) (unlabelled ones), and with few labels the style z
    may carry much of the class, so that p(y|x) classifies poorly (``docs/benchmarks.md`` measures it).
    ``fit.sample(n, y)`` draws x ~ p(x | y) for known labels, and x ~ p(x) where ``y`` is ``-1`` (the class
    then drawn from pi).

    Arguments:
        x_dim: D, the size of a data point.
        n_classes: C, the number of classes.
        z_dim: the size of the style code z.
        hidden: widths of the hidden layers of the encoder (the decoder mirrors them).
        likelihood: p(x | y, z), one of :data:`ppgen.models.likelihoods.LIKELIHOODS`.
        scale: the fixed standard deviation of a Gaussian likelihood; ``None`` learns one per dimension.

    Example:
        >>> fit = ppgen.fit(models.SSVAE(x_dim=64), (x, y_with_minus_ones), epochs=50)  # doctest: +SKIP
        >>> fit.encode(x_test, SSVAE.unlabelled(len(x_test)), site="y").argmax(-1)  # doctest: +SKIP

    References:
        Semi-Supervised Learning with Deep Generative Models (Kingma, Rezende, Mohamed and Welling, 2014).
        https://arxiv.org/abs/1406.5298
    """

    UNLABELLED: ClassVar[int] = -1
    """The label of a point whose class is unknown (any negative label is read the same way)."""

    def __init__(self, *, x_dim: int, n_classes: int = 10, z_dim: int = 8, hidden: Sequence[int] = (400,),
                 likelihood: str = "bernoulli", scale: float | None = None) -> None:
        super().__init__()
        x_dim, z_dim = check_positive_int(x_dim, "x_dim"), check_positive_int(z_dim, "z_dim")
        n_classes = check_positive_int(n_classes, "n_classes")
        hidden = check_widths(hidden, "hidden")
        self.x_dim, self.n_classes, self.z_dim, self.likelihood = x_dim, n_classes, z_dim, likelihood
        self.observation_model = build_likelihood(likelihood, x_dim, scale)
        self.encoder = mlp((x_dim + n_classes, *hidden, 2 * z_dim))
        self.decoder = mlp((z_dim + n_classes, *hidden[::-1], self.observation_model.params_per_dim * x_dim))
        self.logits = nn.Parameter(torch.zeros(n_classes))

    @staticmethod
    def unlabelled(n: int) -> Tensor:
        """``n`` labels that all say "unknown", LongTensor[n] of :attr:`UNLABELLED`: the ``y`` of a query about
        p(y|x) or of draws x ~ p(x)."""
        return torch.full((check_positive_int(n, "n"),), SSVAE.UNLABELLED, dtype=torch.long)

    def labels(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """The known labels (0 where unknown) and the mask of the points whose label is known.

        Raises:
            ValueError: y is not one integer label per point, or holds a label of C or more.
        """
        if y.dim() != 1 or y.is_floating_point() or y.dtype == torch.bool:
            raise ValueError(f"y must hold one integer label per point (0..{self.n_classes - 1}, or "
                             f"{self.UNLABELLED} where unknown), got dtype {y.dtype} and shape {list(y.shape)}")
        if y.numel() and int(y.max()) >= self.n_classes:
            raise ValueError(f"y must hold labels 0..{self.n_classes - 1} (n_classes={self.n_classes}) or "
                             f"{self.UNLABELLED} where unknown, got {int(y.max())}")
        known = y >= 0
        return y.clamp(min=0).long(), known

    def observation(self, y: Tensor, z: Tensor) -> dist.Distribution:
        """p(x | y, z) for the labels y (integers) and codes z, broadcast against each other."""
        code = one_hot(y, self.n_classes).to(z.dtype)
        shape = torch.broadcast_shapes(code.shape[:-1], z.shape[:-1])
        out = self.decoder(torch.cat([z.expand(*shape, -1), code.expand(*shape, -1)], -1))
        return self.observation_model(out, (self.x_dim,))

    def model(self, x: Tensor, y: Tensor) -> None:
        label, known = self.labels(y)
        with pyro.plate(DATA_PLATE, x.shape[0]):
            z = pyro.sample("z", dist.Normal(x.new_zeros(self.z_dim), x.new_ones(self.z_dim)).to_event(1))
            with poutine.mask(mask=~known):  # summed out where unknown; its prior sums to one where known
                guess = pyro.sample("y", dist.Categorical(logits=self.logits), infer={"enumerate": "parallel"})
            with poutine.mask(mask=known):
                pyro.sample("y_observed", dist.Categorical(logits=self.logits), obs=label)
            pyro.sample("x", self.observation(torch.where(known, label, guess), z), obs=x)

    def guide(self, x: Tensor, y: Tensor) -> None:
        label, known = self.labels(y)
        code = one_hot(label, self.n_classes).to(x.dtype) * known.unsqueeze(-1).to(x.dtype)
        loc, scale = self.encoder(torch.cat([x, code], -1)).chunk(2, dim=-1)
        with pyro.plate(DATA_PLATE, x.shape[0]):
            pyro.sample("z", dist.Normal(loc, softplus(scale) + 1e-4).to_event(1))
