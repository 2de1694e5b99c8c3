"""The Wasserstein-1 distance W1(p_data, p_theta) in its dual form, estimated by a critic held near 1-Lipschitz by a
gradient penalty (WGAN-GP: Gulrajani et al., 2017; Arjovsky, Chintala and Bottou, 2017)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ppgen.objective.adversary import Adversary, CriticLoss
from ppgen.program.inputs import Batch
from ppgen.program.structure import Structure
from ppgen.utils.checks import check_non_negative_float


@dataclass(frozen=True, kw_only=True)
class Wasserstein(Adversary):
    """WGAN-GP: by Kantorovich-Rubinstein duality,

        W1(p, q) = sup_{||D||_L <= 1} E_{x ~ p}[D(x)] - E_{x~ ~ q}[D(x~)],

    with p = p_data and q = p_theta. The critic D minimises

        E_q[D(x~)] - E_p[D(x)] + lambda E[(||grad_x D(x^)||_2 - 1)^2],  x^ = e x + (1 - e) x~,  e ~ U(0, 1),

    one e for each pair of a data point and a draw (the norm taken over all of a point's coordinates); the model
    minimises E_p[D(x)] - E_q[D(x~)]. The fit's history holds E_p[D(x)] - E_q[D(x~)] without the penalty, the critic's
    estimate of W1, per epoch.

    The two-sided penalty (Gulrajani et al.'s) has a trap in one dimension: there grad D is a number, which cannot
    turn from -1 to +1 without passing 0, where the penalty is lambda, so a critic that starts with the wrong slope
    stays there (its estimate negative, near -|E_p x - E_q x~|) and the model runs away from the data. With
    ``one_sided=True`` the penalty is lambda E[max(0, ||grad_x D(x^)||_2 - 1)^2] (Petzka, Fischer and Lukovnikov,
    2018), which holds the critic below 1-Lipschitz without pulling its slope towards 1; use it for data of one
    dimension.

    Arguments:
        gradient_penalty: lambda >= 0. With 0 nothing holds the critic to the Lipschitz constraint: give a critic
            that is 1-Lipschitz by construction (spectral normalisation, say), else its estimate grows without bound.
        one_sided: penalise only gradient norms above 1.
        critic: the critic, or ``None`` for the zoo's default (see :class:`~ppgen.objective.adversary.Adversary`).
        critic_steps: critic updates per model update: five by default, as Gulrajani et al.
        critic_lr: the critic's learning rate; ``None``: the fit's.

    Example:
        >>> fit = ppgen.fit(generator, x, inference=inference.Wasserstein(gradient_penalty=10.0))  # doctest: +SKIP

    References:
        Improved Training of Wasserstein GANs (Gulrajani, Ahmed, Arjovsky, Dumoulin and Courville, 2017).
        https://arxiv.org/abs/1704.00028
        Wasserstein Generative Adversarial Networks (Arjovsky, Chintala and Bottou, 2017).
        https://arxiv.org/abs/1701.07875
        On the Regularization of Wasserstein GANs (Petzka, Fischer and Lukovnikov, 2018).
        https://arxiv.org/abs/1709.08894
    """

    gradient_penalty: float = 10.0
    one_sided: bool = False
    critic_steps: int = 5

    @property
    def units(self) -> str:
        """The critic's estimate of W1, in the units of x (a distance between points)."""
        return "the critic's estimate of W1, in the units of x"

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "gradient_penalty", check_non_negative_float(self.gradient_penalty,
                                                                              "gradient_penalty"))
        if not isinstance(self.one_sided, bool):
            raise TypeError(f"one_sided must be True or False, got {type(self.one_sided).__name__}")

    def critic_loss(self, module: nn.Module, structure: Structure, batch: Batch) -> CriticLoss:
        x, fake = self.pair(module, structure, batch, grad=False)
        estimate = self.scores(x).mean() - self.scores(fake).mean()
        loss = -estimate
        if self.gradient_penalty:
            loss = loss + self.gradient_penalty * self.penalty(x, fake)
        return CriticLoss(loss, estimate.detach())

    def penalty(self, x: Tensor, fake: Tensor) -> Tensor:
        """E[(||grad D(x^)||_2 - 1)^2] (its positive part only where ``one_sided``) at the interpolates x^ of the rows
        of ``x`` and ``fake``, differentiable in the critic's parameters."""
        e = torch.rand((len(x),) + (1,) * (x.dim() - 1), dtype=x.dtype, device=x.device)
        mixed = (e * x + (1 - e) * fake).requires_grad_(True)
        (grad,) = torch.autograd.grad(self.scores(mixed).sum(), mixed, create_graph=True)
        gap = grad.reshape(len(x), -1).norm(dim=1) - 1
        return ((gap.clamp(min=0) if self.one_sided else gap) ** 2).mean()

    def loss(self, module: nn.Module, structure: Structure, batch: Batch) -> Tensor:
        x, fake = self.pair(module, structure, batch, grad=True)
        return self.scores(x).mean() - self.scores(fake).mean()
