"""The run-folder half of the bad-input catalogue: what a run folder writes, deletes, resumes and records.

Each case asserts the error type, the words that name the problem, and that nothing of the user's changed: the bytes
and modification times of their files, the old run whole, the model's parameters.
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import ppgen
from ppgen import inference
from ppgen.cli import main
from ppgen.run.checkpoint import run_prefix
from ppgen.run.folder import RunFolder, digest, staging_path
from ppgen.run.signals import Interrupted
from programs import coin_rows, small_vae
from run_files import record_again

SETTINGS = dict(epochs=3, batch_size=16, progress=False)
CALLS = [0]


@pytest.fixture(autouse=True)
def rearm():
    CALLS[0] = 0


def disarm():
    CALLS[0] = -10**9


@dataclass(frozen=True, kw_only=True)
class Stopped(inference.ELBO):
    """The ELBO, which sends SIGTERM to its own process at the ``at``-th step (0: never), as a scheduler would; once
    only, until :func:`rearm`."""

    at: int = 0

    def loss(self, module, structure, x):
        CALLS[0] += 1
        if CALLS[0] == self.at:
            os.kill(os.getpid(), signal.SIGTERM)
        return super().loss(module, structure, x)


@dataclass(frozen=True, kw_only=True)
class Failing(inference.ELBO):
    """The ELBO, whose loss is NaN from the ``at``-th step on: the fit stops with ``ppgen.Diverged``."""

    at: int = 1

    def loss(self, module, structure, x):
        CALLS[0] += 1
        loss = super().loss(module, structure, x)
        return loss * float("nan") if CALLS[0] >= self.at else loss


@pytest.fixture
def binary():
    return coin_rows()


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``folder`` (a sibling staging folder included, by its own name): bytes and mtime."""
    files = {}
    for root in (folder, staging_path(folder)):
        for path in sorted(root.rglob("*")) if root.is_dir() else []:
            if path.is_file():
                files[str(path.relative_to(root.parent))] = (path.read_bytes(), path.stat().st_mtime_ns)
    return files


def parameters(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: t.detach().clone() for name, t in module.state_dict().items()}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def interrupted_run(run: Path, binary: torch.Tensor, at: int = 6) -> None:
    """A run stopped by SIGTERM at step ``at`` (epoch 2 of 3, batch 2 of 4), with its checkpoint there."""
    with pytest.raises(Interrupted):
        ppgen.fit(small_vae(), binary, inference=Stopped(at=at), out=run, **SETTINGS)
    disarm()


# -------------------------------------------------------------------------------------------------
# Where a run folder is made, and what of the folder it touches


