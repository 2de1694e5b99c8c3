"""The ``ppgen`` command line, run in-process through ``ppgen.cli.main`` with tiny settings."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import matplotlib.image
import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

import ppgen
from ppgen import cli, plots
from ppgen.cli import common, data_sets, main
from ppgen.cli import pictures as cli_pictures
from ppgen.cli import sample as cli_sample

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TINY = ["--epochs", "2", "--eval-k", "10", "--batch-size", "256", "--seed", "0"]
RUN_FILES = ["fit.pt", "metrics.json", "samples.png", "latent.png", "loss.png"]


def read_metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def assert_png(path: Path, size: tuple[int, int] | None = None) -> None:
    assert path.read_bytes()[:8] == PNG_MAGIC, f"{path} is not a PNG"
    image = matplotlib.image.imread(path)
    if size is not None:
        assert image.shape[:2] == size


def assert_one_line_error(err: str, *fragments: str) -> None:
    """``err`` is the one-line ``ppgen: error: ...`` of a user error, naming each of ``fragments``."""
    assert err.startswith("ppgen: error:") and err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err


def copy_run(run: Path, tmp_path: Path) -> Path:
    """A copy of a run folder, for a test that damages it."""
    return Path(shutil.copytree(run, tmp_path / "copy"))


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One VAE-on-digits run, shared by the tests that only read it."""
    run = tmp_path_factory.mktemp("vae") / "run"
    capture = _Capture()
    with capture:
        code = main(["fit", "--model", "vae", "--data", "digits", "--inference", "iwae", "--k", "2",
                     "--z-dim", "2", "--hidden", "32", *TINY, "--out", str(run)])
    assert code == 0, capture.err
    return run, capture.out


@pytest.fixture(scope="module")
def gmm_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, dict]:
    """One GMM-on-moons run (exact log p(x)), with the keyword arguments each picture was drawn with."""
    run = tmp_path_factory.mktemp("gmm") / "run"
    drawn = {}

    def scatter(x2d, path, labels=None, **kwargs):
        drawn[Path(path).name] = kwargs
        scatter_png(x2d, path, labels, **kwargs)

    scatter_png = plots.scatter
    capture = _Capture()
    with pytest.MonkeyPatch.context() as patch, capture:
        patch.setattr(plots, "scatter", scatter)
        code = main(["fit", "--model", "gmm", "--data", "moons", "--components", "3", *TINY, "--out", str(run)])
    assert code == 0, capture.err
    return run, capture.out, drawn


class _Capture:
    """Captures stdout and stderr in a module-scoped fixture, where capsys is not available."""

    def __enter__(self):
        import contextlib
        import io

        self._out, self._err = io.StringIO(), io.StringIO()
        self._stack = contextlib.ExitStack()
        self._stack.enter_context(contextlib.redirect_stdout(self._out))
        self._stack.enter_context(contextlib.redirect_stderr(self._err))
        return self

    def __exit__(self, *exc):
        self._stack.close()
        self.out, self.err = self._out.getvalue(), self._err.getvalue()


# -------------------------------------------------------------------------------------------------
# fit


def test_fit_writes_every_file(vae_run):
    run, out = vae_run
    for name in RUN_FILES:
        assert (run / name).is_file(), name
    for name in ["samples.png", "latent.png", "loss.png"]:
        assert_png(run / name)
    assert not list(run.glob(".*.tmp")), "a temporary file of the atomic write was left behind"
    assert "test log-likelihood" in out
    assert str(run / "fit.pt") in out


def test_fit_metrics(vae_run):
    run, out = vae_run
    metrics = read_metrics(run)
    assert {"config", "train_loss", "test_log_likelihood", "eval_k", "wall_time_s"} <= metrics.keys()
    assert len(metrics["train_loss"]) == 2
    assert all(isinstance(loss, float) and math.isfinite(loss) for loss in metrics["train_loss"])
    ll = metrics["test_log_likelihood"]
    assert math.isfinite(ll) and ll < 0  # binarized digits: a probability mass, so log p(x) < 0
    assert metrics["eval_k"] == 10 and metrics["exact"] is False
    assert metrics["wall_time_s"] > 0
    config = metrics["config"]
    assert config["model"] == "vae" and config["data"] == "digits" and config["inference"] == "iwae"
    assert config["binarize"] is True and config["device"] == "cpu"
    assert config["model_options"] == {"z_dim": 2, "hidden": [32], "likelihood": "bernoulli"}
    assert f"{ll:.4f}" in out and "(k=10, 360 points)" in out


