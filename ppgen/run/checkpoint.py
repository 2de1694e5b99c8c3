"""Checkpoint files: written atomically, read without executing code, classes found only among those imported."""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch

from ppgen.utils.budget import BUDGET

CHECKPOINT_FORMAT = "ppgen.fit/2"
#: how the names of temporary files begin; in a run folder they begin with :func:`run_prefix` instead.
TMP_PREFIX = ".tmp-"
#: ``SECONDS`` or ``SECONDS:NAME``: wait before renaming each file written (named NAME), so that the tests can
#: kill a process mid-write; read only by that hook.
_TEST_DELAY = "PPGEN_TEST_WRITE_DELAY"
#: what a checkpoint of that format holds besides its format tag.
CHECKPOINT_KEYS = frozenset({"model", "state_dict", "inference", "history", "example", "data_size"})
#: the program classes that a run's recorded configuration (manifest and checkpoint) written by an earlier ppgen
#: names by a path they no longer have: ``module:QualName`` -> the path now. A function pair's program moved when
#: ppgen/ was grouped into rooms.
MOVED_CLASSES = {"ppgen.program:PyroFunctions": "ppgen.program.protocol:PyroFunctions"}
#: the most example rows a fit file may hold: a fit keeps a few (``example_batch`` keeps 3) to trace its program on.
MAX_EXAMPLE_ROWS = 16
#: the run folders this process writes (absolute paths), and how the temporary files it makes there begin.
_RUN_PREFIXES: dict[str, str] = {}
#: what a checkpoint may hold besides: the batches ``on_nan="skip"`` skipped (0 when absent, as in files written
#: before it was recorded), a sampler's draws of the global latents (a fit by ``inference.NUTS``), and an energy-based
#: model's data moments and estimate of log Z (:mod:`ppgen.queries.energy`).
OPTIONAL_KEYS = frozenset({"skipped", "draws", "whole_data", "energy", "validation"})
#: the settings of a saved estimate of log Z.
LOG_Z_SETTINGS = frozenset({"temperatures", "chains", "steps", "step_size"})


def run_prefix(config: Any) -> str:
    """How the temporary files of the run with this configuration begin: ``.tmp-ppgen-`` and 16 hex digits of the
    SHA-256 of the configuration, a name that only ppgen's own temporaries of that run can have. A run folder
    removes the temporaries that killed writes left only when their names begin so, never a user's ``.tmp-*``.
    """
    text = json.dumps(config, sort_keys=True, allow_nan=False, default=repr)
    return f"{TMP_PREFIX}ppgen-{hashlib.sha256(text.encode()).hexdigest()[:16]}-"


def register_run_folder(folder: str | os.PathLike, prefix: str) -> None:
    """Make every temporary file that this process writes in ``folder`` begin with ``prefix`` (:func:`run_prefix`),
    those of writers that know nothing of runs (``Fit.save``, the pictures) too."""
    _RUN_PREFIXES[os.path.abspath(folder)] = prefix


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None], *,
                 before_rename: Callable[[str], None] | None = None) -> None:
    """Call ``write`` on a temporary file beside ``path``, flush it to disk, then rename it over ``path``.

    The rename is atomic, so an interrupted write leaves either the old file or the new one, never a torn one;
    the folder is flushed after it, so that the rename itself survives a crash. A symbolic link at ``path`` is
    replaced, never written through. The file gets the permissions ``open`` would give it (0o666 less the
    umask), not ``mkstemp``'s private 0o600. The temporary file's name begins with :data:`TMP_PREFIX`, or with
    the prefix of the run folder it is in (:func:`register_run_folder`).

    Arguments:
        before_rename: called with the temporary file's path once it is on disk, before the rename.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a folder: give the path of a file to write")
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    prefix = _RUN_PREFIXES.get(folder, TMP_PREFIX)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=prefix, suffix=os.path.basename(path))
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if before_rename is not None:
            before_rename(tmp)
        _test_delay(path)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    fsync_folder(folder)


def _test_delay(path: str) -> None:
    """The tests' hook (see :data:`_TEST_DELAY`): sleep before the rename of a matching file."""
    seconds, _, name = os.environ.get(_TEST_DELAY, "").partition(":")
    if seconds and name in ("", os.path.basename(path)):
        time.sleep(float(seconds))


