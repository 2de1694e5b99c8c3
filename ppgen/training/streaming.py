"""Data that does not fit in memory: a ``torch.utils.data`` Dataset, IterableDataset or DataLoader, read a batch
at a time and handed to the training loop as :class:`~ppgen.program.inputs.Batch` objects, as in-memory data are.

* A map-style ``Dataset`` (``len`` and indexing), or a ``DataLoader`` over anything with ``len`` and indexing (a
  tensor, an array, a list), has N = ``len(dataset)`` points. Each epoch draws the same seeded order of the N
  indices as in-memory data; each global batch of ``batch_size`` indices is split into the ranks' contiguous
  shards, and each rank loads its own shard (through the worker processes of the ``DataLoader`` the data come in,
  with its ``num_workers``). Resuming continues at the batch where the run stopped, in the same order.
* An ``IterableDataset`` is read in its own order, ``batch_size`` items a global batch (read by the workers of the
  ``DataLoader`` that holds it); every rank reads the stream and keeps its shard of each batch. N is its ``len``
  where it has one, and an epoch ends with the stream. Without a length, N is unknown and so is the end of an
  epoch (an endless stream has none): ``fit`` needs ``steps_per_epoch``, and an epoch is that many batches read from
  the stream's start (fewer where the stream ends first); a program with global latents (whose terms are shared out
  as 1/N per point) is refused, and each batch counts as a data set of its own size. Resuming reads the stream
  again from its start and skips the batches done, which continues the run only for a stream that repeats its
  order.

An item of a data set is one point: a tensor x, or a tuple (x, y, ...) of aligned inputs. Every item is checked as
it is read, and an error names its index (its position in a stream): with the default ``collate_fn``, that it is a
tensor, an array or a number (or a tuple of them) of the first item's shape and dtype; then, after the items are
stacked (by the ``DataLoader``'s own ``collate_fn`` where it has one, in the main process, which the loader's workers
hand the items to), that its entries are finite and lie in the support of the model's likelihood, as data in a
tensor are checked once before fitting. The example that :func:`ppgen.program.structure.inspect` traces is made of
the first three items; the first ``batch_size`` are checked before the first step, and an item found bad later, in
the middle of an epoch, stops the fit there, with the steps before it taken.
"""

from __future__ import annotations

import itertools
import numbers
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, IterableDataset, default_collate

from ppgen.program.inputs import Batch, as_batch
from ppgen.utils.checks import check_positive_int

EXAMPLE_ROWS = 3


class _Indexed(Dataset):
    """The items of ``dataset`` with their indices, so that a batch knows which rows of the data set it holds."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[int, Any]:
        return index, self.dataset[index]


def _as_read(items: list[Any]) -> list[Any]:
    """The ``collate_fn`` of ppgen's loaders: the items as they were read, checked and stacked in the main process."""
    return items


@dataclass(frozen=True)
class Items:
    """What every item of a data set must be, as its first item is: ``shapes`` and ``dtypes`` of its inputs (a
    dtype of ``None`` for a Python number), one point each; and, once the program's trace knows it, the ``support``
    of the likelihood of input ``observed``."""

    shapes: tuple[tuple[int, ...], ...]
    dtypes: tuple[torch.dtype | None, ...]
    observed: int | None = None
    support: Any = None

    @classmethod
    def of(cls, item: Any) -> Items:
        """The layout of the first item (index 0), which must be a data point."""
        inputs = _inputs(item)
        dtypes = tuple(_dtype(value, _where(0, i, len(inputs))) for i, value in enumerate(inputs))
        return cls(tuple(tuple(getattr(value, "shape", ())) for value in inputs), dtypes)

    def check_item(self, item: Any, index: int) -> None:
        """A ``TypeError``/``ValueError`` naming item ``index`` unless it is one point of the first item's shapes and
        dtypes (read before the default ``collate_fn`` stacks it, whose own errors name no item)."""
        inputs = item if isinstance(item, (tuple, list)) else (item,)
        if len(inputs) != len(self.shapes):
            raise ValueError(f"data: item {index} holds {len(inputs)} input(s), but the data set's first item holds "
                             f"{len(self.shapes)}")
        for i, value in enumerate(inputs):
            if not (isinstance(value, Tensor) and value.shape == self.shapes[i] and value.dtype == self.dtypes[i]):
                self._check_input(value, i, _where(index, i, len(inputs)))  # the common case above costs ~1 us

    def _check_input(self, value: Any, i: int, where: str) -> None:
        got = _dtype(value, where)
        if tuple(getattr(value, "shape", ())) != self.shapes[i]:
            raise ValueError(f"data: {where} has shape {list(getattr(value, 'shape', ()))}, but the data set's first "
                             f"item has {list(self.shapes[i])}")
        if got != self.dtypes[i]:
            raise TypeError(f"data: {where} has dtype {got or type(value).__name__}, but the data set's first item has "
                            f"{self.dtypes[i] or 'Python numbers'}: give every item one dtype")

    def check_support(self, batch: Batch) -> None:
        """A ``ValueError`` naming the first item of ``batch`` (by its index, ``batch.rows``) that lies outside the
        support of the likelihood, as data in a tensor are refused before fitting."""
        if self.support is not None:
            _refuse(batch.rows, ~self.support.check(batch.args[self.observed]),
                    f"lies outside the support of the model's likelihood ({self.support})")