def test_fit_is_reproducible(vae_run, tmp_path):
    """The same --seed gives the same run: the initial weights are seeded too, not only the training."""
    run, _ = vae_run
    again = tmp_path / "again"
    assert main(["fit", "--model", "vae", "--data", "digits", "--inference", "iwae", "--k", "2",
                 "--z-dim", "2", "--hidden", "32", *TINY, "--out", str(again)]) == 0
    first, second = read_metrics(run), read_metrics(again)
    assert second["train_loss"] == first["train_loss"]
    assert second["test_log_likelihood"] == first["test_log_likelihood"]


def test_fit_with_the_captured_step_trains_as_the_plain_run_does(vae_run, tmp_path):
    run, _ = vae_run
    captured = tmp_path / "captured"
    assert main(["fit", "--model", "vae", "--data", "digits", "--inference", "iwae", "--k", "2",
                 "--z-dim", "2", "--hidden", "32", *TINY, "--compile", "capture", "--out", str(captured)]) == 0
    first, second = read_metrics(run), read_metrics(captured)
    assert second["train_loss"] == pytest.approx(first["train_loss"], rel=1e-5)
    assert second["test_log_likelihood"] == pytest.approx(first["test_log_likelihood"], abs=1e-3)


def test_latent_view_is_titled_after_the_latent_site(gmm_run):
    _, _, drawn = gmm_run
    latent = drawn["latent.png"]  # p(c|x) over 3 components: E[c | x] of the one-hot c, seen through PCA
    assert "E[c | x]" in latent["title"] and "PCA of 3-D c" in latent["title"]
    assert "z" not in latent["title"]


def test_samples_png_has_the_figure_size(vae_run):
    run, _ = vae_run
    height, width = (round(side * plots.DPI) for side in reversed(plots.FIGSIZE))
    assert_png(run / "samples.png", size=(height, width))


def test_fit_loads_back(vae_run):
    import ppgen

    run, _ = vae_run
    fit = ppgen.load(run / "fit.pt")
    assert fit.sample(3).shape == (3, 64)


# -------------------------------------------------------------------------------------------------
# eval and sample


def test_eval_records_and_prints(vae_run, capsys):
    run, _ = vae_run
    before = read_metrics(run)
    assert main(["eval", str(run), "--k", "10"]) == 0
    out = capsys.readouterr().out
    metrics = read_metrics(run)
    entry = metrics["eval"]
    assert entry["k"] == 10 and entry["exact"] is False and math.isfinite(entry["test_log_likelihood"])
    assert "(k=10, 360 points)" in out
    assert f"{entry['test_log_likelihood']:.4f}" in out
    # Same k, same seed, same test set: eval reproduces the estimate fit made.
    assert entry["test_log_likelihood"] == pytest.approx(before["test_log_likelihood"], abs=1e-4)
    # Nothing else in metrics.json changed.
    assert {key: value for key, value in metrics.items() if key != "eval"} == {
        key: value for key, value in before.items() if key != "eval"
    }


def test_eval_with_the_captured_passes_reproduces_the_plain_estimate(vae_run, tmp_path):
    run = copy_run(vae_run[0], tmp_path)
    assert main(["eval", str(run), "--k", "10"]) == 0
    plain = read_metrics(run)["eval"]
    assert main(["eval", str(run), "--k", "10", "--compile", "capture"]) == 0
    captured = read_metrics(run)["eval"]
    assert captured["test_log_likelihood"] == pytest.approx(plain["test_log_likelihood"], abs=1e-4)
    assert captured["report"]["mean"]["iwae"] == pytest.approx(plain["report"]["mean"]["iwae"], abs=1e-4)


def test_eval_scores_the_draws_by_the_metrics_asked_for(vae_run, tmp_path, capsys):
    run = copy_run(vae_run[0], tmp_path)
    assert main(["eval", str(run), "--k", "5"]) == 0
    assert "C2ST accuracy" in capsys.readouterr().out
    samples = read_metrics(run)["eval"]["report"]["samples"]
    assert set(samples) == {"n", "mmd", "c2st", "frechet", "frechet_features"} and samples["mmd"]["n"] == [360, 360]
    assert main(["eval", str(run), "--k", "5", "--metrics", "mmd"]) == 0
    assert set(read_metrics(run)["eval"]["report"]["samples"]) == {"n", "mmd"}
    assert main(["eval", str(run), "--k", "5", "--metrics", "none"]) == 0
    assert read_metrics(run)["eval"]["report"]["samples"] is None


