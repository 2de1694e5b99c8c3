"""A run folder written as one unit: a manifest of the run's configuration and of a digest of every file.

A run folder holds ``manifest.json`` beside the files of one run (``checkpoint.pt``, ``fit.pt``,
``metrics.json``, pictures). Every file is written atomically (:func:`ppgen.run.checkpoint.atomic_write`) and
its SHA-256 digest recorded in the manifest, itself rewritten atomically after each file, so that a reader
can tell a file of this run from a file an older run or an interrupted one left behind, and refuse the mixture.
An existing run is replaced only when asked (``overwrite``) or continued (``resume``).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch

from ppgen.run.checkpoint import TMP_PREFIX, atomic_write, current_config

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "ppgen.run/1"
#: the resumable state of a run: model, optimiser, RNG, data order, counters, history.
CHECKPOINT = "checkpoint.pt"
#: the fitted model, as :meth:`ppgen.Fit.save` writes it.
FIT = "fit.pt"


def digest(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, in hex."""
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def _check_no_link(path: Path, what: str) -> None:
    if path.is_symlink():
        raise ValueError(f"{what} {path} is a symbolic link: ppgen writes runs only to real paths, never through "
                         f"a link (remove it, or give the path it points to)")


def _check_same_config(path: Path, recorded: dict[str, Any], config: dict[str, Any]) -> None:
    """A ``ValueError`` naming the settings in which ``config`` differs from the run's ``recorded`` one."""
    recorded = current_config(recorded)
    differ = sorted(k for k in set(config) | set(recorded) if config.get(k) != recorded.get(k))
    if differ:
        raise ValueError(f"resume: the run in {path} was started with another configuration (it differs in "
                         f"{', '.join(differ)}): give the same model, data and arguments, or a new folder")


