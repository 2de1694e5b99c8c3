"""Opening a fit's run folder: the configuration its manifest records, how another fit's differs from it, and the
checks made before a run is started, replaced or resumed (the folder itself is :mod:`ppgen.run.folder`)."""

from __future__ import annotations

import hashlib
import json
import os
from typing import TYPE_CHECKING, Any

import torch

from ppgen.run.checkpoint import check_same_config
from ppgen.run.folder import CHECKPOINT, RunFolder

if TYPE_CHECKING:
    from ppgen.run.state import Expected


def fit_config(module: Any, inference: Any, x: Any, settings: dict[str, Any],
               extra: dict[str, Any] | None) -> dict[str, Any]:
    """The configuration of a fit as the manifest records it (plain JSON): a resumed run must repeat it.

    Arguments:
        module: the program; its class and, for a :class:`ppgen.Model`, the arguments it was built with.
        inference: the backend.
        x: the data (a :class:`~ppgen.program.inputs.Batch` of its inputs), recorded by shapes, dtypes and digest;
            or a :class:`~ppgen.training.streaming.Stream`, recorded as its ``describe()`` says (a stream is not
            hashed whole).
        settings: ``fit``'s other arguments.
        extra: the caller's own settings (the CLI's), or ``None``.
    """
    config = {
        "model": f"{type(module).__module__}:{type(module).__qualname__}",
        "model_config": getattr(module, "config", None),
        "inference": repr(inference),
        "data": x.describe() if hasattr(x, "describe") else describe(x),
        **{name: value if isinstance(value, (int, float, str, dict, type(None))) else repr(value)
           for name, value in settings.items()},
        "extra": extra,
    }
    try:
        return json.loads(json.dumps(config, default=repr, allow_nan=False))
    except ValueError as error:  # NaN or a circular structure in run_config
        raise ValueError(f"run_config must be plain JSON: {error}") from None


def describe(x: Any) -> dict[str, Any]:
    """In-memory data as a manifest records them: the shape and dtype of each input, and a digest of them all."""
    args = [arg.detach().cpu().contiguous() for arg in (x.args if hasattr(x, "args") else (x,))]
    digest = hashlib.sha256()
    for arg in args:
        digest.update(arg.view(-1).view(torch.uint8).numpy().tobytes())
    return {"shape": [list(arg.shape) for arg in args], "dtype": [str(arg.dtype) for arg in args],
            "sha256": digest.hexdigest()}


def resume_source(out: str | os.PathLike) -> RunFolder:
    """The run that a resume of ``out`` continues: an unfinished replacement of the run in ``out`` (its staging
    folder), or the run in ``out`` itself."""
    staging = RunFolder(out).staging()
    return staging if staging.manifest_path.is_file() else RunFolder(out)


def open_run(out: str | os.PathLike | None, config: dict[str, Any], module: Any, n: int, *, overwrite: bool,
             resume: bool, expected: Expected | None = None) -> tuple[RunFolder | None, dict[str, Any] | None]:
    """Check, before anything changes, that ``out`` can take the run; on resume, check every file of the run against
    the manifest's digests, then the checkpoint's contents against the run (:func:`ppgen.run.state.load_state`).

    Arguments:
        expected: what the resumed state must fit besides ``module`` and ``n`` (given where ``resume``).

    Returns:
        The run folder (not made yet) or ``None`` without ``out``, and the checked checkpoint to resume from
        or ``None``.
    """
    if out is None:
        return None, None
    run = RunFolder(out)
    run.check_writable(overwrite=overwrite, resume=resume)
    source = resume_source(out)
    if not resume or not (source.path / CHECKPOINT).is_file():
        return run, None
    from ppgen.run.state import load_state  # torch-heavy; only a resume needs it

    check_same_config(source.path, source.read_manifest()["config"], config)
    source.verify_all()
    return run, load_state(source.path / CHECKPOINT, module, n, config, expected)