def test_eval_defaults_to_the_run_eval_k(vae_run):
    run, _ = vae_run
    assert main(["eval", str(run)]) == 0
    assert read_metrics(run)["eval"]["k"] == 10


def test_sample_writes_png(vae_run, tmp_path, capsys):
    run, _ = vae_run
    out = tmp_path / "pictures" / "s.png"
    assert main(["sample", str(run), "-n", "16", "--out", str(out)]) == 0
    height, width = (round(side * plots.DPI) for side in reversed(plots.FIGSIZE))
    assert_png(out, size=(height, width))
    assert str(out) in capsys.readouterr().out


def test_sample_default_out(vae_run):
    run, _ = vae_run
    assert main(["sample", str(run), "-n", "4"]) == 0
    assert_png(run / "samples-4.png")


# -------------------------------------------------------------------------------------------------
# other models and data


def test_gmm_on_moons(gmm_run, tmp_path):
    run, _, _ = gmm_run
    run = copy_run(run, tmp_path)
    for name in RUN_FILES:  # latent.png shows p(c|x), the posterior over the summed-out component
        assert (run / name).is_file(), name
    metrics = read_metrics(run)
    assert metrics["config"]["binarize"] is None
    assert metrics["n_train"] == 1000 and metrics["n_test"] == 500
    assert math.isfinite(metrics["test_log_likelihood"])
    assert main(["eval", str(run)]) == 0
    assert read_metrics(run)["eval"]["test_log_likelihood"] == pytest.approx(metrics["test_log_likelihood"])


def test_an_exact_log_likelihood_is_reported_as_exact(gmm_run, tmp_path, capsys):
    """log p(x) of a GMM is exact: no k is printed or recorded, by fit and by eval alike."""
    run, out, _ = gmm_run
    assert "(exact, 500 points)" in out and "k=" not in out
    metrics = read_metrics(run)
    assert metrics["exact"] is True and metrics["eval_k"] is None
    run = copy_run(run, tmp_path)
    assert main(["eval", str(run), "--k", "7"]) == 0
    out = capsys.readouterr().out
    assert "(exact, 500 points)" in out and "k=" not in out
    entry = read_metrics(run)["eval"]
    assert entry["exact"] is True and entry["k"] is None


def test_ppca_on_continuous_digits(tmp_path):
    run = tmp_path / "ppca"
    assert main(["fit", "--model", "ppca", "--data", "digits", "--z-dim", "3", *TINY, "--out", str(run)]) == 0
    for name in RUN_FILES:
        assert (run / name).is_file(), name
    metrics = read_metrics(run)
    assert metrics["config"]["binarize"] is False and metrics["exact"] is True
    assert len(metrics["train_loss"]) == 2
    assert math.isfinite(metrics["test_log_likelihood"])


def test_vae_on_moons_is_gaussian(tmp_path):
    run = tmp_path / "vae-moons"
    assert main(["fit", "--model", "vae", "--data", "moons", "--z-dim", "2", "--hidden", "16", *TINY,
                 "--out", str(run)]) == 0
    metrics = read_metrics(run)
    assert metrics["config"]["model_options"]["likelihood"] == "gaussian"
    assert (run / "latent.png").is_file()


def test_idx_data(tmp_path):
    images = (np.random.default_rng(0).random((20, 4, 4)) > 0.5).astype(np.uint8) * 255
    path = tmp_path / "images.idx"
    header = bytes([0, 0, 0x08, 3]) + b"".join(int(d).to_bytes(4, "big") for d in images.shape)
    path.write_bytes(header + images.tobytes())
    run = tmp_path / "run"
    assert main(["fit", "--model", "vae", "--data", f"idx:{path}", "--z-dim", "2", "--hidden", "8", *TINY,
                 "--out", str(run)]) == 0
    metrics = read_metrics(run)
    assert metrics["n_train"] == 16 and metrics["n_test"] == 4 and metrics["x_dim"] == 16
    assert metrics["config"]["data"] == f"idx:{path.resolve()}"
    assert main(["eval", str(run), "--k", "5"]) == 0


# -------------------------------------------------------------------------------------------------
# validation, early stopping, TensorBoard


