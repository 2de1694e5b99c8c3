"""Data-parallel fits on two gloo processes of this machine, against single-process references over the same global
batches: plain ``fit`` where nothing is drawn, and a hand-written loop that computes each global batch's gradient shard
by shard, each shard with its rank's documented RNG stream, where particles are drawn."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
import torch.multiprocessing as mp
from torch import nn
from torch.utils.data import DataLoader

import ppgen
from ppgen import inference, models
from ppgen.program.inputs import Batch
from ppgen.program.structure import inspect
from ppgen.queries.evaluation import evaluate
from ppgen.run import folder
from ppgen.run.signals import Interrupted
from programs import Rows

N, D, BATCH, EPOCHS, LR, SEED = 29, 3, 8, 2, 0.05, 0
N_MIXTURE = 25  # the last batch of 1 row leaves rank 1 nothing to do


class Shift(nn.Module):
    """x_n = mu + z_n + noise, with local z_n ~ N(0, I) and, where ``shared``, a global mu ~ N(0, I) outside the data
    plate; q(mu) = N(m, s^2) and q(z_n|x_n) = N(A x_n + b, t^2)."""

    def __init__(self, shared: bool) -> None:
        super().__init__()
        self.shared = shared
        self.log_noise = nn.Parameter(torch.zeros(D))
        if shared:
            self.mu_loc, self.mu_log_scale = nn.Parameter(torch.zeros(D)), nn.Parameter(torch.zeros(D))
        self.encoder = nn.Linear(D, D)
        self.z_log_scale = nn.Parameter(torch.zeros(D))

    def model(self, x):
        mu = pyro.sample("mu", dist.Normal(x.new_zeros(D), 1.0).to_event(1)) if self.shared else 0.0
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(x.new_zeros(D), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(mu + z, self.log_noise.exp()).to_event(1), obs=x)

    def guide(self, x):
        if self.shared:
            pyro.sample("mu", dist.Normal(self.mu_loc, self.mu_log_scale.exp()).to_event(1))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(self.encoder(x), self.z_log_scale.exp()).to_event(1))


class ExactPosterior(nn.Module):
    """z ~ N(0, I), x|z ~ N(z, I), and the guide the exact posterior N(x/2, I/2): every log weight is log p(x), so
    an evaluation does not depend on which draws a rank makes."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(()))

    def model(self, x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(x.new_zeros(D), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(z, 1.0).to_event(1), obs=x)

    def guide(self, x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(x / 2 + 0 * self.unused, 0.5**0.5).to_event(1))


ARMED: dict[str, int] = {}  # set in a rank: the call of ``Scripted.loss`` at which to stop or fail


@dataclass(frozen=True, kw_only=True)
class Scripted(inference.ELBO):
    """The ELBO, except that where ``ARMED`` says so, this rank sends itself SIGTERM or raises at a chosen call."""

    def loss(self, module, structure, batch):
        ARMED["calls"] = ARMED.get("calls", 0) + 1
        if ARMED.get("signal_at") == ARMED["calls"]:
            os.kill(os.getpid(), signal.SIGTERM)
        if ARMED.get("raise_at") == ARMED["calls"]:
            raise RuntimeError(f"a bug in rank {os.environ['RANK']}'s loss")
        return super().loss(module, structure, batch)


def data(n: int = N, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, D, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 1.5 + 0.5


def build(name: str) -> nn.Module:
    ppgen.seed(0)
    if name == "mixture":
        return models.GMM(x_dim=D, n_components=2, covariance="diag")
    return Shift(shared=name == "shared")


SETTINGS = dict(epochs=EPOCHS, batch_size=BATCH, lr=LR, seed=SEED, progress=False)
FITS = {"shared": inference.ELBO(num_particles=2), "local": inference.IWAE(k=3)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def join_group(rank: int, world: int, port: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), PPGEN_DISTRIBUTED_TIMEOUT="60")
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)


def fits_task(rank: int, out: Path) -> dict:
    """Every fit of the comparisons, the sharded queries, and a stopped-and-resumed run, in one pair of processes."""
    result = {}
    for name, backend in FITS.items():
        fit = ppgen.fit(build(name), data(), inference=backend, distributed=True, **SETTINGS)
        result[name] = {"state": fit.model.state_dict(), "history": fit.history}
    loader = DataLoader(Rows(data()), batch_size=BATCH, num_workers=1)  # each rank loads its shards by index
    streamed = ppgen.fit(build("local"), loader, inference=FITS["local"], distributed=True, **SETTINGS)
    result["streamed"] = {"state": streamed.model.state_dict(), "history": streamed.history}
    captured = ppgen.fit(build("local"), data(), inference=FITS["local"], distributed=True, compile="capture",
                         **SETTINGS)
    result["captured"] = {"state": captured.model.state_dict(), "history": captured.history}
    mixture = ppgen.fit(build("mixture"), data(N_MIXTURE), inference=inference.MLE(), distributed=True, **SETTINGS)
    result["mixture"] = {"state": mixture.model.state_dict(), "history": mixture.history,
                         "log_prob": mixture.log_prob(data(11, seed=2))}
    validated = {name: ppgen.fit(build(name), data(N_MIXTURE), inference=backend, distributed=True, keep="best",
                                 validation=data(11, seed=2), **SETTINGS)
                 for name, backend in (("mixture", inference.MLE()), ("local", FITS["local"]))}
    result["validated"] = {name: {"state": fit.model.state_dict(), "history": fit.history, "best": fit.best_epoch,
                                  "validation": fit.validation_history} for name, fit in validated.items()}
    exact = ExactPosterior()
    result["evaluation"] = vars(evaluate(exact, inspect(exact, (data(3),)), Batch((data(11, seed=2),),
                                                                                 torch.arange(11), 11), k=7))
    written = []
    record = folder.RunFolder.record
    folder.RunFolder.record = lambda self, name: (written.append(name), record(self, name))[1]
    whole = ppgen.fit(build("shared"), data(), inference=Scripted(), distributed=True, out=out / "whole", **SETTINGS)
    ARMED.update(calls=0, signal_at=3 if rank == 0 else None)  # rank 0 alone is signalled, at its third step
    try:
        ppgen.fit(build("shared"), data(), inference=Scripted(), distributed=True, out=out / "stopped", **SETTINGS)
    except Interrupted as stop:
        result["stopped_at"] = stop.step
    ARMED.clear()
    resumed = ppgen.fit(build("shared"), data(), inference=Scripted(), distributed=True, out=out / "stopped",
                        resume=True, **SETTINGS)
    result["resume"] = {"whole": whole.model.state_dict(), "resumed": resumed.model.state_dict(),
                        "histories": (whole.history, resumed.history), "written": written}
    return result


def fail_task(rank: int, out: Path) -> dict:
    ARMED.update(raise_at=2 if rank == 1 else None)
    ppgen.fit(build("shared"), data(), inference=Scripted(), distributed=True, **SETTINGS)
    return {}


TASKS = {"fits": fits_task, "fail": fail_task}


def worker(rank: int, world: int, port: int, task: str, out: Path) -> None:
    join_group(rank, world, port)
    try:
        torch.save(TASKS[task](rank, out), out / f"rank{rank}.pt")
    except BaseException:
        (out / f"rank{rank}.error").write_text(traceback.format_exc())
        raise


def run_ranks(task: str, out: Path, world: int = 2) -> list[dict]:
    mp.spawn(worker, args=(world, free_port(), task, out), nprocs=world, join=True)
    return [torch.load(out / f"rank{rank}.pt", weights_only=False) for rank in range(world)]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    return run_ranks("fits", tmp_path_factory.mktemp("ranks"))


def rank_seed(seed: int, rank: int) -> int:
    """The documented seed of rank r's streams: NumPy's SeedSequence([seed, r])."""
    return int(np.random.SeedSequence([seed, rank]).generate_state(1)[0])


def sharded_reference(module: nn.Module, x: torch.Tensor, backend, world: int = 2) -> nn.Module:
    """Single-process Adam over the same global batches, each batch's gradient the sum over its contiguous shards of
    (rows of the shard / rows of the batch) times the gradient of the shard's mean loss, shard r drawn from stream r."""
    structure = inspect(module, (x[:3],))
    params = list(module.parameters())
    optimizer = torch.optim.Adam(params, lr=LR)
    order = torch.Generator().manual_seed(SEED)
    streams = []
    for rank in range(world):
        pyro.set_rng_seed(rank_seed(SEED, rank))
        streams.append(torch.get_rng_state())
    for _ in range(EPOCHS):
        for rows in torch.randperm(len(x), generator=order).split(BATCH):
            total = [torch.zeros_like(p) for p in params]
            for rank, shard in enumerate(rows.tensor_split(world)):
                torch.set_rng_state(streams[rank])
                loss = backend.loss(module, structure, Batch((x[shard],), shard, len(x)))
                streams[rank] = torch.get_rng_state()
                for t, g in zip(total, torch.autograd.grad(loss, params)):
                    t += g * (len(shard) / len(rows))
            for p, g in zip(params, total):
                p.grad = g
            optimizer.step()
    return module


def close(a: dict, b: dict, tol: float = 1e-10) -> None:
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=tol, atol=tol, msg=name)


