"""A catalogue of bad inputs across the API, the CLI and damaged files.

For each: the exception type (for the CLI, the exit status) and the words of its message, and that nothing on
disk and nothing of the user's model changed. A case may ``prepare`` a damaged file first; the snapshot of the
disk is taken after that, just before the bad call.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import json
import math
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

import ppgen
from ppgen import datasets, inference, models
from ppgen.cli import main
from ppgen.objective.base import Objective
from ppgen.queries.evaluation import khat_text
from ppgen.utils.budget import BUDGET


class CLIError(Exception):
    """A ``ppgen`` command that failed: its exit status and what it wrote to stderr."""


def cli(*argv: str) -> None:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        status = main([str(a) for a in argv])
    if status != 0:
        raise CLIError(f"status {status}: {err.getvalue()}")


def coins(size: Callable[[torch.Tensor], int]):
    """A coin-flip program whose data plate has ``size(x)`` entries."""

    def model(x):
        probs = pyro.param("probs", torch.full((x.shape[1],), 0.5), constraint=dist.constraints.unit_interval)
        with pyro.plate("data", size(x)):
            pyro.sample("x", dist.Bernoulli(probs).to_event(1), obs=x)

    return (model, None)


@dataclass(frozen=True, kw_only=True)
class Returns(Objective):
    """A user's backend that returns whatever ``make`` builds from the ELBO's per-point terms."""

    kind: str = "vector"

    def loss(self, module, structure, x):
        from ppgen.objective.bounds import log_weights

        per_point = -log_weights(module, structure, x, 1)[0]
        return per_point if self.kind == "vector" else float(per_point.detach().mean())


def crafted(ctx, edit: Callable[[dict], Any], name: str = "fit.pt") -> None:
    """Write ``ctx.work / name``: the saved fit with ``edit`` applied to its contents."""
    state = torch.load(ctx.saved, weights_only=True)
    edit(state)
    torch.save(state, ctx.work / name)


def with_run(ctx) -> Path:
    return Path(shutil.copytree(ctx.run, ctx.work / "run"))


def edit_manifest(ctx, **extra: Any) -> Path:
    run = with_run(ctx)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["config"]["extra"].update(extra)
    (run / "manifest.json").write_text(json.dumps(manifest))
    return run


def resumable(ctx, edit: Callable[[dict], Any] | None = None, damage: bool = False) -> None:
    """A run of the Python API in ``ctx.work / "py"`` whose checkpoint is crafted (manifest updated) or damaged."""
    run = ctx.work / "py"
    shutil.copytree(ctx.py_run, run)
    path = run / "checkpoint.pt"
    if damage:
        path.write_bytes(path.read_bytes()[:-10])
        return
    state = torch.load(path, weights_only=True)
    edit(state)
    torch.save(state, path)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["files"]["checkpoint.pt"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (run / "manifest.json").write_text(json.dumps(manifest))


def fit(ctx, **kwargs: Any) -> None:
    ppgen.fit(kwargs.pop("model", ctx.model), kwargs.pop("data", ctx.x), **{**ctx.settings, **kwargs})


class Items(Dataset):
    """The rows of ``x`` as a map-style data set, but item ``at`` is ``bad``."""

    def __init__(self, x: torch.Tensor, bad: Any, at: int) -> None:
        self.x, self.bad, self.at = x, bad, at

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> Any:
        return self.bad if i == self.at else self.x[i]


class Endless(IterableDataset):
    """The rows of ``x`` over and over, without end and without a length; item ``at`` (if any) is ``bad``."""

    def __init__(self, x: torch.Tensor, bad: Any = None, at: int = -1) -> None:
        self.x, self.bad, self.at = x, bad, at

    def __iter__(self):
        for i in itertools.count():
            yield self.bad if i == self.at else self.x[i % len(self.x)]


#: items that are not data points of the shared x (6 coordinates in {0, 1}, float32), and the words that say so.
BAD_ITEMS = [
    ("none", None, TypeError, "is None, not a data point"),
    ("string", "hello", TypeError, "is str 'hello', not a data point"),
    ("wide", torch.ones(7), ValueError, r"has shape \[7\], but the data set's first item has \[6\]"),
    ("float64", torch.ones(6, dtype=torch.float64), TypeError, "has dtype torch.float64, but the data set's first"),
    ("half", torch.full((6,), 0.5), ValueError, "lies outside the support of the model's likelihood"),
    ("two", torch.full((6,), 2.0), ValueError, "lies outside the support of the model's likelihood"),
    ("nan", torch.full((6,), math.nan), ValueError, r"has non-finite entries \(NaN or infinity\)"),
]


def raises_key_error(x):
    """A user's program with a bug of its own: a KeyError while it is traced."""
    return {}["scale"]


def regression(x, y):
    """y ~ N(x w, 1) given a covariate that the user calls x: the observed input is y, the second."""
    w = pyro.param("w", torch.zeros(x.shape[1]))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("y", dist.Normal(x @ w, 1.0), obs=y)


def nan_idx(ctx) -> None:
    values = np.full((10, 2, 2), 0.7, dtype=">f4")
    values[3, 1, 1] = np.nan
    header = bytes([0, 0, 0x0D, 3]) + np.array([10, 2, 2], dtype=">u4").tobytes()
    (ctx.work / "nan.idx").write_bytes(header + values.tobytes())


def link(ctx, name: str) -> None:
    (ctx.work / "elsewhere.txt").write_text("keep me")
    (ctx.work / name).symlink_to(ctx.work / "elsewhere.txt")


