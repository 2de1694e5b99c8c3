"""All the state of a run in one place: what a checkpoint holds, so that a resumed run continues bitwise.

A :class:`RunState` holds the model's and guide's parameters, the optimiser's state, the states of every RNG
the steps draw from (torch, NumPy, Python, and the generator of the data order), the data order of the
current epoch and the position in it, the counters, and the history. :func:`save_state` writes it as a plain
``torch.save`` file (tensors, numbers, lists and dicts: read back with ``weights_only=True``, so loading runs
no code), and :func:`load_state` checks it field by field before anything is changed.
"""

from __future__ import annotations

import math
import os
import random
import signal
import threading
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ppgen.run.checkpoint import atomic_save, current_config

STATE_FORMAT = "ppgen.runstate/1"
#: the largest checkpoint ppgen reads without being asked: a file past it is refused before it is read.
MAX_STATE_BYTES = 2**33


class Interrupted(KeyboardInterrupt):
    """Training stopped at a step boundary on SIGINT or SIGTERM; the checkpoint, if any, is written.

    Attributes:
        step: the steps done.
        signal_name: ``"SIGINT"`` or ``"SIGTERM"``.
        checkpoint: the checkpoint written, or ``None`` when the fit had no run folder.
    """

    def __init__(self, message: str, *, step: int, signal_name: str, checkpoint: str | None) -> None:
        super().__init__(message)
        self.step = step
        self.signal_name = signal_name
        self.checkpoint = checkpoint

    def __str__(self) -> str:
        return str(self.args[0])


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
        history: the mean training loss of each finished epoch, in nats per data point.
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


def save_state(path: str | os.PathLike, state: RunState, module: nn.Module, optimizer: torch.optim.Optimizer,
               generator: torch.Generator | None, config: dict[str, Any], *,
               rank_rng: list[dict[str, Any]] | None = None) -> None:
    """Write the run's state to ``path`` atomically.

    Arguments:
        path: the checkpoint file.
        state: the counters, order and history.
        module: the program, whose ``state_dict`` holds the model's and the guide's parameters.
        optimizer: the optimiser, whose ``state_dict`` holds its moments and step counts.
        generator: the generator of the data order (``None`` when the run is not seeded).
        config: the run's configuration, checked again on resume.
        rank_rng: in a distributed fit, the RNG states of every rank (:func:`capture_rng`), in rank order.
    """
    extra = {} if rank_rng is None else {"rank_rng": rank_rng}
    atomic_save({
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
    }, path)


def load_state(path: str | os.PathLike, module: nn.Module, n: int, config: dict[str, Any]) -> dict[str, Any]:
    """Read and check a checkpoint written by :func:`save_state`, before anything of the model is changed.

    Arguments:
        path: the checkpoint file.
        module: the program the state must fit: the same parameter names and shapes.
        n: the number of data points, which the data order must be a permutation of.
        config: the configuration of the run being resumed; the checkpoint must record the same.

    Returns:
        The checked contents.

    Raises:
        ValueError: the file is not a ppgen checkpoint, or a field of it is damaged; the message names the
            file and the field.
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
    if counters["epoch_rows"] > n:
        raise bad("counters", f"at most {n} rows seen in an epoch")
    order = raw["order"]
    if order is not None and not (isinstance(order, Tensor) and order.dtype == torch.int64 and order.shape == (n,)
                                  and bool((order.sort().values == torch.arange(n)).all())):
        raise bad("order", f"None or a permutation of the {n} data rows")
    if type(raw["epoch_loss"]) is not float or not math.isfinite(raw["epoch_loss"]):
        raise bad("epoch_loss", "a finite float")
    for name in ("history", "recent"):
        values = raw[name]
        if not isinstance(values, list) or not all(type(v) is float and math.isfinite(v) for v in values):
            raise bad(name, "a list of finite floats")
    if len(raw["history"]) != counters["epoch"]:
        raise bad("history", f"one loss per finished epoch ({counters['epoch']})")
    _check_parameters(raw["model"], module, bad)
    optimizer = raw["optimizer"]
    if not isinstance(optimizer, dict) or set(optimizer) != {"state", "param_groups"}:
        raise bad("optimizer", "a torch optimiser's state_dict (state, param_groups)")
    for value in optimizer["state"].values() if isinstance(optimizer["state"], dict) else [None]:
        if not isinstance(value, dict) or not all(
                not isinstance(t, Tensor) or bool(torch.isfinite(t).all()) for t in value.values()):
            raise bad("optimizer", "finite tensors for each parameter's state")
    _check_rng(raw["rng"], bad)
    if "rank_rng" in raw:
        if not isinstance(raw["rank_rng"], list) or len(raw["rank_rng"]) != config.get("world_size"):
            raise bad("rank_rng", f"a list of the RNG states of each of the run's {config.get('world_size')} ranks")
        for rng in raw["rank_rng"]:
            _check_rng(rng, bad)
    return raw


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


def _check_parameters(saved: Any, module: nn.Module, bad: Any) -> None:
    """The saved parameters must be the module's, by name, shape and dtype, and finite."""
    expected = module.state_dict()
    if not isinstance(saved, dict) or set(saved) != set(expected):
        raise bad("model", f"the parameters {sorted(expected)}")
    for name, value in saved.items():
        want = expected[name]
        if not isinstance(value, Tensor) or value.shape != want.shape:
            raise bad(f"model.{name}", f"a tensor of shape {list(want.shape)}")
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise bad(f"model.{name}", "finite values")


def _check_rng(rng: Any, bad: Any) -> None:
    """The RNG states must have the types and sizes that torch, NumPy and Python take back."""
    if not isinstance(rng, dict) or set(rng) != {"torch", "cuda", "numpy", "python", "generator"}:
        raise bad("rng", "the states of torch, cuda, numpy, python and the data-order generator")
    for name in ("torch", "generator"):
        value = rng[name]
        if not (isinstance(value, Tensor) and value.dtype == torch.uint8 and value.dim() == 1) and not (
                name == "generator" and value is None):
            raise bad(f"rng.{name}", "a torch RNG state (a 1-D uint8 tensor)")
    numpy = rng["numpy"]
    if not (isinstance(numpy, dict) and isinstance(numpy.get("keys"), Tensor) and numpy["keys"].shape == (624,)
            and type(numpy.get("pos")) is int and type(numpy.get("has_gauss")) is int
            and type(numpy.get("cached")) is float):
        raise bad("rng.numpy", "NumPy's MT19937 state (624 keys, pos, has_gauss, cached)")
    python = rng["python"]
    if not (isinstance(python, dict) and isinstance(python.get("internal"), list) and len(python["internal"]) == 625
            and all(type(v) is int for v in python["internal"]) and type(python.get("version")) is int):
        raise bad("rng.python", "Python's random state (version, 625 ints, gauss)")
    if not isinstance(rng["cuda"], list):
        raise bad("rng.cuda", "a list of CUDA RNG states")


class StopSignals:
    """Within ``with StopSignals() as stop:``, SIGINT and SIGTERM set ``stop.received`` instead of stopping the
    process, so that the loop can finish its step and write a checkpoint. A second signal of the same kind
    stops at once. Outside the main thread, where handlers cannot be set, signals keep their usual effect."""

    def __init__(self) -> None:
        self.received: str | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:  # asked twice: stop now
            signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))
            raise KeyboardInterrupt
        self.received = signal.Signals(signum).name

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