pytestmark = pytest.mark.usefixtures("float64")


@pytest.mark.parametrize("name", ["shared", "local"])
def test_drawn_particles_fit_like_one_process_over_the_same_shards(ranks, name):
    """ELBO with a global latent (its 1/N share per point) and IWAE: both ranks end with the parameters of the
    single-process loop over the same global batches, shard r drawn from stream r."""
    reference = sharded_reference(build(name), data(), FITS[name])
    for rank in ranks:
        close(rank[name]["state"], reference.state_dict())


def test_a_streamed_data_set_fits_as_the_same_rows_in_memory(ranks):
    """A DataLoader over a map-style Dataset, each rank loading its shard of every global batch by index through a
    worker process: bitwise the distributed fit of the tensor in memory."""
    for rank in ranks:
        assert rank["streamed"]["history"] == rank["local"]["history"]
        for name, value in rank["streamed"]["state"].items():
            assert torch.equal(value, rank["local"]["state"][name]), name


def test_the_captured_step_fits_as_the_plain_step_on_every_rank(ranks):
    """Each rank traces the step of its own shards' shapes and replays it: the distributed fit of the plain step."""
    for rank in ranks:
        torch.testing.assert_close(torch.tensor(rank["captured"]["history"]), torch.tensor(rank["local"]["history"]),
                                   rtol=1e-9, atol=0)
        close(rank["captured"]["state"], rank["local"]["state"])


