"""All the state of a run in one place: what a checkpoint holds, so that a resumed run continues bitwise.

A :class:`RunState` holds the model's and guide's parameters, the optimiser's state, the states of every RNG
the steps draw from (torch, NumPy, Python, and the generator of the data order), the data order of the
current epoch and the position in it, the counters, and the history; what the objective keeps between steps: a
two-player run's critic and its optimiser (``critic``), the tensors an objective carries from step to step, such as
contrastive divergence's persistent chains (``objective``); the states of the fit's callbacks (``callbacks``); and the
path ``compile="auto"`` settled on for each batch shape (``compile_choices``).
:func:`state_payload` makes it a plain ``torch.save`` payload (tensors, numbers, lists and dicts: read back with
``weights_only=True``, so loading runs no code), and :func:`load_state` checks it field by field against the run
before anything is changed.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from ppgen.run.callback_state import check_callback_states, on_cpu
from ppgen.run.checkpoint import current_config
from ppgen.run.rng import capture_rng, check_rng, restore_rng
from ppgen.run.tensor_checks import check_optimizer, check_parameters, check_tensors

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
        callbacks: the states of the fit's callbacks that keep one, by name (:mod:`ppgen.training.callbacks`).
        stopped: why a callback stopped the run before its epochs (early stopping), or ``None``.
        compile_choices: the path ``compile="auto"`` settled on for each batch shape, by rows (``False``,
            ``"capture"``, ``True``), which a resumed run takes without probing (:mod:`ppgen.program.automatic`).
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
    callbacks: dict[str, Any] = field(default_factory=dict)
    stopped: str | None = None
    compile_choices: dict[int, bool | str] = field(default_factory=dict)


def state_payload(state: RunState, module: nn.Module, optimizer: torch.optim.Optimizer,
                  generator: torch.Generator | None, config: dict[str, Any], *,
                  rank_rng: list[dict[str, Any]] | None = None,
                  critic: tuple[nn.Module, torch.optim.Optimizer] | None = None,
                  objective: dict[str, Tensor] | None = None) -> dict[str, Any]:
    """The run's state as a checkpoint holds it, for ``torch.save``.

    Arguments:
        state: the counters, order and history.
        module: the program, whose ``state_dict`` holds the model's and the guide's parameters.
        optimizer: the optimiser, whose ``state_dict`` holds its moments and step counts.
        generator: the generator of the data order (``None`` when the run is not seeded).
        config: the run's configuration, checked again on resume.
        rank_rng: in a distributed fit, the RNG states of every rank (:func:`capture_rng`), in rank order.
        critic: a two-player run's critic and its optimiser, saved under ``critic`` (``parameters``, ``optimizer``).
        objective: the tensors the objective carries between steps (its ``persistent_state()``), saved under
            ``objective`` where there are any.
    """
    extra = {} if rank_rng is None else {"rank_rng": rank_rng}
    if critic is not None:
        extra["critic"] = {"parameters": {name: t.detach().cpu() for name, t in critic[0].state_dict().items()},
                           "optimizer": critic[1].state_dict()}
    if objective:
        extra["objective"] = {name: t.detach().cpu().clone() for name, t in objective.items()}
    if state.callbacks or state.stopped is not None:
        extra["callbacks"] = {"states": on_cpu(state.callbacks), "stopped": state.stopped}
    if state.compile_choices:
        extra["compile_choices"] = dict(state.compile_choices)
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
        critic: a two-player run's critic, whose parameters the state must fit, and ``critic_param_groups``, those
            of its optimiser; ``None`` for one player.
        objective: the tensors the objective carries between steps, whose names, shapes and dtypes the state's
            ``objective`` must have; empty where it carries none.
        callbacks: what checks the state of each of the fit's stateful callbacks, by name (``check(state, bad)``).
    """

    dtype: torch.dtype
    param_groups: list[dict[str, Any]]
    ordered: bool
    critic: nn.Module | None = None
    critic_param_groups: list[dict[str, Any]] | None = None
    objective: dict[str, Tensor] = field(default_factory=dict)
    callbacks: dict[str, Callable[[Any, Callable[[str, str], ValueError]], None]] = field(default_factory=dict)


def expected_state(module: nn.Module, make_optimizer: Callable[[list[nn.Parameter]], torch.optim.Optimizer],
                   device: torch.device, dtype: torch.dtype, ordered: bool,
                   critic: tuple[nn.Module, Callable[[list[nn.Parameter]], torch.optim.Optimizer]] | None = None,
                   objective: dict[str, Tensor] | None = None) -> Expected:
    """The :class:`Expected` of a run: its optimiser built on empty stand-ins of the parameters, on ``device``;
    ``critic``: a two-player run's critic and what builds its optimiser, whose settings are found the same way;
    ``objective``: the tensors the objective carries between steps."""

    def groups(module: nn.Module, make: Callable[[list[nn.Parameter]], torch.optim.Optimizer]) -> list[Any]:
        stand_ins = [nn.Parameter(torch.empty(0, device=device, dtype=dtype)) for _ in module.parameters()]
        return make(stand_ins).state_dict()["param_groups"]

    carried = dict(objective or {})
    if critic is None:
        return Expected(dtype, groups(module, make_optimizer), ordered, objective=carried)
    return Expected(dtype, groups(module, make_optimizer), ordered, critic[0], groups(*critic), carried)


