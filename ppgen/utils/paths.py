"""Files a user names for ppgen to write: checked before any work, and named in every error about them.

A file is written through a temporary file beside it (see :func:`ppgen.run.checkpoint.atomic_write`), so an
error from the operating system would name that temporary file, which the user never chose: :func:`naming_path`
puts the user's path in its place.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def check_output_file(path: Any, name: str, example: str = "fit.pt") -> Path:
    """``path`` as a :class:`~pathlib.Path` of a file that can be written, or the error that says why not, naming
    ``name`` (the user's argument: ``path``, ``--out``) and the user's path.

    The first folder on the way to ``path`` that exists must be a folder and take a new file: a file is made there
    and removed (anonymous where the platform allows), since ``os.access`` says yes to root everywhere, ``/proc``
    included. ``example`` is a file name to suggest where ``path`` is a folder.

    Raises:
        TypeError: ``path`` is not a ``str`` or ``os.PathLike``.
        ValueError: ``path`` is empty.
        IsADirectoryError: ``path`` is a folder.
        NotADirectoryError: a parent of ``path`` is a file.
        PermissionError: the folder that would hold it cannot take a new file.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path (str or os.PathLike) of a file, got {type(path).__name__}")
    if os.fspath(path) == "":
        raise ValueError(f"{name} is empty: give the path of the file to write, e.g. {example!r}")
    out = Path(path)
    if out.is_dir():
        raise IsADirectoryError(f"{name} {out} is a folder: give the file's name, e.g. {out / example}")
    existing = next(folder for folder in out.absolute().parents if folder.exists())
    if not existing.is_dir():
        raise NotADirectoryError(f"{name} {out}: its parent {existing} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        raise PermissionError(f"{name} {out}: {existing} is not writable ({error.strerror})") from None
    return out


@contextlib.contextmanager
def naming_path(path: Any, name: str) -> Iterator[None]:
    """Inside the block, an ``OSError`` of the operating system (a full disk, a file-size limit, a folder gone
    read-only) is raised again, of the same type, naming ``name`` and the user's ``path`` instead of the temporary
    file it was raised about."""
    try:
        yield
    except OSError as error:
        if error.errno is None:  # raised by ppgen itself, with its own message about the user's path
            raise
        raise type(error)(error.errno, f"{name} {os.fspath(path)} could not be written: {error.strerror}") from None