def test_an_enumerated_model_fits_exactly_as_a_plain_fit(ranks):
    """Nothing is drawn under MLE with the component summed out: two ranks reach the parameters and per-epoch losses
    of a plain single-process fit, a last batch of one row (rank 1 holds none of it) included."""
    plain = ppgen.fit(build("mixture"), data(N_MIXTURE), inference=inference.MLE(), **SETTINGS)
    for rank in ranks:
        close(rank["mixture"]["state"], plain.model.state_dict())
        np.testing.assert_allclose(rank["mixture"]["history"], plain.history, rtol=1e-12)


def test_validation_is_the_single_process_one_on_every_rank(ranks):
    """Every rank computes the validation loss of all the held-out rows with the same draws: where nothing is drawn
    (MLE, the component summed out) it is a plain fit's, with the same best epoch and its parameters; where particles
    are drawn (IWAE), the ranks agree bitwise, and so their early-stopping decisions too."""
    plain = ppgen.fit(build("mixture"), data(N_MIXTURE), inference=inference.MLE(), keep="best",
                      validation=data(11, seed=2), **SETTINGS)
    for rank in ranks:
        got = rank["validated"]["mixture"]
        np.testing.assert_allclose(got["validation"], plain.validation_history, rtol=1e-12)
        assert got["best"] == plain.best_epoch
        close(got["state"], plain.model.state_dict())
    first, second = (rank["validated"]["local"] for rank in ranks)
    assert first["validation"] == second["validation"] and first["best"] == second["best"]
    assert len(first["validation"]) == EPOCHS


