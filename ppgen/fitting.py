"""``ppgen.fit``: mini-batch optimisation of an objective over a model's parameters."""

from __future__ import annotations

import dataclasses
import functools
import math
import sys
from collections.abc import Callable
from typing import Any

import pyro
import torch
from pyro.optim import PyroOptim
from torch import nn
from tqdm.auto import tqdm

from ppgen.checks import check_device, check_positive_float, check_positive_int, check_seed
from ppgen.data import Batch, as_batch
from ppgen.objective import Objective
from ppgen.program import as_model_input, as_module
from ppgen.result import Fit
from ppgen.structure import Structure, example_batch, inspect


def fit(model: Any, data: Any, *, inference: Objective | None = None, epochs: int = 10, batch_size: int = 128,
        lr: float = 1e-3, optim: Any = None, seed: int | None = 0, device: str | torch.device = "cpu",
        progress: bool | None = None) -> Fit:
    """Fit a generative model to data by minimising an inference objective over mini-batches.

    Arguments:
        model: a Pyro program: an ``nn.Module`` with ``model(x)`` (and ``guide(x)`` where it has continuous
            latents), or a ``(model_fn, guide_fn)`` pair of plain functions.
        data: Tensor or NumPy array of shape [N, ...], one data point per row, or a tuple ``(x, y, ...)`` (or a
            ``TensorDataset``) of aligned inputs, batched together and passed as ``model(x, y, ...)``; the model's
            floating-point parameters take the dtype of x (float64 data, float64 model).
        inference: the objective, e.g. ``inference.IWAE(k=5)``; by default ``ELBO()`` for a model with
            latents that need a guide and ``MLE()`` for a model whose log p(x) is exact.
        epochs: passes over the data.
        batch_size: data points per step (the last batch of an epoch may be smaller).
        lr: learning rate of the default optimiser, Adam, and of an optimiser class passed as ``optim``.
        optim: ``None`` (Adam), a ``torch.optim.Optimizer`` subclass, or a ``pyro.optim`` optimiser such as
            ``pyro.optim.Adam({"lr": 1e-3})``.
        seed: seeds torch, NumPy and Python's RNGs and the data order; ``None`` leaves them alone. A model's
            initial weights are drawn when it is built: call ``pyro.set_rng_seed`` before building it too
            for a run that repeats exactly.
        device: where the parameters and the data live, e.g. ``"cuda"``.
        progress: show a progress bar; by default only when stderr is a terminal.

    Returns:
        The :class:`~ppgen.Fit`, holding the trained model and ``history``, the loss per epoch.

    Raises:
        TypeError, ValueError: bad arguments or data, or a backend that cannot fit this model; raised
            before the model is changed in any way.
        FloatingPointError: the steps diverged (the loss or a parameter stopped being finite).
    """
    epochs = check_positive_int(epochs, "epochs")
    batch_size = check_positive_int(batch_size, "batch_size")
    make_optimizer = optimizer_factory(optim, check_positive_float(lr, "lr"))
    check_backend(inference)
    device = check_device(device)
    if seed is not None:
        pyro.set_rng_seed(check_seed(seed))
    data = as_batch(data, name="data")
    module = as_module(model)
    # Everything is checked before the model changes: trace it as it is (this also creates the parameters
    # of a program that makes them on its first run), then move it to `device` and the data's dtype.
    structure = inspect(module, as_model_input(example_batch(data), module), name="data")
    if next(module.parameters(), None) is None:
        raise ValueError("the model has no parameters to fit")
    structure.check_data(data, name="data")
    if inference is None:
        from ppgen.registry import default_inference  # the registry joins the core to the backends

        inference = default_inference(structure)
    inference.check(structure)
    if callable(getattr(module, "initialize", None)):  # may refuse the data too, before it changes anything
        module.initialize(*as_model_input(data, module).args)
    dtype = data.args[0].dtype if data.args[0].is_floating_point() else torch.get_default_dtype()
    module.to(device=device, dtype=dtype)
    data = data.to(device, dtype)
    optimizer = make_optimizer(list(module.parameters()))
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    history = train(module, structure, inference, optimizer, data, epochs, batch_size, generator, progress)
    return Fit(module, structure, inference, history=history, example=example_batch(data).to("cpu"))