def test_an_empty_out_is_refused_before_anything_is_written(binary, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = small_vae()
    before = parameters(model)
    with pytest.raises(ValueError, match="out must name a folder for the run, got an empty path"):
        ppgen.fit(model, binary, out="", **SETTINGS)
    assert list(tmp_path.iterdir()) == [] and same(parameters(model), before)


def test_the_cli_refuses_an_empty_out(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["fit", "--epochs", "1", "--out", ""]) == 2
    assert "argument --out: expected the path of a folder for the run, got an empty string" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_users_folder_keeps_every_file_of_the_user(binary, tmp_path):
    """A run in a folder of the user's own leaves their files as they were, `.tmp-*` ones included, through a fit,
    an interrupted replacement, its resume, and a resume of the finished run; ppgen's own stale temporary goes."""
    folder = tmp_path / "mine"
    folder.mkdir()
    for name, content in {".tmp-notes.txt": b"notes", ".tmp-ppgen-draft": b"draft", "data.csv": b"1,2\n"}.items():
        (folder / name).write_bytes(content)
    users = snapshot(folder)
    ppgen.fit(small_vae(), binary, out=folder, **SETTINGS)
    config = json.loads((folder / "manifest.json").read_text())["config"]
    killed = folder / f"{run_prefix(config)}abc123checkpoint.pt"
    killed.write_bytes(b"what a killed write of this run left")
    with pytest.raises(Interrupted):
        ppgen.fit(small_vae(), binary, inference=Stopped(at=3), out=folder, overwrite=True, **SETTINGS)
    disarm()
    ppgen.fit(small_vae(), binary, inference=Stopped(at=3), out=folder, resume=True, **SETTINGS)
    ppgen.fit(small_vae(), binary, inference=Stopped(at=3), out=folder, resume=True, **SETTINGS)
    after = snapshot(folder)
    assert {name: after[name] for name in users} == users
    assert not killed.exists() and not staging_path(folder).exists()


# -------------------------------------------------------------------------------------------------
# Overwrite: the old run stays whole until the new one is complete


def test_a_replacement_that_fails_leaves_the_old_run_untouched(binary, tmp_path):
    run = tmp_path / "run"
    first = ppgen.fit(small_vae(), binary, out=run, **SETTINGS)
    RunFolder(run).write("samples.png", lambda f: f.write(b"a picture of the old run"))
    before = snapshot(run)
    with pytest.raises(ppgen.Diverged):
        ppgen.fit(small_vae(), binary, inference=Failing(at=6), out=run, overwrite=True, **SETTINGS)
    assert {name: value for name, value in snapshot(run).items() if name.startswith("run/")} == before
    assert same(ppgen.load(run / "fit.pt").model.state_dict(), first.model.state_dict())
    RunFolder(run).verify("fit.pt", "checkpoint.pt", "samples.png")


def test_an_interrupted_replacement_leaves_the_old_run_and_resumes_into_its_place(binary, tmp_path):
    """Stopped half way, the replacement lives in the staging folder beside the run; resume continues it there,
    bitwise, and the complete new run takes the old one's place as a unit: the old run's picture goes too."""
    run = tmp_path / "run"
    ppgen.fit(small_vae(), binary, out=run, epochs=2, batch_size=16, progress=False)
    RunFolder(run).write("latent.png", lambda f: f.write(b"a picture of the old run"))
    old = snapshot(run)
    whole = ppgen.fit(small_vae(), binary, inference=Stopped(), out=tmp_path / "whole", **SETTINGS)
    CALLS[0] = 0
    with pytest.raises(Interrupted) as stop:
        ppgen.fit(small_vae(), binary, inference=Stopped(at=6), out=run, overwrite=True, **SETTINGS)
    disarm()
    assert stop.value.checkpoint == str(staging_path(run) / "checkpoint.pt")
    assert {name: value for name, value in snapshot(run).items() if name.startswith("run/")} == old
    resumed = ppgen.fit(small_vae(), binary, inference=Stopped(at=6), out=run, resume=True, **SETTINGS)
    assert same(resumed.model.state_dict(), whole.model.state_dict())
    manifest = RunFolder(run).verify("fit.pt", "checkpoint.pt")
    assert manifest["complete"] and set(manifest["files"]) == {"checkpoint.pt", "fit.pt"}
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pt", "fit.pt", "manifest.json"]
    assert not staging_path(run).exists()


def test_a_replacement_killed_while_it_takes_the_old_runs_place_is_finished_by_the_next_call(binary, tmp_path,
                                                                                          monkeypatch):
    run = tmp_path / "run"
    ppgen.fit(small_vae(), binary, out=run, epochs=2, batch_size=16, progress=False)
    moves = []
    replace = os.replace

    def killed_at_the_second_move(source, target):
        if Path(source).parent == staging_path(run) and Path(target).parent == run:
            moves.append(source)
            if len(moves) == 2:
                raise KeyboardInterrupt  # the kill: one file of the new run moved, the manifest still the old one
        return replace(source, target)

    monkeypatch.setattr(os, "replace", killed_at_the_second_move)
    with pytest.raises(KeyboardInterrupt):
        ppgen.fit(small_vae(), binary, out=run, overwrite=True, **SETTINGS)
    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(ValueError, match="does not belong to the run"):  # the half-moved folder is refused
        RunFolder(run).verify("fit.pt", "checkpoint.pt")
    fit = ppgen.fit(small_vae(), binary, out=run, resume=True, **SETTINGS)
    assert len(fit.history) == 3 and RunFolder(run).verify("fit.pt", "checkpoint.pt")["complete"]
    assert not staging_path(run).exists()


def test_a_staging_folder_that_is_not_ppgens_is_refused(binary, tmp_path):
    run = tmp_path / "run"
    ppgen.fit(small_vae(), binary, out=run, **SETTINGS)
    staging_path(run).mkdir()
    (staging_path(run) / "thesis.tex").write_text("the user's")
    before = snapshot(run)
    with pytest.raises(FileExistsError, match=r"\.run\.ppgen-replacement.*holds files that ppgen did not write"):
        ppgen.fit(small_vae(), binary, out=run, overwrite=True, **SETTINGS)
    assert snapshot(run) == before


def test_a_replacement_whose_staging_folder_cannot_be_made_is_refused_before_any_work(binary, tmp_path,
                                                                                      monkeypatch):
    """The run folder is writable but the folder it sits in is not (root writes anywhere, so the refusal of a file
    there is played by tempfile): overwrite is refused before the model changes."""
    run = tmp_path / "run"
    ppgen.fit(small_vae(), binary, out=run, **SETTINGS)
    before, model = snapshot(run), small_vae()
    weights = parameters(model)
    made = tempfile.TemporaryFile

    def refused_beside_the_run(*args, dir=None, **kwargs):
        if Path(dir) == tmp_path:
            raise PermissionError(13, "Permission denied")
        return made(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "TemporaryFile", refused_beside_the_run)
    with pytest.raises(PermissionError, match=rf"out {run}: its replacement is written beside it, in "
                                              rf"{tmp_path}/\.run\.ppgen-replacement, but {tmp_path} is not writable"):
        ppgen.fit(model, binary, out=run, overwrite=True, **SETTINGS)
    assert snapshot(run) == before and same(parameters(model), weights)


# -------------------------------------------------------------------------------------------------
# A finished run's results are the user's data too


def test_resuming_a_finished_run_rewrites_nothing(binary, tmp_path):
    run = tmp_path / "run"
    first = ppgen.fit(small_vae(), binary, out=run, **SETTINGS)
    before = snapshot(run)
    again = ppgen.fit(small_vae(), binary, out=run, resume=True, **SETTINGS)
    assert snapshot(run) == before
    assert again.history == first.history and same(again.model.state_dict(), first.model.state_dict())


TINY = ["--model", "vae", "--data", "digits", "--z-dim", "2", "--hidden", "8", "--epochs", "2", "--batch-size",
        "256", "--eval-k", "3", "--no-progress", "--threads", "1"]


def test_the_cli_resuming_a_finished_run_keeps_its_metrics_and_eval_records(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["fit", *TINY, "--out", str(run)]) == 0
    assert main(["eval", str(run), "--k", "5"]) == 0
    first = json.loads((run / "metrics.json").read_text())["eval"]
    assert main(["eval", str(run), "--k", "2"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["eval"]["k"] == 2 and metrics["earlier_evals"] == [first]
    assert "the earlier records, with k=5, seed=0, are kept under 'earlier_evals'" in capsys.readouterr().out
    assert main(["eval", str(run), "--k", "2"]) == 0  # the same settings: the same estimate again, replaced
    assert json.loads((run / "metrics.json").read_text())["earlier_evals"] == [first]
    before = snapshot(run)
    assert main(["fit", *TINY, "--out", str(run), "--resume"]) == 0
    assert snapshot(run) == before
    out = capsys.readouterr().out
    assert f"the run in {run} was finished already (2 epochs in {metrics['wall_time_s']:.1f} s)" in out
    assert "nothing was rewritten" in out


@dataclass(frozen=True, kw_only=True)
class Slow(Stopped):
    """Stopped, each step of which takes at least 50 ms."""

    def loss(self, module, structure, x):
        time.sleep(0.05)
        return super().loss(module, structure, x)


def test_a_resumed_run_records_the_seconds_of_all_its_processes(binary, tmp_path):
    """12 steps of at least 50 ms each, 6 before the stop and 6 after: the manifest counts at least 0.6 s of training,
    where the resumed process alone trained 0.3 s."""
    run = tmp_path / "run"
    with pytest.raises(Interrupted):
        ppgen.fit(small_vae(), binary, inference=Slow(at=6), out=run, **SETTINGS)
    disarm()
    stopped = json.loads((run / "manifest.json").read_text())["seconds"]
    start = time.perf_counter()
    ppgen.fit(small_vae(), binary, inference=Slow(at=6), out=run, resume=True, **SETTINGS)
    resumed = time.perf_counter() - start
    total = json.loads((run / "manifest.json").read_text())["seconds"]
    assert stopped >= 0.3 and total >= 0.6 and total >= stopped + 0.3 and total <= stopped + resumed


# -------------------------------------------------------------------------------------------------
# Resume: every file checked against its digest, then the checkpoint against the run, before anything changes


def test_a_flipped_bit_in_a_weight_is_refused_on_resume(binary, tmp_path):
    run = tmp_path / "run"
    interrupted_run(run, binary)
    data = bytearray((run / "checkpoint.pt").read_bytes())
    data[len(data) // 2] ^= 1
    (run / "checkpoint.pt").write_bytes(bytes(data))
    before, model = snapshot(run), small_vae()
    weights = parameters(model)
    with pytest.raises(ValueError, match=r"checkpoint.pt does not belong to the run .*its digest is not the one"):
        ppgen.fit(model, binary, inference=Stopped(at=6), out=run, resume=True, **SETTINGS)
    assert snapshot(run) == before and same(parameters(model), weights)


def test_a_kill_between_a_checkpoints_rename_and_its_record_resumes_bitwise(binary, tmp_path):
    """The manifest records the new checkpoint's digest as pending before its rename: a kill right after the rename
    leaves a checkpoint the manifest vouches for, and the resume goes on from it."""
    whole = ppgen.fit(small_vae(), binary, inference=Stopped(), out=tmp_path / "whole", **SETTINGS)
    CALLS[0] = 0
    run = tmp_path / "run"
    interrupted_run(run, binary)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["pending"] = {"checkpoint.pt": manifest["files"]["checkpoint.pt"]}
    manifest["files"]["checkpoint.pt"] = digest(tmp_path / "whole" / "checkpoint.pt")  # the one before it
    (run / "manifest.json").write_text(json.dumps(manifest))
    resumed = ppgen.fit(small_vae(), binary, inference=Stopped(at=6), out=run, resume=True, **SETTINGS)
    assert same(resumed.model.state_dict(), whole.model.state_dict())
    assert "pending" not in json.loads((run / "manifest.json").read_text())


def set_counter(name, value):
    return lambda s: s["counters"].update({name: value})


def set_rng(name, cut):
    return lambda s: s["rng"].update({name: s["rng"][name][:cut]})


CRAFTED = {  # a checkpoint crafted (its digest recorded again): the change, the field named, what is expected
    "learning rate": (lambda s: s["optimizer"]["param_groups"][0].update(lr=1e6),
                      "optimizer.param_groups[0].lr", "0.001, the run's own setting"),
    "betas": (lambda s: s["optimizer"]["param_groups"][0].update(betas=(0.0, 0.0)),
              "optimizer.param_groups[0].betas", "the run's own setting"),
    "moment of the wrong shape": (lambda s: s["optimizer"]["state"][0].update(exp_avg=torch.zeros(3)),
                                  "optimizer.state[0].exp_avg", "a tensor of shape"),
    "moment of the wrong dtype": (lambda s: s["optimizer"]["state"][1].update(
        exp_avg_sq=s["optimizer"]["state"][1]["exp_avg_sq"].double()), "optimizer.state[1].exp_avg_sq",
        "dtype torch.float32"),
    "Adam's step past the run's": (lambda s: s["optimizer"]["state"][0].update(step=torch.tensor(1e9)),
                                   "optimizer.state[0].step", "from 0 to the run steps"),
    "state of a parameter that is not there": (lambda s: s["optimizer"]["state"].update({99: {}}),
                                               "optimizer.state", "parameter indices 0 to"),
    "weight of the wrong dtype": (lambda s: s["model"].update({n: t.double() for n, t in s["model"].items()}),
                                  "model.", "dtype torch.float32"),
    "position past the epoch's batches": (set_counter("position", 999), "counters.position", "at most the 4 batches"),
    "epoch 9 of 3": (set_counter("epoch", 9), "counters.epoch", "at most the run's 3 epochs"),
    "a step count that is not the batches'": (set_counter("step", 5), "counters.step", "6, the steps of 1 epochs"),
    "negative step": (set_counter("step", -1), "counters", "each an int >= 0"),
    "more skipped than steps": (set_counter("skipped", 7), "counters.skipped", "at most the 6 steps"),
    "rows past the epoch's batches": (set_counter("epoch_rows", 33), "counters.epoch_rows", "at most the 32 rows"),
    "epoch loss of 1e308": (lambda s: s.update(epoch_loss=1e308), "epoch_loss", "a mean loss per row of at most"),
    "epoch loss outside its steps' range": (lambda s: s.update(epoch_loss=s["epoch_loss"] * 3), "epoch_loss",
                                            "between"),
    "non-finite epoch loss": (lambda s: s.update(epoch_loss=float("inf")), "epoch_loss", "a finite float"),
    "torch RNG state cut to 10 bytes": (set_rng("torch", 10), "rng.torch", "a 1-D uint8 tensor of 5056 bytes"),
    "data-order generator cut": (set_rng("generator", 100), "rng.generator", "5056 bytes"),
    "NumPy position past its keys": (lambda s: s["rng"]["numpy"].update(pos=10**6), "rng.numpy", "pos from 0 to 624"),
    "Python's state cut": (lambda s: s["rng"]["python"].update(internal=[0] * 10), "rng.python", "624 words"),
}


@pytest.mark.parametrize("case", list(CRAFTED))
def test_a_crafted_checkpoint_is_refused_naming_the_file_and_the_field(binary, tmp_path, case):
    change, field, expected = CRAFTED[case]
    run = tmp_path / "run"
    interrupted_run(run, binary)
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    change(state)
    torch.save(state, run / "checkpoint.pt")
    record_again(run)
    before, model = snapshot(run), small_vae()
    weights = parameters(model)
    with pytest.raises(ValueError) as error:
        ppgen.fit(model, binary, inference=Stopped(at=6), out=run, resume=True, **SETTINGS)
    message = str(error.value)
    assert message.startswith(f"{run / 'checkpoint.pt'}: field '{field}") and expected in message, message
    assert snapshot(run) == before and same(parameters(model), weights)


def test_a_recorded_file_that_is_missing_is_refused_on_resume(binary, tmp_path):
    run = tmp_path / "run"
    ppgen.fit(small_vae(), binary, out=run, **SETTINGS)
    (run / "fit.pt").unlink()
    before = snapshot(run)
    with pytest.raises(ValueError, match=r"fit.pt is missing: .*manifest.json records it"):
        ppgen.fit(small_vae(), binary, out=run, resume=True, **SETTINGS)
    assert snapshot(run) == before


def test_a_checkpoint_the_manifest_does_not_list_is_refused_on_resume(binary, tmp_path):
    run = tmp_path / "run"
    interrupted_run(run, binary)
    manifest = json.loads((run / "manifest.json").read_text())
    del manifest["files"]["checkpoint.pt"]
    (run / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=r"checkpoint.pt is not listed in .*manifest.json: it was not written by"):
        ppgen.fit(small_vae(), binary, inference=Stopped(at=6), out=run, resume=True, **SETTINGS)


# -------------------------------------------------------------------------------------------------
# Crafted fit files, folders given as files, and messages that name the user's arguments


def test_a_fit_file_with_two_million_example_rows_is_refused(binary, tmp_path):
    fit = ppgen.fit(small_vae(), binary, **SETTINGS)
    fit.save(tmp_path / "fit.pt")
    state = torch.load(tmp_path / "fit.pt", weights_only=True)
    assert len(state["example"][0]) == 3  # what a fit keeps
    state["example"] = [torch.zeros(2_000_000, 6)]
    state["data_size"] = 2_000_000
    torch.save(state, tmp_path / "crafted.pt")
    with pytest.raises(ValueError, match=r"crafted.pt: field 'example' is damaged: expected at most 16 rows .*got "
                                         r"2000000"):
        ppgen.load(tmp_path / "crafted.pt")


def test_a_fit_with_many_example_rows_saves_a_few(binary, tmp_path):
    fit = ppgen.fit(small_vae(), binary, **SETTINGS)
    many = ppgen.Fit(fit.model, fit.structure, fit.inference, history=fit.history, example=binary)
    many.save(tmp_path / "fit.pt")
    loaded = ppgen.load(tmp_path / "fit.pt")
    assert len(loaded.example) == 16 and loaded.example.size == 64
    assert torch.equal(loaded.example.args[0], binary[:16])


def test_loading_a_run_folder_points_to_its_fit(binary, tmp_path):
    run = tmp_path / "run"
    ppgen.fit(small_vae(), binary, out=run, **SETTINGS)
    with pytest.raises(IsADirectoryError, match=rf"{run} is a folder: it is a run folder, whose fit is {run}/fit.pt"):
        ppgen.load(run)
    with pytest.raises(IsADirectoryError, match="is a folder: give the path of a file written by fit.save"):
        ppgen.load(tmp_path)


def test_resuming_with_other_settings_names_the_arguments(binary, tmp_path):
    run = tmp_path / "run"
    ppgen.fit(small_vae(), binary, out=run, run_config={"note": "a"}, **SETTINGS)
    before = snapshot(run)
    with pytest.raises(ValueError, match=r"differs in epochs, lr, run_config\['note'\]\)") as error:
        ppgen.fit(small_vae(), binary, out=run, resume=True, run_config={"note": "b"},
                  **{**SETTINGS, "epochs": 4, "lr": 0.01})
    assert "extra" not in str(error.value) and snapshot(run) == before


def test_the_cli_resuming_with_other_arguments_names_the_flags(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["fit", *TINY, "--out", str(run)]) == 0
    before = snapshot(run)
    capsys.readouterr()
    other = [*TINY[:TINY.index("--epochs")], "--epochs", "3", *TINY[TINY.index("--epochs") + 2:]]
    assert main(["fit", *other, "--hidden", "4", "--lr", "0.01", "--out", str(run), "--resume"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"ppgen: error: --resume: the run in {run} was started with other arguments (--epochs 3 "
                          f"here, 2 in the run; --lr 0.01 here, 0.001 in the run; --hidden 4 here, 8 in the run)"), err
    assert "extra" not in err and snapshot(run) == before


def test_a_run_stopped_before_its_first_file_does_not_block_a_new_one(binary, tmp_path):
    """A manifest that records nothing (a fit stopped between making its folder and its first checkpoint) is no run:
    a new fit takes the folder without --overwrite."""
    run = tmp_path / "run"
    RunFolder.start(run, {"an": "earlier run"})
    fit = ppgen.fit(small_vae(), binary, out=run, **SETTINGS)
    assert len(fit.history) == 3 and json.loads((run / "manifest.json").read_text())["complete"]
