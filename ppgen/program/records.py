"""The records ppgen keeps of its compilations, beside inductor's on-disk caches: how long compiling a program's graph
of one batch shape took, cold (the first time) and warm (again, finding the caches), and how much faster the compiled
step ran than the captured one, for the rule of ``compile="auto"`` (:mod:`ppgen.program.automatic`) to read.

Every compilation writes its record, under ``compile=True`` as under ``"auto"`` (:func:`record_compilation`, called
where :class:`~ppgen.program.fastpath.ShapeCapture` compiles a graph), so that a run under ``"auto"`` knows a cache
warmed by any earlier run; the speed-up is measured by ``"auto"`` alone, which times the steps
(:func:`record_ratio`). A record is written whole or not at all, and nowhere where the cache's folder cannot be
written or inductor's FX-graph cache is off (where a second compilation is as cold as the first).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger(__name__)


def identity(module: torch.nn.Module, objective: Any) -> str:
    """What names a program's computation in the records of its compilations: the program's class, its parameters'
    names, shapes and dtypes, the objective (or what else the computation is), torch's version."""
    params = [(name, tuple(p.shape), str(p.dtype)) for name, p in module.named_parameters()]
    kind = type(module)
    return repr((f"{kind.__module__}.{kind.__qualname__}", params, repr(objective), torch.__version__))


def inductor_cache() -> Path | None:
    """The folder of inductor's on-disk caches (``TORCHINDUCTOR_CACHE_DIR``, by default ``torchinductor_<user>`` in the
    system's temporary folder, never the working directory), or ``None`` where its FX-graph cache is off, so that a
    second compilation of a graph is as cold as the first."""
    import torch._inductor.config as inductor

    if not getattr(inductor, "fx_graph_cache", False):  # off, or not a setting of this torch
        return None
    folder = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if folder is None:
        from torch._inductor.runtime.cache_dir_utils import default_cache_dir

        folder = default_cache_dir()
    return Path(folder).absolute()


def record_path(identity: str, rows: int) -> Path | None:
    """Where ppgen records the compilation of a program's computation for batches of ``rows`` rows: in a folder
    ``ppgen`` of inductor's cache (:func:`inductor_cache`), so that the record goes with the cache it describes."""
    cache = inductor_cache()
    if cache is None:
        return None
    digest = hashlib.sha256(f"{identity}|{rows}".encode()).hexdigest()[:32]
    return cache / "ppgen" / f"{digest}.json"


def read_record(identity: str, rows: int) -> dict | None:
    """The record of an earlier compilation of this computation: ``cold`` seconds, ``warm`` seconds where it was
    compiled again, ``ratio`` (the compiled step's time over the captured one's) where ``"auto"`` measured it; or
    ``None``."""
    path = record_path(identity, rows)
    try:
        record = json.loads(path.read_text()) if path is not None else None
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("identity") != identity or not _seconds(record.get("cold")):
        return None
    return record


def record_compilation(identity: str, rows: int, seconds: float) -> None:
    """Records a compilation of the computation of ``rows`` rows that took ``seconds``: the first as ``cold``, a
    later one (which found inductor's cache) as ``warm``, the largest of them: a compilation that finds the graph in
    this process's memory takes a few hundredths of a second, where a fresh process reading inductor's on-disk cache
    takes a second or more (``bench/auto_compile.py``), and a later fit is priced at the latter; a measured ``ratio``
    is kept."""
    earlier = read_record(identity, rows)
    warm = {} if earlier is None else {"warm": max(seconds, earlier.get("warm", 0.0))}
    _write(identity, rows, {"identity": identity, "cold": seconds} if earlier is None else {**earlier, **warm})


def record_ratio(identity: str, rows: int, ratio: float) -> None:
    """Adds to the record of the computation's compilation the compiled step's time over the captured one's; nothing
    where no compilation was recorded."""
    earlier = read_record(identity, rows)
    if earlier is not None:
        _write(identity, rows, {**earlier, "ratio": ratio})


def _seconds(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value) and value >= 0


def _write(identity: str, rows: int, record: dict) -> None:
    path = record_path(identity, rows)
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as file:
            json.dump(record, file)
        os.replace(file.name, path)
    except OSError as error:
        logger.info("no record of the compilation written to %s: %s", path.parent, error)
