"""Data-parallel training and sharded evaluation on ``torch.distributed``, one process per rank (``torchrun``).

Every rank holds the whole program and draws the same seeded data order; each global batch of ``batch_size``
rows is split into ``world_size`` contiguous shards, one per rank. A rank's loss is the mean over its B_r rows;
its gradients are weighted by B_r / B and summed over the ranks, so that every rank holds the gradient of the mean
over the global batch, the gradient a single process computes on the same B rows. The all-reduce runs in buckets
launched while ``backward`` runs, as ``DistributedDataParallel``'s reducer does (:mod:`ppgen.run.reducer`), but from
hooks on the parameters rather than from DDP's wrapper: a Pyro program is not called through ``forward``, where
DDP's hooks sit (pyro-ppl issue 2354). It works the same for every backend, since every
:class:`~ppgen.objective.base.Objective` is a mean of per-point terms, global latents included: a batch keeps the size
N of the whole data set, so their 1/N share per point is unchanged.

Draws: when training starts, rank r seeds torch, NumPy and Python's ``random`` with :func:`rank_seed` (seed, r),
its own streams. A model that draws nothing (maximum likelihood, latents summed out) fits to the parameters of a
single process; one that draws particles fits to those of a single process that computes each global batch's
loss shard by shard, shard r with stream r (see ``docs/distributed.md``).

References:
    PyTorch Distributed: Experiences on Accelerating Data Parallel Training (Li et al., 2020).
    https://arxiv.org/abs/2006.15704
    Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour (Goyal et al., 2017).
    https://arxiv.org/abs/1706.02677
"""

from __future__ import annotations

import contextlib
import datetime
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import numpy as np
import pyro
import torch
import torch.distributed as dist
from torch import Tensor, nn

from ppgen.program.inputs import Batch
from ppgen.run.reducer import Reducer
from ppgen.run.rng import capture_rng

#: the variables a launcher (torchrun) sets for each process; ``fit(distributed=True)`` reads them.
LAUNCHER_VARIABLES = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
#: seconds a collective may wait for the other ranks before it fails; the variable overrides it.
TIMEOUT_VARIABLE = "PPGEN_DISTRIBUTED_TIMEOUT"
DEFAULT_TIMEOUT_S = 600.0
#: seconds the ranks may take to find each other when the group is made; the variable overrides it. A launcher starts
#: every rank within seconds: a rank alone (``RANK`` and ``WORLD_SIZE`` set by hand, the other ranks never started)
#: is told so after this wait, not after a collective's.
RENDEZVOUS_VARIABLE = "PPGEN_DISTRIBUTED_RENDEZVOUS_TIMEOUT"
DEFAULT_RENDEZVOUS_S = 60.0

T = TypeVar("T")


class DistributedError(RuntimeError):
    """A collective of a distributed fit failed: another rank stopped (its own error says why) or timed out."""


