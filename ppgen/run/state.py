"""All the state of a run in one place: what a checkpoint holds, so that a resumed run continues bitwise.

A :class:`RunState` holds the model's and guide's parameters, the optimiser's state, the states of every RNG
the steps draw from (torch, NumPy, Python, and the generator of the data order), the data order of the
current epoch and the position in it, the counters, and the history. :func:`state_payload` makes it a plain
``torch.save`` payload (tensors, numbers, lists and dicts: read back with ``weights_only=True``, so loading runs
no code), and :func:`load_state` checks it field by field against the run before anything is changed.
"""

from __future__ import annotations

import math
import os
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ppgen.run.checkpoint import current_config

STATE_FORMAT = "ppgen.runstate/1"
#: the largest checkpoint ppgen reads without being asked: a file past it is refused before it is read.
MAX_STATE_BYTES = 2**33


@dataclass
class RunState:
    """Where a run stands between two steps.

    Attributes:
        step: gradient steps done (skipped batches included).
        epoch: epochs done.
        position: batches of the current epoch done.
        order: the current epoch's data order, Tensor[N] of row indices, or ``None`` between epochs.
        epoch_loss: the sum over the current epoch's batches of loss times batch size.
        epoch_rows: the data points those batches held (skipped ones left out).
        history: the mean training loss of each finished epoch, in the objective's units (nats per data point, or
            as its ``units`` say).
        skipped: batches skipped by ``on_nan="skip"``.
        recent: the last step losses, which the divergence guard takes its running median over.
    """

    step: int = 0
    epoch: int = 0
    position: int = 0
    order: Tensor | None = None
    epoch_loss: float = 0.0
    epoch_rows: int = 0
    history: list[float] = field(default_factory=list)
    skipped: int = 0
    recent: list[float] = field(default_factory=list)