# (id, the bad call, the expected exception, words of its message, what to prepare on disk first)
CASES: list[tuple[str, Callable, type, str, Callable | None]] = [
    # fit's arguments
    ("epochs-zero", lambda c: fit(c, epochs=0), ValueError, "epochs must be a positive int", None),
    ("epochs-float", lambda c: fit(c, epochs=1.5), TypeError, "epochs must be a positive int", None),
    ("epochs-bool", lambda c: fit(c, epochs=True), TypeError, "epochs", None),
    ("batch-size-negative", lambda c: fit(c, batch_size=-1), ValueError, "batch_size", None),
    ("lr-zero", lambda c: fit(c, lr=0), ValueError, "lr must be a positive finite", None),
    ("lr-nan", lambda c: fit(c, lr=math.nan), ValueError, "lr must be a positive finite", None),
    ("lr-string", lambda c: fit(c, lr="0.1"), TypeError, "lr must be a positive number", None),
    ("optim-string", lambda c: fit(c, optim="adam"), TypeError, "optim must be None", None),
    ("inference-string", lambda c: fit(c, inference="elbo"), TypeError, "inference must be a ppgen.inference", None),
    ("seed-negative", lambda c: fit(c, seed=-1), ValueError, r"seed must be an int in \[0, 2\*\*32\)", None),
    ("seed-too-large", lambda c: fit(c, seed=2**32), ValueError, "seed must be an int", None),
    ("seed-float", lambda c: fit(c, seed=1.0), TypeError, "seed must be an int", None),
    ("device-meta", lambda c: fit(c, device="meta"), ValueError, "'meta' holds shapes without values", None),
    ("device-mps", lambda c: fit(c, device="mps"), ValueError, "MPS is not available", None),
    ("device-missing-cuda", lambda c: fit(c, device="cuda:99"), ValueError, "device='cuda:99', but", None),
    ("device-int", lambda c: fit(c, device=3), TypeError, "device must be a str or torch.device", None),
    ("device-unknown", lambda c: fit(c, device="gpu"), ValueError, "device must name a torch device", None),
    ("progress-string", lambda c: fit(c, progress="no"), TypeError, "progress must be True or False", None),
    ("progress-int", lambda c: fit(c, progress=1), TypeError, "progress must be True or False", None),
    ("on-nan-unknown", lambda c: fit(c, on_nan="ignore"), ValueError, "on_nan must be 'raise' or 'skip'", None),
    ("on-nan-none", lambda c: fit(c, on_nan=None), TypeError, "on_nan must be", None),
    ("divergence-factor-one", lambda c: fit(c, divergence_factor=1), ValueError, "divergence_factor must be > 1", None),
    ("divergence-factor-negative", lambda c: fit(c, divergence_factor=-5), ValueError, "divergence_factor", None),
    ("checkpoint-every-zero", lambda c: fit(c, out=c.work / "r", checkpoint_every=0), ValueError,
     "checkpoint_every must be a positive int", None),
    ("checkpoint-every-without-out", lambda c: fit(c, checkpoint_every=5), ValueError, "needs a run folder", None),
    ("resume-without-out", lambda c: fit(c, resume=True), ValueError, "resume=True needs a run folder", None),
    ("resume-string", lambda c: fit(c, out=c.work / "r", resume="yes"), TypeError, "resume must be True or False",
     None),
    ("out-int", lambda c: fit(c, out=5), TypeError, "out must be a path", None),
    ("out-a-file", lambda c: fit(c, out=c.work / "afile"), NotADirectoryError, "exists and is not a folder",
     lambda c: (c.work / "afile").write_text("keep me")),
    ("out-a-symlink", lambda c: fit(c, out=c.work / "link"), ValueError, "symbolic link",
     lambda c: (c.work / "link").symlink_to(c.work, target_is_directory=True)),
    ("out-holds-a-run", lambda c: fit(c, out=c.work / "py"), FileExistsError, "holds a run already",
     lambda c: shutil.copytree(c.py_run, c.work / "py")),
    ("out-not-writable", lambda c: fit(c, out="/proc/ppgen-run"), PermissionError, "/proc is not writable", None),
    ("overwrite-and-resume", lambda c: fit(c, out=c.work / "r", overwrite=True, resume=True), ValueError,
     "exclude each other", None),
    ("run-config-nan", lambda c: fit(c, out=c.work / "r", run_config={"a": math.nan}), ValueError,
     "run_config must be plain JSON", None),
    ("resume-other-config", lambda c: fit(c, out=c.work / "py", resume=True, lr=0.5), ValueError, "differs in lr",
     lambda c: shutil.copytree(c.py_run, c.work / "py")),
    # data
    ("data-string", lambda c: fit(c, data="hello"), TypeError, "data must be a tensor, an ndarray", None),
    ("data-none", lambda c: fit(c, data=None), TypeError, "data must be a tensor", None),
    ("data-1d", lambda c: fit(c, data=torch.ones(5)), ValueError, r"data: the program fails on rows of shape \[\]",
     None),
    ("data-no-rows", lambda c: fit(c, data=torch.ones(0, 6)), ValueError, "at least one data point", None),
    ("data-nan", lambda c: fit(c, data=torch.where(c.x > 0, math.nan, c.x)), ValueError, "non-finite entries", None),
    ("data-float16", lambda c: fit(c, data=c.x.half()), TypeError, "dtype torch.float16, too coarse", None),
    ("data-bfloat16", lambda c: fit(c, data=c.x.bfloat16()), TypeError, "dtype torch.bfloat16", None),
    ("data-numpy-float16", lambda c: fit(c, data=c.x.numpy().astype(np.float16)), TypeError, "float16", None),
    ("data-complex", lambda c: fit(c, data=c.x.to(torch.complex64)), TypeError, "real numbers", None),
    ("data-ragged", lambda c: fit(c, data=[[1, 0], [1]]), TypeError, "data must be a tensor", None),
    ("data-outside-support", lambda c: fit(c, data=c.x * 2), ValueError, "outside the support", None),
    ("data-wrong-width", lambda c: fit(c, data=torch.ones(8, 7)), ValueError, "the program fails on rows", None),
    ("plate-fixed-size", lambda c: fit(c, model=coins(lambda x: 2), data=c.x[:, :2].repeat(3, 1)), ValueError,
     r"no plate around the observed site\(s\) 'x' holds the data points \(plates around all of them: "
     r"pyro.plate\('data', 2\)\); the data set has 96 points and the batch 16", None),
    ("plate-of-one", lambda c: fit(c, model=coins(lambda x: 1)), ValueError,
     r"no plate around the observed site\(s\) 'x' holds the data points \(plates around all of them: "
     r"pyro.plate\('data', 1\)\); the data set has 32 points", None),
    ("backend-vector-loss", lambda c: fit(c, inference=Returns(kind="vector")), ValueError,
     r"Returns.loss must return a scalar tensor .*got shape \[16\]", None),
    ("backend-float-loss", lambda c: fit(c, inference=Returns(kind="float")), TypeError,
     "Returns.loss must return a scalar tensor, got float", None),
    ("mle-on-a-vae", lambda c: fit(c, inference=inference.MLE()), ValueError, "MLE", None),
    # queries of a fit
    ("log-prob-k-zero", lambda c: c.fit.log_prob(c.x, k=0), ValueError, "k must be a positive int", None),
    ("log-prob-over-budget", lambda c: c.fit.log_prob(c.x, k=10**9), ValueError, "over the budget", None),
    ("sample-zero", lambda c: c.fit.sample(0), ValueError, "n must be a positive int", None),
    ("sample-over-budget", lambda c: c.fit.sample(10**9), ValueError, "over the budget", None),
    ("posterior-over-budget", lambda c: c.fit.posterior(c.x, num_samples=10**9), ValueError, "num_samples=", None),
    ("encode-unknown-site", lambda c: c.fit.encode(c.x, site="w"), ValueError, "site must be one of", None),
    ("log-prob-wrong-width", lambda c: c.fit.log_prob(torch.ones(3, 5)), ValueError, r"x must have shape \[N, 6\]",
     None),
    # damaged or crafted fit.pt
    ("load-random-bytes", lambda c: ppgen.load(c.work / "fit.pt"), ValueError, "not a readable ppgen fit",
     lambda c: (c.work / "fit.pt").write_bytes(bytes(range(256)))),
    ("load-no-format", lambda c: ppgen.load(c.work / "fit.pt"), ValueError, "no 'ppgen.fit/2' format tag",
     lambda c: crafted(c, lambda s: s.pop("format"))),
    ("load-config-extra-key", lambda c: ppgen.load(c.work / "fit.pt"), ValueError,
     "field 'model.config' does not build VAE", lambda c: crafted(c, lambda s: s["model"]["config"].update(bad=1))),
    ("load-config-not-a-mapping", lambda c: ppgen.load(c.work / "fit.pt"), ValueError, "field 'model.config'",
     lambda c: crafted(c, lambda s: s["model"].update(config=[1, 2]))),
    ("load-class-not-a-string", lambda c: ppgen.load(c.work / "fit.pt"), ValueError, "field 'model.class'",
     lambda c: crafted(c, lambda s: s["model"].update({"class": 7}))),
    ("load-huge-widths", lambda c: ppgen.load(c.work / "fit.pt"), ValueError, "over the budget",
     lambda c: crafted(c, lambda s: s["model"]["config"].update(hidden=[10**6, 10**6]))),
    ("load-widths-not-the-weights", lambda c: ppgen.load(c.work / "fit.pt"), ValueError, "field 'state_dict' holds",
     lambda c: crafted(c, lambda s: s["model"]["config"].update(hidden=[9]))),
    ("load-nan-weights", lambda c: ppgen.load(c.work / "fit.pt"), ValueError, r"field 'state_dict\..*' .*finite",
     lambda c: crafted(c, lambda s: [v.fill_(math.nan) for v in s["state_dict"].values() if v.is_floating_point()])),
    ("load-history-a-string", lambda c: ppgen.load(c.work / "fit.pt"), ValueError, "field 'history'",
     lambda c: crafted(c, lambda s: s.update(history="loss"))),
    ("load-inference-extra-key", lambda c: ppgen.load(c.work / "fit.pt"), ValueError,
     "field 'inference.config' does not build ELBO", lambda c: crafted(c, lambda s: s["inference"]["config"].update(
         bad=1))),
    ("load-missing-key", lambda c: ppgen.load(c.work / "fit.pt"), ValueError, r"field 'keys'.*missing \['example'\]",
     lambda c: crafted(c, lambda s: s.pop("example"))),
    ("load-example-not-a-tensor", lambda c: ppgen.load(c.work / "fit.pt"), ValueError, "field 'example'",
     lambda c: crafted(c, lambda s: s.update(example=[1.0]))),
    ("load-on-meta", lambda c: ppgen.load(c.saved, device="meta"), ValueError, "'meta'", None),
    ("load-missing-file", lambda c: ppgen.load(c.work / "none.pt"), FileNotFoundError, "no checkpoint at", None),
    # damaged or crafted run checkpoints, met on resume
    ("resume-damaged-checkpoint", lambda c: fit(c, out=c.work / "py", resume=True), ValueError,
     r"checkpoint.pt does not belong to the run in .*: its digest is not the one manifest.json records",
     lambda c: resumable(c, damage=True)),
    ("resume-nan-weights", lambda c: fit(c, out=c.work / "py", resume=True), ValueError,
     r"field 'model\..*' is damaged: expected finite values",
     lambda c: resumable(c, lambda s: [v.fill_(math.nan) for v in s["model"].values() if v.is_floating_point()])),
    ("resume-order-not-a-permutation", lambda c: fit(c, out=c.work / "py", resume=True), ValueError,
     "field 'order' is damaged", lambda c: resumable(c, lambda s: s.update(order=torch.zeros(32, dtype=torch.long)))),
    ("resume-checkpoint-of-another-run", lambda c: fit(c, out=c.work / "py", resume=True), ValueError,
     "field 'config' is damaged", lambda c: resumable(c, lambda s: s["config"].update(lr=0.5))),
    ("resume-counters-negative", lambda c: fit(c, out=c.work / "py", resume=True), ValueError,
     "field 'counters' is damaged", lambda c: resumable(c, lambda s: s["counters"].update(step=-1))),
    ("resume-history-nan", lambda c: fit(c, out=c.work / "py", resume=True), ValueError,
     "field 'history' is damaged", lambda c: resumable(c, lambda s: s.update(history=[math.nan]))),
    ("resume-rng-damaged", lambda c: fit(c, out=c.work / "py", resume=True), ValueError,
     "field 'rng.numpy' is damaged", lambda c: resumable(c, lambda s: s["rng"].update(numpy={}))),
    # the command line
    ("cli-epochs-zero", lambda c: cli("fit", "--epochs", "0"), CLIError, "status 2: .*--epochs", None),
    ("cli-device-meta", lambda c: cli("fit", "--device", "meta"), CLIError, "status 2: .*--device.*meta", None),
    ("cli-threads-zero", lambda c: cli("fit", "--threads", "0"), CLIError, "status 2: .*--threads", None),
    ("cli-out-not-writable", lambda c: cli("fit", "--out", "/proc/ppgen-run"), CLIError,
     "status 1: ppgen: error: --out /proc/ppgen-run: /proc is not writable", None),
    ("cli-overwrite-and-resume", lambda c: cli("fit", "--overwrite", "--resume"), CLIError,
     "status 2: .*not allowed with", None),
    ("cli-fit-into-a-run", lambda c: cli("fit", "--out", c.work / "run"), CLIError,
     "status 1: ppgen: error: .*holds a run already.*--overwrite", with_run),
    ("cli-eval-a-mixture", lambda c: cli("eval", c.work / "run"), CLIError,
     "status 1: .*fit.pt does not belong to the run", lambda c: shutil.copy(c.other_fit, with_run(c) / "fit.pt")),
    ("cli-sample-a-mixture", lambda c: cli("sample", c.work / "run"), CLIError,
     "status 1: .*fit.pt does not belong to the run", lambda c: shutil.copy(c.other_fit, with_run(c) / "fit.pt")),
    ("cli-eval-crafted-data-field", lambda c: cli("eval", c.work / "run"), CLIError,
     r"status 1: .*field 'config.extra.data' is damaged", lambda c: edit_manifest(c, data="file:///etc/passwd")),
    ("cli-eval-any-file-as-idx", lambda c: cli("eval", c.work / "run"), CLIError,
     "status 1: .*/etc/hostname is not an IDX file", lambda c: edit_manifest(c, data="idx:/etc/hostname")),
    ("cli-eval-crafted-seed", lambda c: cli("eval", c.work / "run"), CLIError,
     r"status 1: .*field 'config.extra.seed' is damaged", lambda c: edit_manifest(c, seed="zero")),
    ("cli-eval-no-manifest", lambda c: cli("eval", c.work / "run"), CLIError, "status 1: .*manifest.json not found",
     lambda c: (with_run(c) / "manifest.json").unlink()),
    ("cli-sample-over-budget", lambda c: cli("sample", c.run, "-n", "1000000"), CLIError,
     "status 2: .*over the budget of 100000 samples", None),
    ("cli-sample-out-a-symlink", lambda c: cli("sample", c.run, "--out", c.work / "s.png"), CLIError,
     "status 1: .*is a symbolic link", lambda c: link(c, "s.png")),
    ("cli-nan-idx", lambda c: cli("fit", "--data", f"idx:{c.work / 'nan.idx'}", "--out", c.work / "r"), CLIError,
     "status 1: .*nan.idx has 1 non-finite values", nan_idx),
    # sizes: the particle budget of a training step, and Python ints past torch's int64
    ("iwae-k-over-the-step-budget", lambda c: fit(c, inference=inference.IWAE(k=10**12)), ValueError,
     r"inference.k=1000000000000 for 16 data points of a step \(batch_size=16\) is 16000000000000 particle-points, "
     r"over the budget of 2147483648: lower inference.k", None),
    ("elbo-particles-over-the-step-budget", lambda c: fit(c, inference=inference.ELBO(num_particles=10**9)),
     ValueError, r"inference.num_particles=1000000000 for 16 data points of a step .* over the budget", None),
    ("step-budget-counts-the-points-of-a-step", lambda c: fit(c, batch_size=10**6,
                                                              inference=inference.IWAE(k=2**26 + 1)),
     ValueError, r"inference.k=67108865 for 32 data points of a step \(batch_size=1000000\)", None),
    ("batch-size-past-int64", lambda c: fit(c, batch_size=2**63), ValueError,
     r"batch_size must be a positive int of at most 2\*\*63 - 1, the largest size torch holds, got 9223372036854775808",
     None),
    ("epochs-past-int64", lambda c: fit(c, epochs=2**64), ValueError,
     r"epochs must be a positive int of at most 2\*\*63",
     None),
    ("checkpoint-every-past-int64", lambda c: fit(c, out=c.work / "r", checkpoint_every=10**20), ValueError,
     r"checkpoint_every must be a positive int of at most 2\*\*63", None),
    ("iwae-k-past-int64", lambda c: fit(c, inference=inference.IWAE(k=2**63)), ValueError,
     r"k must be a positive int of at most 2\*\*63", None),
    ("log-prob-k-past-int64", lambda c: c.fit.log_prob(c.x, k=2**63), ValueError,
     r"k must be a positive int of at most",
     None),
    ("sample-n-past-int64", lambda c: c.fit.sample(2**64), ValueError, r"n must be a positive int of at most", None),
    ("evaluate-over-budget", lambda c: c.fit.evaluate(c.x, k=10**12), ValueError,
     "k=1000000000000 for 32 data points is 32000000000000 particle-points, over the budget", None),
    ("moons-over-the-sample-budget", lambda c: datasets.moons(n=2**40), ValueError,
     r"n=1099511627776 draws of shape \[2\] are 2199023255552 values, over the budget", None),
    ("encode-num-samples-past-int64", lambda c: c.fit.encode(c.x, num_samples=2**63), ValueError,
     "num_samples must be a positive int of at most", None),
    # what a careless user passes as the model or the data
    ("model-a-class", lambda c: fit(c, model=models.VAE), TypeError,
     r"model is the class VAE, not an object built from it: build one first, e.g. models.VAE\(x_dim=64\)", None),
    ("data-a-list-of-aligned-inputs", lambda c: fit(c, data=[c.x, c.x[:, 0]]), TypeError,
     r"data is a list of 2 Tensor: aligned inputs \(x, y, ...\) are passed as a tuple, data=\(x, y\)", None),
    ("data-a-list-of-equal-shapes", lambda c: fit(c, data=[c.x, c.x]), TypeError,
     "aligned inputs .* are passed as a tuple", None),
    ("log-prob-a-list", lambda c: c.fit.log_prob([c.x.numpy()]), TypeError, "x is a list of 1 ndarray", None),
    ("data-a-tuple-holding-a-list", lambda c: fit(c, data=(c.x, [c.x[:, 0], c.x[:, 1]])), TypeError,
     r"data\[1\] is a list of 2 Tensor: aligned inputs", None),
    ("model-raises-key-error", lambda c: fit(c, model=(raises_key_error, None)), ValueError,
     r"data: the program fails on rows of shape \[6\] torch.float32: raises_key_error raised KeyError: 'scale'", None),
    # streamed data
    ("stream-without-a-length", lambda c: fit(c, data=Endless(c.x)), ValueError,
     r"data: the Endless has no len\(\), so an epoch has no known end .*pass steps_per_epoch=", None),
    ("steps-per-epoch-of-a-tensor", lambda c: fit(c, steps_per_epoch=3), ValueError,
     "steps_per_epoch applies to a stream without a length", None),
    ("steps-per-epoch-of-a-sized-dataset", lambda c: fit(c, data=Items(c.x, c.x[0], 0), steps_per_epoch=3),
     ValueError, r"steps_per_epoch applies to a stream without a length; this Items has len\(\) 32", None),
    ("steps-per-epoch-zero", lambda c: fit(c, data=Endless(c.x), steps_per_epoch=0), ValueError,
     "steps_per_epoch must be a positive int", None),
    ("loader-of-no-indexable", lambda c: fit(c, data=DataLoader(range(32).__iter__(), batch_size=16)), TypeError,
     r"the DataLoader reads a range_iterator, which has no len\(\) and indexing", None),
    *[(f"first-batch-item-{kind}", lambda c, bad=bad: fit(c, data=Items(c.x, bad, 5)), error,
       "item 5 " + words if kind not in ("half", "two") else "outside the support .* the first at row 5", None)
      for kind, bad, error, words in BAD_ITEMS],
    # files the user names
    ("save-empty-path", lambda c: c.fit.save(""), ValueError, "path is empty: give the path of the file to write",
     None),
    ("save-into-a-folder", lambda c: c.fit.save(c.work), IsADirectoryError,
     r"path .* is a folder: give the file's name",
     None),
    ("save-under-a-file", lambda c: c.fit.save(c.work / "empty.pt" / "sub.pt"), NotADirectoryError,
     r"path .*empty.pt/sub.pt: its parent .*empty.pt is a file, not a folder",
     lambda c: (c.work / "empty.pt").write_text("")),
    ("save-read-only", lambda c: c.fit.save("/proc/ppgen-fit.pt"), PermissionError,
     r"path /proc/ppgen-fit.pt: /proc is not writable", None),
    ("save-path-an-int", lambda c: c.fit.save(3), TypeError, "path must be a path", None),
    ("load-a-folder", lambda c: ppgen.load(c.work), IsADirectoryError,
     r"is a folder: give the path of a file written by fit.save",
     None),
    ("load-model-a-class", lambda c: ppgen.load(c.saved, model=models.VAE), TypeError, "model is the class VAE", None),
    ("load-another-model", lambda c: ppgen.load(c.other_fit, model=c.model), ValueError,
     r"model: .*fit.pt holds a fit of ppgen.models.ppca:PPCA, but the model is a ppgen.models.vae:VAE: pass the model "
     r"the fit was saved from", None),
    ("sample-names-the-program-inputs", lambda c: c.reg.sample(3, c.x[:3], c.x[:3, 0]), TypeError,
     r"sample\(n, ...\) draws y of model\(x, y\) and takes its other input\(s\) x, one row per draw: got 2", None),
    ("cli-k-over-the-step-budget", lambda c: cli("fit", "--inference", "iwae", "--k", "1000000000000", "--out",
                                                c.work / "r"), CLIError,
     r"status 2: .*--k 1000000000000 for the 128 data points of a step \(--batch-size 128\) is 128000000000000 "
     r"particle-points, over the budget of 2147483648", None),
    ("cli-batch-size-past-int64", lambda c: cli("fit", "--batch-size", "99999999999999999999"), CLIError,
     r"status 2: .*argument --batch-size: .*at most 2\*\*63 - 1", None),
    ("cli-threads-past-the-cpus", lambda c: cli("fit", "--threads", "99999999999"), CLIError,
     "status 2: .*argument --threads: expected at most this machine's", None),
    ("cli-eval-k-past-int64", lambda c: cli("eval", c.run, "--k", str(2**63)), CLIError,
     r"status 2: .*argument --k: .*at most 2\*\*63", None),
    ("cli-hidden-over-the-parameter-budget", lambda c: cli("fit", "--hidden", "1000000000000", "--out", c.work / "r"),
     CLIError, r"status 2: .*--hidden 1000000000000: vae would have 154000000000080 parameters, over the budget of "
     r"1073741824", None),
    ("cli-z-dim-over-the-parameter-budget", lambda c: cli("fit", "--z-dim", "10000000000", "--out", c.work / "r"),
     CLIError, r"status 2: .*--z-dim 10000000000: vae would have \d+ parameters, over the budget", None),
    ("cli-idx-a-folder", lambda c: cli("fit", "--data", f"idx:{c.work}", "--out", c.work / "r"), CLIError,
     r"status 1: ppgen: error: --data idx:.* is a folder: give the IDX file of images in it", None),
    ("cli-sample-out-not-writable", lambda c: cli("sample", c.run, "--out", "/proc/x.png"), CLIError,
     "status 1: ppgen: error: --out /proc/x.png: /proc is not writable", None),
    ("cli-sample-out-under-a-file", lambda c: cli("sample", c.run, "--out", c.work / "afile" / "x.png"), CLIError,
     r"status 1: ppgen: error: --out .*afile/x.png: its parent .*afile is a file, not a folder",
     lambda c: (c.work / "afile").write_text("keep me")),
    ("cli-encode-out-empty", lambda c: cli("encode", c.run, "--out", ""), CLIError,
     r"status 1: ppgen: error: --out .* is a folder", None),
    # data sets
    ("idx-nan-before-binarising", lambda c: datasets.idx_images(c.work / "nan.idx", binarize=True), ValueError,
     "1 non-finite values", nan_idx),
    ("seed-function-negative", lambda c: ppgen.seed(-3), ValueError, "seed must be an int", None),
]


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """What the cases read and never change: a model, data, a fit and its file, run folders."""
    root = tmp_path_factory.mktemp("shared")
    x = torch.bernoulli(torch.full((32, 6), 0.3), generator=torch.Generator().manual_seed(0))
    settings = dict(epochs=1, batch_size=16, progress=False)
    ppgen.seed(0)
    fitted = ppgen.fit(models.VAE(x_dim=6, z_dim=2, hidden=(4,)), x, **settings)
    fitted.save(root / "fit.pt")
    ppgen.seed(0)
    ppgen.fit(models.VAE(x_dim=6, z_dim=2, hidden=(4,)), x, out=root / "py", **settings)
    tiny = ["--epochs", "1", "--eval-k", "2", "--batch-size", "512", "--no-progress"]
    cli("fit", "--model", "vae", "--z-dim", "2", "--hidden", "4", *tiny, "--out", root / "run")
    cli("fit", "--model", "ppca", *tiny, "--out", root / "other")
    covariate = torch.randn(32, 3, generator=torch.Generator().manual_seed(1))
    reg = ppgen.fit((regression, None), (covariate, covariate.sum(1)), inference=inference.MLE(), **settings)
    return SimpleNamespace(x=x, settings=settings, fit=fitted, saved=root / "fit.pt", py_run=root / "py",
                           run=root / "run", other_fit=root / "other" / "fit.pt", reg=reg)


