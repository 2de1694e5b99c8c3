"""The divergence guard: a step whose loss or gradient is not finite, or whose loss jumps far above its running
median, stops training there, with the model as it was at the last good step and the history kept.

Two guards give the same verdicts: :class:`Guard` judges each step on the host, :class:`DeviceGuard` on the device
the step ran on, read back once an epoch (on CUDA, where a read-back makes the host wait for the GPU); :func:`guard_for`
picks one for a run."""

from __future__ import annotations

import math
import statistics
from typing import Any

import pyro.poutine as poutine
import torch
from pyro.poutine.util import site_is_subsample
from torch import Tensor, nn

from ppgen.training.update import AdamUpdate
from ppgen.utils.checks import check_positive_float

#: how many of the last step losses the running median is taken over.
WINDOW = 50
#: steps before the jump test starts: a median of fewer losses says little.
WARMUP = 10
ON_NAN = ("raise", "skip")


class Diverged(FloatingPointError):
    """Training diverged at a step; the model holds the parameters of the last good step, in eval mode.

    Attributes:
        step: the step (counted from 1) at which the guard stopped training.
        epoch: the epoch of that step (counted from 1).
        loss: the step's loss (NaN where it is not a number, or where the epoch's end, not a step, stopped it).
        history: the mean training loss of each epoch finished before it.
        terms: the log-density of each site of the program on the bad batch, where they could be computed.
    """

    def __init__(self, message: str, *, step: int, epoch: int, loss: float, history: list[float],
                 terms: dict[str, float]) -> None:
        super().__init__(message)
        self.step = step
        self.epoch = epoch
        self.loss = loss
        self.history = history
        self.terms = terms


def check_on_nan(value: Any) -> str:
    """``value`` if it is one of ``"raise"``, ``"skip"``; a ``TypeError``/``ValueError`` naming ``on_nan``."""
    if not isinstance(value, str):
        raise TypeError(f"on_nan must be 'raise' or 'skip', got {type(value).__name__}")
    if value not in ON_NAN:
        raise ValueError(f"on_nan must be 'raise' or 'skip', got {value!r}")
    return value


def check_factor(value: Any) -> float | None:
    """``divergence_factor``: ``None`` (no jump test) or a number > 1."""
    if value is None:
        return None
    value = check_positive_float(value, "divergence_factor")
    if value <= 1:
        raise ValueError(f"divergence_factor must be > 1 (how many times its running median a loss may reach), "
                         f"got {value!r}")
    return value


def running_median(recent: list[float]) -> float | None:
    """The median of the ``recent`` step losses, or ``None`` before :data:`WARMUP` of them: the jump test's m."""
    return statistics.median(recent) if len(recent) >= WARMUP else None


def verdict(loss: float, grad_norm: float, median: float | None, factor: float | None,
            what: str = "the loss") -> str | None:
    """Why a step is bad, or ``None`` when it is good; ``what`` names the loss in the reason.

    A loss L is a jump when L - m > (factor - 1) * max(|m|, 1) for the running median m of the last step losses
    (losses in nats may be negative, hence the scale max(|m|, 1)); ``median`` is ``None`` while the test waits.
    """
    if not math.isfinite(loss):
        return f"{what} is {loss}"
    if not math.isfinite(grad_norm):
        return f"the gradient norm is {grad_norm}"
    if factor is not None and median is not None and loss - median > (factor - 1) * max(abs(median), 1.0):
        return f"{what} jumped to {loss:.4g} from a running median of {median:.4g} (divergence_factor={factor:g})"
    return None


def gradient_norm(grads: list[Tensor | None]) -> Tensor:
    """The 2-norm of every gradient together (``None``: none), as one tensor (non-finite when any entry is)."""
    grads = [g for g in grads if g is not None]
    if not grads:
        return torch.zeros(())
    return torch.nn.utils.get_total_norm(grads)


