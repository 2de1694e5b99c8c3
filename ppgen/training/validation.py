"""Validation while training: the objective's loss on held-out rows at each epoch's end, the best parameters kept, and
early stopping; a :class:`~ppgen.training.callbacks.Callback` like any other.

The validation loss is the training loss's own estimator (the backend's ``loss``: -ELBO, -IWAE_K, -log p(x) for maximum
likelihood, ... in nats per data point) on the held-out rows x_val, in batches of the training's ``batch_size``, without
gradient and with the model in eval mode, its mean over the rows. Its draws (z ~ q(z|x) for a bound) come from an RNG
seeded with the fit's seed at every epoch, the same draws each time, so that two epochs differ by their parameters alone
and a resumed run repeats them; the training's own RNGs are put back after it (:func:`~ppgen.training.callbacks.aside`).
A term shared among the N training points (a global latent's KL) keeps its training share of 1/N per point, so that the
validation and the training losses are the same quantity on other rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from ppgen.objective.adversary import Adversary
from ppgen.objective.base import Objective
from ppgen.objective.sampler import Sampler
from ppgen.program.inputs import Batch
from ppgen.program.structure import Structure
from ppgen.queries.query_inputs import query_batch
from ppgen.training.callbacks import Callback, EpochEnd, aside
from ppgen.utils.checks import check_choice, check_not_a_list_of_arrays, check_positive_int

KEEP = ("last", "best")


def check_validation_options(validation: Any, patience: Any, keep: Any) -> tuple[int | None, str]:
    """``patience`` and ``keep`` checked against each other and ``validation``: a ``TypeError`` or ``ValueError`` naming
    the argument, before any work."""
    keep = check_choice(keep, KEEP, "keep")
    patience = None if patience is None else check_positive_int(patience, "patience")
    if validation is None and patience is not None:
        raise ValueError(f"patience={patience} stops the fit after {patience} epochs without a better validation loss, "
                         f"which needs validation data: pass validation=x_val (held-out rows), or leave patience out")
    if validation is None and keep == "best":
        raise ValueError("keep='best' keeps the parameters of the epoch with the best validation loss, which needs "
                         "validation data: pass validation=x_val (held-out rows), or keep='last'")
    if validation is not None:
        check_not_a_list_of_arrays(validation, "validation")
    return patience, keep


def refusal(inference: Any, structure: Structure) -> str | None:
    """Why validation does not apply to this fit, or ``None`` where it does: a sampler (it takes no epochs), a
    two-player objective (whose loss is a critic's, trained on the training rows), or a program that takes its batches
    itself (its data plate subsamples the N points it declares, or it takes the whole data set)."""
    if isinstance(inference, Sampler):
        return f"{inference!r} draws from the posterior once, without epochs to validate"
    if isinstance(inference, Adversary):
        return (f"{inference!r} trains a critic on the training rows, whose estimate of d on held-out rows ppgen does "
                f"not compute yet; judge its samples after the fit by fit.evaluate(x_val)")
    if structure.own_batch_size is not None:
        return (f"the program's data plate pyro.plate('{structure.plan.data_plate}', ...) takes its own batches of the "
                f"training rows, so that it cannot be run on other rows")
    return None


def validation_batch(validation: Any, structure: Structure, example: Batch, inference: Any, device: torch.device
                     ) -> Batch:
    """The held-out rows as a batch on ``device``, checked against the training data: as many inputs, each of the same
    shape per point and dtype as the fit takes, x in the likelihood's support, at least the points the objective needs
    (``min_points``); a ``TypeError``/``ValueError`` naming ``validation`` otherwise, or where validation does not
    apply (:func:`refusal`)."""
    why = refusal(inference, structure)
    if why is not None:
        raise ValueError(f"validation: {why}")
    inputs = validation if isinstance(validation, tuple) else (validation,)
    if isinstance(validation, torch.utils.data.TensorDataset):
        inputs = tuple(validation.tensors)
    if len(inputs) != structure.num_inputs:
        raise TypeError(f"validation: the model takes {structure.num_inputs} input(s), as the training data give them, "
                        f"got {len(inputs)}: pass the held-out rows as the data were passed")
    batch = query_batch(structure, example, device, inputs, "validation")
    need = inference.min_points if isinstance(inference, Objective) else 1
    if len(batch) < need:
        raise ValueError(f"validation: {inference!r} compares pairs of points, and needs {need} or more held-out rows, "
                         f"got {len(batch)}")
    return batch


def validation_loss(module: nn.Module, structure: Structure, inference: Objective, batch: Batch, batch_size: int,
                    seed: int | None) -> float:
    """The mean over the held-out rows of the objective's per-point loss, in batches of ``batch_size`` (a last batch
    smaller than the objective's ``min_points`` joins the one before), without gradient, the model in eval mode,
    the draws from an RNG seeded with ``seed``; the objective's tensors carried between steps (persistent chains) are
    put back as they were."""
    carried = {name: tensor.clone() for name, tensor in inference.persistent_state().items()}
    chunks = list(torch.arange(len(batch), device=batch.rows.device).split(batch_size))
    if len(chunks) > 1 and len(chunks[-1]) < inference.min_points:
        chunks[-2:] = [torch.cat(chunks[-2:])]
    total = 0.0
    try:
        with aside(module, seed):
            for rows in chunks:
                total += float(inference.loss(module, structure, batch.take(rows))) * len(rows)
    finally:
        with torch.no_grad():
            for name, tensor in inference.persistent_state().items():
                tensor.copy_(carried[name])
    return total / len(batch)


class Validation(Callback):
    """The validation loss at each epoch's end (see the module's docs), the best epoch and, where ``keep="best"``, its
    parameters, and early stopping after ``patience`` epochs without a lower validation loss.

    Arguments:
        batch: the held-out rows (:func:`validation_batch`).
        loss: the validation loss of the model as it stands (:func:`validation_loss` with the rest bound).
        patience: epochs without improvement before the fit stops; ``None``: never.
        keep: ``"best"`` keeps a copy of the parameters of the best epoch so far; ``"last"`` does not.
        dtype: the floating-point dtype of the fit (the data's), which the kept parameters have.

    Attributes:
        history: the validation loss of each epoch.
        best_epoch: the epoch (from 1) of the lowest validation loss so far; ``None`` before the first.
        waited: the epochs since then.
        best: the parameters of ``best_epoch`` (the model's ``state_dict``), where ``keep="best"``.
    """

    name = "validation"

    def __init__(self, module: nn.Module, loss: Callable[[], float], patience: int | None, keep: str,
                 dtype: torch.dtype) -> None:
        self.module, self.loss, self.patience, self.keep, self.dtype = module, loss, patience, keep, dtype
        self.history: list[float] = []
        self.best_epoch: int | None = None
        self.waited = 0
        self.best: dict[str, Tensor] | None = None

    def __call__(self, end: EpochEnd) -> None:
        value = self.loss()
        self.history.append(value)
        end.metrics["validation"] = value
        best = math.nan if self.best_epoch is None else self.history[self.best_epoch - 1]
        if self.best_epoch is None or value < best or math.isnan(best) and not math.isnan(value):
            self.best_epoch, self.waited = end.epoch, 0
            if self.keep == "best":
                self.best = {name: t.detach().clone() for name, t in self.module.state_dict().items()}
        else:
            self.waited += 1
        if self.patience is not None and self.waited >= self.patience and end.epoch < end.epochs:
            end.stop(f"early stopping: no lower validation loss in the {self.waited} epochs after epoch "
                     f"{self.best_epoch} ({self.history[self.best_epoch - 1]:.6g})")

    def state_dict(self) -> dict[str, Any]:
        return {"history": list(self.history), "best_epoch": self.best_epoch, "waited": self.waited,
                "best": self.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history, self.best_epoch, self.waited = list(state["history"]), state["best_epoch"], state["waited"]
        self.best = None if state["best"] is None else {
            name: t.to(self.module.state_dict()[name].device) for name, t in state["best"].items()}

    def check_state(self, state: Any, bad: Callable[[str, str], ValueError]) -> None:
        if not isinstance(state, dict) or set(state) != {"history", "best_epoch", "waited", "best"}:
            raise bad("keys", "history, best_epoch, waited and best")
        history, best_epoch, waited = state["history"], state["best_epoch"], state["waited"]
        if not isinstance(history, list) or not all(type(v) is float for v in history):
            raise bad("history", "a list of validation losses (floats)")
        if not (best_epoch is None and not history or type(best_epoch) is int and 1 <= best_epoch <= len(history)):
            raise bad("best_epoch", f"an epoch from 1 to {len(history)} (None before the first)")
        if not (type(waited) is int and 0 <= waited <= len(history) - (best_epoch or 0)):
            raise bad("waited", "the epochs since the best one")
        expected = self.module.state_dict()
        best = state["best"]
        if (best is None) != (self.keep != "best" or best_epoch is None):
            raise bad("best", "the best epoch's parameters where keep='best', else None")
        if best is not None and (not isinstance(best, dict) or set(best) != set(expected) or not all(
                isinstance(t, Tensor) and t.shape == expected[k].shape
                and t.dtype == (self.dtype if expected[k].is_floating_point() else expected[k].dtype)
                and (not t.is_floating_point() or bool(torch.isfinite(t).all())) for k, t in best.items())):
            raise bad("best", f"the parameters {sorted(expected)}, each finite, of its shape and dtype")

    def restore_best(self) -> None:
        """Put the best epoch's parameters into the model (where ``keep="best"`` and an epoch was validated)."""
        if self.best is not None:
            self.module.load_state_dict(self.best)