def disk(root: Path) -> dict[str, str]:
    """Every path under ``root``, with the digest of each file (a link by its target)."""
    out = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_symlink():
            out[key] = "link:" + str(path.readlink())
        elif path.is_file():
            out[key] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            out[key] = "folder"
    return out


def test_the_catalogue_is_large_and_distinct():
    assert len(CASES) >= 140 and len({case[0] for case in CASES}) == len(CASES)


@pytest.mark.parametrize("name, call, error, words, prepare", CASES, ids=[case[0] for case in CASES])
def test_a_bad_input_is_refused_clearly_and_changes_nothing(name, call, error, words, prepare, shared, tmp_path):
    ppgen.seed(0)
    model = models.VAE(x_dim=6, z_dim=2, hidden=(4,))
    ctx = SimpleNamespace(**vars(shared), model=model, work=tmp_path)
    if prepare is not None:
        prepare(ctx)
    before_model = {k: v.clone() for k, v in model.state_dict().items()}
    before_disk, before_shared = disk(tmp_path), disk(shared.run.parent)
    with pytest.raises(error, match=re.compile(words, re.S)):
        call(ctx)
    assert disk(tmp_path) == before_disk and disk(shared.run.parent) == before_shared
    assert model.training and all(torch.equal(v, before_model[k]) for k, v in model.state_dict().items())


