"""A fit's file: what :meth:`ppgen.Fit.save` writes, and what :func:`ppgen.load` reads back before it builds the fit."""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from ppgen.objective.base import Objective
from ppgen.objective.sampler import Draws, Sampler
from ppgen.program.inputs import Batch
from ppgen.program.protocol import Model, as_module
from ppgen.program.structure import inspect
from ppgen.queries.energy import moments_of
from ppgen.run.checkpoint import (CHECKPOINT_FORMAT, MAX_EXAMPLE_ROWS, build_recorded, check_builds,
                                  check_fit_checkpoint, class_path, resolve_class)
from ppgen.run.folder import folder_given
from ppgen.utils.budget import BUDGET
from ppgen.utils.checks import check_device, check_not_a_class, first_line


def fit_state(fit: Any) -> dict[str, Any]:
    """The checkpoint of a :class:`~ppgen.Fit`: its model's class, configuration and parameters, its backend, history,
    example rows, a sampler's draws, and an energy model's data moments and estimate of log Z."""
    return {
        "format": CHECKPOINT_FORMAT,
        "model": {"class": class_path(type(fit.model)), "config": getattr(fit.model, "config", None)},
        "state_dict": {name: t.detach().cpu() for name, t in fit.model.state_dict().items()},
        "inference": {"class": class_path(type(fit.inference)), "config": fit.inference.config},
        "history": list(fit.history),
        "skipped": fit.skipped,
        **({"validation": {"history": list(fit.validation_history), "best_epoch": fit.best_epoch,
                           "stopped": fit.stopped}} if fit.validation_history or fit.stopped else {}),
        "example": [arg.cpu() for arg in fit.example.head(MAX_EXAMPLE_ROWS).args],
        "data_size": fit.example.size,
        **({"whole_data": True} if fit.structure.plan.whole_data else {}),
        **({} if fit.draws is None else {"draws": {
            "samples": {name: t.detach().cpu() for name, t in fit.draws.samples.items()},
            "chains": fit.draws.chains,
            "sample_stats": {name: t.detach().cpu() for name, t in fit.draws.sample_stats.items()}}}),
        **({} if fit.moments is None else {"energy": fit.energy.state()}),
    }


def read_fit(path: str | os.PathLike, model: Any, device: Any) -> dict[str, Any]:
    """The parts of the fit saved at ``path``, as keyword arguments of :class:`~ppgen.Fit` (and ``energy``, the saved
    field of an energy model, or ``None``): see :func:`ppgen.load`, whose errors these are."""
    device = check_device(device)
    check_not_a_class(model, "model", "ppgen.load(path, model=MyModel())")
    if os.path.isdir(path):
        raise IsADirectoryError(folder_given(path))
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no checkpoint at {os.fspath(path)}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - whatever bytes are there, they are not a fit: say so, run nothing
        raise ValueError(f"{os.fspath(path)} is not a readable ppgen fit (torch.load raised "
                         f"{type(error).__name__}); nothing in it was run") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{os.fspath(path)} is not a ppgen fit (no '{CHECKPOINT_FORMAT}' format tag)")
    check_fit_checkpoint(state, os.fspath(path))
    example = _example(state)
    if model is None:
        module = resolve_class(state["model"]["class"], Model, hint="pass the model, built as it was, to "
                               "ppgen.load(path, model=...), or import its module first if it is a ppgen.Model")
        if state["model"]["config"] is None:
            raise ValueError(f"{os.fspath(path)}: field 'model.config' is None: pass the model to ppgen.load(model=)")
        check_builds(module, state["model"]["config"], state["state_dict"], os.fspath(path),
                     BUDGET.checkpoint_parameters)
        module = module(**state["model"]["config"])
    else:
        module = as_module(model)
    # trace first: that creates the parameters of a program that makes them on its first run
    try:
        structure = inspect(module, example, name=f"the example rows in {os.fspath(path)}", placed=True)
        module.to(device=device, dtype=example.float_dtype)
        module.load_state_dict(state["state_dict"])
    except (ValueError, RuntimeError) as error:
        if isinstance(error, ValueError) and model is None:  # the file's own model fails on its own rows: said so
            raise
        why = first_line(error) if isinstance(error, ValueError) else str(error)  # a trace's first line; every key
        raise ValueError(f"model: {_mismatch(state, module, os.fspath(path))}: {why}") from None
    module.eval()
    draws = state.get("draws")
    backend = resolve_class(state["inference"]["class"], Objective if draws is None else Sampler,
                            hint="import the module that defines this backend first")
    inference = build_recorded(backend, state["inference"]["config"], os.fspath(path), "inference")
    if draws is not None:
        draws = Draws({name: t.to(device) for name, t in draws["samples"].items()}, draws["chains"],
                      draws["sample_stats"])
    energy, watched = state.get("energy"), state.get("validation", {})
    return {"model": module, "structure": structure, "inference": inference, "history": state["history"],
            "example": example, "skipped": state.get("skipped", 0), "draws": draws,
            "validation_history": watched.get("history"), "best_epoch": watched.get("best_epoch"),
            "stopped": watched.get("stopped"),
            "moments": None if energy is None else moments_of(energy), "energy": energy}


def _mismatch(state: dict, module: nn.Module, path: str) -> str:
    """Why a model does not take a saved fit: another class than the one saved, or (the same class) other parameters."""
    saved, given = state["model"]["class"], class_path(type(module))
    if saved != given:
        return (f"{path} holds a fit of {saved}, but the model is a {given}: pass the model the fit was saved from, "
                f"built as it was")
    return f"its parameters are not those saved in {path}"


def _example(state: dict) -> Batch:
    """The example rows of a checkpoint (checked by ``check_fit_checkpoint``), as a batch of the training set's size;
    for a program that takes the whole data set, its whole inputs, as its fit was given them."""
    args = tuple(state["example"])
    size = len(args[0]) if state.get("whole_data", False) else state["data_size"]
    return Batch(args, torch.arange(len(args[0])), size)