def fsync_folder(folder: str) -> None:
    """Flush a folder's entries to disk (where the platform lets a folder be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on a folder; the rename has happened all the same
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    """The process's umask (reading it means setting it, so it is set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save(obj)`` to ``path`` through :func:`atomic_write`."""
    atomic_write(path, lambda f: torch.save(obj, f))


def class_path(cls: type) -> str:
    """``module:QualName`` of a class."""
    return f"{cls.__module__}:{cls.__qualname__}"


def current_config(config: Any) -> Any:
    """A run's configuration as a file recorded it, with the class of its program named by the path the class
    has now (:data:`MOVED_CLASSES`), to compare with the configuration of the run that resumes it."""
    if isinstance(config, dict) and config.get("model") in MOVED_CLASSES:
        return {**config, "model": MOVED_CLASSES[config["model"]]}
    return config


def resolve_class(path: str, base: type, hint: str) -> type:
    """The subclass of ``base`` named ``path`` (``module:QualName``).

    Only ppgen's own modules are imported here; any other class must already be imported by the
    caller, so a checkpoint can never make ppgen import a module of its choosing. ``hint`` ends the
    error message when the class is not found: what else the caller can do.
    """
    module_name, _, qualname = path.partition(":")
    if module_name == "ppgen" or module_name.startswith("ppgen."):
        importlib.import_module(module_name)
    found = {class_path(c): c for c in _subclasses(base)}
    if path not in found:
        raise ValueError(f"the checkpoint names {path}, which is not an imported subclass of {base.__name__}: "
                         f"{hint}")
    return found[path]


def _subclasses(cls: type) -> list[type]:
    direct = cls.__subclasses__()
    return direct + [c for d in direct for c in _subclasses(d)]


def check_fit_checkpoint(state: dict[str, Any], path: str) -> None:
    """Check a fit read by ``ppgen.load`` field by field, before any model is built from it.

    Each failure is a ``ValueError`` naming the file and the field: the keys, the model's class and its
    keyword arguments (plain values), the parameters (tensors, finite), the backend, the history (finite
    floats), the example rows (aligned tensors, one per input), the training set's size and the validation record.
    """

    def bad(field: str, expected: str) -> ValueError:
        return ValueError(f"{path}: field {field!r} is damaged: expected {expected}")

    if not CHECKPOINT_KEYS | {"format"} <= set(state) <= CHECKPOINT_KEYS | OPTIONAL_KEYS | {"format"}:
        missing = sorted(CHECKPOINT_KEYS - set(state))
        extra = sorted(map(str, set(state) - CHECKPOINT_KEYS - OPTIONAL_KEYS - {"format"}))
        raise bad("keys", f"exactly {sorted(CHECKPOINT_KEYS)}, and optionally {sorted(OPTIONAL_KEYS)} "
                          f"(missing {missing}, unknown {extra})")
    for field in ("model", "inference"):
        entry = state[field]
        if not isinstance(entry, dict) or set(entry) != {"class", "config"}:
            raise bad(field, "a mapping of 'class' and 'config'")
        if not isinstance(entry["class"], str) or entry["class"].count(":") != 1:
            raise bad(f"{field}.class", "a 'module:QualName' string")
        config = entry["config"]
        if not (config is None and field == "model") and not (
                isinstance(config, dict) and all(isinstance(k, str) and k.isidentifier() and _plain(v)
                                                 for k, v in config.items())):
            raise bad(f"{field}.config", "a mapping of keyword names to plain values (numbers, strings, lists, "
                                         "mappings)")
    weights = state["state_dict"]
    if not isinstance(weights, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                for k, v in weights.items()):
        raise bad("state_dict", "a mapping of parameter names to tensors")
    for name, value in weights.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise bad(f"state_dict.{name}", "finite values (it holds NaN or infinity)")
    if not (type(state.get("skipped", 0)) is int and state.get("skipped", 0) >= 0):
        raise bad("skipped", "an int >= 0, the batches fit(on_nan='skip') left out")
    history = state["history"]
    if not isinstance(history, list) or not all(type(v) is float and v == v and abs(v) != float("inf")
                                                for v in history):
        raise bad("history", "a list of finite floats, one per epoch")
    example = state["example"]
    if not (isinstance(example, list) and example and all(isinstance(arg, torch.Tensor) and arg.dim() >= 1
                                                          for arg in example)):
        raise bad("example", "a list of tensors of shape [N, ...], one per input")
    whole = state.get("whole_data", False)
    if type(whole) is not bool:
        raise bad("whole_data", "a bool, whether the program takes the whole data set at every step")
    if whole and sum(arg.numel() for arg in example) > BUDGET.sample_values:  # before any pass over them
        raise bad("example", f"at most {BUDGET.sample_values} values in all (the whole data set that its program "
                             f"takes), got {sum(arg.numel() for arg in example)}")
    if not whole and len(example[0]) > MAX_EXAMPLE_ROWS:  # before any pass over them: a crafted file may hold millions
        raise bad("example", f"at most {MAX_EXAMPLE_ROWS} rows (a fit keeps a few to trace its program on), got "
                             f"{len(example[0])}")
    if not all(len(arg) == len(example[0]) >= 1 and (not arg.is_floating_point() or bool(torch.isfinite(arg).all()))
               for arg in example):
        raise bad("example", "a list of aligned tensors of shape [N, ...], all finite")
    if not (type(state["data_size"]) is int and (whole or state["data_size"] >= len(example[0]))):
        raise bad("data_size", "an int, the number of training points, at least the example's rows")
    if "draws" in state:
        _check_draws(state["draws"], bad)
    watched = state.get("validation", {"history": [], "best_epoch": None, "stopped": None})
    if not (isinstance(watched, dict) and set(watched) == {"history", "best_epoch", "stopped"}
            and isinstance(watched["history"], list) and all(type(v) is float for v in watched["history"])
            and (watched["best_epoch"] is None or type(watched["best_epoch"]) is int
                 and 1 <= watched["best_epoch"] <= len(watched["history"]))
            and (watched["stopped"] is None or isinstance(watched["stopped"], str))):
        raise bad("validation", "the validation loss per epoch (floats), the best epoch (from 1, or None) and why the "
                                "fit stopped early (None or words)")
    if "energy" in state:
        _check_energy(state["energy"], example[0][0].numel(), bad)


