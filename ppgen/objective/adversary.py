"""The interface of a two-player objective: a distance d(p_data, p_theta) estimated by a critic, which ``ppgen.fit``
trains beside the model (Goodfellow et al., 2014; Nowozin, Cseke and Tomioka, 2016; Arjovsky, Chintala and Bottou,
2017).

The critic V: x -> R (an ``nn.Module`` taking a batch of x, [B, ...], to one score a row, [B]) gives a lower bound
of d whose supremum over critics is d itself. Each batch of the data order is one training step: one update of the
critic's parameters psi that minimises :meth:`Adversary.critic_loss` (it maximises the bound) on that batch and fresh
draws x~ ~ p_theta; after every ``critic_steps`` critic updates, one update of the model's parameters theta that
minimises :meth:`Adversary.loss` on the same batch (see :mod:`ppgen.training.players`).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, fields
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from ppgen.objective.base import Objective
from ppgen.objective.generated import check_no_guide, generated
from ppgen.program.inputs import Batch
from ppgen.program.structure import Structure
from ppgen.utils.checks import check_positive_float, check_positive_int


class CriticLoss(NamedTuple):
    """The critic's loss on a batch, to minimise over its parameters, and ``estimate``, the critic's estimate of d
    on that batch (detached): the bound it maximises, without any penalty. ``ppgen.fit``'s history holds the mean of
    ``estimate`` over each epoch's batches."""

    loss: Tensor
    estimate: Tensor


@dataclass(frozen=True, kw_only=True)
class Adversary(Objective):
    """A backend with a critic: an objective d(p_data, p_theta) = sup_V B(V, theta) that a critic V estimates.

    Arguments:
        critic: the critic, an ``nn.Module`` from x [B, ...] to scores [B] (or [B, 1]); ``None``: ``ppgen.fit``
            builds the zoo's default for the data's shape (``models.Critic`` for vectors, ``models.ConvCritic`` for
            images [C, H, W]). It is trained in place, and after the fit ``fit.inference.critic`` is the trained
            critic. A saved fit (``fit.save``, ``ppgen.load``) records the settings without it: the loaded fit's
            critic is ``None``, which no query needs. ``ppgen.fit`` refuses, before any work, a critic that is a part
            of the model (their parameters shared) or that does not give one score a row of the first batch.
        critic_steps: critic updates per update of the model.
        critic_lr: the learning rate of the critic's optimiser (the fit's ``optim``); ``None``: the fit's ``lr``.
    """

    likelihood_free = True  # a class attribute, not a field: it needs draws of x, never their density
    state_between_steps = "trains a critic beside the model"

    critic: nn.Module | None = None
    critic_steps: int = 1
    critic_lr: float | None = None

    def __post_init__(self) -> None:
        if self.critic is not None and not isinstance(self.critic, nn.Module):
            raise TypeError(f"critic must be None or a torch.nn.Module from x [B, ...] to scores [B], got "
                            f"{type(self.critic).__name__}")
        if self.critic is not None and next(self.critic.parameters(), None) is None:
            raise ValueError("critic: the module has no parameters to train")
        object.__setattr__(self, "critic_steps", check_positive_int(self.critic_steps, "critic_steps"))
        if self.critic_lr is not None:
            object.__setattr__(self, "critic_lr", check_positive_float(self.critic_lr, "critic_lr"))

    @abc.abstractmethod
    def critic_loss(self, module: nn.Module, structure: Structure, batch: Batch) -> CriticLoss:
        """The critic's loss on ``batch`` and fresh draws x~ ~ p_theta (detached from theta), minimised over the
        critic's parameters, with its estimate of d."""

    @abc.abstractmethod
    def loss(self, module: nn.Module, structure: Structure, batch: Batch) -> Tensor:
        """The model's loss on ``batch`` and fresh draws x~ ~ p_theta, differentiable in theta through them,
        minimised over the model's parameters with the critic held."""

    def check(self, structure: Structure) -> None:
        """A ``ValueError`` where the program has a guide (the critic would leave q(z|x) untrained), where the model's
        draws of x carry no gradient, where it takes the whole data set and
        observes x indexed (``obs=x[ind]``: it has no draw of a batch's points to give the critic, as ``fit.sample``
        has none), or where it takes inputs besides x (the critic sees x alone, so a conditional model would be
        fitted to the marginal of x only)."""
        name = type(self).__name__
        check_no_guide(f"{name}()", structure, "a likelihood-based backend such as inference.ELBO()")
        if structure.plan.whole_data and structure.data_site is None:
            plate = structure.plan.data_plate
            raise ValueError(
                f"{name}() compares the model's draws of a batch's points with them, but the model takes the whole "
                f"data set and observes x indexed in pyro.plate('{plate}', ...), so it has no x of one point to draw "
                f"(as fit.sample has none): write pyro.plate('{plate}', len(x)) with obs=x and pass batch_size= to "
                f"ppgen.fit instead")
        if structure.forward_unreparameterized:
            raise ValueError(
                f"{name}() differentiates through the model's draws of x, but site(s) "
                f"{', '.join(map(repr, structure.forward_unreparameterized))} have no reparameterised sampler (rsample): "
                f"fit a generator (x a Delta of a network's output) or a model with a reparameterised likelihood "
                f"(a Normal), or a likelihood-based backend such as inference.ELBO()")
        if structure.num_inputs > 1:
            # an implicit model has no density for a likelihood-based backend either: say so rather than send there
            way = ("this generator has no density either, so no backend fits it as it is: fit a generator of x alone, "
                   "or a conditional model with a density (a Normal likelihood) by inference.ELBO()"
                   if structure.implicit else "fit it by a likelihood-based backend such as inference.ELBO()")
            raise ValueError(f"{name}()'s critic sees x alone, but the model takes {structure.num_inputs} inputs "
                             f"(x and its conditions): {way}")

    @property
    def config(self) -> dict[str, Any]:
        """The keyword arguments that rebuild this objective, the critic left out (plain values only)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "critic"}

    def scores(self, x: Tensor) -> Tensor:
        """V(x), one score a row: Tensor[B].

        Raises:
            ValueError: there is no critic yet (``ppgen.fit`` builds it), or it does not give one score a row.
        """
        if self.critic is None:
            raise ValueError(f"{type(self).__name__}(critic=None) has no critic: ppgen.fit builds one, or pass "
                             f"critic=")
        v = self.critic(x)
        if not isinstance(v, Tensor) or v.shape not in ((len(x),), (len(x), 1)):
            shape = list(v.shape) if isinstance(v, Tensor) else type(v).__name__
            raise ValueError(f"critic: must give one score a row of x, Tensor[{len(x)}] or [{len(x)}, 1], got {shape}")
        return v.reshape(len(x))

    @staticmethod
    def pair(module: nn.Module, structure: Structure, batch: Batch, *, grad: bool) -> tuple[Tensor, Tensor]:
        """The batch's x and as many draws x~ ~ p_theta (given its other inputs), the draws differentiable in theta
        only where ``grad``."""
        x = batch.args[structure.observed_input or 0]
        with torch.set_grad_enabled(grad):
            fake = generated(module, structure, batch)
        return x, fake
