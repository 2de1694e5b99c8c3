"""Kill ``ppgen fit`` at several moments, resume it, and compare its final parameters bitwise with a run never stopped.

Each case starts ``ppgen fit`` in a subprocess, waits for a moment visible on disk (a checkpoint written, a
temporary file of a write in progress, made slow by the write-delay test hook), sends a signal, then runs the
same command with ``--resume``.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ppgen.run.checkpoint import TMP_PREFIX

ARGS = ["fit", "--model", "vae", "--data", "digits", "--z-dim", "2", "--hidden", "16", "--epochs", "3",
        "--batch-size", "64", "--eval-k", "2", "--checkpoint-every", "5", "--no-progress", "--threads", "1"]
#: seconds a case may wait for its moment before it fails.
PATIENCE = 120


def ppgen(out: Path, *extra: str, delay: str | None = None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("PPGEN_TEST_WRITE_DELAY", None)
    if delay is not None:
        env["PPGEN_TEST_WRITE_DELAY"] = delay
    return subprocess.Popen([sys.executable, "-m", "ppgen", *ARGS, "--out", str(out), *extra], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + PATIENCE
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"ppgen fit ended (status {process.returncode}) before the moment to kill it: "
                        f"{process.stderr.read()}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("the moment to kill ppgen fit never came")
        time.sleep(0.01)


def parameters(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "fit.pt", weights_only=True)["state_dict"]


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> dict[str, torch.Tensor]:
    run = tmp_path_factory.mktemp("baseline") / "run"
    process = ppgen(run)
    _, err = process.communicate(timeout=PATIENCE)
    assert process.returncode == 0, err
    return parameters(run)


def tmp_file(run: Path, name: str) -> bool:
    return any(p.name.startswith(TMP_PREFIX) and p.name.endswith(name) for p in run.glob(TMP_PREFIX + "*"))


CASES = {
    # SIGKILL mid-epoch: after the first periodic checkpoint (step 5 of 23 in epoch 1), while steps go on.
    "sigkill-mid-epoch": (signal.SIGKILL, None, lambda run: (run / "checkpoint.pt").exists()),
    # SIGKILL while a checkpoint is being written: its temporary file is there, the rename not done.
    "sigkill-during-checkpoint-write": (signal.SIGKILL, "3:checkpoint.pt",
                                        lambda run: tmp_file(run, "checkpoint.pt")),
    # SIGKILL after the last checkpoint and fit.pt, while metrics.json is written.
    "sigkill-after-last-checkpoint": (signal.SIGKILL, "3:metrics.json", lambda run: tmp_file(run, "metrics.json")),
    # SIGKILL before any checkpoint: only the manifest is there.
    "sigkill-before-first-checkpoint": (signal.SIGKILL, "3:manifest.json", lambda run: tmp_file(run, "manifest.json")),
    "sigint-mid-epoch": (signal.SIGINT, None, lambda run: (run / "checkpoint.pt").exists()),
    "sigterm-mid-epoch": (signal.SIGTERM, None, lambda run: (run / "checkpoint.pt").exists()),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_a_killed_fit_resumes_bitwise(case, baseline, tmp_path):
    how, delay, moment = CASES[case]
    run = tmp_path / "run"
    process = ppgen(run, delay=delay)
    wait_for(lambda: moment(run), process)
    process.send_signal(how)
    _, err = process.communicate(timeout=PATIENCE)
    if how == signal.SIGKILL:
        assert process.returncode == -signal.SIGKILL
    else:  # the step finishes, a checkpoint is written, one line says how to resume
        assert process.returncode == {signal.SIGINT: 130, signal.SIGTERM: 143}[how], err
        last = err.strip().splitlines()[-1]
        assert last.startswith(f"ppgen: {how.name} at step ") and "--resume" in last and str(run) in last, err
    resumed = ppgen(run, "--resume")
    out, err = resumed.communicate(timeout=PATIENCE)
    assert resumed.returncode == 0, err
    assert not list(run.glob(TMP_PREFIX + "*")), "a killed write's temporary file was left behind"
    final = parameters(run)
    assert final.keys() == baseline.keys()
    for name, value in baseline.items():
        assert torch.equal(final[name], value), f"{name} differs from the uninterrupted run's"


@pytest.mark.slow
def test_a_stopped_replacement_leaves_the_old_run_and_resumes_into_its_place(baseline, tmp_path):
    """`--overwrite` stopped by SIGTERM mid-run: the old run is as it was, byte for byte; the command printed, with
    --resume, continues the replacement, which takes the old run's place and ends bitwise as a run never stopped."""
    run = tmp_path / "run"
    old = [*ARGS[:ARGS.index("--epochs")], "--epochs", "1", *ARGS[ARGS.index("--epochs") + 2:]]
    done = subprocess.run([sys.executable, "-m", "ppgen", *old, "--out", str(run)], capture_output=True, text=True,
                          timeout=PATIENCE)
    assert done.returncode == 0, done.stderr
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    process = ppgen(run, "--overwrite")
    staged = run.parent / f".{run.name}.ppgen-replacement"
    wait_for(lambda: (staged / "checkpoint.pt").exists(), process)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=PATIENCE)
    assert process.returncode == 143, err
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    command = shlex.split(err.strip().splitlines()[-1].split("resume it with: ppgen ")[1])
    trained = json.loads((staged / "manifest.json").read_text())["seconds"]
    assert "--resume" in command and "--overwrite" not in command
    resumed = subprocess.run([sys.executable, "-m", "ppgen", *command], capture_output=True, text=True,
                             timeout=PATIENCE)
    assert resumed.returncode == 0, resumed.stderr
    assert not staged.exists() and not list(run.glob(TMP_PREFIX + "*"))
    final = parameters(run)
    assert all(torch.equal(final[name], value) for name, value in baseline.items())
    metrics = json.loads((run / "metrics.json").read_text())
    assert len(metrics["train_loss"]) == 3 and metrics["config"]["epochs"] == 3
    assert metrics["wall_time_s"] > trained > 0  # the seconds of both processes
    assert "s of them before it was resumed: test log-likelihood" in resumed.stdout


def test_a_run_is_not_overwritten_without_asking(tmp_path):
    """A second `ppgen fit` into a finished run is refused before any work; --overwrite replaces it."""
    run = tmp_path / "run"
    (run).mkdir()
    (run / "manifest.json").write_text("{}")
    process = subprocess.run([sys.executable, "-m", "ppgen", *ARGS, "--out", str(run)], capture_output=True,
                             text=True, timeout=PATIENCE)
    assert process.returncode == 1
    assert "holds a run already" in process.stderr and "--overwrite" in process.stderr
    assert (run / "manifest.json").read_text() == "{}"


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 1.2, 2.0])
def test_ctrl_c_at_any_moment_prints_one_line_and_a_rerun_goes_on(tmp_path, delay):
    """SIGINT while `ppgen fit` starts (imports, data, model), or later: status 130 and one line, never a traceback;
    and the folder never blocks the rerun the line asks for (a plain one, or --resume where a checkpoint is saved)."""
    run = tmp_path / "run"
    process = ppgen(run)
    time.sleep(delay)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=PATIENCE)
    if process.returncode == -signal.SIGINT:  # before the interpreter took the signal over: the default action
        assert err == "" and not run.exists()
        return
    assert process.returncode == 130, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("ppgen: "), err
    again = ppgen(run, *(["--resume"] if "--resume" in err else []))
    out, err = again.communicate(timeout=PATIENCE)
    assert again.returncode == 0, err