def _check_draws(draws: Any, bad: Callable[[str, str], ValueError]) -> None:
    """A sampler's draws: finite tensors of S draws each, S a multiple of the number of chains."""
    if not (isinstance(draws, dict) and set(draws) == {"samples", "chains", "sample_stats"}
            and type(draws["chains"]) is int and draws["chains"] >= 1):
        raise bad("draws", "a mapping of 'samples', 'chains' (a positive int) and 'sample_stats'")
    for field in ("samples", "sample_stats"):
        entries = draws[field]
        if not (isinstance(entries, dict) and (entries or field == "sample_stats") and all(
                isinstance(k, str) and isinstance(v, torch.Tensor) and v.dim() >= 1
                and (not v.is_floating_point() or bool(torch.isfinite(v).all())) for k, v in entries.items())):
            raise bad(f"draws.{field}", "a mapping of names to finite tensors, one row per draw")
    sizes = {len(v) for entries in (draws["samples"], draws["sample_stats"]) for v in entries.values()}
    if len(sizes) != 1 or sizes.pop() % draws["chains"]:
        raise bad("draws", "the same number of draws for every site and statistic, a multiple of 'chains'")


def _check_energy(energy: Any, size: int, bad: Callable[[str, str], ValueError]) -> None:
    """An energy model's record: the mean [D] and covariance [D, D] of its data (D the values of a point), finite
    float64, their count, and optionally an estimate of log Z with its settings and its chains' log weights."""
    if not (isinstance(energy, dict) and {"mean", "covariance", "count"} <= set(energy)
            <= {"mean", "covariance", "count", "log_z"}):
        raise bad("energy", "a mapping of 'mean', 'covariance', 'count' and optionally 'log_z'")
    for field, shape in (("mean", (size,)), ("covariance", (size, size))):
        value = energy[field]
        if not (isinstance(value, torch.Tensor) and value.dtype == torch.float64 and tuple(value.shape) == shape
                and bool(torch.isfinite(value).all())):
            raise bad(f"energy.{field}", f"a finite float64 tensor of shape {list(shape)}")
    if not (type(energy["count"]) is int and energy["count"] >= 1):
        raise bad("energy.count", "an int >= 1, the points the moments were computed from")
    if "log_z" not in energy:
        return
    log_z = energy["log_z"]
    numbers = ("estimate", "standard_error", "ess", "acceptance")
    if not (isinstance(log_z, dict) and set(log_z) == {"settings", "log_weights", *numbers}
            and all(type(log_z[name]) is float for name in numbers)
            and all(abs(log_z[name]) < float("inf") for name in numbers[:3])
            and isinstance(log_z["settings"], dict) and set(log_z["settings"]) == LOG_Z_SETTINGS
            and all(_plain(v) for v in log_z["settings"].values())
            and isinstance(log_z["log_weights"], torch.Tensor) and log_z["log_weights"].dim() == 1
            and log_z["log_weights"].is_floating_point() and bool(torch.isfinite(log_z["log_weights"]).all())):
        raise bad("energy.log_z", "a mapping of 'settings' (temperatures, chains, steps, step_size), finite floats "
                                  "'estimate', 'standard_error', 'ess', a float 'acceptance' and the 'log_weights'")


