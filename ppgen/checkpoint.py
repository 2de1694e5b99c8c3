"""Checkpoint files: written atomically, read without executing code, classes found only among those imported."""

from __future__ import annotations

import importlib
import os
import tempfile
import time
from collections.abc import Callable
from typing import IO, Any

import torch

CHECKPOINT_FORMAT = "ppgen.fit/1"
#: how the names of temporary files begin; a run folder removes those that killed writes left.
TMP_PREFIX = ".tmp-"
#: seconds to wait before each rename, read only by the tests that kill a process mid-write.
_TEST_DELAY = "PPGEN_TEST_WRITE_DELAY"
#: what a checkpoint of that format holds besides its format tag.
CHECKPOINT_KEYS = frozenset({"model", "state_dict", "inference", "history", "example"})


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write`` on a temporary file beside ``path``, flush it to disk, then rename it over ``path``.

    The rename is atomic, so an interrupted write leaves either the old file or the new one, never a torn one;
    the folder is flushed after it, so that the rename itself survives a crash. A symbolic link at ``path`` is
    replaced, never written through. The file gets the permissions ``open`` would give it (0o666 less the umask), not ``mkstemp``'s private 0o600.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a folder: give the path of a file to write")
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=TMP_PREFIX, suffix=os.path.basename(path))
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if os.environ.get(_TEST_DELAY):
            time.sleep(float(os.environ[_TEST_DELAY]))
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    _fsync_folder(folder)


def _fsync_folder(folder: str) -> None:
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