def test_fit_holds_out_a_validation_split_and_records_its_loss(vae_run):
    run, _ = vae_run
    metrics, held = read_metrics(run), round(0.1 * 1437)
    assert metrics["n_train"] == 1437 and metrics["n_validation"] == held
    assert len(metrics["validation_loss"]) == 2 and all(math.isfinite(v) for v in metrics["validation_loss"])
    assert metrics["config"]["validation_split"] == 0.1 and metrics["best_epoch"] is None and metrics["stopped"] is None
    config = json.loads((run / "manifest.json").read_text())["config"]
    assert config["data"]["shape"] == [[1437 - held, 64]] and config["validation"]["shape"] == [[held, 64]]


@pytest.fixture(scope="module")
def watched_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """A GMM-on-moons run with a fifth of its rows held out, patience, the best epoch kept and TensorBoard files."""
    folder = tmp_path_factory.mktemp("watched")
    capture = _Capture()
    with capture:
        code = main(["fit", "--model", "gmm", "--data", "moons", "--components", "3", *TINY, "--epochs", "4",
                     "--validation-split", "0.2", "--patience", "1", "--keep", "best", "--tensorboard",
                     str(folder / "tb"), "--out", str(folder / "run")])
    assert code == 0, capture.err
    return folder / "run", folder / "tb", capture.err


def test_fit_writes_the_validation_curves_to_tensorboard(watched_run):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run, tb, _ = watched_run
    metrics = read_metrics(run)
    assert metrics["n_validation"] == 200 and metrics["config"]["patience"] == 1
    epochs = len(metrics["train_loss"])
    assert len(metrics["validation_loss"]) == epochs and 1 <= metrics["best_epoch"] <= epochs
    assert (metrics["stopped"] is None) == (epochs == 4)
    events = EventAccumulator(str(tb))
    events.Reload()
    for tag, losses in (("train/loss", metrics["train_loss"]), ("validation/loss", metrics["validation_loss"])):
        assert [(e.step, e.value) for e in events.Scalars(tag)] == [
            (epoch, float(np.float32(loss))) for epoch, loss in enumerate(losses, 1)]
    assert {"pictures/samples", "pictures/latent"} <= set(events.Tags()["images"])


def test_fit_off_a_terminal_says_a_line_per_epoch(watched_run):
    run, _, err = watched_run
    metrics = read_metrics(run)
    lines = [line for line in err.splitlines() if line.startswith("epoch ")]
    assert len(lines) == len(metrics["train_loss"])
    for epoch, (line, loss, held) in enumerate(zip(lines, metrics["train_loss"], metrics["validation_loss"]), 1):
        assert line.startswith(f"epoch {epoch}/4: loss {loss:.4f}, validation {held:.4f}, ")


def test_fit_without_a_validation_split_trains_on_every_row(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["fit", "--model", "gmm", "--data", "moons", "--components", "3", *TINY, "--validation-split", "0",
                 "--no-progress", "--out", str(run)]) == 0
    metrics = read_metrics(run)
    assert metrics["n_validation"] == 0 and metrics["validation_loss"] == [] and "validation_split" not in metrics[
        "config"]
    assert json.loads((run / "manifest.json").read_text())["config"]["data"]["shape"] == [[1000, 2]]
    assert "epoch 1/2" not in capsys.readouterr().err  # --no-progress: quiet


# -------------------------------------------------------------------------------------------------
# errors