def _plain(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` is a number, string, bool, None, or a short list/tuple of them, or a short mapping of names
    to them (the settings of a part, such as ``ContrastiveDivergence``'s ``sampler``)."""
    if isinstance(value, (bool, int, float, str, type(None))):
        return True
    if isinstance(value, dict):
        return depth < 3 and len(value) <= 1024 and all(
            isinstance(k, str) and k.isidentifier() and _plain(v, depth + 1) for k, v in value.items())
    return isinstance(value, (list, tuple)) and depth < 3 and len(value) <= 1024 and all(
        _plain(v, depth + 1) for v in value)


def check_builds(cls: type, config: dict[str, Any], weights: dict[str, torch.Tensor], path: str,
                 budget: int) -> None:
    """Build ``cls(**config)`` on the meta device (no memory): it must build, and hold the parameters saved.

    A crafted config (huge layer widths) is refused here, before ``load`` would allocate the model for real. A
    constructor that cannot run on the meta device is measured by the saved parameters instead.
    """
    saved = sum(t.numel() for t in weights.values())
    try:
        with torch.device("meta"):
            size = sum(t.numel() for t in cls(**config).state_dict().values())
    except (RuntimeError, NotImplementedError):  # a constructor that computes on its tensors (a MADE's masks, a
        size = saved                             # flow's permutations) cannot run on meta: the saved size stands in,
    except Exception as error:  # noqa: BLE001   # and load_state_dict then checks the model built for real
        raise ValueError(f"{path}: field 'model.config' does not build {cls.__name__}: {type(error).__name__}: "
                         f"{error}") from None
    if size > budget:
        raise ValueError(f"{path}: field 'model.config' builds {size} parameters, over the budget of {budget} "
                         f"(ppgen.utils.budget.BUDGET.checkpoint_parameters)")
    if size != saved:
        raise ValueError(f"{path}: field 'model.config' builds {size} parameters but field 'state_dict' holds "
                         f"{saved}: the file is damaged or crafted")


def build_recorded(cls: type, config: dict[str, Any], path: str, field: str) -> Any:
    """``cls(**config)``, where a config that the class refuses is a ``ValueError`` naming the file and field."""
    try:
        return cls(**config)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: field '{field}.config' does not build {cls.__name__}: {error}") from None


def differences(recorded: dict[str, Any], config: dict[str, Any]) -> list[str]:
    """The settings in which ``config`` differs from a run's ``recorded`` configuration, named as ``fit``'s
    arguments: ``model`` for the program's class and keyword arguments, ``run_config['key']`` for the caller's own."""
    recorded = current_config(recorded)
    names = {"model_config": "model", "extra": "run_config", "world_size": "distributed (its number of processes)"}
    differ = []
    for key in sorted(set(config) | set(recorded)):
        mine, theirs = config.get(key), recorded.get(key)
        if mine == theirs:
            continue
        if key == "extra" and isinstance(mine, dict) and isinstance(theirs, dict):
            differ += [f"run_config[{k!r}]" for k in sorted(set(mine) | set(theirs)) if mine.get(k) != theirs.get(k)]
        elif names.get(key, key) not in differ:
            differ.append(names.get(key, key))
    return sorted(differ)


def check_same_config(path: Path, recorded: dict[str, Any], config: dict[str, Any]) -> None:
    """A ``ValueError`` naming the settings in which ``config`` differs from the run's ``recorded`` one."""
    differ = differences(recorded, config)
    if differ:
        raise ValueError(f"resume: the run in {path} was started with other settings (it differs in "
                         f"{', '.join(differ)}): give the same model, data and arguments, or a new folder")