def site_terms(module: nn.Module, batch: Any) -> dict[str, float]:
    """log q of each guide site and log p of each model site on ``batch``, summed: where a divergence shows.

    The draws come from a fixed seed, not the run's RNG, so that the terms do not depend on how many steps ran
    after the bad one (see :class:`DeviceGuard`); the RNGs are put back after. Best effort: a program that fails
    here gives no terms (the divergence message says so).
    """
    args = batch if isinstance(batch, tuple) else (batch,)
    devices = [arg.device for arg in args if isinstance(arg, Tensor) and arg.device.type == "cuda"][:1]
    try:
        with torch.no_grad(), poutine.block(), torch.random.fork_rng(devices=devices):
            for generator in [torch.default_generator, *(torch.cuda.default_generators[d.index] for d in devices)]:
                generator.manual_seed(0)
            guide = poutine.trace(module.guide).get_trace(*args) if callable(getattr(module, "guide", None)) else None
            model = poutine.trace(poutine.replay(module.model, trace=guide) if guide else module.model).get_trace(*args)
    except Exception:  # noqa: BLE001 - a diagnostic: a program that diverged may well fail to run
        return {}
    terms = {}
    with torch.no_grad():  # the traces' distributions hold the parameters: no graph for a diagnostic's log-densities
        for prefix, trace in (("log q", guide), ("log p", model)):
            for site in trace.nodes.values() if trace is not None else []:
                if site["type"] == "sample" and not site["name"].startswith("_") and not site_is_subsample(site):
                    try:
                        terms[f"{prefix}({site['name']})"] = float(site["fn"].log_prob(site["value"]).sum())
                    except Exception:  # noqa: BLE001 - a diagnostic: a term that cannot be computed is left out
                        continue
    return terms


def message(reason: str, step: int, epoch: int, terms: dict[str, float], restored: str) -> str:
    """The error message of a divergence: the step, the per-site terms, the likely causes, what was restored."""
    bad = {name: value for name, value in terms.items() if not math.isfinite(value)}
    shown = bad or terms
    where = ("; per site: " + ", ".join(f"{k} = {v:.4g}" for k, v in shown.items())) if shown else ""
    return (f"training diverged at step {step} (epoch {epoch}): {reason}{where}. Likely causes: a learning rate "
            f"too high for this model (lower lr), data on a scale the likelihood cannot fit (standardise it), a "
            f"scale or variance parameter reaching 0, or a float16-like precision; {restored}. Pass "
            f"on_nan='skip' to skip such batches instead.")


class BadStep(Exception):
    """A step the guard stopped training at: ``why``, its number ``step`` (from 1), ``position``, the index of its
    batch in the epoch's order of batches (from 0), and its ``loss``."""

    def __init__(self, why: str, step: int, position: int, loss: float) -> None:
        super().__init__(why)
        self.why, self.step, self.position, self.loss = why, step, position, loss


#: the devices on which :class:`DeviceGuard` judges the steps: there reading a step's loss back makes the host wait
#: for the step to finish, so that it cannot queue the next one meanwhile.
DEFERRED_DEVICES = ("cuda",)


class Guard:
    """The divergence guard over a run's steps, judging each step on the host: the loss and the gradient norm are
    read back after every step (on CPU, where they already are, this costs nothing).

    A good step updates the parameters and is counted in the epoch's loss; a bad one is skipped
    (``on_nan="skip"``) or raises :class:`BadStep`, after which :meth:`restore` puts back the parameters of the
    last good step, those at which its loss was computed. Each step says which update it takes: where it left one
    pending in :attr:`update` (set by the training loop, :meth:`~ppgen.training.step.Gradients.updating`: a step
    made compiled computes it), its new tensors swapped in, the ones they replace becoming ``good``: nothing is
    copied, and a bad step's update is dropped whole; where it left its gradient in ``.grad``, ``optimizer.step()``,
    after a copy of every parameter into ``good``.

    Arguments:
        module: the model, whose parameters' ``.grad`` holds the step's gradient when :meth:`step` is called.
        optimizer: its optimiser.
        state: the run's state, which :meth:`flush` makes current (its loss sums, skipped count, recent losses).
        on_nan: ``"raise"`` or ``"skip"``, see :func:`ppgen.fit`.
        factor: ``divergence_factor`` of :func:`ppgen.fit`: how many times its running median (in scale) a loss
            may reach; ``None``, no jump test.
        counts: whether a good step's loss enters the epoch's sums and the running median's window; the model's
            guard of a two-player run leaves them to the critic's (see :class:`GuardPair`).
        what: what the loss judged is called in the reason of a bad step.
        label: said before that reason (``"the critic's update:"``); none by default.
    """

    def __init__(self, module: nn.Module, optimizer: torch.optim.Optimizer, state: Any, on_nan: str,
                 factor: float | None, *, counts: bool = True, what: str = "the loss", label: str = "") -> None:
        self.optimizer, self.state, self.on_nan, self.factor = optimizer, state, on_nan, factor
        self.counts, self.what, self.label = counts, what, label
        self.params = list(module.parameters())
        self.update: AdamUpdate | None = None  # the update a compiled step computes, applied here
        with torch.no_grad():
            self.good = [p.detach().clone() for p in self.params]  # the parameters of the last step the guard passed

    def step(self, loss: Tensor, rows: int, why: str | None = None) -> None:
        """Judge the step just differentiated (``state.step`` and ``state.position`` count it already), whose
        ``loss`` is the mean over ``rows`` data points; ``why``: a failure the host saw, which makes it bad."""
        state = self.state
        pending = self.update.take() if self.update is not None else None
        if pending is not None:
            judged = pending[0]
        else:
            norm = gradient_norm([p.grad for p in self.params])
            judged = torch.stack([loss.double(), norm.double().to(loss.device)])
        value, norm = judged.tolist()
        why = why or verdict(value, norm, running_median(state.recent), self.factor, self.what)
        if why is None:
            if pending is not None:
                self.update.apply(pending[1:], self.good)
            else:
                with torch.no_grad():
                    torch._foreach_copy_(self.good, [p.detach() for p in self.params])
                self.optimizer.step()
            if self.counts:
                state.epoch_loss += value * rows
                state.epoch_rows += rows
                state.recent = (state.recent + [value])[-WINDOW:]
        elif self.on_nan == "skip":
            self.optimizer.zero_grad(set_to_none=True)
            state.skipped += 1
        else:
            raise BadStep(f"{self.label} {why}" if self.label else why, state.step, state.position - 1, value)

    def flush(self) -> None:
        """Make ``state`` current, or raise :class:`BadStep` for a bad step not yet reported; here a no-op, as
        :meth:`step` keeps the state current and reports a bad step at once."""

    def next_epoch(self) -> None:
        """Start the next epoch's loss sums (``state``'s are reset by the caller)."""

    def at_bad_step(self) -> None:
        """Put the module's buffers back as the bad step left them; here a no-op, as no step ran after it."""

    def restore(self) -> None:
        """Put back the parameters of the last step the guard passed."""
        with torch.no_grad():
            torch._foreach_copy_(self.params, self.good)


