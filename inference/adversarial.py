"""The f-GAN objective: a variational lower bound of an f-divergence D_f(p_data || p_theta), maximised by a critic
(Nowozin, Cseke and Tomioka, 2016), the original GAN's among them (Goodfellow et al., 2014)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from ppgen.objective.adversary import Adversary, CriticLoss
from ppgen.program.inputs import Batch
from ppgen.program.structure import Structure
from ppgen.utils.checks import check_choice

LOG2 = math.log(2.0)
Term = Callable[[Tensor], Tensor]

#: for each divergence, g_f(v) and f*(g_f(v)) as functions of the critic's raw score v (Nowozin et al., Table 2),
#: written so that neither overflows. "js" is the table's entry halved, so that its bound is JS itself, at most log 2.
DIVERGENCES: dict[str, tuple[Term, Term]] = {
    "kl": (lambda v: v, lambda v: (v - 1).exp()),
    "reverse_kl": (lambda v: -(-v).exp(), lambda v: v - 1),
    "pearson": (lambda v: v, lambda v: v * v / 4 + v),
    "hellinger": (lambda v: 1 - (-v).exp(), lambda v: v.exp() - 1),
    "js": (lambda v: (LOG2 - F.softplus(-v)) / 2, lambda v: (F.softplus(v) - LOG2) / 2),
    "gan": (lambda v: -F.softplus(-v), F.softplus),
}

#: the divergences whose model maximises E_q[g_f(V(x~))] unless told otherwise: the original GAN's log D and JS.
NONSATURATING = ("gan", "js")


@dataclass(frozen=True, kw_only=True)
class Adversarial(Adversary):
    """The f-GAN bound: for a convex f with f(1) = 0 and its conjugate f*,

        D_f(p || q) = E_q[f(p(x) / q(x))] >= B(V) = E_{x ~ p}[g_f(V(x))] - E_{x~ ~ q}[f*(g_f(V(x~)))],

    with p = p_data, q = p_theta, V the critic and g_f an output activation into the domain of f*. The bound is tight
    at T*(x) = g_f(V*(x)) = f'(p(x) / q(x)). The critic maximises B (minimises -B); the model minimises B, or with
    ``nonsaturating`` maximises E_q[g_f(V(x~))] instead: for "gan" the original GAN's -log D trick, log D = g_f(V)
    (Goodfellow et al., section 3), whose gradient does not vanish when the critic rejects the model's draws early in
    training; for any other f Nowozin et al.'s generalisation of it (section 3.2). It is the default for "gan" and
    "js" only: for the others, whose g_f is unbounded (v for "kl" and "pearson", -exp(-v) for "reverse_kl"), the
    model chasing large critic scores overshoots (or, for "reverse_kl", overflows), and minimising B fits better.
    The fit's history holds B, the critic's estimate of D_f, per epoch.

    | divergence | D_f(p or q) | g_f(v) | f*(t) |
    |---|---|---|---|
    | ``"kl"`` | KL(p or q) = E_p log p/q | v | exp(t - 1) |
    | ``"reverse_kl"`` | KL(q or p) | -exp(-v) | -1 - log(-t) |
    | ``"pearson"`` | chi^2 = E_q (p/q - 1)^2 | v | t^2 / 4 + t |
    | ``"hellinger"`` | H^2 = integral of (sqrt p - sqrt q)^2 (no factor 1/2) | 1 - exp(-v) | t / (1 - t) |
    | ``"js"`` | JS = (KL(p or m) + KL(q or m)) / 2, m = (p + q) / 2 | (log 2 - log(1 + e^-v)) / 2 | -log(2 - e^2t)/2 |
    | ``"gan"`` | 2 JS - log 4 | -log(1 + e^-v) | -log(1 - e^t) |

    ("p or q" stands for p || q; JS is at most log 2.)

    Arguments:
        divergence: one of the table's.
        nonsaturating: the model maximises E_q[g_f(V(x~))] rather than minimising B; ``None``: for "gan" and "js"
            only.
        critic: the critic, or ``None`` for the zoo's default (see :class:`~ppgen.objective.adversary.Adversary`).
        critic_steps: critic updates per model update: one by default, as Goodfellow et al. and Nowozin et al.
        critic_lr: the critic's learning rate; ``None``: the fit's.

    Example:
        >>> fit = ppgen.fit(generator, x, inference=inference.Adversarial(divergence="js"))  # doctest: +SKIP

    References:
        f-GAN: Training Generative Neural Samplers using Variational Divergence Minimization (Nowozin, Cseke and
        Tomioka, 2016). https://arxiv.org/abs/1606.00709
        Generative Adversarial Nets (Goodfellow et al., 2014). https://arxiv.org/abs/1406.2661
    """

    divergence: str = "js"
    nonsaturating: bool | None = None

    @property
    def units(self) -> str:
        """The critic's bound of the f-divergence: in nats for "kl", "reverse_kl", "js" and "gan"; a number without
        units for "pearson" (chi^2) and "hellinger"."""
        return "nats, the critic's bound of the divergence" if self.divergence in ("kl", "reverse_kl", "js", "gan") \
            else f"the critic's bound of the {self.divergence} divergence (no units)"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice(self.divergence, tuple(DIVERGENCES), "divergence")
        if self.nonsaturating is None:
            object.__setattr__(self, "nonsaturating", self.divergence in NONSATURATING)
        if not isinstance(self.nonsaturating, bool):
            raise TypeError(f"nonsaturating must be None, True or False, got {type(self.nonsaturating).__name__}")

    def bound(self, real: Tensor, fake: Tensor) -> Tensor:
        """B = mean g_f(V(x)) - mean f*(g_f(V(x~))) from the critic's scores of the data and of the draws."""
        activation, conjugate = DIVERGENCES[self.divergence]
        return activation(real).mean() - conjugate(fake).mean()

    def critic_loss(self, module: nn.Module, structure: Structure, batch: Batch) -> CriticLoss:
        x, fake = self.pair(module, structure, batch, grad=False)
        bound = self.bound(self.scores(x), self.scores(fake))
        return CriticLoss(-bound, bound.detach())

    def loss(self, module: nn.Module, structure: Structure, batch: Batch) -> Tensor:
        x, fake = self.pair(module, structure, batch, grad=True)
        if self.nonsaturating:
            return -DIVERGENCES[self.divergence][0](self.scores(fake)).mean()
        return self.bound(self.scores(x), self.scores(fake))