def check_backend(inference: Any) -> None:
    """A ``TypeError`` unless ``inference`` is ``None`` or a backend that a saved fit can record."""
    if inference is None:
        return
    if not isinstance(inference, Objective):
        raise TypeError(f"inference must be a ppgen.inference backend such as inference.ELBO(), "
                        f"got {type(inference).__name__}")
    if not dataclasses.is_dataclass(inference):
        raise TypeError(f"inference: {type(inference).__name__} must be a dataclass, whose fields a saved fit "
                        f"records (see ppgen.objective.Objective)")


def train(module: nn.Module, structure: Structure, inference: Objective, optimizer: torch.optim.Optimizer,
          data: Batch, epochs: int, batch_size: int, generator: torch.Generator | None,
          progress: bool | None) -> list[float]:
    """Run ``epochs`` passes of mini-batch gradient steps on the loss; return the mean loss of each epoch.

    Raises:
        FloatingPointError: the loss or a parameter stopped being finite (the steps diverged).
    """
    module.train()
    history: list[float] = []
    show = sys.stderr.isatty() if progress is None else progress
    bar = tqdm(range(epochs), desc=f"fit {type(inference).__name__}", unit="epoch", disable=not show)
    # The data were checked against the likelihood's support and the program traced with validation on;
    # checking every distribution's arguments again on every step is work done once already.
    with pyro.validation_enabled(False):
        for _ in bar:
            try:
                history.append(epoch(module, structure, inference, optimizer, data, batch_size, generator))
            except torch.linalg.LinAlgError as error:  # a Cholesky factor of parameters that ran off
                raise FloatingPointError(f"{error} in epoch {len(history) + 1}: the steps diverged, lower lr") \
                    from error
            except RuntimeError:
                check_finite(module, len(history) + 1)
                raise
            if not math.isfinite(history[-1]):
                raise FloatingPointError(f"the loss became {history[-1]} in epoch {len(history)}: lower lr")
            bar.set_postfix(loss=f"{history[-1]:.3f}")
    check_finite(module, epochs)  # the last step's update is seen by no loss
    module.eval()
    return history


def check_finite(module: nn.Module, epoch: int) -> None:
    """A ``FloatingPointError`` if a parameter holds NaN or infinity after ``epoch`` epochs."""
    bad = [name for name, param in module.named_parameters() if not bool(torch.isfinite(param).all())]
    if bad:
        raise FloatingPointError(f"parameter(s) {', '.join(bad)} became non-finite in epoch {epoch}: lower lr")


def epoch(module: nn.Module, structure: Structure, inference: Objective, optimizer: torch.optim.Optimizer,
          data: Batch, batch_size: int, generator: torch.Generator | None) -> float:
    """One pass over the data in shuffled mini-batches; returns the mean loss per data point."""
    order = torch.randperm(len(data), generator=generator).to(data.rows.device)
    total = data.args[0].new_zeros((), dtype=next(module.parameters()).dtype)
    for rows in order.split(batch_size):
        batch = data.take(rows)
        loss = inference.loss(module, structure, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.detach() * len(batch)
    return total.item() / len(data)


def optimizer_factory(optim: Any, lr: float) -> Callable[[list[nn.Parameter]], torch.optim.Optimizer]:
    """What builds the torch optimiser from the parameters, given ``optim`` (see :func:`fit`); checked now,
    called once the model is ready."""
    if optim is None:
        return functools.partial(torch.optim.Adam, lr=lr)
    if isinstance(optim, type) and issubclass(optim, torch.optim.Optimizer):
        return functools.partial(optim, lr=lr)
    if isinstance(optim, PyroOptim):
        if not isinstance(optim.pt_optim_args, dict):
            raise TypeError("optim: a pyro.optim optimiser with per-parameter arguments is not supported; "
                            "pass its arguments as a dict")
        return functools.partial(optim.pt_optim_constructor, **optim.pt_optim_args)
    raise TypeError(f"optim must be None, a torch.optim.Optimizer class or a pyro.optim optimiser, "
                    f"got {type(optim).__name__}")
