"""The bucketed gradient all-reduce (``ppgen.run.reducer``) on two gloo processes of this machine, against the plain
all-reduce of the weighted gradients flattened into one tensor; and a bad step on one rank of a distributed fit."""

from __future__ import annotations

import math
import os
import socket
import traceback
from pathlib import Path

import pyro
import pyro.distributions as dist
import pytest
import torch
import torch.distributed as tdist
import torch.multiprocessing as mp
from torch import nn

import ppgen
from ppgen import inference
from ppgen.run.reducer import Reducer, assign_buckets
from ppgen.training.guard import Diverged

SHAPES = [(3, 4), (7,), (2, 2), (10,), (1,)]  # float64: 96, 56, 32, 80 and 8 bytes
#: first bucket 64 bytes, then 40: buckets [4, 3], [2, 1], [0] (the first two launched during backward).
SMALL = dict(first=64, cap=40)
SHARES = (5 / 8, 3 / 8)


def parameters() -> list[nn.Parameter]:
    g = torch.Generator().manual_seed(0)
    return [nn.Parameter(torch.randn(shape, generator=g, dtype=torch.float64)) for shape in SHAPES]


def rank_loss(params: list[torch.Tensor], rank: int, used: list[int] | None = None) -> torch.Tensor:
    """A loss of its own on each rank, L_r = sum_p sum sin((r + 1) p) (p + r), over the parameters ``used``."""
    used = range(len(params)) if used is None else used
    return sum((torch.sin(params[i] * (rank + 1)) * (params[i] + rank)).sum() for i in used)


def plain_sum(grads: list[torch.Tensor | None], share: float, params: list[torch.Tensor]) -> list[torch.Tensor]:
    """sum_r s_r g_r by one all-reduce of this rank's weighted gradients flattened together (zeros where none)."""
    flat = torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params)])
    flat = flat * share
    tdist.all_reduce(flat)
    return [chunk.view_as(p) for chunk, p in zip(flat.split([p.numel() for p in params]), params)]


class Counting:
    """A ``collective`` for :class:`Reducer` that counts the all-reduces started."""

    def __init__(self) -> None:
        self.started = 0

    def __call__(self, what, call, *args, **kwargs):
        self.started += call is tdist.all_reduce
        return call(*args, **kwargs)


def reduced(rank: int, used: list[int] | None = None, rows: bool = True, change=None, overlap: bool = True,
            buckets: dict = SMALL) -> dict:
    """One step of the reducer on this rank's loss: the gradients it leaves, its loss, the all-reduces started before
    :meth:`Reducer.finish` and in all, and the plain all-reduce's sum of the same gradients."""
    params = parameters()
    counting = Counting()
    reducer = Reducer(params, counting, overlap=overlap, **buckets)
    share = SHARES[rank] if rows else 0.0
    try:
        reducer.expect(share)
        loss = None
        if rows:
            loss = rank_loss(params, rank, used)
            loss.backward()
        if change is not None:
            change(params)
        before = counting.started
        grads = [p.grad for p in params]
        total = reducer.finish(loss.detach() if loss is not None else None, share)
    finally:
        reducer.close()
    loss_value = loss.detach() * share if loss is not None else torch.zeros((), dtype=torch.float64)
    tdist.all_reduce(loss_value)
    return {"grads": [p.grad for p in params], "plain": plain_sum(grads, share, params), "loss": total,
            "plain_loss": loss_value, "before_finish": before, "started": counting.started,
            "buckets": reducer.buckets}


class NaNOnRank1(inference.ELBO):
    """The ELBO, NaN on rank 1 at its second step."""

    calls = 0

    def loss(self, module, structure, batch):
        NaNOnRank1.calls += 1
        loss = super().loss(module, structure, batch)
        return loss * math.nan if os.environ["RANK"] == "1" and NaNOnRank1.calls == 2 else loss


class Gaussian(nn.Module):
    """x_n ~ N(mu, 1), q(mu) = N(m, s^2)."""

    def __init__(self) -> None:
        super().__init__()
        self.m, self.log_s = nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(2))

    def model(self, x):
        mu = pyro.sample("mu", dist.Normal(x.new_zeros(2), 1.0).to_event(1))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", dist.Normal(mu, 1.0).to_event(1), obs=x)

    def guide(self, x):
        pyro.sample("mu", dist.Normal(self.m, self.log_s.exp()).to_event(1))


def bad_step(rank: int) -> dict:
    """A distributed fit whose loss is NaN on rank 1 alone at step 2: the verdict of each rank."""
    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    torch.manual_seed(0)
    try:
        ppgen.fit(Gaussian(), x, inference=NaNOnRank1(), epochs=2, batch_size=8, lr=0.01, seed=0, progress=False,
                  distributed=True)
    except Diverged as error:
        return {"step": error.step, "message": str(error)}
    return {"step": None}


def scale(index: int, in_place: bool):
    """Change parameter ``index``'s gradient after backward: a new tensor, or the same one in place."""
    def change(params):
        if in_place:
            params[index].grad.mul_(3.0)
        else:
            params[index].grad = params[index].grad * 3.0
    return change


