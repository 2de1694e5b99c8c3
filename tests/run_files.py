"""Helpers for tests that change a run folder's files by hand."""

import json
from pathlib import Path

from ppgen.run.folder import digest


def record_again(run: Path, name: str = "checkpoint.pt") -> None:
    """Record the file ``name`` of ``run`` in its manifest as it now is, so that only the checks of its contents, not
    its digest, can refuse it."""
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["files"][name] = digest(run / name)
    (run / "manifest.json").write_text(json.dumps(manifest))
