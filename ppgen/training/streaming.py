"""Data that does not fit in memory: a ``torch.utils.data`` Dataset, IterableDataset or DataLoader, read a batch
at a time and handed to the training loop as :class:`~ppgen.program.inputs.Batch` objects, as in-memory data are.

* A map-style ``Dataset`` (``len`` and indexing) has N = ``len(dataset)`` points. Each epoch draws the same
  seeded order of the N indices as in-memory data; each global batch of ``batch_size`` indices is split into the
  ranks' contiguous shards, and each rank loads its own shard through a ``DataLoader`` (its worker processes,
  when the data come in a ``DataLoader`` with ``num_workers``). Resuming continues at the batch where the run
  stopped, in the same order.
* An ``IterableDataset`` is read in its own order, ``batch_size`` items a global batch (or the batches of the
  ``DataLoader`` that holds it); every rank reads the stream and keeps its shard of each batch. N is its ``len``
  where it has one. Without a length, N is unknown: a program with global latents (whose terms are shared out
  as 1/N per point) is refused, and each batch counts as a data set of its own size. Resuming reads the stream
  again from its start and skips the batches done, which continues the run only for a stream that repeats
  its order.

An item of a data set is one point: a tensor x, or a tuple (x, y, ...) of aligned inputs; the items of a batch
are stacked (or collated by the ``DataLoader``'s ``collate_fn``) and checked as in-memory inputs are. The example
that :func:`ppgen.program.structure.inspect` traces is made of the first three items.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, IterableDataset, default_collate

from ppgen.program.inputs import Batch, as_batch

EXAMPLE_ROWS = 3


class _Indexed(Dataset):
    """The items of ``dataset`` with their indices, so that a batch knows which rows of the data set it holds."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[int, Any]:
        return index, self.dataset[index]


@dataclass(frozen=True)
class _Collate:
    """Stack items (with :attr:`collate`, the loader's ``collate_fn``) into a checked :class:`Batch`."""

    collate: Callable[[list[Any]], Any]
    size: int | None

    def __call__(self, items: list[tuple[int, Any]]) -> Batch:
        rows = torch.tensor([index for index, _ in items], dtype=torch.long)
        return to_batch(self.collate([item for _, item in items]), rows, self.size)


def to_batch(collated: Any, rows: Tensor, size: int | None) -> Batch:
    """A collated batch (a tensor x, or a tuple or list of aligned inputs) as a checked :class:`Batch`."""
    inputs = tuple(collated) if isinstance(collated, (tuple, list)) else collated
    checked = as_batch(inputs, name="a batch of the data set")
    return Batch(checked.args, rows, size if size is not None else len(checked))


@dataclass(frozen=True)
class Stream:
    """A data set read a batch at a time; see the module's description.

    Attributes:
        dataset: the ``Dataset`` or ``IterableDataset``.
        loader: the ``DataLoader`` it came in, or ``None``: its workers, ``collate_fn`` and ``pin_memory`` are used
            (and, for an ``IterableDataset``, its batches).
        size: N, or ``None`` for a stream without a length.
        device, dtype: where each batch goes, and the dtype of its floating-point inputs.
    """

    dataset: Dataset
    loader: DataLoader | None = None
    size: int | None = None
    device: torch.device | None = None
    dtype: torch.dtype | None = None

    @property
    def iterable(self) -> bool:
        """Whether the data set is read in its own order (an ``IterableDataset``) rather than by index."""
        return isinstance(self.dataset, IterableDataset)

    @property
    def collate(self) -> Callable[[list[Any]], Any]:
        """How items are stacked into a batch: the loader's ``collate_fn``, else ``default_collate``."""
        return self.loader.collate_fn if self.loader is not None else default_collate

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Stream:
        """The stream whose batches go to ``device``, their floating-point inputs in ``dtype``."""
        return replace(self, device=torch.device(device) if device is not None else None, dtype=dtype)

    def head(self, n: int) -> Batch:
        """The first ``n`` items, as a batch (on the CPU)."""
        if self.iterable:
            items = list(itertools.islice(iter(self.dataset), n))
        else:
            items = [self.dataset[i] for i in range(min(n, self.size))]
        if not items:
            raise ValueError("data: the data set has no items")
        return to_batch(self.collate(items), torch.arange(len(items)), self.size)

    def describe(self) -> dict[str, Any]:
        """What a run's manifest records of the data: its class and N (a stream is not hashed whole)."""
        return {"stream": f"{type(self.dataset).__module__}:{type(self.dataset).__qualname__}", "size": self.size}

    def batches(self, order: Tensor | None, batch_size: int, position: int,
                shard: Callable[[Tensor], Tensor]) -> Iterator[tuple[int, Batch]]:
        """The epoch's global batches from the ``position``-th on: each as its number of rows and this rank's
        ``shard`` of it, on the stream's device.

        Arguments:
            order: the epoch's order of the N indices (a map-style data set), or ``None`` (a stream).
            batch_size: the rows of a global batch (a stream in a ``DataLoader``: the loader's batches).
            position: the global batches of the epoch done already.
            shard: the rows of a global batch this rank computes on (indices into it).
        """
        batches = self._indexed(order, batch_size, position, shard) if order is not None else \
            self._streamed(batch_size, position, shard)
        for rows, batch in batches:
            yield rows, batch.to(self.device, self.dtype)

    def _indexed(self, order: Tensor, batch_size: int, position: int,
                 shard: Callable[[Tensor], Tensor]) -> Iterator[tuple[int, Batch]]:
        globals_ = order.split(batch_size)[position:]
        shards = [shard(torch.arange(len(rows))) for rows in globals_]
        wanted = [rows[mine].tolist() for rows, mine in zip(globals_, shards) if len(mine)]
        workers = self.loader.num_workers if self.loader is not None else 0
        loader = DataLoader(_Indexed(self.dataset), batch_sampler=wanted, num_workers=workers,
                            collate_fn=_Collate(self.collate, self.size),
                            pin_memory=self.loader.pin_memory if self.loader is not None else False,
                            generator=torch.Generator().manual_seed(0))  # the draws of the fit keep their RNG
        loaded = iter(loader)
        empty = None
        for rows, mine in zip(globals_, shards):
            if len(mine):
                yield len(rows), next(loaded)
            else:  # a last batch smaller than the world leaves this rank nothing
                empty = empty if empty is not None else self.head(1).take(torch.arange(0))
                yield len(rows), empty

    def _streamed(self, batch_size: int, position: int,
                  shard: Callable[[Tensor], Tensor]) -> Iterator[tuple[int, Batch]]:
        if self.loader is not None:
            with torch.random.fork_rng(devices=[]):  # the loader's seed for its workers leaves the fit's draws alone
                collated: Iterator[Any] = iter(self.loader)
        else:
            items = iter(self.dataset)
            collated = (self.collate(chunk) for chunk in iter(lambda: list(itertools.islice(items, batch_size)), []))
        start = 0
        for index, value in enumerate(collated):
            batch = to_batch(value, torch.empty(0, dtype=torch.long), self.size)
            rows = torch.arange(start, start + len(batch))
            start += len(batch)
            if index < position:  # done before the run stopped
                continue
            batch = Batch(batch.args, rows, batch.size)
            yield len(batch), batch.take(shard(torch.arange(len(batch))))