def test_the_step_budget_is_the_queries_budget_and_admits_up_to_it(monkeypatch):
    """K x the points of a step exactly at the budget trains; one particle-point over is refused before a step."""
    x = torch.bernoulli(torch.full((8, 6), 0.3), generator=torch.Generator().manual_seed(0))
    monkeypatch.setattr(BUDGET, "particle_points", 3 * 8)
    ppgen.seed(0)
    model = models.VAE(x_dim=6, z_dim=2, hidden=(4,))
    assert len(ppgen.fit(model, x, inference=inference.IWAE(k=3), epochs=1, batch_size=8, progress=False).history) == 1
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"inference.k=4 for 8 data points of a step .* over the budget of 24"):
        ppgen.fit(model, x, inference=inference.IWAE(k=4), epochs=1, batch_size=8, progress=False)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("kind, bad, error, words", BAD_ITEMS, ids=[case[0] for case in BAD_ITEMS])
@pytest.mark.parametrize("make", [lambda x, bad: Items(x, bad, 40), lambda x, bad: Endless(x, bad, 40),
                                  lambda x, bad: DataLoader(Endless(x, bad, 40), batch_size=16)],
                         ids=["dataset", "stream", "stream-loader"])
def test_an_item_read_mid_stream_is_refused_by_its_index(kind, bad, error, words, make):
    """Item 40 is read in the fit's second or third batch: it is refused as it is read, named by its index (its
    position in a stream), as the same values are in a tensor; the default collate's own error never shows."""
    x = torch.bernoulli(torch.full((48, 6), 0.3), generator=torch.Generator().manual_seed(0))
    ppgen.seed(0)
    with pytest.raises(error, match=re.compile("data: item 40 " + words.removeprefix("item 5 "))):
        ppgen.fit(models.VAE(x_dim=6, z_dim=2, hidden=(4,)), make(x, bad), epochs=1, batch_size=16, progress=False,
                  steps_per_epoch=3 if not isinstance(make(x, bad), Items) else None)