class RunFolder:
    """The run folder at ``path``; :meth:`start` makes or reopens one, :meth:`open` reads a finished one.

    Arguments:
        path: the folder.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    @property
    def manifest_path(self) -> Path:
        """Where the manifest lives."""
        return self.path / MANIFEST

    @classmethod
    def start(cls, path: str | os.PathLike, config: dict[str, Any], *, overwrite: bool = False,
              resume: bool = False) -> RunFolder:
        """Make the folder of a new run, or reopen the run there to continue it.

        Arguments:
            path: the folder.
            config: the run's configuration (JSON-able); a resumed run must have been started with the same.
            overwrite: replace a run already in the folder (only the files its manifest lists are removed).
            resume: continue the run in the folder, whose configuration must be ``config``; with no run there,
                start one (so that one command both starts a job and continues it after a kill).

        Raises:
            FileExistsError: a run is there and neither ``overwrite`` nor ``resume`` was given.
            ValueError: a symbolic link at ``path``, both flags at once, or a run to resume with another config.
            NotADirectoryError: ``path`` is a file.
        """
        run = cls(path)
        run.check_writable(overwrite=overwrite, resume=resume)
        previous = run.read_manifest() if run.manifest_path.exists() else None
        if previous is not None and resume:
            _check_same_config(run.path, previous["config"], config)
            run.remove_stale()
            return run
        if previous is not None:  # overwrite: what the old run wrote goes, nothing else
            for name in [*previous["files"], CHECKPOINT]:
                (run.path / name).unlink(missing_ok=True)
        run.path.mkdir(parents=True, exist_ok=True)
        run.remove_stale()
        run._write_manifest({"format": MANIFEST_FORMAT, "config": config, "complete": False, "files": {}})
        return run

    def check_writable(self, *, overwrite: bool = False, resume: bool = False, label: str = "out") -> None:
        """Refuse, before any work, a folder that cannot hold a run or holds one that must not be replaced;
        ``label`` names the folder in the messages (``out`` for ``fit``, ``--out`` for the CLI)."""
        if overwrite and resume:
            raise ValueError("overwrite and resume exclude each other: replace the run, or continue it")
        _check_no_link(self.path, label)
        existing = next(p for p in (self.path, *self.path.absolute().parents) if p.exists())
        if not existing.is_dir():
            raise NotADirectoryError(f"{label} {self.path}: {existing} exists and is not a folder")
        try:  # os.access says yes to root everywhere, /proc too: only a file made and removed tells
            with tempfile.TemporaryFile(dir=existing, prefix=TMP_PREFIX):
                pass
        except OSError as error:
            raise PermissionError(f"{label} {self.path}: {existing} is not writable ({error.strerror})") from None
        has_run = self.manifest_path.exists() or (self.path / FIT).exists() or (self.path / CHECKPOINT).exists()
        if has_run and not (overwrite or resume):
            raise FileExistsError(f"{self.path} holds a run already: pass overwrite (--overwrite) to replace it, "
                                  f"resume (--resume) to continue it, or choose another folder")
        if has_run and resume and not self.manifest_path.exists():
            raise ValueError(f"resume: {self.path} holds a run without {MANIFEST}, which cannot be continued")

    def remove_stale(self) -> list[str]:
        """Delete the temporary files that killed writes left in the folder; returns their names."""
        stale = sorted(p.name for p in self.path.glob(TMP_PREFIX + "*") if p.is_file() or p.is_symlink())
        for name in stale:
            (self.path / name).unlink(missing_ok=True)
        return stale

    def read_manifest(self) -> dict[str, Any]:
        """The manifest, checked field by field; a ``ValueError`` naming the file and the field otherwise."""
        path = self.manifest_path
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: {self.path} is not a run folder written by ppgen")
        try:
            manifest = json.loads(path.read_text())
        except ValueError as error:
            raise ValueError(f"{path} is not valid JSON ({error})") from None
        if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"{path}: field 'format' must be {MANIFEST_FORMAT!r}: not a ppgen run manifest")
        expected = {"config": dict, "complete": bool, "files": dict}
        for field, kind in expected.items():
            if not isinstance(manifest.get(field), kind):
                raise ValueError(f"{path}: field {field!r} must be a {kind.__name__}, got "
                                 f"{type(manifest.get(field)).__name__}")
        for name, sha in manifest["files"].items():
            if Path(name).name != name or name in ("", ".", "..") or not isinstance(sha, str) or len(sha) != 64:
                raise ValueError(f"{path}: field 'files' holds a bad entry {name!r}: {sha!r}")
        return manifest

    def _write_manifest(self, manifest: dict[str, Any]) -> None:
        text = json.dumps(manifest, indent=2, sort_keys=True, allow_nan=False) + "\n"
        atomic_write(self.manifest_path, lambda f: f.write(text.encode()))

    def write(self, name: str, write: Callable[[IO[bytes]], None]) -> Path:
        """Write the file ``name`` of the run atomically and record its digest in the manifest."""
        target = self.path / name
        _check_no_link(target, "the output")
        atomic_write(target, write)
        self.record(name)
        return target

    def record(self, name: str) -> None:
        """Record in the manifest the digest of the file ``name``, just written (atomically) into the folder."""
        manifest = self.read_manifest()
        manifest["files"][name] = digest(self.path / name)
        self._write_manifest(manifest)

    def forget(self, name: str) -> None:
        """Remove the file ``name`` of the run, and its entry in the manifest."""
        (self.path / name).unlink(missing_ok=True)
        manifest = self.read_manifest()
        if manifest["files"].pop(name, None) is not None:
            self._write_manifest(manifest)

    def mark_complete(self) -> None:
        """Record that every file of the run is written."""
        manifest = self.read_manifest()
        manifest["complete"] = True
        self._write_manifest(manifest)

    def verify(self, *names: str) -> dict[str, Any]:
        """Check that each file ``names`` is the one this run's manifest records; returns the manifest.

        Raises:
            FileNotFoundError: a file or the manifest is missing.
            ValueError: a file's digest is not the manifest's: the folder mixes files of different runs, or a
                file was changed or damaged after the run wrote it.
        """
        manifest = self.read_manifest()
        for name in names:
            path = self.path / name
            if not path.is_file():
                raise FileNotFoundError(f"{path} not found: {self.path} is not a finished run")
            if name not in manifest["files"]:
                raise ValueError(f"{path} is not listed in {self.manifest_path}: it was not written by this run")
            if digest(path) != manifest["files"][name]:
                raise ValueError(f"{path} does not belong to the run in {self.path}: its digest is not the one "
                                 f"{MANIFEST} records (files of different runs are mixed there, or it was changed); "
                                 f"rerun `ppgen fit --overwrite`")
        return manifest


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
        "data": x.describe() if hasattr(x, "describe") else _describe(x),
        **{name: value if isinstance(value, (int, float, str, type(None))) else repr(value)
           for name, value in settings.items()},
        "extra": extra,
    }
    try:
        return json.loads(json.dumps(config, default=repr, allow_nan=False))
    except ValueError as error:  # NaN or a circular structure in run_config
        raise ValueError(f"run_config must be plain JSON: {error}") from None


def _describe(x: Any) -> dict[str, Any]:
    """In-memory data as a manifest records them: the shape and dtype of each input, and a digest of them all."""
    args = [arg.detach().cpu().contiguous() for arg in (x.args if hasattr(x, "args") else (x,))]
    digest = hashlib.sha256()
    for arg in args:
        digest.update(arg.view(-1).view(torch.uint8).numpy().tobytes())
    return {"shape": [list(arg.shape) for arg in args], "dtype": [str(arg.dtype) for arg in args],
            "sha256": digest.hexdigest()}


def open_run(out: str | os.PathLike | None, config: dict[str, Any], module: Any, n: int, *, overwrite: bool,
             resume: bool) -> tuple[RunFolder | None, dict[str, Any] | None]:
    """Check, before anything changes, that ``out`` can take the run; read and check its checkpoint on resume.

    Returns:
        The run folder (not made yet) or ``None`` without ``out``, and the checked checkpoint to resume from
        or ``None``.
    """
    if out is None:
        return None, None
    run = RunFolder(out)
    run.check_writable(overwrite=overwrite, resume=resume)
    if not resume or not (run.path / CHECKPOINT).is_file():
        return run, None
    from ppgen.run.state import load_state  # torch-heavy; only a resume needs it

    previous = run.read_manifest()
    _check_same_config(run.path, previous["config"], config)
    # No digest check here: a kill between the checkpoint's rename and the manifest's update leaves a good
    # checkpoint that the manifest does not know yet. The checkpoint records the run's configuration itself,
    # and load_state checks it, with every other field.
    return run, load_state(run.path / CHECKPOINT, module, n, config)