def _inputs(item: Any) -> tuple[Any, ...]:
    """The inputs of one item: a tuple (or list) (x, y, ...) of aligned inputs, or x alone."""
    return tuple(item) if isinstance(item, (tuple, list)) else (item,)


def _where(index: int, i: int, count: int) -> str:
    return f"item {index}" if count == 1 else f"item {index}[{i}]"


def _dtype(value: Any, where: str) -> torch.dtype | None:
    """The torch dtype ``value`` is stacked in (``None`` for a Python number), or a ``TypeError`` naming ``where``
    unless it is a tensor, an array or a number."""
    if isinstance(value, Tensor):
        return value.dtype
    if isinstance(value, numbers.Real):
        return None
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return torch.from_numpy(np.empty(0, value.dtype.newbyteorder("="))).dtype
    what = "None" if value is None else f"{type(value).__name__} {value!r:.40}"
    raise TypeError(f"data: {where} is {what}, not a data point: a tensor, an array of real numbers or a number, or a "
                    f"tuple (x, y, ...) of them")


def _check_finite(collated: Any, rows: Tensor) -> None:
    """A ``ValueError`` naming the first of the items at ``rows`` whose stacked floating-point entries (``collated``,
    one tensor or a tuple of them) are not all finite."""
    for value in _inputs(collated):
        if isinstance(value, Tensor) and value.is_floating_point() and len(value) == len(rows):
            _refuse(rows, ~torch.isfinite(value), "has non-finite entries (NaN or infinity)")


def _refuse(rows: Tensor, bad: Tensor, why: str) -> None:
    """A ``ValueError`` naming the first of the items at ``rows`` (their indices) with a ``bad`` entry, saying
    ``why``."""
    flagged = bad.reshape(len(rows), -1).any(1)
    if bool(flagged.any()):
        raise ValueError(f"data: item {rows[flagged.nonzero()[0, 0]].item()} {why}")


def to_batch(collated: Any, rows: Tensor, size: int | None) -> Batch:
    """A collated batch (a tensor x, or a tuple or list of aligned inputs) of the items at ``rows`` (their indices in
    the data set), as a checked :class:`Batch`."""
    inputs = tuple(collated) if isinstance(collated, (tuple, list)) else collated
    checked = as_batch(inputs, name="a batch of the data set")
    return Batch(checked.args, rows, size if size is not None else len(checked))