def test_a_bad_item_read_by_a_worker_process_is_named_in_the_main_process():
    """A DataLoader's workers read the items; the check, and its error, are the main process's: no worker traceback."""
    x = torch.bernoulli(torch.full((48, 6), 0.3), generator=torch.Generator().manual_seed(0))
    ppgen.seed(0)
    with pytest.raises(ValueError, match=r"^data: item 40 has shape \[7\], but the data set's first item has \[6\]$"):
        ppgen.fit(models.VAE(x_dim=6, z_dim=2, hidden=(4,)), DataLoader(Items(x, torch.ones(7), 40), batch_size=16,
                                                                       num_workers=2),
                  epochs=1, batch_size=16, progress=False)


def same_parameters(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_an_endless_stream_with_steps_per_epoch_fits_as_the_rows_in_memory():
    """An endless stream of the rows in the in-memory fit's order, steps_per_epoch=2 batches of 16 an epoch: the fit
    of the 32 rows in memory, bitwise (a VAE has no global latent, so N does not enter the loss)."""
    x = torch.bernoulli(torch.full((32, 6), 0.3), generator=torch.Generator().manual_seed(0))
    order = torch.randperm(32, generator=torch.Generator().manual_seed(0))
    settings = dict(epochs=1, batch_size=16, progress=False, seed=0)
    ppgen.seed(0)
    memory = ppgen.fit(models.VAE(x_dim=6, z_dim=2, hidden=(4,)), x, **settings)
    ppgen.seed(0)
    streamed = ppgen.fit(models.VAE(x_dim=6, z_dim=2, hidden=(4,)), Endless(x[order]), steps_per_epoch=2, **settings)
    assert streamed.history == memory.history
    assert same_parameters(streamed.model, memory.model)


@pytest.mark.parametrize("dataset", [lambda x: x, lambda x: x.numpy(), lambda x: list(x)],
                         ids=["tensor", "array", "list"])
def test_a_loader_over_a_plain_indexable_fits_as_the_tensor(dataset):
    """DataLoader(tensor), over an array or a list of rows: read by index in the seeded order, bitwise the in-memory
    fit."""
    x = torch.bernoulli(torch.full((32, 6), 0.3), generator=torch.Generator().manual_seed(0))
    settings = dict(epochs=2, batch_size=16, progress=False, seed=0)
    ppgen.seed(0)
    memory = ppgen.fit(models.VAE(x_dim=6, z_dim=2, hidden=(4,)), x, **settings)
    ppgen.seed(0)
    loaded = ppgen.fit(models.VAE(x_dim=6, z_dim=2, hidden=(4,)), DataLoader(dataset(x), batch_size=16), **settings)
    assert loaded.history == memory.history
    assert same_parameters(loaded.model, memory.model)


def test_sample_given_the_covariate_draws_the_observed_input(shared):
    """The fit of y ~ N(x w, 1) draws y given the covariate x, one per row (the message above names them so)."""
    covariate = torch.zeros(3, 3)
    draws = shared.reg.sample(3, covariate)
    assert draws.shape == (3,) and torch.isfinite(draws).all()


@pytest.mark.parametrize("khat, text", [(0.7004, "0.7004"), (0.70000001, "0.70000001"), (0.75, "0.75"),
                                        (0.6999, "0.70"), (1.5, "1.50")])
def test_khat_is_printed_on_its_side_of_the_threshold(khat, text):
    """A k-hat above 0.7 never reads "0.70" (the warning would say "above 0.7 (max 0.70)"); one below may."""
    assert khat_text(khat) == text


def test_ctrl_c_while_the_command_line_loads_is_an_interrupt_without_a_traceback(monkeypatch):
    """SIGINT in the first moments of `ppgen fit` (the parser's modules being imported): exit status 130 and one line,
    as later in the run."""
    import ppgen.cli

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(ppgen.cli, "build_parser", interrupted)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["fit"]) == 130
    assert err.getvalue() == "ppgen: interrupted\n"


