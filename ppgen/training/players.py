"""Two-player training: a critic trained beside the model, for the objectives of
:class:`~ppgen.objective.adversary.Adversary` (``inference.Adversarial``, ``inference.Wasserstein``).

Each batch of the data order is one training step (``state.step`` counts batches, so epochs keep their meaning): one
update of the critic on that batch and fresh draws x~ ~ p_theta, then, at every ``critic_steps``-th step, one update
of the model on the same batch against the updated critic. The critic's update is judged by its own guard (its loss,
its gradient, and its estimate of d, which the history averages and the jump test watches), the model's by another
(its loss and gradient): a bad step raises :class:`~ppgen.training.guard.Diverged` with both players put back as they
were at their last good steps, or under ``on_nan="skip"`` is skipped and counted once: a bad critic update skips the
whole batch (the model's turn with it), a bad model update skips that update alone (the critic's, judged good, is
kept).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ppgen.objective.adversary import Adversary
from ppgen.program.inputs import Batch
from ppgen.run.distributed import SINGLE, Group
from ppgen.run.state import RunState
from ppgen.training.boundary import check_scalar_loss
from ppgen.training.guard import Guard, GuardPair
from ppgen.training.optimizers import optimizer_factory
from ppgen.training.step import Gradients


class Duel:
    """The second player of a fit: the objective's critic and its optimiser, and the two-player step on a batch.

    Arguments:
        objective: the two-player objective, holding its critic (see :func:`with_critic`).
        optimizer: the critic's optimiser.
    """

    def __init__(self, objective: Adversary, optimizer: torch.optim.Optimizer) -> None:
        self.objective, self.optimizer = objective, optimizer
        self.critic: nn.Module = objective.critic

    def guard(self, module: nn.Module, optimizer: torch.optim.Optimizer, state: RunState, on_nan: str,
              factor: float | None) -> GuardPair:
        """The guards of the critic and of ``module``, the model, with its ``optimizer``; the critic put in training
        mode."""
        self.critic.train()
        critic = Guard(self.critic, self.optimizer, state, on_nan, factor, what="its estimate of d",
                       label="the critic's update:")
        model = Guard(module, optimizer, state, on_nan, None, counts=False, what="its loss",
                      label="the model's update:")
        return GuardPair(critic, model)

    def step(self, gradients: Gradients, guard: GuardPair, batch: Batch, state: RunState, group: Group = SINGLE,
             rows: int | None = None) -> None:
        """One step on ``batch``: the critic's update, then the model's where the step is its turn; advances
        ``state``. (A two-player fit is not distributed: ``group`` is the single process.)"""
        rows = len(batch) if rows is None else rows
        state.step += 1
        state.position += 1
        self.optimizer.zero_grad(set_to_none=True)
        terms = self.objective.critic_loss(gradients.module, gradients.structure, batch)
        check_scalar_loss(terms.loss, self.objective, "critic_loss")
        terms.loss.backward()
        loss = terms.loss.item()
        why = None if math.isfinite(loss) else f"its loss is {loss}"
        skipped = state.skipped
        guard.critic.step(terms.estimate, rows, why)
        if state.skipped > skipped or state.step % self.objective.critic_steps:
            return
        guard.model.optimizer.zero_grad(set_to_none=True)
        guard.model.step(gradients(batch), rows)


def with_critic(objective: Any, point_shape: tuple[int, ...]) -> Any:
    """A two-player ``objective`` with a critic: its own, or where it has none the zoo's default for data points of
    ``point_shape`` (:func:`ppgen.training.registry.default_critic`), built now from torch's RNG; any other objective
    as it is."""
    if not isinstance(objective, Adversary) or objective.critic is not None:
        return objective
    from ppgen.training.registry import default_critic  # the registry joins the core to the zoo

    return dataclasses.replace(objective, critic=default_critic(tuple(point_shape)))


def check_critic(objective: Any, module: nn.Module, x: torch.Tensor) -> None:
    """A ``ValueError`` naming ``critic``, before any work, where a two-player ``objective``'s critic cannot play
    against ``module`` on data like ``x`` (its first batch): it shares parameters with the model (the model's optimiser
    would move them to lower the bound that the critic's raises), or it fails on ``x`` or does not give one score a
    row. The critic runs once on ``x`` in eval mode without gradient (a batch norm's statistics are left as they
    are), in its own dtype and on its own device, and is put back in its mode; nothing for any other objective."""
    if not isinstance(objective, Adversary):
        return
    critic = objective.critic
    model_params = {id(p) for p in module.parameters()}
    shared = sum(id(p) in model_params for p in critic.parameters())
    if shared:
        raise ValueError(f"critic: {shared} of its parameters are the model's too (the critic is a part of the "
                         f"model), so the model's optimiser would move them to lower the bound that the critic's "
                         f"raises: give a critic that is not a submodule of the model")
    first = next(critic.parameters())
    x = x.to(device=first.device, dtype=first.dtype if first.is_floating_point() else None)
    training = critic.training
    critic.eval()
    try:
        with torch.no_grad():
            objective.scores(x)
    except ValueError:
        raise
    except Exception as error:  # noqa: BLE001 - whatever the user's critic raises, it cannot score these points
        raise ValueError(f"critic: fails on a batch of x of shape {list(x.shape)} ({type(error).__name__}: {error}): "
                         f"give a critic of points of shape {list(x.shape[1:])}") from None
    finally:
        critic.train(training)


def critic_optimizer_factory(objective: Any, optim: Any, lr: float
                             ) -> Callable[[list[nn.Parameter]], torch.optim.Optimizer] | None:
    """What builds the critic's optimiser: the fit's ``optim`` at the objective's ``critic_lr`` (where it is ``None``,
    at the fit's ``lr``, or a ``pyro.optim`` optimiser's own); ``None`` for an objective without a critic."""
    if not isinstance(objective, Adversary):
        return None
    make = optimizer_factory(optim, lr)
    # critic_lr replaces the learning rate of every kind of optim, a pyro.optim optimiser's own "lr" included
    return make if objective.critic_lr is None else functools.partial(make, lr=objective.critic_lr)


def start_duel(objective: Any, make_optimizer: Callable[[list[nn.Parameter]], torch.optim.Optimizer] | None,
               device: torch.device, dtype: torch.dtype) -> Duel | None:
    """The :class:`Duel` of a two-player ``objective`` (``None`` for any other): its critic moved to ``device`` and
    ``dtype``, as the model is, and its optimiser built by ``make_optimizer``."""
    if make_optimizer is None:
        return None
    objective.critic.to(device=device, dtype=dtype)
    return Duel(objective, make_optimizer(list(objective.critic.parameters())))