def test_unknown_model(tmp_path, capsys):
    assert main(["fit", "--model", "nosuchmodel", "--out", str(tmp_path / "run")]) == 2
    assert "nosuchmodel" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["fit", "--data", "cifar"], "cifar"),
        (["fit", "--epochs", "0"], "--epochs"),
        (["fit", "--lr", "-1"], "--lr"),
        (["fit", "--inference", "nuts"], "nuts"),
        (["fit", "--k", "5"], "--k needs --inference"),
        (["fit", "--inference", "mle", "--k", "5"], "--k does not apply to --inference mle"),
        (["fit", "--inference", "adversarial", "--k", "5"], "--k does not apply to --inference adversarial"),
        (["fit", "--inference", "wasserstein", "--k", "5"], "--k does not apply to --inference wasserstein"),
        (["fit", "--epochs", "2.5"], "argument --epochs: expected int, got '2.5'"),
        (["fit", "--lr", "nan"], "argument --lr: value must be a positive finite number"),
        (["fit", "--seed", "-5"], "argument --seed: value must be an int in [0, 2**32), got -5"),
        (["eval", "RUN", "--seed", "4294967296"], "argument --seed"),
        (["eval", "RUN", "--metrics", "mmd,fid"],
         "argument --metrics: unknown 'fid': give none or names among mmd, c2st, frechet"),
        (["sample", "RUN", "--seed", "one"], "argument --seed: expected int"),
        (["fit", "--device", "gpu"], "argument --device: value must name a torch device"),
        (["eval", "RUN", "--device", "cuda:99"], "argument --device: value='cuda:99'"),
        (["sample", "RUN", "--device", "tpu:0"], "argument --device"),
        (["fit", "--model", "gmm", "--z-dim", "2"], "--z-dim"),
        (["fit", "--data", "moons", "--binarize"], "--binarize"),
        (["fit", "--validation-split", "1"], "argument --validation-split: expected a fraction from 0 up to 1"),
        (["fit", "--validation-split", "a tenth"], "argument --validation-split: expected a fraction"),
        (["fit", "--patience", "0"], "argument --patience"),
        (["fit", "--keep", "first"], "argument --keep"),
        (["fit", "--data", "moons", "--validation-split", "0", "--patience", "3"], "--patience needs held-out rows"),
        (["fit", "--data", "moons", "--validation-split", "0", "--keep", "best"], "--keep best needs held-out rows"),
        (["eval"], "RUN"),
        (["frobnicate"], "frobnicate"),
    ],
)
def test_bad_arguments(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_missing_run(tmp_path, capsys):
    missing = tmp_path / "nothing-here"
    assert main(["eval", str(missing)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ppgen: error:") and str(missing) in err
    assert "Traceback" not in err


def test_run_without_fit_pt(tmp_path, capsys):
    assert main(["sample", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert str(tmp_path / "fit.pt") in err and "Traceback" not in err


def test_eval_of_a_file_says_it_is_not_a_run_folder(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("not a run")
    assert main(["eval", str(afile)]) == 1
    assert_one_line_error(capsys.readouterr().err, f"{afile} is not a run folder")


def test_eval_with_corrupt_metrics_names_the_file(vae_run, tmp_path, capsys):
    """A damaged metrics.json is no longer the file the run wrote: its digest is not the manifest's."""
    run = copy_run(vae_run[0], tmp_path)
    (run / "metrics.json").write_text('{"config": ')
    assert main(["eval", str(run)]) == 1
    assert_one_line_error(capsys.readouterr().err, str(run / "metrics.json"), "does not belong to the run")


@pytest.mark.parametrize("command", ["eval", "sample"])
def test_corrupt_fit_pt(vae_run, tmp_path, capsys, command):
    run = copy_run(vae_run[0], tmp_path)
    (run / "fit.pt").write_bytes(bytes(range(256)) * 4)
    assert main([command, str(run)]) == 1
    assert_one_line_error(capsys.readouterr().err, str(run / "fit.pt"))


def test_fit_refuses_an_out_that_is_a_file_before_training(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(ppgen, "fit", lambda *args, **kwargs: pytest.fail("trained before checking --out"))
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    for out in [afile, afile / "run"]:
        assert main(["fit", "--model", "ppca", *TINY, "--out", str(out)]) == 1
        assert_one_line_error(capsys.readouterr().err, f"--out {out}", f"{afile} exists and is not a folder")
    assert afile.read_text() == "keep me"


def test_a_failed_fit_leaves_no_run_folder(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["fit", "--model", "vae", "--inference", "mle", *TINY, "--out", str(run)]) == 1
    assert_one_line_error(capsys.readouterr().err, "--inference mle needs", "use --inference elbo")
    assert not run.exists()


def test_sample_refuses_an_out_it_cannot_write(vae_run, tmp_path, capsys):
    run, _ = vae_run
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    assert main(["sample", str(run), "-n", "4", "--out", str(afile / "s.png")]) == 1
    assert_one_line_error(capsys.readouterr().err, f"--out {afile / 's.png'}",
                          f"its parent {afile} is a file, not a folder")
    assert main(["sample", str(run), "-n", "4", "--out", str(tmp_path)]) == 1
    assert_one_line_error(capsys.readouterr().err, f"--out {tmp_path} is a folder")
    assert afile.read_text() == "keep me"


@pytest.mark.parametrize(
    "error", [FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError, FileNotFoundError]
)
def test_file_system_errors_are_one_line(error, vae_run, monkeypatch, capsys):
    """An OSError that a command meets on a path the user named is reported, not raised."""

    def fails(args):
        raise error(13, "the file system says no", "some/path")

    monkeypatch.setattr(cli_sample, "run", fails)
    assert main(["sample", str(vae_run[0])]) == 1
    assert_one_line_error(capsys.readouterr().err, "the file system says no", "some/path")


def test_missing_idx_file(tmp_path, capsys):
    missing = tmp_path / "missing.idx"
    assert main(["fit", "--data", f"idx:{missing}", *TINY, "--out", str(tmp_path / "run")]) == 1
    assert str(missing) in capsys.readouterr().err


def test_help_exits_zero(capsys):
    assert main(["--help"]) == 0
    assert "fit" in capsys.readouterr().out


COMMANDS = ("fit", "eval", "sample", "encode", "posterior")


def help_examples(capsys, *command: str) -> list[list[str]]:
    """The example that ``ppgen [command] --help`` ends with: its lines, each split as a shell would."""
    import shlex

    assert main([*command, "--help"]) == 0
    text = capsys.readouterr().out
    head, _, tail = text.rpartition("\nexample:\n")
    assert head and tail.endswith("\n") and "\n\n" not in tail, text  # the last thing said
    lines = tail.splitlines()
    assert all(line.startswith("  ppgen ") for line in lines), lines
    return [shlex.split(line)[1:] for line in lines]


@pytest.mark.usefixtures("one_thread")
@pytest.mark.filterwarnings("ignore:.*Pareto k-hat above:UserWarning")  # eval's diagnostics of a 5-epoch guide
def test_every_help_ends_with_an_example_that_runs(tmp_path, monkeypatch, capsys):
    """The top level's example (a run fitted, evaluated, drawn from) runs as written in an empty folder; then each
    command's, the fit's in an empty folder of its own, the others on the run the top level's example wrote. Each
    example is a command of its own help, and every file it names is written."""
    examples = {command: help_examples(capsys, command) for command in COMMANDS}
    top = help_examples(capsys)
    assert [argv[0] for argv in top] == ["fit", "eval", "sample"]
    for command, argvs in examples.items():
        assert argvs and all(argv[0] == command for argv in argvs), (command, argvs)
    for folder, argvs in (("top", top), ("fit", examples["fit"]),
                          ("top", [argv for command in COMMANDS[1:] for argv in examples[command]])):
        (tmp_path / folder).mkdir(exist_ok=True)
        monkeypatch.chdir(tmp_path / folder)
        for argv in argvs:
            assert main(argv) == 0, (argv, capsys.readouterr().err)
    written = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert {"top/runs/demo/fit.pt", "top/runs/demo/samples-16.png", "top/runs/demo/samples-16-mean.png",
            "fit/runs/demo/fit.pt", "fit/runs/renyi/fit.pt", "top/samples.png", "top/samples-mean.png",
            "top/latent.png", "top/post.nc"} <= written
    assert "eval" in read_metrics(tmp_path / "top" / "runs" / "demo")


def test_sample_mean_writes_the_means_of_the_same_draws_beside_them(vae_run, tmp_path, monkeypatch, capsys):
    """``--mean``: the draws x ~ p(x | z) and, beside them, the means E[x | z] of the same latent draws z, each as
    ``fit.sample(n)`` and ``fit.sample(n, mean=True)`` give them on the same seed."""
    from pyro import poutine

    drawn = {}
    monkeypatch.setattr(common, "draw_samples", lambda x, path, **kw: drawn.__setitem__(Path(path).name, (x, kw)))
    run, _ = vae_run
    assert main(["sample", str(run), "-n", "16", "--seed", "3", "--mean", "--out", str(tmp_path / "s.png")]) == 0
    assert capsys.readouterr().out == (f"wrote 16 samples to {tmp_path / 's.png'}, their means E[x | z] to "
                                       f"{tmp_path / 's-mean.png'}\n")
    fit = ppgen.load(run / "fit.pt")
    traces = []
    for mean, name in ((False, "s.png"), (True, "s-mean.png")):
        pyro.set_rng_seed(3)
        traces.append(poutine.trace(lambda: fit.sample(16, mean=mean)).get_trace())
        assert torch.equal(drawn[name][0], traces[-1].nodes["_RETURN"]["value"])
    assert torch.equal(traces[0].nodes["z"]["value"], traces[1].nodes["z"]["value"])  # the same z for both
    x, means = drawn["s.png"][0], drawn["s-mean.png"][0]
    assert set(x.unique().tolist()) == {0.0, 1.0} and not bool(((means == 0) | (means == 1)).all())
    assert drawn["s-mean.png"][1]["title"] == r"decoder means $E[x \mid z]$, $z \sim p(z)$"
    assert cli_sample.mean_path(Path("a/b.c.png")) == Path("a/b.c-mean.png")


def test_python_m_ppgen_help():
    result = subprocess.run([sys.executable, "-m", "ppgen", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "usage: ppgen" in result.stdout
    for command in ["fit", "eval", "sample"]:
        assert command in result.stdout


# -------------------------------------------------------------------------------------------------
# plots


def test_plots_write_pngs(tmp_path):
    rng = np.random.default_rng(0)
    plots.image_grid(rng.random((10, 784)), tmp_path / "grid.png")
    plots.image_grid(rng.random((5, 7)), tmp_path / "rows.png")  # D not a square: one row per image
    plots.scatter(rng.normal(size=(50, 2)), tmp_path / "scatter.png", labels=rng.integers(0, 3, 50))
    plots.loss_curve([3.0, 2.0, 1.5], tmp_path / "loss.png")
    for name in ["grid.png", "rows.png", "scatter.png", "loss.png"]:
        assert_png(tmp_path / name)


def test_plots_reject_bad_shapes(tmp_path):
    with pytest.raises(ValueError, match="shape"):
        plots.scatter(np.zeros((4, 3)), tmp_path / "x.png")
    with pytest.raises(ValueError, match="shape"):
        plots.image_grid(np.zeros(4), tmp_path / "x.png")


def test_a_model_without_latents_skips_the_latent_view(tmp_path):
    def coins(x):
        probs = pyro.param("probs", torch.full((2,), 0.5), constraint=dist.constraints.unit_interval)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", dist.Bernoulli(probs).to_event(1), obs=x)

    x = torch.bernoulli(torch.full((20, 2), 0.5))
    fit = ppgen.fit(coins, x, epochs=1, progress=False)
    stale = tmp_path / "latent.png"
    stale.write_bytes(b"from an earlier run")
    reason = cli_pictures.draw_latent(fit, data_sets.Data(x, x, None, is_image=False), stale)
    assert "no latent variables" in reason and not stale.exists()


def test_the_largest_seed_draws_both_moons_sets(tmp_path):
    """The test set of moons is drawn with the next seed, which wraps around at 2**32."""
    run = tmp_path / "run"
    assert main(["fit", "--model", "gmm", "--data", "moons", *TINY[:-2], "--seed", str(2**32 - 1),
                 "--out", str(run)]) == 0
    assert read_metrics(run)["config"]["seed"] == 2**32 - 1


def test_a_latent_view_without_spread_is_drawn_as_it_is(tmp_path, monkeypatch):
    """Posterior means that are the same for every point have no principal directions: no PCA, no 'nan%'."""
    drawn = {}
    monkeypatch.setattr(plots, "scatter", lambda points, path, **options: drawn.update(points=points, **options))
    fit = SimpleNamespace(encode=lambda x: torch.tensor([[0.0, 0.0, 1.0]]).expand(len(x), 3), latent_sites=("c",))
    data = data_sets.Data(torch.zeros(5, 2), torch.zeros(5, 2), torch.arange(5), is_image=False)
    assert cli_pictures.draw_latent(fit, data, tmp_path / "latent.png") is None
    assert "the same for every point" in drawn["title"] and "nan" not in drawn["xlabel"] + drawn["ylabel"]


def test_the_parser_imports_neither_torch_nor_pyro():
    """`ppgen --help` stays quick: building the parser imports nothing heavy (each command imports on use)."""
    code = ("import sys; from ppgen.cli import build_parser; build_parser(); "
            "print(sorted({'torch', 'pyro'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_every_option_has_help_and_shows_its_default_once():
    parser = cli.build_parser()
    for command in ("fit", "eval", "sample"):
        sub = parser._subparsers._group_actions[0].choices[command]
        formatter = sub._get_formatter()
        for action in sub._actions:
            if not action.option_strings or action.dest == "help":
                continue
            assert action.help, f"{command} {action.option_strings} has no help"
            text = formatter._get_help_string(action) % {"default": action.default}
            if not isinstance(action.default, bool):  # flags: present or not
                assert text.count("default") == 1, f"{command} {action.option_strings}: {text!r}"


def test_the_cli_knows_the_registry_names():
    from ppgen.objective.adversary import Adversary
    from ppgen.training import registry

    assert common.MODEL_NAMES == tuple(sorted(registry.MODELS | registry.ENERGY_MODELS))
    assert common.INFERENCE_NAMES == tuple(sorted(registry.INFERENCE | registry.ENERGY_INFERENCE))
    assert common.TWO_PLAYER == tuple(sorted(n for n, b in registry.INFERENCE.items() if issubclass(b, Adversary)))
    assert common.WITHOUT_K == registry.WITHOUT_K
    assert registry.build_inference("adversarial", k=5) == ppgen.inference.Adversarial(divergence="js")
    assert registry.build_inference("wasserstein") == ppgen.inference.Wasserstein()


@pytest.mark.parametrize("flags, flag, step", [(["--compile", "capture"], "--compile capture", "the captured step"),
                                               (["--compile", "true"], "--compile true", "the captured step"),
                                               (["--distributed"], "--distributed", "data-parallel training")])
@pytest.mark.parametrize("backend", ["adversarial", "wasserstein"])
def test_a_two_player_inference_refuses_compile_and_distributed_by_flag_before_any_work(backend, flags, flag, step,
                                                                                          tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["fit", "--model", "generator", "--data", "moons", "--inference", backend, *flags, "--out",
                 str(run)]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"ppgen fit: error: {flag} does not apply to --inference {backend}: it trains a critic beside the model, which "
        f"{step} does not take yet; leave {flag.split()[0]} out")
    assert not run.exists()


@pytest.mark.parametrize("backend, objective", [
    ("adversarial", "Adversarial(critic=Critic, critic_steps=1, critic_lr=None, divergence='js', nonsaturating=True)"),
    ("wasserstein", ("Wasserstein(critic=Critic, critic_steps=5, critic_lr=None, gradient_penalty=10.0, "
                     "one_sided=False)")),
])
def test_a_generator_is_fitted_by_a_critic_with_its_defaults(backend, objective, tmp_path, monkeypatch):
    """Its objective on one line (the zoo's critic by name, not the module's repr), in metrics.json and loss.png's
    title."""
    titles, draw = [], plots.loss_curve

    def loss_curve(*args, title, **options):
        titles.append(title)
        draw(*args, title=title, **options)

    monkeypatch.setattr(plots, "loss_curve", loss_curve)
    run = tmp_path / "run"
    assert main(["fit", "--model", "generator", "--data", "moons", "--inference", backend, "--epochs", "1",
                 "--batch-size", "500", "--out", str(run)]) == 0
    metrics = read_metrics(run)
    assert metrics["objective"] == objective and metrics["config"]["inference"] == backend
    assert len(metrics["train_loss"]) == 1 and math.isfinite(metrics["train_loss"][0])
    assert metrics["test_log_likelihood"] is None and metrics["test_sample_quality"]["n"] == [500, 500]
    assert titles == [f"training loss, {objective}"]


def test_python_m_ppgen_runs_the_cli():
    out = subprocess.run([sys.executable, "-m", "ppgen", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("ppgen ")


def test_a_symlink_at_the_picture_is_refused_not_written_through(vae_run, tmp_path):
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    out = tmp_path / "samples.png"
    out.symlink_to(target)
    assert main(["sample", str(vae_run[0]), "-n", "4", "--out", str(out)]) == 1
    assert target.read_text() == "keep me"


def test_a_diffusion_run_reports_its_bound_as_a_bound(tmp_path, capsys):
    """A DDPM fitted from the command line: its test figure is the model's own lower bound, recorded as neither exact
    nor an importance-sampled estimate, and eval, whose weight diagnostics need importance weights, records it alone."""
    run = tmp_path / "ddpm"
    assert main(["fit", "--model", "ddpm", "--data", "moons", "--hidden", "16", *TINY, "--out", str(run)]) == 0
    metrics = read_metrics(run)
    assert metrics["bound"] is True and metrics["exact"] is False and metrics["eval_k"] is None
    assert "nats per point (the model's lower bound" in capsys.readouterr().out
    assert main(["fit", "--model", "ddpm", "--data", "moons", "--hidden", "16", *TINY, "--out", str(run),
                 "--resume"]) == 0  # finished already: its bound said again as a bound, nothing rewritten
    assert "nats per point (the model's lower bound, 500 points); nothing was rewritten" in capsys.readouterr().out
    assert main(["eval", str(run)]) == 0
    entry = read_metrics(run)["eval"]
    assert entry["bound"] is True and entry["report"] is None
    assert entry["test_log_likelihood"] == pytest.approx(metrics["test_log_likelihood"], abs=1e-4)