@dataclass(frozen=True)
class Group:
    """The processes a fit or a query runs in: this process's ``rank`` among ``world_size``.

    The single-process group :data:`SINGLE` makes every method a no-op, so that the training loop reads the
    same with and without ``torch.distributed``.

    Attributes:
        rank: this process's rank; rank 0 alone writes the run folder.
        world_size: the number of processes.
        active: whether the methods talk to the default ``torch.distributed`` process group.
        reducer: the reduction of the parameters' gradients, where :meth:`reducing` made this group.
    """

    rank: int = 0
    world_size: int = 1
    active: bool = False
    reducer: Reducer | None = field(default=None, compare=False, repr=False)

    @contextlib.contextmanager
    def reducing(self, params: list[Tensor], signals: Any) -> Iterator[Group]:
        """This group, whose gradient reduction over ``params`` is overlapped with ``backward`` (see
        :mod:`ppgen.run.reducer`) and also tells every rank which stop signal any rank received from ``signals``
        (a :class:`~ppgen.run.signals.StopSignals`): no collective of its own per step. The hooks it puts on the
        parameters are removed on leaving."""
        if not self.active:
            yield self
            return
        reducer = Reducer(params, self._collective, signals)
        try:
            yield replace(self, reducer=reducer)
        finally:
            reducer.close()

    @property
    def writer(self) -> bool:
        """Whether this process writes files (rank 0)."""
        return self.rank == 0

    def shard(self, rows: Tensor) -> Tensor:
        """This rank's contiguous share of ``rows`` (shares differ in length by at most one; some may be empty)."""
        return rows.tensor_split(self.world_size)[self.rank] if self.active else rows

    def expect_gradients(self, share: float) -> None:
        """Call before the step's ``backward``: its gradients, weighted by ``share`` (B_r / B, this rank's rows over
        the global batch's), are reduced bucket by bucket as ``backward`` makes them (see :meth:`reducing`)."""
        if self.reducer is not None:
            self.reducer.expect(share)

    def reduce_gradients(self, loss: Tensor | None, share: float, params: list[Tensor]) -> Tensor:
        """Make every rank's gradients, and the loss, those of the mean over the global batch; call after backward.

        Arguments:
            loss: this rank's loss, the mean over its rows (detached); ``None`` for a rank without rows.
            share: B_r / B, this rank's rows over the global batch's.
            params: the parameters, whose ``.grad`` is replaced by the weighted sum over the ranks (``None`` where
                no rank has a gradient, as a single process leaves it): those of :meth:`reducing`, where it made
                this group.

        Returns:
            The global mean loss, a 0-d tensor.
        """
        if not self.active:
            return loss
        reducer = self.reducer
        if reducer is None:
            reducer = Reducer(params, self._collective, overlap=False)
        elif len(params) != len(reducer.params) or any(p is not q for p, q in zip(params, reducer.params)):
            raise ValueError("params: the reduction was made over other parameters (Group.reducing)")
        return reducer.finish(loss, share)

    def stop_signal(self, received: str | None) -> str | None:
        """The stop signal to act on after a step: this process's ``received`` alone, or in a distributed fit
        (:meth:`reducing`) the one any rank had received by the step's gradient reduction, so that every rank stops
        at the same step (a signal that arrives later is acted on after the next step)."""
        return self.reducer.agreed if self.reducer is not None else received

    def from_writer(self, compute: Callable[[], T]) -> T:
        """``compute()`` on rank 0 (which reads and writes the run folder), its result, or its error, on every rank."""
        if not self.active:
            return compute()
        box: list[Any] = [None]
        if self.writer:
            try:
                box[0] = (True, compute())
            except Exception as error:  # noqa: BLE001 - raised again below, on every rank
                box[0] = (False, error)
        self._collective("sharing rank 0's run folder", dist.broadcast_object_list, box, src=0)
        ok, value = box[0]
        if not ok:
            raise value
        return value

    def gather_objects(self, value: Any) -> list[Any]:
        """``value`` of every rank, in rank order, on every rank."""
        if not self.active:
            return [value]
        out: list[Any] = [None] * self.world_size
        self._collective("gathering the ranks' RNG states", dist.all_gather_object, out, value)
        return out

    @property
    def settings(self) -> dict[str, int]:
        """What a run's configuration records of the group: ``world_size`` in a distributed fit (a run resumes
        with as many ranks as it started with, each from its own RNG states), nothing otherwise."""
        return {"world_size": self.world_size} if self.active else {}

    def gather_rng(self, generator: torch.Generator | None) -> list[dict[str, Any]] | None:
        """Every rank's RNG states (see :func:`ppgen.run.rng.capture_rng`), in rank order, for rank 0's checkpoint;
        ``None`` in a single process, whose checkpoint holds its own."""
        if not self.active:
            return None
        return self.gather_objects(capture_rng(generator))

    def rank_state(self, saved: dict[str, Any] | None) -> dict[str, Any] | None:
        """A checkpoint read by :func:`ppgen.run.state.load_state` with this rank's own RNG states in ``"rng"``."""
        if saved is None or saved.get("rank_rng") is None:
            return saved
        return {**saved, "rng": saved["rank_rng"][self.rank]}

    def broadcast_parameters(self, module: nn.Module) -> None:
        """Give every rank rank 0's parameters and buffers, in place."""
        if self.active:
            for tensor in module.state_dict().values():
                self._collective("the broadcast of the parameters", dist.broadcast, tensor, src=0)

    def seed_rank(self, seed: int) -> None:
        """Give each rank RNG streams of its own: seed torch, NumPy and Python's ``random`` with
        :func:`rank_seed` (seed, rank)."""
        if self.active:
            pyro.set_rng_seed(rank_seed(seed, self.rank))

    def barrier(self) -> None:
        """Wait for every rank."""
        if self.active:
            self._collective("the barrier", dist.barrier)

    def local(self, batch: Batch) -> Batch:
        """This rank's contiguous share of a query's ``batch``; the whole batch where it has fewer rows than ranks."""
        if not self.active or len(batch) < self.world_size:
            return batch
        return batch.take(self.shard(torch.arange(len(batch), device=batch.rows.device)))

    def gather_rows(self, local: Tensor, n: int) -> Tensor:
        """The per-point values of every rank's :meth:`local` share, joined in row order: Tensor[n, ...]."""
        if not self.active or n < self.world_size:
            return local
        size = -(-n // self.world_size)
        padded = local.new_full((size, *local.shape[1:]), float("nan"))
        padded[:len(local)] = local
        parts = [torch.empty_like(padded) for _ in range(self.world_size)]
        self._collective("gathering the shards of a query", dist.all_gather, parts, padded)
        counts = [len(rows) for rows in torch.arange(n).tensor_split(self.world_size)]
        return torch.cat([part[:count] for part, count in zip(parts, counts)])

    def check_same_rows(self, n: int, name: str) -> None:
        """A ``ValueError`` on every rank unless every rank passes a query ``n`` rows: the same data set."""
        if not self.active:
            return
        sizes = torch.tensor([n, -n], device=self._device())
        self._collective("comparing the ranks' data", dist.all_reduce, sizes, op=dist.ReduceOp.MAX)
        if int(sizes[0]) != -int(sizes[1]):
            raise ValueError(f"{name}: under torch.distributed every rank must pass the same data, which the ranks "
                             f"share and gather back, but the ranks passed between {-int(sizes[1])} and "
                             f"{int(sizes[0])} rows")

    def _device(self) -> torch.device:
        """Where this group's collectives keep their tensors: the current CUDA device under NCCL."""
        if dist.get_backend() == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")

    def _collective(self, what: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``call(*args, **kwargs)``'s result; its failure a :class:`DistributedError` that says ``what`` failed."""
        try:
            return call(*args, **kwargs)
        except (RuntimeError, dist.DistBackendError) as error:
            raise DistributedError(
                f"rank {self.rank} of {self.world_size}: {what} failed: another rank stopped (its own error says "
                f"why: look at its output) or did not answer within the timeout ({TIMEOUT_VARIABLE}); "
                f"torch.distributed said: {str(error).strip().splitlines()[0] if str(error).strip() else error!r}"
            ) from error


#: the group of a process that runs alone.
SINGLE = Group()


def current() -> Group:
    """The group of the default ``torch.distributed`` process group where one is initialised, else :data:`SINGLE`."""
    if dist.is_available() and dist.is_initialized():
        return Group(dist.get_rank(), dist.get_world_size(), True)
    return SINGLE


def rank_seed(seed: int, rank: int) -> int:
    """The seed of rank ``rank``'s RNG streams in a distributed fit seeded with ``seed``: an int in [0, 2**32),
    from NumPy's ``SeedSequence([seed, rank])``, so that the ranks' streams do not overlap."""
    return int(np.random.SeedSequence([seed, rank]).generate_state(1)[0])


def launched_world_size() -> int:
    """The ``WORLD_SIZE`` a launcher such as ``torchrun`` gave this process (1 when none did)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def timeout(variable: str = TIMEOUT_VARIABLE, default: float = DEFAULT_TIMEOUT_S) -> datetime.timedelta:
    """How long a collective waits for the other ranks: ``PPGEN_DISTRIBUTED_TIMEOUT`` seconds, 600 by default (or
    another ``variable``'s, ``default`` seconds where it is not set)."""
    text = os.environ.get(variable)
    try:
        seconds = float(text) if text is not None else default
    except ValueError:
        raise ValueError(f"{variable} must be a number of seconds, got {text!r}") from None
    if not 0 < seconds < math.inf:
        raise ValueError(f"{variable} must be a positive number of seconds, got {text!r}")
    return datetime.timedelta(seconds=seconds)


def join(backend: str) -> None:
    """Initialise the default process group from a launcher's environment, the ranks given
    ``PPGEN_DISTRIBUTED_RENDEZVOUS_TIMEOUT`` seconds to find each other (then the collectives' timeout).

    Raises:
        ValueError: the ranks did not find each other in time, or the launcher's variables do not name a group
            (a rank alone, a port in use or out of range); said with the variables as set.
    """
    wait = timeout(RENDEZVOUS_VARIABLE, DEFAULT_RENDEZVOUS_S)
    try:
        store, rank, world_size = next(dist.rendezvous("env://", timeout=wait))
    except (RuntimeError, ValueError) as error:  # DistStoreError, DistNetworkError: no other rank, a bad address
        launched = ", ".join(f"{name}={os.environ.get(name)}" for name in LAUNCHER_VARIABLES)
        said = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"distributed=True: this process ({launched}) found no group of ranks within "
                         f"{wait.total_seconds():g} s ({RENDEZVOUS_VARIABLE}): start every rank with a launcher, "
                         f"`torchrun --nproc_per_node=N script.py`, or unset RANK and WORLD_SIZE to fit in one "
                         f"process; torch.distributed said: {said}") from None
    store.set_timeout(timeout())
    dist.init_process_group(backend, store=store, rank=rank, world_size=world_size, timeout=timeout())


def start(device: torch.device, seed: int | None) -> tuple[Group, torch.device]:
    """Join the process group of a distributed fit: the one initialised already, or one from the launcher's
    environment, with NCCL for CUDA (one process per GPU, ``cuda:LOCAL_RANK``) and gloo on CPU.

    Arguments:
        device: the fit's device; a bare ``"cuda"`` becomes ``cuda:LOCAL_RANK``.
        seed: the fit's seed: every rank draws the data order from it, so it may not be ``None``.

    Returns:
        The group, and the device of this rank.

    Raises:
        ValueError: no seed, or no process group and no launcher's environment (run under ``torchrun``), or no
            group of ranks found in that environment (see :func:`join`).
    """
    if seed is None:
        raise ValueError("distributed=True needs seed= (an int): every rank draws the same data order from it")
    if not dist.is_available():
        raise ValueError("distributed=True, but this build of torch has no torch.distributed")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        missing = [name for name in LAUNCHER_VARIABLES if name not in os.environ]
        if missing:
            raise ValueError(f"distributed=True needs a launcher: {', '.join(missing)} not set. Start the script "
                             f"with `torchrun --nproc_per_node=N script.py` (or initialise torch.distributed "
                             f"yourself before fit)")
        join("nccl" if device.type == "cuda" else "gloo")
    return Group(dist.get_rank(), dist.get_world_size(), True), device