def load_state(path: str | os.PathLike, module: nn.Module, n: int, config: dict[str, Any],
               expected: Expected) -> dict[str, Any]:
    """Read and check a checkpoint written from :func:`state_payload`, before anything of the model is changed.

    Every field is checked against the run being resumed, so that a damaged or crafted file is refused rather than
    resumed (or crashing torch): the parameters' names, shapes, dtypes and values; the optimiser's hyperparameters
    (they must be the run's own: a checkpoint never changes the learning rate) and its state, tensor by tensor, of
    the shape and dtype of its parameter; the counters, within the run's epochs and batches and consistent with each
    other; the epoch's loss, within the range of the step losses it sums; the RNG states, of the sizes torch, NumPy
    and Python take; a two-player run's critic (present exactly where the run has one) as the parameters and the
    optimiser are; the tensors the objective carries between steps (present exactly where it carries some), each of
    its name, shape and dtype, finite.

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
    if set(raw) - {"rank_rng", "critic", "objective", "callbacks", "compile_choices"} != expected_keys:
        raise bad("keys", f"exactly {sorted(expected_keys)} (and rank_rng in a distributed run, critic in a "
                          f"two-player one, objective where the objective carries state, compile_choices where "
                          f"compile='auto' settled a path), got {sorted(map(str, raw))}")
    if ("critic" in raw) != (expected.critic is not None):
        raise bad("critic", "the critic's parameters and its optimiser's state, as a two-player run has" if
                  expected.critic is not None else "absent: the run has no critic")
    if ("objective" in raw) != bool(expected.objective):
        raise bad("objective", f"the objective's state between steps ({', '.join(sorted(expected.objective))})" if
                  expected.objective else "absent: the run's objective carries no state between steps")
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
    check_parameters(raw["model"], module, expected.dtype, bad)
    check_optimizer(raw["optimizer"], module, expected.param_groups, expected.dtype, counters["step"], bad)
    if expected.critic is not None:
        critic = raw["critic"]
        if not isinstance(critic, dict) or set(critic) != {"parameters", "optimizer"}:
            raise bad("critic", "the critic's parameters and its optimiser's state (parameters, optimizer)")
        check_parameters(critic["parameters"], expected.critic, expected.dtype, bad, "critic.parameters")
        check_optimizer(critic["optimizer"], expected.critic, expected.critic_param_groups, expected.dtype,
                        counters["step"], bad, "critic.optimizer")
    if expected.objective:
        check_tensors(raw["objective"], expected.objective, bad, "objective")
    check_callback_states(raw.get("callbacks"), expected.callbacks, bad)
    choices = raw.get("compile_choices", {})
    if not isinstance(choices, dict) or not all(type(rows) is int and rows > 0 and (path is False or path is True
                                                                                    or path == "capture")
                                                for rows, path in choices.items()):
        raise bad("compile_choices", "a mapping of batch rows (ints > 0) to False, 'capture' or True")
    check_rng(raw["rng"], bad)
    if "rank_rng" in raw:
        if not isinstance(raw["rank_rng"], list) or len(raw["rank_rng"]) != config.get("world_size"):
            raise bad("rank_rng", f"a list of the RNG states of each of the run's {config.get('world_size')} ranks")
        for rng in raw["rank_rng"]:
            check_rng(rng, bad)
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
                 generator: torch.Generator | None,
                 critic: tuple[nn.Module, torch.optim.Optimizer] | None = None,
                 objective: dict[str, Tensor] | None = None) -> RunState:
    """Put a checkpoint read by :func:`load_state` back: parameters, optimiser, RNGs, a two-player run's ``critic``
    and its optimiser, and the tensors the objective carries between steps (``objective``, its live tensors, copied
    into in place); returns its counters.

    With ``saved`` ``None``, a fresh :class:`RunState`.
    """
    if saved is None:
        return RunState()
    module.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    if critic is not None:
        critic[0].load_state_dict(saved["critic"]["parameters"])
        critic[1].load_state_dict(saved["critic"]["optimizer"])
    with torch.no_grad():
        for name, tensor in (objective or {}).items():
            tensor.copy_(saved["objective"][name])
    restore_rng(saved["rng"], generator)
    counters, callbacks = saved["counters"], saved.get("callbacks", {"states": {}, "stopped": None})
    return RunState(step=counters["step"], epoch=counters["epoch"], position=counters["position"],
                    order=saved["order"], epoch_loss=saved["epoch_loss"], epoch_rows=counters["epoch_rows"],
                    history=list(saved["history"]), skipped=counters["skipped"], recent=list(saved["recent"]),
                    callbacks=dict(callbacks["states"]), stopped=callbacks["stopped"],
                    compile_choices=dict(saved.get("compile_choices", {})))