@dataclass(frozen=True)
class Stream:
    """A data set read a batch at a time; see the module's description.

    Attributes:
        dataset: the ``Dataset`` or ``IterableDataset`` (or, in a ``DataLoader``, anything with ``len`` and indexing).
        loader: the ``DataLoader`` it came in, or ``None``: its workers read the items, its ``collate_fn`` stacks
            them and ``pin_memory`` pins the batch (and, for an ``IterableDataset``, its batches are fit's).
        size: N, or ``None`` for a stream without a length.
        steps: the global batches of an epoch of a stream without a length (``fit``'s ``steps_per_epoch``).
        items: what each item must be (:class:`Items`), once ``fit`` has read the first ones; ``None`` before.
        device, dtype: where each batch goes, and the dtype of its floating-point inputs.
    """

    dataset: Any
    loader: DataLoader | None = None
    size: int | None = None
    steps: int | None = None
    items: Items | None = None
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
        return self._batch(items, list(range(len(items))))

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
        pin = self.loader is not None and self.loader.pin_memory and torch.cuda.is_available()
        for rows, batch in batches:
            if pin:  # the stacked batch, as the loader would have pinned it
                batch = Batch(tuple(arg.pin_memory() for arg in batch.args), batch.rows, batch.size)
            yield rows, batch.to(self.device, self.dtype)

    def _batch(self, items: list[Any], indices: Sequence[int]) -> Batch:
        """The items at ``indices`` of the data set, each checked (see :class:`Items`), stacked into a batch."""
        if self.collate is default_collate:
            like = self.items if self.items is not None else Items.of(items[0])
            for item, index in zip(items, indices):
                like.check_item(item, index)
        collated, rows = self.collate(items), torch.tensor(list(indices), dtype=torch.long)
        try:
            batch = to_batch(collated, rows, self.size)
        except ValueError:  # non-finite entries are found there, in one pass; which item holds them, here
            _check_finite(collated, rows)
            raise
        if self.items is not None:
            self.items.check_support(batch)
        return batch

    def _loader(self, dataset: Any, **how: Any) -> DataLoader:
        """A loader of ``dataset`` whose workers (the user's loader's) hand over the items as read."""
        workers = self.loader.num_workers if self.loader is not None else 0
        more = {} if self.loader is None else dict(
            timeout=self.loader.timeout, worker_init_fn=self.loader.worker_init_fn,
            multiprocessing_context=self.loader.multiprocessing_context,
            prefetch_factor=self.loader.prefetch_factor if workers else None)
        return DataLoader(dataset, num_workers=workers, collate_fn=_as_read, **more, **how)

    def _indexed(self, order: Tensor, batch_size: int, position: int,
                 shard: Callable[[Tensor], Tensor]) -> Iterator[tuple[int, Batch]]:
        globals_ = order.split(batch_size)[position:]
        shards = [shard(torch.arange(len(rows))) for rows in globals_]
        wanted = [rows[mine].tolist() for rows, mine in zip(globals_, shards) if len(mine)]
        # the draws of the fit keep their RNG: the loader's generator seeds its workers alone
        loaded = iter(self._loader(_Indexed(self.dataset), batch_sampler=wanted,
                                   generator=torch.Generator().manual_seed(0)))
        empty = None
        for rows, mine in zip(globals_, shards):
            if len(mine):
                indexed = next(loaded)
                yield len(rows), self._batch([item for _, item in indexed], [index for index, _ in indexed])
            else:  # a last batch smaller than the world leaves this rank nothing
                empty = empty if empty is not None else self.head(1).take(torch.arange(0))
                yield len(rows), empty

    def _streamed(self, batch_size: int, position: int,
                  shard: Callable[[Tensor], Tensor]) -> Iterator[tuple[int, Batch]]:
        if self.loader is not None:
            with torch.random.fork_rng(devices=[]):  # the loader's seed for its workers leaves the fit's draws alone
                chunks: Iterator[list[Any]] = iter(self._loader(self.dataset, batch_size=self.loader.batch_size,
                                                                drop_last=self.loader.drop_last,
                                                                generator=self.loader.generator))
        else:
            items = iter(self.dataset)
            chunks = iter(lambda: list(itertools.islice(items, batch_size)), [])
        start = 0
        for index, chunk in enumerate(itertools.islice(chunks, self.steps)):
            if index < position:  # done before the run stopped
                start += len(chunk)
                continue
            batch = self._batch(chunk, range(start, start + len(chunk)))
            start += len(chunk)
            yield len(batch), batch.take(shard(torch.arange(len(batch))))