def test_sample_refuses_its_out_before_drawing(shared, monkeypatch):
    """`ppgen sample RUN --out /proc/x.png` fails before the run is loaded and sampled."""
    monkeypatch.setattr(ppgen.Fit, "sample", lambda *a, **k: pytest.fail("sampled before checking --out"))
    with pytest.raises(CLIError, match="--out /proc/x.png: /proc is not writable"):
        cli("sample", shared.run, "--out", "/proc/x.png")


def run_limited(code: str, limit: int, cwd: Path) -> subprocess.CompletedProcess:
    """``code`` in a fresh Python whose files may not grow past ``limit`` bytes (RLIMIT_FSIZE, a full disk's error:
    "File too large")."""
    prelude = f"import resource\nresource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))\n"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_a_full_disk_names_the_users_file_and_leaves_nothing(shared, tmp_path):
    """fit.save and `ppgen sample --out` under a file-size limit: the error names the user's path, never a temporary
    file, and nothing is left in the folder."""
    code = f"""
        import ppgen
        fit = ppgen.load({str(shared.saved)!r})
        try:
            fit.save("big/fit.pt")
        except OSError as error:
            print(type(error).__name__, error)
        """
    result = run_limited(code, 2000, tmp_path)
    assert re.search(r"OSError \[Errno 27\] path big/fit.pt could not be written: File too large", result.stdout), \
        result.stdout + result.stderr
    assert list((tmp_path / "big").iterdir()) == []
    code = f"""
        import sys
        from ppgen.cli import main
        sys.exit(main(["sample", {str(shared.run)!r}, "--out", "samples.png"]))
        """
    result = run_limited(code, 2000, tmp_path)
    assert result.returncode == 1 and re.search(r"^ppgen: error: \[Errno 27\] --out samples.png could not be written: "
                                                r"File too large$", result.stderr, re.M), result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big"]


