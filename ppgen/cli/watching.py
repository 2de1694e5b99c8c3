"""What ``ppgen fit`` adds to watch a run: the rows ``--validation-split`` holds out of the training set, and a line
per epoch on stderr where no progress bar is shown."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from typing import Any

#: the share of the training rows ``--validation-split`` holds out by default.
DEFAULT_SPLIT = 0.1


def fraction(text: str) -> float:
    """An argparse ``type``: a number from 0 up to (not including) 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction from 0 to 1, got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction from 0 up to 1 (1 would leave nothing to train on), "
                                         f"got {text}")
    return value


def held_out(args: argparse.Namespace, train: Any, structure: Any, backend: Any) -> tuple[Any, Any]:
    """The training rows and the rows ``--validation-split`` holds out of them (``None`` for none), drawn with
    ``--seed``, each set in the data's order. By default a share of :data:`DEFAULT_SPLIT`, where the model and the
    objective take held-out rows (:func:`ppgen.training.validation.refusal`), else none; an argparse error where
    ``--validation-split``, ``--patience`` or ``--keep best`` is given and cannot be honoured."""
    import torch

    from ppgen.training.registry import default_inference
    from ppgen.training.validation import refusal

    share = DEFAULT_SPLIT if args.validation_split is None else args.validation_split
    why = refusal(backend if backend is not None else default_inference(structure), structure)
    if share == 0 or why is not None and args.validation_split is None:
        for flag, given in (("--patience", args.patience is not None), ("--keep best", args.keep == "best")):
            if given:
                args.parser.error(f"{flag} needs held-out rows, and this run has none "
                                  f"({why or '--validation-split 0'}): leave {flag.split()[0]} out")
        return train, None
    if why is not None:
        args.parser.error(f"--validation-split: {why}")
    if len(train) < 2:
        args.parser.error(f"--validation-split {share}: the {len(train)} training row(s) cannot be split; pass "
                          f"--validation-split 0")
    k = min(max(round(share * len(train)), 1), len(train) - 1)
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(args.seed))
    return train[order[k:].sort().values], train[order[:k].sort().values]


@contextlib.contextmanager
def epoch_lines(progress: bool | None) -> Iterator[None]:
    """A line per epoch on stderr (``ppgen.training.epochs``' records) where no progress bar is shown: without
    ``--progress``/``--no-progress`` and with stderr not a terminal (a log file, a pipe, a batch job)."""
    import logging

    from ppgen.training.callbacks import log

    if progress is not None or sys.stderr.isatty():
        yield
        return
    handler, level = logging.StreamHandler(sys.stderr), log.level
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