def test_sharded_queries_equal_single_process_ones(ranks):
    """log_prob and evaluate under the process group: each rank evaluates 5 or 6 of 11 rows, every rank gets all."""
    plain = ppgen.fit(build("mixture"), data(N_MIXTURE), inference=inference.MLE(), epochs=1, progress=False)
    exact = ExactPosterior()
    single = evaluate(exact, inspect(exact, (data(3),)), Batch((data(11, seed=2),), torch.arange(11), 11), k=7)
    z = data(11, seed=2)
    log_p = dist.Normal(torch.zeros(D), 2**0.5).to_event(1).log_prob(z)  # p(x) = N(0, 2I), independently of ppgen
    for rank in ranks:
        plain.model.load_state_dict(rank["mixture"]["state"])
        expected = plain.log_prob(data(11, seed=2))
        torch.testing.assert_close(rank["mixture"]["log_prob"], expected, rtol=1e-12, atol=1e-12)
        got = rank["evaluation"]
        for name in ("elbo", "iwae", "ess"):
            torch.testing.assert_close(got[name], getattr(single, name), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(got["iwae"], log_p, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(got["ess"], torch.full((11,), 7.0), rtol=1e-12, atol=1e-12)  # K equal weights
        assert got["exact"] is None


def test_a_stopped_distributed_run_resumes_to_the_uninterrupted_one(ranks, tmp_path):
    """SIGTERM to rank 0 alone stops both ranks at the same step; resumed from rank 0's checkpoint (every rank's RNG
    states in it), both end bitwise where a run never stopped ends. Rank 0 alone writes the folder."""
    for rank in ranks:
        assert rank["stopped_at"] == 3
        for name, value in rank["resume"]["whole"].items():
            assert torch.equal(value, rank["resume"]["resumed"][name]), name
        assert rank["resume"]["histories"][0] == rank["resume"]["histories"][1]
    assert ranks[1]["resume"]["written"] == []
    assert {"checkpoint.pt", "fit.pt"} <= set(ranks[0]["resume"]["written"])


def test_a_rank_that_raises_stops_the_run_with_a_clear_error(tmp_path):
    """Rank 1's loss raises at its second step: rank 1 stops with its error, rank 0 (waiting in the all-reduce) with a
    DistributedError that points at the other rank, well within the group's timeout."""
    context = mp.get_context("spawn")
    port = free_port()
    processes = [context.Process(target=worker, args=(rank, 2, port, "fail", tmp_path)) for rank in range(2)]
    start = time.monotonic()
    for p in processes:
        p.start()
    for p in processes:
        p.join(timeout=120)
    alive = [p.is_alive() for p in processes]
    for p in processes:
        if p.is_alive():
            p.kill()
    assert not any(alive), "a rank hung"
    assert all(p.exitcode != 0 for p in processes)
    assert "a bug in rank 1's loss" in (tmp_path / "rank1.error").read_text()
    assert "another rank stopped" in (tmp_path / "rank0.error").read_text()
    assert time.monotonic() - start < 120


def test_distributed_needs_a_launcher_and_a_seed(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match="needs a launcher: RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT not set"):
        ppgen.fit(build("local"), data(), distributed=True, progress=False)
    with pytest.raises(ValueError, match="needs seed="):
        ppgen.fit(build("local"), data(), distributed=True, seed=None, progress=False)
    with pytest.raises(TypeError, match="distributed must be True or False"):
        ppgen.fit(build("local"), data(), distributed="yes", progress=False)


def test_the_cli_under_a_launcher_without_the_flag_refuses(tmp_path):
    env = {**os.environ, "WORLD_SIZE": "2", "RANK": "0"}
    done = subprocess.run([sys.executable, "-m", "ppgen", "fit", "--model", "gmm", "--data", "moons", "--epochs", "1",
                           "--out", str(tmp_path / "run")], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--distributed is not given" in done.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_the_cli_under_torchrun_writes_one_run_folder(tmp_path):
    """``torchrun --nproc_per_node=2 -m ppgen fit --distributed``: one run folder, world_size 2 in its metrics."""
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port", str(free_port()),
               "-m", "ppgen", "fit", "--model", "gmm", "--data", "moons", "--epochs", "2", "--distributed",
               "--threads", "1", "--out", str(tmp_path / "run")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and len(metrics["train_loss"]) == 2
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["complete"] and {"checkpoint.pt", "fit.pt", "metrics.json"} <= set(manifest["files"])
    assert manifest["config"]["world_size"] == 2
