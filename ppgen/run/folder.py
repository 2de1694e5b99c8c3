"""A run folder written as one unit: a manifest of the run's configuration and of a digest of every file.

A run folder holds ``manifest.json`` beside the files of one run (``checkpoint.pt``, ``fit.pt``,
``metrics.json``, pictures). Every file is written atomically (:func:`ppgen.run.checkpoint.atomic_write`) and
its SHA-256 digest recorded in the manifest, itself rewritten atomically after each file, so that a reader
can tell a file of this run from a file an older run or an interrupted one left behind, and refuse the mixture.
The digest of a file about to be renamed into place is recorded first, as pending, so that a kill between the
rename and the record leaves a file the manifest still vouches for.

Nothing else in the folder is ever touched: ppgen removes only the files its manifest records, and the
temporary files whose names carry the run's own prefix (:func:`ppgen.run.checkpoint.run_prefix`). An existing run
is continued only when asked (``resume``), and replaced only when asked (``overwrite``): the new run is written in
a staging folder beside it, ``.NAME.ppgen-replacement``, and takes the old one's place when it is complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


from ppgen.run.checkpoint import (TMP_PREFIX, atomic_write, check_same_config, fsync_folder, register_run_folder,
                                  run_prefix)

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "ppgen.run/1"
#: the resumable state of a run: model, optimiser, RNG, data order, counters, history.
CHECKPOINT = "checkpoint.pt"
#: the fitted model, as :meth:`ppgen.Fit.save` writes it.
FIT = "fit.pt"
#: how the staging folder of a run that replaces another ends, after a dot and the run folder's name.
STAGING_SUFFIX = ".ppgen-replacement"


def digest(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, in hex."""
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def check_run_path(out: Any) -> None:
    """A ``ValueError`` for an ``out`` that names no folder (an empty path would write into the working folder)."""
    if isinstance(out, (str, os.PathLike)) and not os.fspath(out):
        raise ValueError("out must name a folder for the run, got an empty path: give a path such as runs/demo")


def folder_given(path: str | os.PathLike) -> str:
    """What to say when a folder is given where a fit's file was expected; a run folder's fit is its ``fit.pt``."""
    where = Path(path)
    if (where / MANIFEST).is_file() or (where / FIT).is_file():
        return f"{where} is a folder: it is a run folder, whose fit is {where / FIT}; load that file"
    return f"{where} is a folder: give the path of a file written by fit.save"


def staging_path(path: str | os.PathLike) -> Path:
    """Where the run that replaces the run in ``path`` is written until it is complete: a folder beside it."""
    absolute = Path(os.path.abspath(path))
    return absolute.parent / f".{absolute.name}{STAGING_SUFFIX}"


def _check_no_link(path: Path, what: str) -> None:
    if path.is_symlink():
        raise ValueError(f"{what} {path} is a symbolic link: ppgen writes runs only to real paths, never through "
                         f"a link (remove it, or give the path it points to)")


def _check_can_write(folder: Path, message: str) -> None:
    """A ``PermissionError`` saying ``message`` unless a file can be made in ``folder``."""
    try:  # os.access says yes to root everywhere, /proc too: only a file made and removed tells
        with tempfile.TemporaryFile(dir=folder, prefix=TMP_PREFIX):
            pass
    except OSError as error:
        raise PermissionError(f"{message} ({error.strerror})") from None