def as_stream(data: Any, batch_size: int, steps_per_epoch: Any = None) -> Stream | None:
    """``data`` as a :class:`Stream` where it is a ``Dataset``, ``IterableDataset`` or ``DataLoader``; ``None``
    for anything else (in-memory data, which :func:`ppgen.program.inputs.as_batch` reads).

    Raises:
        ValueError: a ``DataLoader`` whose ``batch_size`` is not ``batch_size`` (the loader's batches are fit's
            global batches; over a map-style data set, ppgen's seeded order replaces the loader's sampler); a
            stream without a length and without ``steps_per_epoch``, or ``steps_per_epoch`` for data whose length
            gives the epoch's steps.
        TypeError: a map-style data set without ``len``; a ``DataLoader`` over something that cannot be indexed.
    """
    from torch.utils.data import TensorDataset

    steps = None if steps_per_epoch is None else check_positive_int(steps_per_epoch, "steps_per_epoch")
    loader = data if isinstance(data, DataLoader) else None
    dataset = loader.dataset if loader is not None else data
    indexable = callable(getattr(dataset, "__getitem__", None)) and callable(getattr(dataset, "__len__", None))
    if loader is not None and not isinstance(dataset, Dataset) and not indexable:
        raise TypeError(f"data: the DataLoader reads a {type(dataset).__name__}, which has no len() and indexing: "
                        f"give it a Dataset, an IterableDataset, a tensor or an array")
    if loader is None and (not isinstance(dataset, Dataset) or isinstance(dataset, TensorDataset)):
        if steps is not None:
            raise ValueError(f"steps_per_epoch applies to a stream without a length; the data hold N points, and an "
                             f"epoch is ceil(N / batch_size) steps: leave steps_per_epoch out (got {steps})")
        return None
    if loader is not None and loader.batch_size != batch_size:
        raise ValueError(f"data: the DataLoader's batch_size ({loader.batch_size}) and fit's batch_size "
                         f"({batch_size}) differ: they are the same global batch, give both the same number")
    if isinstance(dataset, IterableDataset):
        try:
            size = len(dataset)  # type: ignore[arg-type]
        except TypeError:
            size = None
        if size is None and steps is None:
            raise ValueError(f"data: the {type(dataset).__name__} has no len(), so an epoch has no known end (an "
                             f"endless stream would never return): pass steps_per_epoch=, the batches of an epoch, "
                             f"or give it a __len__")
        if size is not None and steps is not None:
            raise ValueError(f"steps_per_epoch applies to a stream without a length; this {type(dataset).__name__} "
                             f"has len() {size}, and an epoch is the whole stream: leave steps_per_epoch out")
        return Stream(dataset, loader, size, steps)
    if not callable(getattr(dataset, "__len__", None)):
        raise TypeError(f"data: a map-style Dataset ({type(dataset).__name__}) needs __len__, the number of points N")
    if steps is not None:
        raise ValueError(f"steps_per_epoch applies to a stream without a length; this {type(dataset).__name__} has "
                         f"len() {len(dataset)}: leave steps_per_epoch out")
    return Stream(dataset, loader, len(dataset))


def epoch_order(data: Stream | Batch, generator: torch.Generator | None, batch_size: int) -> Tensor | None:
    """An epoch's order of the N indices, drawn from ``generator``; ``None`` for a stream read in its own order. A
    batch that holds every point takes them in their own order (a program's parameters may be per point by position,
    as Pyro's full-batch SVI keeps them)."""
    if isinstance(data, Stream) and data.iterable:
        return None
    if batch_size >= data.size:
        return torch.arange(data.size)
    return torch.randperm(data.size, generator=generator)


def epoch_batches(data: Stream | Batch, order: Tensor | None, batch_size: int, position: int,
                  shard: Callable[[Tensor], Tensor], drop_last: bool = False) -> Iterator[tuple[int, Batch]]:
    """The global batches of an epoch from the ``position``-th on, as (rows of the global batch, this rank's
    ``shard`` of it): the one place the training loop reads the data, in memory or streamed. ``drop_last``: without
    the last batch where it is smaller (data in memory)."""
    if isinstance(data, Stream):
        return data.batches(order, batch_size, position, shard)
    order = order.to(data.rows.device)  # once an epoch, not a copy to the device (and a wait for it) every step
    batches = order.split(batch_size)
    if drop_last and len(batches[-1]) < batch_size:
        batches = batches[:-1]
    return ((len(rows), data.take(shard(rows))) for rows in batches[position:])


def check_streamed(structure: Any, data: Stream | Batch) -> Stream | Batch:
    """``data``, a stream of which each item read is checked to be a point like its first item and in the support of
    the likelihood the ``structure`` knows (see :class:`Items`); in-memory data unchanged.

    Raises:
        ValueError: a program with global latents on a stream without a length: their 1/N needs N.
    """
    if not isinstance(data, Stream):
        return data
    if data.size is None and structure.global_sites:
        raise ValueError(f"data: the stream has no length, but latent site(s) {structure.global_sites} sit outside "
                         f"the data plate, and their terms are shared out as 1/N per point: give the "
                         f"IterableDataset a __len__, or use a map-style Dataset")
    support = structure.data_support if structure.observed_input is not None else None
    if data.collate is default_collate:  # items of the user's own collate_fn may be anything it stacks
        first = Items.of(next(iter(data.dataset)) if data.iterable else data.dataset[0])
    else:
        first = Items((), ())
    return replace(data, items=replace(first, observed=structure.observed_input, support=support))