def test_a_rank_alone_is_told_so_fast(monkeypatch):
    """RANK=0 WORLD_SIZE=2 with a master address but no other rank: a ValueError naming the variables and the launcher
    after the rendezvous timeout (1 s here), not a DistStoreError after the collectives' 600 s."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for name, value in dict(RANK="0", WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                            PPGEN_DISTRIBUTED_RENDEZVOUS_TIMEOUT="1").items():
        monkeypatch.setenv(name, value)
    x = torch.bernoulli(torch.full((8, 6), 0.3), generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    words = (r"distributed=True: this process \(RANK=0, WORLD_SIZE=2, MASTER_ADDR=127.0.0.1, MASTER_PORT=\d+\) found "
             r"no group of ranks within 1 s .*torchrun")
    with pytest.raises(ValueError, match=words):
        ppgen.fit(models.VAE(x_dim=6, z_dim=2, hidden=(4,)), x, epochs=1, progress=False, distributed=True)
    assert time.perf_counter() - start < 30
    assert not torch.distributed.is_initialized()


def test_a_bad_rendezvous_timeout_is_named(monkeypatch):
    for name, value in dict(RANK="0", WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT="29999",
                            PPGEN_DISTRIBUTED_RENDEZVOUS_TIMEOUT="soon").items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match="PPGEN_DISTRIBUTED_RENDEZVOUS_TIMEOUT must be a number of seconds, got 'so"):
        ppgen.fit(models.VAE(x_dim=6, z_dim=2, hidden=(4,)), torch.ones(4, 6), epochs=1, progress=False,
                  distributed=True)


def test_a_program_that_fails_on_the_data_is_one_line_naming_it():
    """Data of the wrong width for a Pyro program: Pyro's shape mismatch, its first line, without its table of the
    trace's shapes, naming the program and the exception."""

    def model(x):
        loc = pyro.param("loc", torch.zeros(6))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", dist.Normal(loc, 1.0).to_event(1), obs=x)

    with pytest.raises(ValueError) as error:
        ppgen.fit((model, None), torch.ones(8, 7), progress=False)
    text = str(error.value)
    assert re.fullmatch(r"data: the program fails on rows of shape \[7\] torch.float32: .*model raised \w+: .*", text)
    assert "\n" not in text and "Trace Shapes" not in text


