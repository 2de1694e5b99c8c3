"""The divergence guard: a step whose loss or gradient is not finite, or whose loss jumps far above its running
median, stops training there, with the model as it was at the last good step and the history kept."""

from __future__ import annotations

import math
import statistics
from typing import Any

import pyro.poutine as poutine
import torch
from torch import Tensor, nn

from ppgen.checks import check_positive_float

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
        loss: the step's loss (NaN, infinite, or the jump).
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


def verdict(loss: float, grad_norm: float, recent: list[float], factor: float | None) -> str | None:
    """Why a step is bad, or ``None`` when it is good.

    A loss L is a jump when L - m > (factor - 1) * max(|m|, 1) for the median m of the ``recent`` losses (losses
    in nats may be negative, hence the scale max(|m|, 1)); the test waits for :data:`WARMUP` losses.
    """
    if not math.isfinite(loss):
        return f"the loss is {loss}"
    if not math.isfinite(grad_norm):
        return f"the gradient norm is {grad_norm}"
    if factor is not None and len(recent) >= WARMUP:
        median = statistics.median(recent)
        if loss - median > (factor - 1) * max(abs(median), 1.0):
            return f"the loss jumped to {loss:.4g} from a running median of {median:.4g} (divergence_factor={factor:g})"
    return None


def gradient_norm(params: list[Tensor]) -> Tensor:
    """The 2-norm of every gradient together, as one tensor (non-finite when any entry is)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.nn.utils.get_total_norm(grads)


def site_terms(module: nn.Module, batch: Any) -> dict[str, float]:
    """log q of each guide site and log p of each model site on ``batch``, summed: where a divergence shows.

    Best effort: a program that fails here gives no terms (the divergence message says so).
    """
    args = batch if isinstance(batch, tuple) else (batch,)
    try:
        with torch.no_grad(), poutine.block():
            guide = poutine.trace(module.guide).get_trace(*args) if callable(getattr(module, "guide", None)) else None
            model = poutine.trace(poutine.replay(module.model, trace=guide) if guide else module.model).get_trace(*args)
    except Exception:  # noqa: BLE001 - a diagnostic: a program that diverged may well fail to run
        return {}
    terms = {}
    for prefix, trace in (("log q", guide), ("log p", model)):
        for site in trace.nodes.values() if trace is not None else []:
            if site["type"] == "sample" and not site["name"].startswith("_"):
                try:
                    terms[f"{prefix}({site['name']})"] = float(site["fn"].log_prob(site["value"]).sum())
                except Exception:  # noqa: BLE001 - e.g. a plate's subsample site
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