class GuardPair:
    """The guards of a two-player run's critic and model, which the training loop sees as one guard: each player's
    update is judged by its own :class:`Guard` (on the host), and a bad one puts back the parameters of both
    players' last good steps.

    Arguments:
        critic: the critic's guard: its loss and gradient judged, its estimate of d counted in the epoch's sums and
            put to the jump test.
        model: the model's guard, which counts nothing (``counts=False``) and makes no jump test.
    """

    def __init__(self, critic: Guard, model: Guard) -> None:
        self.critic, self.model = critic, model
        self.params = critic.params + model.params

    def flush(self) -> None:
        """Nothing to read back: both guards judge on the host."""

    def next_epoch(self) -> None:
        """Nothing to reset: the state holds the epoch's sums."""

    def at_bad_step(self) -> None:
        """Nothing ran after the bad step."""

    def restore(self) -> None:
        """Put back both players' parameters of their last good steps."""
        self.critic.restore()
        self.model.restore()


class DeviceGuard(Guard):
    """The same guard, judging each step where it ran: nothing is read back until :meth:`flush` (at the epoch's
    end, at a checkpoint, on a signal), so on a GPU the host never waits for a step.

    Each step's verdict is :func:`verdict`'s, computed in float64 on the device, as are the epoch's loss sums and
    the window of recent losses. A bad step's update is skipped on the device, through the fused Adam's
    ``found_inf`` (as ``torch.amp.GradScaler`` skips one); under ``on_nan="raise"`` so is every step after it, so
    that :meth:`flush` reports it with the parameters and Adam moments :class:`Guard` would have left. The steps
    between the bad one and the flush still run forward and backward, and their updates are thrown away; the
    buffers their forward passes update in place (a BatchNorm's running statistics) are kept as the bad step left
    them (:meth:`at_bad_step`). They draw from the RNG, and an error of the program in one of them is raised as
    it is.
    """

    def __init__(self, module: nn.Module, optimizer: torch.optim.Optimizer, state: Any, on_nan: str,
                 factor: float | None) -> None:
        super().__init__(module, optimizer, state, on_nan, factor)
        self.buffers = list(module.buffers())
        with torch.no_grad():
            self.bad_step_buffers = [b.clone() for b in self.buffers]  # as the last step up to the bad one left them
        device = self.params[0].device
        f64 = dict(dtype=torch.float64, device=device)
        self.window = torch.full((WINDOW,), math.nan, **f64)  # the recent losses, oldest first, NaN where none
        if state.recent:
            self.window[-len(state.recent):] = torch.tensor(state.recent, **f64)
        self.epoch_loss = torch.full((), state.epoch_loss, **f64)
        self.epoch_rows = torch.full((), state.epoch_rows, dtype=torch.int64, device=device)
        self.skipped = torch.full((), state.skipped, dtype=torch.int64, device=device)
        self.stopped = torch.zeros((), dtype=torch.bool, device=device)
        self.first_bad = torch.full((5,), math.nan, **f64)  # step, position, loss, gradient norm, median
        self.reasons: dict[int, str] = {}  # failures the host saw, by step, under on_nan="raise"

    def step(self, loss: Tensor, rows: int, why: str | None = None) -> None:
        state = self.state
        loss = loss.detach().double().to(self.window.device)
        if why is not None:
            if self.on_nan == "raise":
                self.reasons[state.step] = why
            loss = torch.full_like(loss, math.nan)
        norm = gradient_norm([p.grad for p in self.params]).double().to(loss.device)
        bad = ~torch.isfinite(torch.stack([loss, norm])).all()
        # full_like fills on the device: a tensor made from a number would be copied there, and the copy waits
        median = torch.full_like(loss, math.nan)  # NaN while the jump test waits, or without one
        if self.factor is not None:
            median = self._median()
            bad = bad | (loss - median > (self.factor - 1) * median.abs().clamp(min=1.0))  # False where m is NaN
        if self.on_nan == "raise":
            record = torch.stack([torch.full_like(loss, state.step), torch.full_like(loss, state.position - 1), loss,
                                  norm, median])
            self.first_bad = torch.where(bad & ~self.stopped, record, self.first_bad)
            with torch.no_grad():
                for kept, buffer in zip(self.bad_step_buffers, self.buffers):
                    torch.where(self.stopped, kept, buffer, out=kept)
            self.stopped = skip = self.stopped | bad
        else:
            skip = bad
            self.skipped += bad
        ok = ~skip
        with torch.no_grad():
            for good, p in zip(self.good, self.params):
                torch.where(ok, p, good, out=good)  # one kernel a parameter; exact, where p or good is not finite
        self.optimizer.found_inf = skip.float()
        try:
            self.optimizer.step()  # skipped on the device where found_inf is 1
        finally:
            del self.optimizer.found_inf
        self.epoch_loss += torch.where(ok, loss * rows, 0.0)
        self.epoch_rows += ok * rows
        self.window = torch.where(ok, torch.cat([self.window[1:], loss.view(1)]), self.window)

    def next_epoch(self) -> None:
        self.epoch_loss.zero_()
        self.epoch_rows.zero_()

    def at_bad_step(self) -> None:
        with torch.no_grad():
            for buffer, kept in zip(self.buffers, self.bad_step_buffers):
                buffer.copy_(kept)

    def _median(self) -> Tensor:
        """:func:`running_median` of the window, on the device: NaN before :data:`WARMUP` losses."""
        count = (~self.window.isnan()).sum()
        ranked = self.window.sort().values  # NaN last
        middle = ranked.gather(0, torch.stack([(count - 1).clamp(min=0) // 2, count // 2]))
        median = torch.where(count % 2 == 1, middle[1], (middle[0] + middle[1]) / 2)  # as statistics.median
        return torch.where(count >= WARMUP, median, math.nan)

    def flush(self) -> None:
        """Read the device's record back, once: ``state`` is made current, and a bad step raises :class:`BadStep`."""
        totals = torch.stack([self.epoch_loss, self.epoch_rows.double(), self.skipped.double(), self.stopped.double()])
        values = torch.cat([self.first_bad, totals, self.window]).tolist()
        record, totals, window = values[:5], values[5:9], values[9:]
        state = self.state
        state.epoch_loss, state.epoch_rows, state.skipped = totals[0], int(totals[1]), int(totals[2])
        state.recent = [value for value in window if not math.isnan(value)]
        if totals[3]:
            step, position, loss, norm, median = record
            why = self.reasons.get(int(step)) or verdict(loss, norm, None if math.isnan(median) else median,
                                                         self.factor)
            raise BadStep(why, int(step), int(position), loss)


def guard_for(module: nn.Module, optimizer: torch.optim.Optimizer, state: Any, on_nan: str, factor: float | None,
              distributed: bool = False) -> Guard:
    """The guard of a run: a :class:`DeviceGuard` where it saves the host a wait and leaves the model as
    :class:`Guard` would, a :class:`Guard` otherwise; their verdicts are the same.

    That is where every parameter is on one of :data:`DEFERRED_DEVICES`; the optimiser is a fused Adam or AdamW,
    whose ``found_inf`` skips an update whole (the fused SGD's would leave a momentum buffer it creates unset); and
    the fit is not distributed, where the all-reduce of each step reads back already.
    """
    params = list(module.parameters())
    deferred = (bool(params) and all(p.device.type in DEFERRED_DEVICES for p in params)
                and isinstance(optimizer, torch.optim.Adam) and bool(optimizer.defaults.get("fused"))
                and not distributed)
    return (DeviceGuard if deferred else Guard)(module, optimizer, state, on_nan, factor)
