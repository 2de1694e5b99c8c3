"""The training loop: mini-batch steps over the epochs, judged by the divergence guard, checkpointed between steps;
one player (the model's step, :mod:`~ppgen.training.step`) or two (a critic's and the model's,
:mod:`~ppgen.training.players`)."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable

import pyro
import torch
from torch import nn
from tqdm.auto import tqdm

from ppgen.program.inputs import Batch
from ppgen.run.distributed import SINGLE, Group
from ppgen.run.signals import Interrupted, StopSignals
from ppgen.run.state import RunState
from ppgen.training.callbacks import Callbacks
from ppgen.training.guard import BadStep, Diverged, Guard, GuardPair, guard_for, message, site_terms
from ppgen.training.players import Duel
from ppgen.training.step import Gradients
from ppgen.training.streaming import Stream, epoch_batches, epoch_order


def train(gradients: Gradients, optimizer: torch.optim.Optimizer, data: Batch | Stream, epochs: int, batch_size: int,
          generator: torch.Generator | None, progress: bool | None, *, state: RunState | None = None,
          save: Callable[[RunState], str] | None = None, every: int | None = None, on_nan: str = "raise",
          factor: float | None = None, group: Group = SINGLE, duel: Duel | None = None,
          callbacks: Callbacks | None = None) -> RunState:
    """Run mini-batch gradient steps until ``epochs`` passes are done, from ``state`` (a fresh run by default).

    Arguments:
        gradients: the step: the loss of a batch and its gradient, of the program being fitted.
        optimizer: the model's optimiser.
        save: writes a checkpoint of the state; called every ``every`` steps (by default at each epoch's end),
            at the end, and when SIGINT or SIGTERM arrives, after which :class:`Interrupted` is raised.
        on_nan, factor: see :func:`fit`.
        group: the processes of a distributed fit: each steps on its shard of every batch.
        duel: the critic of a two-player objective, whose step (:meth:`Duel.step`) each batch takes in place of the
            model's alone; ``None`` for one player.
        callbacks: called at each epoch's end, after its loss joins the history and before its checkpoint; the
            loop stops after an epoch where one asks to (``state.stopped``).

    Returns:
        The final state: ``history`` holds the mean loss of each epoch (with a critic, its mean estimate of d).

    Raises:
        Diverged: a step's loss or gradient is not finite or its loss jumped (see :mod:`ppgen.training.guard`).
        Interrupted: SIGINT or SIGTERM arrived; the state after the step is saved.
    """
    state = state if state is not None else RunState()
    module = gradients.module
    guard = (guard_for(module, optimizer, state, on_nan, factor, distributed=group.active) if duel is None
             else duel.guard(module, optimizer, state, on_nan, factor))
    if duel is None:  # the update in a single process's compiled steps, applied by the host's guard
        guard.update = gradients.updating(optimizer if type(guard) is Guard and not group.active else None)
    take = step if duel is None else duel.step
    # as a DataLoader's drop_last: a program that takes batches of one size only takes no smaller last batch
    drop_last = gradients.structure.own_batch_size is not None
    per_epoch = math.ceil(data.size / batch_size) if data.size is not None else None
    if drop_last:
        per_epoch = data.size // batch_size
    every = every if every is not None else per_epoch  # None: a stream of unknown length, saved at each epoch's end
    show = sys.stderr.isatty() if progress is None else progress
    bar = tqdm(total=epochs, initial=state.epoch, desc=f"fit {type(gradients.inference).__name__}", unit="epoch",
               disable=not show)
    module.train()
    batch = None
    # The data were checked against the likelihood's support and the program traced with validation on;
    # checking every distribution's arguments again on every step is work done once already.
    with pyro.validation_enabled(False), StopSignals() as stop, group.reducing(guard.params, stop) as group:
        try:
            while state.epoch < epochs and state.stopped is None:
                if state.order is None:
                    state.order = epoch_order(data, generator, batch_size)
                for rows, batch in epoch_batches(data, state.order, batch_size, state.position, group.shard,
                                                 drop_last):
                    take(gradients, guard, batch, state, group=group, rows=rows)
                    if save is not None and every is not None and state.step % every == 0:
                        guard.flush()
                        save(state)
                    received = group.stop_signal(stop.received)
                    if received:
                        guard.flush()
                        raise interrupted(state, received, save)
                guard.flush()
                finish_epoch(state, module, guard)
                if callbacks is not None:
                    callbacks.after_epoch(state, epochs)
                if save is not None and every is None:
                    save(state)
                bar.update(1)
                bar.set_postfix(loss=f"{state.history[-1]:.3f}")
        except BadStep as bad:
            # the bad step's batch: the last one, or (read back later by a DeviceGuard) found again in the order of
            # data in memory; a stream is not read again for a diagnostic
            if bad.step != state.step:
                batch = None if isinstance(data, Stream) else next(iter(epoch_batches(
                    data, state.order, batch_size, bad.position, group.shard, drop_last)))[1]
            # a program's per-site terms tell where a likelihood diverged; a two-player run's model has none to show
            raise diverged(module, guard, batch if duel is None else None, bad.why, state, bad.step, bad.loss) \
                from None
    bar.close()
    if save is not None:
        save(state)
    module.eval()
    return state


def step(gradients: Gradients, guard: Guard, batch: Batch, state: RunState, group: Group = SINGLE,
         rows: int | None = None) -> None:
    """One gradient step on ``batch``, judged by the divergence guard, which updates the parameters or not;
    advances ``state``.

    In a distributed fit ``batch`` is this rank's shard of a global batch of ``rows`` points: the gradients and
    the loss are reduced to the global batch's before the guard's verdict, which is then the same on every rank.
    """
    rows = len(batch) if rows is None else rows
    state.step += 1
    state.position += 1
    if guard.update is None:  # a step that may compute the update leaves no .grad, or replaces it whole
        guard.optimizer.zero_grad(set_to_none=True)
    why = loss = None
    group.expect_gradients(len(batch) / rows)  # reduced in buckets as backward makes them
    try:
        if len(batch):  # a rank's shard of a last batch smaller than the world is empty
            loss = gradients(batch)  # the backend's loss (detached), its gradient in each parameter's .grad
    except torch.linalg.LinAlgError as error:  # a Cholesky factor of parameters that ran off
        loss, why = torch.tensor(math.nan), f"a matrix factorisation failed ({error})"
    guard.step(group.reduce_gradients(loss, len(batch) / rows, guard.params), rows, why)


def finish_epoch(state: RunState, module: nn.Module, guard: Guard | GuardPair) -> None:
    """Close the epoch (``state`` made current by the guard): its mean loss goes to the history; parameters the
    last update made non-finite stop it."""
    finite = torch.stack([torch.isfinite(p).all() for p in guard.params]).all() if guard.params else True
    if state.epoch_rows == 0 or not bool(finite):
        why = "every batch was skipped" if state.epoch_rows == 0 else "a parameter became non-finite in the last update"
        raise diverged(module, guard, None, why, state, state.step, math.nan)
    state.history.append(state.epoch_loss / state.epoch_rows)
    state.epoch += 1
    state.position, state.order, state.epoch_loss, state.epoch_rows = 0, None, 0.0, 0
    guard.next_epoch()


def diverged(module: nn.Module, guard: Guard | GuardPair, batch: Batch | None, why: str, state: RunState, step: int,
             loss: float) -> Diverged:
    """The :class:`Diverged` error of a bad ``step`` (its ``loss``), after putting back the last good parameters
    (eval mode); its per-site terms are those of the parameters that diverged, in eval mode."""
    guard.at_bad_step()
    module.eval()
    terms = site_terms(module, batch.args) if batch is not None else {}
    guard.restore()
    epoch = state.epoch + 1
    who = "the model and the critic hold" if isinstance(guard, GuardPair) else "the model holds"
    text = message(why, step, epoch, terms, f"{who} the parameters of the last good step, in eval mode, and this "
                   f"error the history so far")
    return Diverged(text, step=step, epoch=epoch, loss=loss, history=list(state.history), terms=terms)


def interrupted(state: RunState, signal_name: str, save: Callable[[RunState], str] | None) -> Interrupted:
    """The :class:`Interrupted` error after a signal, with the checkpoint written where there is a run folder."""
    where = save(state) if save is not None else None
    how = (f"the run is saved in {where}: continue it with resume=True" if where is not None
           else "nothing was saved (no run folder: pass out= to make the run resumable)")
    return Interrupted(f"{signal_name} at step {state.step} (epoch {state.epoch + 1}): {how}", step=state.step,
                       signal_name=signal_name, checkpoint=where)