def test_items_of_a_users_own_collate_fn_are_stacked_by_it_then_checked():
    """Items that only the loader's collate_fn makes a batch of (dicts here): accepted as it stacks them, the
    stacked values checked against the likelihood's support, naming the item."""
    x = torch.bernoulli(torch.full((48, 6), 0.3), generator=torch.Generator().manual_seed(0))

    class Records(Dataset):
        def __init__(self, x: torch.Tensor) -> None:
            self.x = x

        def __len__(self) -> int:
            return len(self.x)

        def __getitem__(self, i: int) -> dict:
            return {"pixels": self.x[i]}

    def stack(items: list[dict]) -> torch.Tensor:
        return torch.stack([item["pixels"] for item in items])

    settings = dict(epochs=1, batch_size=16, progress=False, seed=0)
    ppgen.seed(0)
    memory = ppgen.fit(models.VAE(x_dim=6, z_dim=2, hidden=(4,)), x, **settings)
    ppgen.seed(0)
    loaded = ppgen.fit(models.VAE(x_dim=6, z_dim=2, hidden=(4,)), DataLoader(Records(x), batch_size=16,
                                                                            collate_fn=stack), **settings)
    assert same_parameters(loaded.model, memory.model)
    x[40] = 0.5
    with pytest.raises(ValueError, match=r"^data: item 40 lies outside the support of the model's likelihood"):
        ppgen.fit(models.VAE(x_dim=6, z_dim=2, hidden=(4,)), DataLoader(Records(x), batch_size=16, collate_fn=stack),
                  **settings)