class RunFolder:
    """The run folder at ``path``; :meth:`start` makes or reopens one, :meth:`verify` checks a finished one's files.

    Arguments:
        path: the folder written.
        target: where the run goes when it is complete: ``path`` itself, or, for a run written in a staging
            folder, the folder of the run it replaces.

    Attributes:
        finished: the run was complete when :meth:`start` reopened it (nothing is left to write).
    """

    def __init__(self, path: str | os.PathLike, target: str | os.PathLike | None = None) -> None:
        self.path = Path(path)
        self.target = Path(target) if target is not None else self.path
        self.finished = False

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    @property
    def manifest_path(self) -> Path:
        """Where the manifest lives."""
        return self.path / MANIFEST

    def staging(self) -> RunFolder:
        """The staging folder of a run that replaces this one."""
        return RunFolder(staging_path(self.path), target=self.path)

    @classmethod
    def start(cls, path: str | os.PathLike, config: dict[str, Any], *, overwrite: bool = False,
              resume: bool = False) -> RunFolder:
        """Make the folder of a new run, or reopen the run there to continue it.

        A replacement (``overwrite``) is made in :meth:`staging`: the old run stays whole until :meth:`mark_complete`
        puts the new one in its place. A replacement found complete (its move stopped half way) is moved first.

        Arguments:
            path: the folder.
            config: the run's configuration (JSON-able); a resumed run must have been started with the same.
            overwrite: replace a run already in the folder (only the files its manifest lists go, when the new run is
                complete).
            resume: continue the run in the folder (or its unfinished replacement), whose configuration must be
                ``config``; with no run there, start one (so that one command both starts a job and continues it
                after a kill).

        Raises:
            FileExistsError: a run is there and neither ``overwrite`` nor ``resume`` was given.
            ValueError: a symbolic link at ``path``, both flags at once, or a run to resume with another config.
            NotADirectoryError: ``path`` is a file.
        """
        run = cls(path)
        run.check_writable(overwrite=overwrite, resume=resume)
        staging = run.staging()
        if staging.manifest_path.is_file() and staging.read_manifest()["complete"]:
            staging.commit()  # a replacement killed while it took the old run's place: finish the move
        if resume and staging.manifest_path.is_file():
            return staging.reopen(config)
        if resume and run.holds_run():
            return run.reopen(config)
        if overwrite:
            staging.discard()  # a replacement that did not finish: it starts again
        if overwrite and run.holds_run():
            staging.path.mkdir()
            staging.begin(config)
            return staging
        run.path.mkdir(parents=True, exist_ok=True)
        run.begin(config)
        return run

    def begin(self, config: dict[str, Any]) -> None:
        """Start a new run in the folder: the temporaries of a run that left no file are removed, and a manifest of
        ``config`` that records no file yet is written."""
        previous = self.read_manifest()["config"] if self.manifest_path.is_file() else None
        self.remove_stale(config, *([] if previous is None else [previous]))
        register_run_folder(self.path, run_prefix(config))
        self._write_manifest({"format": MANIFEST_FORMAT, "config": config, "complete": False, "files": {}})

    def reopen(self, config: dict[str, Any]) -> RunFolder:
        """Continue the run in the folder, started with ``config``: the file whose rename a kill left unrecorded
        is recorded, the temporaries of killed writes removed. Returns the folder."""
        manifest = self.read_manifest()
        check_same_config(self.path, manifest["config"], config)
        self.remove_stale(manifest["config"])
        register_run_folder(self.path, run_prefix(manifest["config"]))
        for name, sha in manifest.get("pending", {}).items():
            if (self.path / name).is_file() and digest(self.path / name) == sha:
                manifest["files"][name] = sha
        if manifest.pop("pending", None):
            self._write_manifest(manifest)
        self.finished = manifest["complete"] and self.path == self.target
        return self

    def holds_run(self) -> bool:
        """Whether the folder holds a run: a manifest that records a file (or cannot be read), or a fit or checkpoint
        (a manifest that records nothing is a run stopped before its first file, which a new one may take over)."""
        if (self.path / FIT).exists() or (self.path / CHECKPOINT).exists():
            return True
        if not self.manifest_path.exists():
            return False
        try:
            manifest = self.read_manifest()
        except (OSError, ValueError):
            return True
        return bool(manifest["files"] or manifest.get("pending"))

    def check_writable(self, *, overwrite: bool = False, resume: bool = False, label: str = "out") -> None:
        """Refuse, before any work, a folder that cannot hold a run or holds one that must not be replaced;
        ``label`` names the folder in the messages (``out`` for ``fit``, ``--out`` for the CLI)."""
        if overwrite and resume:
            raise ValueError("overwrite and resume exclude each other: replace the run, or continue it")
        _check_no_link(self.path, label)
        existing = next(p for p in (self.path, *self.path.absolute().parents) if p.exists())
        if not existing.is_dir():
            raise NotADirectoryError(f"{label} {self.path}: {existing} exists and is not a folder")
        _check_can_write(existing, f"{label} {self.path}: {existing} is not writable")
        has_run = self.holds_run()
        if has_run and not (overwrite or resume):
            raise FileExistsError(f"{self.path} holds a run already: pass overwrite (--overwrite) to replace it, "
                                  f"resume (--resume) to continue it, or choose another folder")
        if has_run and resume and not self.manifest_path.exists():
            raise ValueError(f"resume: {self.path} holds a run without {MANIFEST}, which cannot be continued")
        if overwrite or resume:
            self.staging().check_staging(label)
        if overwrite and has_run:
            where = staging_path(self.path)
            _check_can_write(where.parent, f"{label} {self.path}: its replacement is written beside it, in {where}, "
                                           f"but {where.parent} is not writable")

    def check_staging(self, label: str) -> None:
        """A staging folder must be ppgen's own: a run's manifest in it, or nothing but ppgen's temporaries."""
        if not (self.path.exists() or self.path.is_symlink()):
            return
        _check_no_link(self.path, f"{label}'s staging folder")
        if not self.path.is_dir():
            raise FileExistsError(f"{label} {self.target}: {self.path} is in the way of the run that replaces it and "
                                  f"is not a folder of ppgen's: move it away")
        if self.manifest_path.is_file():
            self.read_manifest()
        elif any(not p.name.startswith(TMP_PREFIX + "ppgen-") for p in self.path.iterdir()):
            raise FileExistsError(f"{label} {self.target}: {self.path}, where a run that replaces it is written, "
                                  f"holds files that ppgen did not write: move them away")

    def discard(self) -> None:
        """Remove a staging folder's unfinished run: the files its manifest records, its temporaries, the folder."""
        if not self.path.is_dir():
            return
        if self.manifest_path.is_file():
            manifest = self.read_manifest()
            for name in [*manifest["files"], *manifest.get("pending", {})]:
                (self.path / name).unlink(missing_ok=True)
            self.remove_stale(manifest["config"])
            self.manifest_path.unlink()
        for leftover in self.path.glob(TMP_PREFIX + "ppgen-*"):  # a kill before the first manifest
            leftover.unlink()
        try:
            self.path.rmdir()
        except OSError:
            raise FileExistsError(f"{self.path} holds files that ppgen did not write: move them away") from None

    def commit(self) -> None:
        """Put the complete run in the staging folder in the place of the run it replaces: each of its files is
        renamed over the old run's, the old run's other files are removed, then the manifest is renamed, last.

        A kill half way leaves the staging folder's manifest, complete: :meth:`start` finishes the move.
        """
        old = RunFolder(self.target)
        manifest = self.read_manifest()
        try:
            previous = old.read_manifest()
        except (OSError, ValueError):  # none, or one that cannot be read: the old run's files are not known
            previous = {"config": None, "files": {}}
        for name in manifest["files"]:
            if (self.path / name).is_file():
                os.replace(self.path / name, self.target / name)
        for name in {*previous["files"], *previous.get("pending", {})} - set(manifest["files"]):
            (self.target / name).unlink(missing_ok=True)
        old.remove_stale(*([] if previous["config"] is None else [previous["config"]]))
        register_run_folder(self.target, run_prefix(manifest["config"]))
        os.replace(self.manifest_path, old.manifest_path)
        fsync_folder(self.target)
        self.discard()
        self.path = self.target

    def remove_stale(self, *configs: Any) -> list[str]:
        """Delete the temporary files that killed writes of the runs with these configurations left in the folder
        (their names begin with the runs' :func:`~ppgen.run.checkpoint.run_prefix`); returns their names."""
        prefixes = tuple(run_prefix(config) for config in configs)
        stale = sorted(p.name for p in self.path.glob(TMP_PREFIX + "*")
                       if p.name.startswith(prefixes) and (p.is_file() or p.is_symlink()))
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
        if not isinstance(manifest.get("pending", {}), dict):
            raise ValueError(f"{path}: field 'pending' must be a dict, got {type(manifest['pending']).__name__}")
        seconds = manifest.get("seconds", 0.0)
        if type(seconds) not in (int, float) or not 0 <= seconds < float("inf"):
            raise ValueError(f"{path}: field 'seconds' must be a number of seconds >= 0, got {seconds!r}")
        for field in ("files", "pending"):
            for name, sha in manifest.get(field, {}).items():
                if Path(name).name != name or name in ("", ".", "..", MANIFEST) or not isinstance(sha, str) \
                        or len(sha) != 64:
                    raise ValueError(f"{path}: field {field!r} holds a bad entry {name!r}: {sha!r}")
        return manifest

    def _write_manifest(self, manifest: dict[str, Any]) -> None:
        text = json.dumps(manifest, indent=2, sort_keys=True, allow_nan=False) + "\n"
        atomic_write(self.manifest_path, lambda f: f.write(text.encode()))

    def write(self, name: str, write: Callable[[IO[bytes]], None], *, seconds: float | None = None) -> Path:
        """Write the file ``name`` of the run atomically and record its digest in the manifest: as pending before the
        file is renamed into place, as the file's after; with ``seconds``, the time the run has trained so far, in
        all its processes (:meth:`seconds`), recorded with the pending digest."""
        target = self.path / name
        _check_no_link(target, "the output")
        register_run_folder(self.path, run_prefix(self.read_manifest()["config"]))

        def expect(tmp: str) -> None:
            manifest = self.read_manifest()
            manifest.setdefault("pending", {})[name] = digest(tmp)
            if seconds is not None:
                manifest["seconds"] = seconds
            self._write_manifest(manifest)

        atomic_write(target, write, before_rename=expect)
        self.record(name)
        return target

    def seconds(self) -> float:
        """The seconds the run has trained so far, in all the processes that wrote its checkpoints (0 before any)."""
        return float(self.read_manifest().get("seconds", 0.0))

    def record(self, name: str) -> None:
        """Record in the manifest the digest of the file ``name``, just written (atomically) into the folder."""
        manifest = self.read_manifest()
        manifest["files"][name] = digest(self.path / name)
        if manifest.get("pending", {}).pop(name, None) is not None and not manifest["pending"]:
            del manifest["pending"]
        self._write_manifest(manifest)

    def forget(self, name: str) -> None:
        """Remove the file ``name`` of the run, and its entry in the manifest (the entry first, so that a kill between
        the two leaves a file no longer recorded, never a record of a missing file)."""
        manifest = self.read_manifest()
        if manifest["files"].pop(name, None) is not None:
            self._write_manifest(manifest)
        (self.path / name).unlink(missing_ok=True)

    def mark_complete(self) -> None:
        """Record that every file of the run is written; a replacement then takes the old run's place."""
        manifest = self.read_manifest()
        manifest["complete"] = True
        self._write_manifest(manifest)
        if self.path != self.target:
            self.commit()

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
            if name not in manifest["files"] and name not in manifest.get("pending", {}):
                raise ValueError(f"{path} is not listed in {self.manifest_path}: it was not written by this run")
            if digest(path) not in (manifest["files"].get(name), manifest.get("pending", {}).get(name)):
                raise ValueError(f"{path} does not belong to the run in {self.path}: its digest is not the one "
                                 f"{MANIFEST} records (files of different runs are mixed there, or it was changed or "
                                 f"damaged); rerun `ppgen fit --overwrite`")
        return manifest

    def verify_all(self) -> dict[str, Any]:
        """Check every file the manifest records (and the checkpoint, which must be one of them) against its digest,
        before a resume changes anything; returns the manifest. A file recorded as pending may be missing (its
        write was killed before the rename)."""
        manifest = self.read_manifest()
        if (self.path / CHECKPOINT).is_file() and CHECKPOINT not in {*manifest["files"], *manifest.get("pending", {})}:
            raise ValueError(f"{self.path / CHECKPOINT} is not listed in {self.manifest_path}: it was not written by "
                             f"this run, and a run resumes only from its own checkpoint")
        for name in manifest["files"]:
            if not (self.path / name).is_file():
                raise ValueError(f"{self.path / name} is missing: {self.manifest_path} records it, so the run in "
                                 f"{self.path} is not as it was written and cannot be continued")
        self.verify(*[name for name in {*manifest["files"], *manifest.get("pending", {})}
                      if (self.path / name).is_file()])
        return manifest