def capture_rng(generator: torch.Generator | None) -> dict[str, Any]:
    """The states of every RNG a step draws from, as tensors and plain numbers."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
                  "cached": float(cached)},
        "python": {"version": int(version), "internal": list(internal), "gauss": gauss},
        "generator": generator.get_state() if generator is not None else None,
    }


def restore_rng(rng: dict[str, Any], generator: torch.Generator | None) -> None:
    """Set every RNG to the states :func:`capture_rng` recorded."""
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    numpy = rng["numpy"]
    np.random.set_state(("MT19937", numpy["keys"].numpy().astype(np.uint32), numpy["pos"], numpy["has_gauss"],
                         numpy["cached"]))
    python = rng["python"]
    random.setstate((python["version"], tuple(python["internal"]), python["gauss"]))
    if generator is not None and rng["generator"] is not None:
        generator.set_state(rng["generator"])


def state_payload(state: RunState, module: nn.Module, optimizer: torch.optim.Optimizer,
                  generator: torch.Generator | None, config: dict[str, Any], *,
                  rank_rng: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The run's state as a checkpoint holds it, for ``torch.save``.

    Arguments:
        state: the counters, order and history.
        module: the program, whose ``state_dict`` holds the model's and the guide's parameters.
        optimizer: the optimiser, whose ``state_dict`` holds its moments and step counts.
        generator: the generator of the data order (``None`` when the run is not seeded).
        config: the run's configuration, checked again on resume.
        rank_rng: in a distributed fit, the RNG states of every rank (:func:`capture_rng`), in rank order.
    """
    extra = {} if rank_rng is None else {"rank_rng": rank_rng}
    return {
        "format": STATE_FORMAT,
        "config": config,
        "counters": {"step": state.step, "epoch": state.epoch, "position": state.position, "skipped": state.skipped,
                     "epoch_rows": state.epoch_rows},
        "order": state.order.cpu() if state.order is not None else None,
        "epoch_loss": state.epoch_loss,
        "history": list(state.history),
        "recent": list(state.recent),
        "model": {name: t.detach().cpu() for name, t in module.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "rng": capture_rng(generator),
        **extra,
    }


@dataclass(frozen=True)
class Expected:
    """What a resumed state must fit besides the program and the data: the run's own settings.

    Attributes:
        dtype: the floating-point dtype the program's parameters take (the data's).
        param_groups: the ``param_groups`` of the optimiser the run's settings build (hyperparameters, and the
            parameters by index).
        ordered: whether the run draws the order of the data each epoch (data in memory or a map-style data set);
            a stream read in its own order has none.
    """

    dtype: torch.dtype
    param_groups: list[dict[str, Any]]
    ordered: bool


def expected_state(module: nn.Module, make_optimizer: Callable[[list[nn.Parameter]], torch.optim.Optimizer],
                   device: torch.device, dtype: torch.dtype, ordered: bool) -> Expected:
    """The :class:`Expected` of a run: its optimiser built on empty stand-ins of the parameters, on ``device``."""
    stand_ins = [nn.Parameter(torch.empty(0, device=device, dtype=dtype)) for _ in module.parameters()]
    return Expected(dtype, make_optimizer(stand_ins).state_dict()["param_groups"], ordered)


def load_state(path: str | os.PathLike, module: nn.Module, n: int, config: dict[str, Any],
               expected: Expected) -> dict[str, Any]:
    """Read and check a checkpoint written from :func:`state_payload`, before anything of the model is changed.

    Every field is checked against the run being resumed, so that a damaged or crafted file is refused rather than
    resumed (or crashing torch): the parameters' names, shapes, dtypes and values; the optimiser's hyperparameters
    (they must be the run's own: a checkpoint never changes the learning rate) and its state, tensor by tensor, of
    the shape and dtype of its parameter; the counters, within the run's epochs and batches and consistent with each
    other; the epoch's loss, within the range of the step losses it sums; the RNG states, of the sizes torch, NumPy
    and Python take.

    Arguments:
        path: the checkpoint file.
        module: the program the state must fit: the same parameter names and shapes.
        n: the number of data points, which the data order must be a permutation of (``sys.maxsize`` for a stream of
            unknown length).
        config: the configuration of the run being resumed; the checkpoint must record the same.
        expected: the run's dtype and optimiser settings.

    Returns:
        The checked contents.

    Raises:
        ValueError: the file is not a ppgen checkpoint, or a field of it is damaged or does not fit the run; the
            message names the file and the field.
    """
    where = os.fspath(path)
    size = os.path.getsize(where)
    if size > MAX_STATE_BYTES:
        raise ValueError(f"{where}: {size} bytes is over the {MAX_STATE_BYTES}-byte budget of a checkpoint")
    try:
        raw = torch.load(where, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - whatever bytes are there, they are not a checkpoint: run nothing
        raise ValueError(f"{where} is not a readable ppgen checkpoint (torch.load raised {type(error).__name__}); "
                         f"nothing in it was run") from None
    if not isinstance(raw, dict) or raw.get("format") != STATE_FORMAT:
        raise ValueError(f"{where}: field 'format' is not {STATE_FORMAT!r}: not a ppgen checkpoint")

    def bad(name: str, expected: str) -> ValueError:
        return ValueError(f"{where}: field {name!r} is damaged: expected {expected}")

    expected_keys = {"format", "config", "counters", "order", "epoch_loss", "history", "recent", "model",
                     "optimizer", "rng"}
    if set(raw) - {"rank_rng"} != expected_keys:
        raise bad("keys", f"exactly {sorted(expected_keys)} (and rank_rng in a distributed run), got "
                          f"{sorted(map(str, raw))}")
    if current_config(raw["config"]) != config:
        raise bad("config", "the configuration of the run being resumed")
    counters = raw["counters"]
    if not isinstance(counters, dict) or set(counters) != {"step", "epoch", "position", "skipped", "epoch_rows"} \
            or not all(type(v) is int and v >= 0 for v in counters.values()):
        raise bad("counters", "step, epoch, position, skipped and epoch_rows, each an int >= 0")
    order = raw["order"]
    if order is not None and not expected.ordered:
        raise bad("order", "None: the run reads a stream in its own order")
    if order is not None and not (isinstance(order, Tensor) and order.dtype == torch.int64 and order.shape == (n,)
                                  and bool((order.sort().values == torch.arange(n)).all())):
        raise bad("order", f"None or a permutation of the {n} data rows")
    _check_counters(counters, order is None and expected.ordered, n, config, bad)
    for name in ("history", "recent"):
        values = raw[name]
        if not isinstance(values, list) or not all(type(v) is float and math.isfinite(v) for v in values):
            raise bad(name, "a list of finite floats")
    if len(raw["history"]) != counters["epoch"]:
        raise bad("history", f"one loss per finished epoch ({counters['epoch']})")
    _check_epoch_loss(raw["epoch_loss"], counters, raw["recent"], expected.dtype, bad)
    _check_parameters(raw["model"], module, expected.dtype, bad)
    _check_optimizer(raw["optimizer"], module, expected, counters["step"], bad)
    _check_rng(raw["rng"], bad)
    if "rank_rng" in raw:
        if not isinstance(raw["rank_rng"], list) or len(raw["rank_rng"]) != config.get("world_size"):
            raise bad("rank_rng", f"a list of the RNG states of each of the run's {config.get('world_size')} ranks")
        for rng in raw["rank_rng"]:
            _check_rng(rng, bad)
    return raw


def _check_counters(counters: dict[str, int], between: bool, n: int, config: dict[str, Any],
                    bad: Callable[[str, str], ValueError]) -> None:
    """The counters within the run: at most its epochs, at most an epoch's batches (none ``between`` epochs, where
    an ordered run has no order), and the steps those make."""
    epochs, batch_size = config.get("epochs"), config.get("batch_size")
    epoch, position, step = counters["epoch"], counters["position"], counters["step"]
    if type(epochs) is int and not (epoch < epochs or epoch == epochs and position == 0):
        raise bad("counters.epoch", f"at most the run's {epochs} epochs ({epoch} done, {position} batches into the "
                                    f"next)")
    if between and position:
        raise bad("counters.position", "0 between epochs (the order of the data is None)")
    if counters["skipped"] > step:
        raise bad("counters.skipped", f"at most the {step} steps taken")
    if n == sys.maxsize or type(batch_size) is not int:  # a stream of unknown length: no count of batches
        return
    per_epoch = n // batch_size if config.get("drop_last") else math.ceil(n / batch_size)
    if position > per_epoch:
        raise bad("counters.position", f"at most the {per_epoch} batches of an epoch of {n} rows in batches of "
                                       f"{batch_size}")
    if step != epoch * per_epoch + position:
        raise bad("counters.step", f"{epoch * per_epoch + position}, the steps of {epoch} epochs of {per_epoch} "
                                   f"batches and {position} more")
    if counters["epoch_rows"] > min(n, position * batch_size):
        raise bad("counters.epoch_rows", f"at most the {min(n, position * batch_size)} rows of the epoch's "
                                         f"{position} batches")


def _check_epoch_loss(epoch_loss: Any, counters: dict[str, int], recent: list[float], dtype: torch.dtype,
                      bad: Callable[[str, str], ValueError]) -> None:
    """The epoch's sum of step losses times rows: finite, 0 before a row, its mean per row at most the largest loss
    the run's dtype holds, and within the range of the step losses it sums where ``recent`` still holds them all
    (the last ``position`` step losses hold the epoch's)."""
    rows, position = counters["epoch_rows"], counters["position"]
    if type(epoch_loss) is not float or not math.isfinite(epoch_loss) or (rows == 0 and epoch_loss != 0.0):
        raise bad("epoch_loss", "a finite float, 0.0 before the epoch's first row")
    if not rows:
        return
    mean, largest = epoch_loss / rows, torch.finfo(dtype).max
    if abs(mean) > largest:
        raise bad("epoch_loss", f"a mean loss per row of at most {largest:.3g} in magnitude, the largest a {dtype} "
                                f"step loss takes (got {mean:.3g})")
    if 0 < position <= len(recent):
        low, high = min(recent[-position:]), max(recent[-position:])
        slack = 1e-6 * max(1.0, abs(low), abs(high))
        if not low - slack <= mean <= high + slack:
            raise bad("epoch_loss", f"a mean loss per row between {low:.6g} and {high:.6g}, the epoch's step losses "
                                    f"(got {mean:.6g})")


def resume_state(saved: dict[str, Any] | None, module: nn.Module, optimizer: torch.optim.Optimizer,
                 generator: torch.Generator | None) -> RunState:
    """Put a checkpoint read by :func:`load_state` back: parameters, optimiser, RNGs; returns its counters.

    With ``saved`` ``None``, a fresh :class:`RunState`.
    """
    if saved is None:
        return RunState()
    module.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    restore_rng(saved["rng"], generator)
    counters = saved["counters"]
    return RunState(step=counters["step"], epoch=counters["epoch"], position=counters["position"],
                    order=saved["order"], epoch_loss=saved["epoch_loss"], epoch_rows=counters["epoch_rows"],
                    history=list(saved["history"]), skipped=counters["skipped"], recent=list(saved["recent"]))


def _check_parameters(saved: Any, module: nn.Module, dtype: torch.dtype, bad: Callable[[str, str], ValueError]) -> None:
    """The saved parameters must be the module's, by name, shape and dtype (``dtype`` for floating-point ones), and
    finite."""
    expected = module.state_dict()
    if not isinstance(saved, dict) or set(saved) != set(expected):
        raise bad("model", f"the parameters {sorted(expected)}")
    for name, value in saved.items():
        want = expected[name]
        want_dtype = dtype if want.is_floating_point() else want.dtype
        if not isinstance(value, Tensor) or value.shape != want.shape or value.dtype != want_dtype:
            raise bad(f"model.{name}", f"a tensor of shape {list(want.shape)} and dtype {want_dtype}")
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise bad(f"model.{name}", "finite values")


def _check_optimizer(saved: Any, module: nn.Module, expected: Expected, steps: int,
                     bad: Callable[[str, str], ValueError]) -> None:
    """The optimiser's state_dict: the run's own hyperparameters, group by group, and for each parameter i state
    tensors of its shape and dtype (or scalars, such as Adam's step count, finite, at most the run's ``steps``).

    Checked before ``load_state_dict``, which takes any hyperparameter, and whose fused kernels read moments of a
    wrong shape out of bounds."""
    if not isinstance(saved, dict) or set(saved) != {"state", "param_groups"}:
        raise bad("optimizer", "a torch optimiser's state_dict (state, param_groups)")
    groups = saved["param_groups"]
    if not isinstance(groups, list) or len(groups) != len(expected.param_groups):
        raise bad("optimizer.param_groups", f"a list of {len(expected.param_groups)} parameter group(s)")
    for i, (group, want) in enumerate(zip(groups, expected.param_groups)):
        if not isinstance(group, dict) or set(group) != set(want):
            raise bad(f"optimizer.param_groups[{i}]", f"the settings {sorted(want)}")
        for key, value in want.items():
            if not _same(group[key], value):
                raise bad(f"optimizer.param_groups[{i}].{key}", f"{value!r}, the run's own setting (the file has "
                                                                 f"{group[key]!r}): a checkpoint does not change them")
    params = list(module.parameters())
    state = saved["state"]
    if not isinstance(state, dict) or not all(type(k) is int and 0 <= k < len(params) for k in state):
        raise bad("optimizer.state", f"a mapping of parameter indices 0 to {len(params) - 1} to their state")
    for index, entry in state.items():
        if not isinstance(entry, dict) or not all(isinstance(name, str) for name in entry):
            raise bad(f"optimizer.state[{index}]", "a mapping of names to the parameter's state")
        shape = params[index].shape
        for name, value in entry.items():
            field = f"optimizer.state[{index}].{name}"
            if isinstance(value, Tensor) and value.dim() == 0 or type(value) in (int, float):
                scalar = float(value)
                if not math.isfinite(scalar) or name == "step" and not 0 <= scalar <= steps:
                    within = f" from 0 to the run steps ({steps})" if name == "step" else ""
                    raise bad(field, f"a finite scalar{within}")
            elif not (isinstance(value, Tensor) and value.shape == shape and value.dtype == expected.dtype):
                raise bad(field, f"a tensor of shape {list(shape)} and dtype {expected.dtype}, as parameter {index}")
            elif not bool(torch.isfinite(value).all()):
                raise bad(field, "finite values")


def _same(a: Any, b: Any) -> bool:
    """Whether two optimiser settings are equal (tensors by value, sequences element by element)."""
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        return isinstance(a, Tensor) and isinstance(b, Tensor) and a.shape == b.shape and bool((a == b.to(a)).all())
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def _check_rng(rng: Any, bad: Callable[[str, str], ValueError]) -> None:
    """The RNG states must have the types, sizes and ranges that torch, NumPy and Python take back."""
    if not isinstance(rng, dict) or set(rng) != {"torch", "cuda", "numpy", "python", "generator"}:
        raise bad("rng", "the states of torch, cuda, numpy, python and the data-order generator")
    size = torch.get_rng_state().numel()
    for name in ("torch", "generator"):
        value = rng[name]
        if not (isinstance(value, Tensor) and value.dtype == torch.uint8 and value.shape == (size,)) and not (
                name == "generator" and value is None):
            raise bad(f"rng.{name}", f"a torch RNG state (a 1-D uint8 tensor of {size} bytes)")
    numpy = rng["numpy"]
    if not (isinstance(numpy, dict) and set(numpy) == {"keys", "pos", "has_gauss", "cached"}
            and isinstance(numpy["keys"], Tensor) and numpy["keys"].shape == (624,)
            and numpy["keys"].dtype == torch.int64 and bool(((numpy["keys"] >= 0) & (numpy["keys"] < 2**32)).all())
            and type(numpy["pos"]) is int and 0 <= numpy["pos"] <= 624 and numpy["has_gauss"] in (0, 1)
            and type(numpy["has_gauss"]) is int and type(numpy["cached"]) is float and math.isfinite(numpy["cached"])):
        raise bad("rng.numpy", "NumPy's MT19937 state (624 keys below 2**32, pos from 0 to 624, has_gauss, cached)")
    python = rng["python"]
    internal = python.get("internal") if isinstance(python, dict) else None
    if not (isinstance(python, dict) and set(python) == {"version", "internal", "gauss"}
            and python["version"] == random.getstate()[0] and type(python["version"]) is int
            and isinstance(internal, list) and len(internal) == 625 and all(type(v) is int for v in internal)
            and all(0 <= v < 2**32 for v in internal[:624]) and 0 <= internal[624] <= 624
            and (python["gauss"] is None or type(python["gauss"]) is float)):
        raise bad("rng.python", "Python's random state (its version, 624 words below 2**32 and a position, gauss)")
    cuda = rng["cuda"]
    if not (isinstance(cuda, list) and all(isinstance(t, Tensor) and t.dtype == torch.uint8 and t.dim() == 1
                                           for t in cuda)):
        raise bad("rng.cuda", "a list of CUDA RNG states (1-D uint8 tensors)")
    if cuda and torch.cuda.is_available():  # restored only where CUDA is
        if len(cuda) > torch.cuda.device_count() or any(t.numel() != torch.cuda.get_rng_state(i).numel()
                                                        for i, t in enumerate(cuda)):
            raise bad("rng.cuda", f"at most {torch.cuda.device_count()} CUDA RNG states, of the size torch takes")