def as_stream(data: Any, batch_size: int) -> Stream | None:
    """``data`` as a :class:`Stream` where it is a ``Dataset``, ``IterableDataset`` or ``DataLoader``; ``None``
    for anything else (in-memory data, which :func:`ppgen.program.inputs.as_batch` reads).

    Raises:
        ValueError: a ``DataLoader`` whose ``batch_size`` is not ``batch_size``: the loader's batches are fit's
            global batches. Over a map-style data set, ppgen's seeded order replaces the loader's sampler.
        TypeError: a map-style data set without ``len``.
    """
    from torch.utils.data import TensorDataset

    loader = data if isinstance(data, DataLoader) else None
    dataset = loader.dataset if loader is not None else data
    if not isinstance(dataset, Dataset) or (loader is None and isinstance(dataset, TensorDataset)):
        return None
    if loader is not None and loader.batch_size != batch_size:
        raise ValueError(f"data: the DataLoader's batch_size ({loader.batch_size}) and fit's batch_size "
                         f"({batch_size}) differ: they are the same global batch, give both the same number")
    if isinstance(dataset, IterableDataset):
        try:
            size = len(dataset)  # type: ignore[arg-type]
        except TypeError:
            size = None
        return Stream(dataset, loader, size)
    if not callable(getattr(dataset, "__len__", None)):
        raise TypeError(f"data: a map-style Dataset ({type(dataset).__name__}) needs __len__, the number of points N")
    return Stream(dataset, loader, len(dataset))  # type: ignore[arg-type]


def epoch_order(data: Stream | Batch, generator: torch.Generator | None) -> Tensor | None:
    """An epoch's order of the N indices, drawn from ``generator``; ``None`` for a stream read in its own order."""
    if isinstance(data, Stream) and data.iterable:
        return None
    return torch.randperm(data.size, generator=generator)


def epoch_batches(data: Stream | Batch, order: Tensor | None, batch_size: int, position: int,
                  shard: Callable[[Tensor], Tensor]) -> Iterator[tuple[int, Batch]]:
    """The global batches of an epoch from the ``position``-th on, as (rows of the global batch, this rank's
    ``shard`` of it): the one place the training loop reads the data, in memory or streamed."""
    if isinstance(data, Stream):
        return data.batches(order, batch_size, position, shard)
    order = order.to(data.rows.device)  # once an epoch, not a copy to the device (and a wait for it) every step
    return ((len(rows), data.take(shard(rows))) for rows in order.split(batch_size)[position:])


def check_streamed(structure: Any, data: Stream | Batch) -> None:
    """A ``ValueError`` for a program with global latents on a stream without a length: their 1/N needs N."""
    if isinstance(data, Stream) and data.size is None and structure.global_sites:
        raise ValueError(f"data: the stream has no length, but latent site(s) {structure.global_sites} sit outside "
                         f"the data plate, and their terms are shared out as 1/N per point: give the "
                         f"IterableDataset a __len__, or use a map-style Dataset")
