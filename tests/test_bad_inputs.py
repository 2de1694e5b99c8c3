"""A catalogue of bad inputs across the API, the CLI and damaged files.

For each: the exception type (for the CLI, the exit status) and the words of its message, and that nothing on
disk and nothing of the user's model changed. A case may ``prepare`` a damaged file first; the snapshot of the
disk is taken after that, just before the bad call.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import re
import shutil
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

import ppgen
from ppgen import datasets, inference, models
from ppgen.cli import main
from ppgen.objective.base import Objective


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
     r"no pyro.plate around the observed site\(s\) 'x' has the batch's size 3|the program fails on rows", None),
    ("plate-of-one", lambda c: fit(c, model=coins(lambda x: 1)), ValueError,
     r"no pyro.plate around the observed site\(s\) 'x' has the batch's size 3|the program fails on rows",
     None),
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
     "is not a readable ppgen checkpoint", lambda c: resumable(c, damage=True)),
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
    return SimpleNamespace(x=x, settings=settings, fit=fitted, saved=root / "fit.pt", py_run=root / "py",
                           run=root / "run", other_fit=root / "other" / "fit.pt")


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
    assert len(CASES) >= 60 and len({case[0] for case in CASES}) == len(CASES)


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