def task(rank: int) -> dict:
    return {
        "all": reduced(rank),
        "no overlap": reduced(rank, overlap=False),
        "one bucket": reduced(rank, buckets={}),
        "exact boundary": reduced(rank, buckets=dict(first=88, cap=88)),
        "unused": reduced(rank, used=[0, 2, 3] if rank == 0 else [0, 3]),
        "no rows": reduced(rank, rows=rank == 0),
        "replaced": reduced(rank, change=scale(3, in_place=False) if rank == 0 else None),
        "in place": reduced(rank, change=scale(4, in_place=True) if rank == 1 else None),
        "nan": reduced(rank, change=(lambda params: params[4].grad.fill_(math.inf)) if rank == 1 else None),
        "bad step": bad_step(rank),
    }


def worker(rank: int, port: int, out: Path) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2",
                      LOCAL_RANK=str(rank), PPGEN_DISTRIBUTED_TIMEOUT="60")
    torch.set_num_threads(1)
    try:
        tdist.init_process_group("gloo")
        result = task(rank)
        tdist.destroy_process_group()
        torch.save(result, out / f"rank{rank}.pt")
    except BaseException:
        (out / f"rank{rank}.error").write_text(traceback.format_exc())
        raise


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("reducer")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(worker, args=(port, out), nprocs=2, join=True)
    return [torch.load(out / f"rank{rank}.pt", weights_only=False) for rank in range(2)]


def same(a: list[torch.Tensor | None], b: list[torch.Tensor | None]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert (x is None) == (y is None)
        if x is not None:
            assert torch.equal(x, y)


def test_buckets_are_cut_in_reverse_order_at_their_limits():
    """A bucket closes once it holds its limit in bytes (the first bucket's own), and before another dtype."""
    eight = [torch.zeros(1, dtype=torch.float64) for _ in range(5)]
    assert assign_buckets(eight, first=16, cap=24) == [[4, 3], [2, 1, 0]]
    assert assign_buckets(eight, first=17, cap=8) == [[4, 3, 2], [1], [0]]
    shaped = [torch.zeros(shape, dtype=torch.float64) for shape in SHAPES]
    assert assign_buckets(shaped, **SMALL) == [[4, 3], [2, 1], [0]]
    mixed = [torch.zeros(2, dtype=dtype) for dtype in (torch.float64, torch.float32, torch.float64)]
    assert assign_buckets(mixed) == [[2], [1], [0]]
    assert assign_buckets([]) == []


def test_the_bucketed_reduction_equals_the_plain_all_reduce(ranks):
    """Three buckets, the first two launched while backward ran, the last with the loss after it: bitwise the plain
    all-reduce of the weighted gradients, the same on both ranks; so with no overlap, one bucket, or a limit that a
    bucket reaches exactly."""
    for rank in ranks:
        got = rank["all"]
        assert got["buckets"] == [[4, 3], [2, 1], [0]]
        assert (got["before_finish"], got["started"]) == (2, 3)
        same(got["grads"], got["plain"])
        assert torch.equal(got["loss"], got["plain_loss"])
        assert rank["no overlap"]["before_finish"] == 0 and rank["no overlap"]["started"] == 3
        assert rank["one bucket"]["started"] == 1 and rank["one bucket"]["before_finish"] == 0
        assert rank["exact boundary"]["buckets"] == [[4, 3], [2, 1], [0]]
        for case in ("no overlap", "one bucket", "exact boundary"):
            same(rank[case]["grads"], got["grads"])
            assert torch.equal(rank[case]["loss"], got["loss"])
    same(ranks[0]["all"]["grads"], ranks[1]["all"]["grads"])


def test_parameters_without_a_gradient(ranks):
    """Parameters no rank reaches (1 and 4) keep no gradient, as in one process; one that rank 0 alone reaches (2)
    gets s_0 g_0 on both (its bucket waits for rank 1's finish there); a rank without rows adds nothing."""
    for rank in ranks:
        unused = rank["unused"]
        same(unused["grads"], [g if i not in (1, 4) else None for i, g in enumerate(unused["plain"])])
        no_rows = rank["no rows"]
        same(no_rows["grads"], no_rows["plain"])
        assert torch.equal(no_rows["loss"], no_rows["plain_loss"])
    for case in ("unused", "no rows"):
        same(ranks[0][case]["grads"], ranks[1][case]["grads"])
    assert ranks[0]["no rows"]["before_finish"] == 2 and ranks[1]["no rows"]["before_finish"] == 0


def test_a_gradient_changed_after_its_bucket_left_is_reduced_again(ranks):
    """A gradient replaced (rank 0) or changed in place (rank 1) after its bucket's all-reduce started: every rank
    reduces that bucket again, one more collective on both, and ends with the plain sum of the final gradients."""
    for rank in ranks:
        for case in ("replaced", "in place"):
            same(rank[case]["grads"], rank[case]["plain"])
            assert rank[case]["started"] == 4
    for case in ("replaced", "in place"):
        same(ranks[0][case]["grads"], ranks[1][case]["grads"])


def test_a_bad_step_on_one_rank_is_bad_on_every_rank(ranks):
    """An infinite gradient on rank 1 reaches both ranks' sums; a NaN loss on rank 1 alone at step 2 of a fit stops
    both ranks there with the same verdict."""
    for rank in ranks:
        assert torch.isinf(rank["nan"]["grads"][4]).all() and torch.isfinite(rank["nan"]["grads"][3]).all()
        assert rank["bad step"]["step"] == 2 and "the loss is nan" in rank["bad step"]["message"]
