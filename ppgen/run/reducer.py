"""The gradient all-reduce of a data-parallel step, in buckets launched while ``backward`` still runs.

Rank r's gradient g_r (of the mean loss over its B_r rows) is weighted by its share s_r = B_r / B of the global batch
and summed over the ranks: every rank ends with sum_r s_r g_r, the gradient of the mean loss over the B rows. The
parameters are cut into buckets as ``DistributedDataParallel``'s reducer cuts them (Li et al., 2020): in reverse
order of registration, where ``backward`` makes gradients ready first, the first bucket of about
:data:`FIRST_BUCKET_BYTES` and the others of about :data:`BUCKET_BYTES`, each of one dtype and device. A hook on each
parameter (``Tensor.register_post_accumulate_grad_hook``) counts the gradients accumulated; once a bucket is full,
and every bucket before it has been launched, its weighted gradients are copied into one flat tensor whose
all-reduce is started asynchronously, so that it runs while ``backward`` computes the gradients of the earlier layers.

Every rank launches the same collectives in the same order, whatever its gradients: the buckets go in index order, and
the last bucket (the first parameters, whose gradients ``backward`` makes last) is launched by :meth:`Reducer.finish`
after ``backward``, with a tail that carries what the ranks must agree on: the weighted loss s_r L_r, which of the
parameters have a gradient on each rank, which buckets a rank launched before their gradients changed, and which stop
signal each rank received. So a step costs one collective per bucket and no other, and its verdict (the global loss and
gradient) is the same on every rank. A bucket whose parameters get no gradient on a rank (a rank without rows, a
parameter this batch does not reach) is launched there by :meth:`Reducer.finish` with zeros in their place. A step whose
gradients come at its end (the captured or compiled step, which computes them with ``torch.autograd.grad`` inside its
graph) fires no hook: its buckets are all reduced by :meth:`Reducer.finish`, one collective each.

A gradient replaced or changed after its bucket was launched (as by a captured step's call that runs the plain step,
then its graph, to compare them) leaves that bucket stale; the tail tells
every rank, and every rank reduces the stale buckets again from the gradients as they are at the end.

References:
    PyTorch Distributed: Experiences on Accelerating Data Parallel Training (Li et al., 2020).
    https://arxiv.org/abs/2006.15704
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

#: bytes of the first bucket, the last layers' gradients, ready first (``DistributedDataParallel``'s default).
FIRST_BUCKET_BYTES = 1 << 20
#: bytes of every later bucket (``DistributedDataParallel``'s ``bucket_cap_mb=25``).
BUCKET_BYTES = 25 << 20
#: the signals that stop a fit after its step (:class:`~ppgen.run.signals.StopSignals`).
STOP_SIGNALS = ("SIGINT", "SIGTERM")

#: ``collective(what, call, *args, **kwargs)``: runs one call of ``torch.distributed``, its failure said as ``what``.
Collective = Callable[..., Any]


def assign_buckets(params: Sequence[Tensor], first: int = FIRST_BUCKET_BYTES, cap: int = BUCKET_BYTES
                   ) -> list[list[int]]:
    """The indices of ``params`` cut into buckets, in reverse order: a bucket is closed once it holds ``first`` bytes
    (the first bucket) or ``cap`` bytes (the others), and before a parameter of another dtype or device."""
    buckets: list[list[int]] = []
    size = 0
    for i in reversed(range(len(params))):
        p = params[i]
        if buckets and size < (first if len(buckets) == 1 else cap) and _kind(params[buckets[-1][0]]) == _kind(p):
            buckets[-1].append(i)
        else:
            buckets.append([i])
            size = 0
        size += p.numel() * p.element_size()
    return buckets


def _kind(p: Tensor) -> tuple[torch.dtype, torch.device]:
    return p.dtype, p.device


class Reducer:
    """The bucketed gradient all-reduce over ``params`` of one rank of a group of ``world_size``.

    Arguments:
        params: the parameters whose ``.grad`` a step reduces.
        collective: runs a ``torch.distributed`` call (see :data:`Collective`), turning its failure into the group's
            error.
        signals: the training loop's :class:`~ppgen.run.signals.StopSignals`, whose received signal the tail carries;
            ``None`` where nothing listens.
        overlap: whether hooks launch buckets during ``backward``; without, :meth:`finish` reduces every bucket.
        first, cap: the sizes of the buckets in bytes (see :func:`assign_buckets`); by default
            :data:`FIRST_BUCKET_BYTES` and :data:`BUCKET_BYTES` as they are when the reducer is made.

    Attributes:
        agreed: the stop signal any rank had received by the last step's reduction, or ``None``.
    """

    def __init__(self, params: Sequence[Tensor], collective: Collective, signals: Any = None, overlap: bool = True,
                 first: int | None = None, cap: int | None = None) -> None:
        self.params, self.collective, self.signals = list(params), collective, signals
        self.buckets = assign_buckets(self.params, FIRST_BUCKET_BYTES if first is None else first,
                                      BUCKET_BYTES if cap is None else cap)
        self.bucket_of = {i: b for b, indices in enumerate(self.buckets) for i in indices}
        self.agreed: str | None = None
        self.share: float | None = None
        self._hooks = [p.register_post_accumulate_grad_hook(self._hook(i)) for i, p in enumerate(self.params)
                       if p.requires_grad] if overlap else []

    def close(self) -> None:
        """Remove the hooks from the parameters."""
        for hook in self._hooks:
            hook.remove()
        self._hooks = []

    def expect(self, share: float) -> None:
        """Arm the hooks for the next ``backward``, this rank's gradients weighted by ``share`` (B_r / B)."""
        self.share = share
        self._missing = [sum(self.params[i].requires_grad for i in indices) for indices in self.buckets]
        self._seen: set[int] = set()
        self._launched: list[tuple[Tensor, Any, list[tuple[Tensor, int]]]] = []
        self._stale: set[int] = set()

    def finish(self, loss: Tensor | None, share: float) -> Tensor:
        """Reduce what the hooks have not, wait for every bucket, and put sum_r s_r g_r into each ``.grad``
        (``None`` where no rank has a gradient, as a single process leaves it).

        Arguments:
            loss: this rank's loss L_r (detached); ``None`` for a rank without rows.
            share: s_r = B_r / B; the share :meth:`expect` was given, where it was called for this step.

        Returns:
            The global mean loss sum_r s_r L_r, a 0-d tensor.
        """
        if self.share is None:
            self.expect(share)
        elif self.share != share:
            raise ValueError(f"share: the reduction was armed for a share of {self.share} of the batch, "
                             f"not {share}")
        last = len(self.buckets) - 1
        for b in range(len(self._launched), last):
            self._launch(b)
        like = self.params[self.buckets[last][0]] if self.params else torch.zeros((), dtype=torch.float64)
        received = self.signals.received if self.signals is not None else None
        tail = torch.tensor([0.0] + [float(p.grad is not None) for p in self.params]
                            + [float(b in self._stale or self._changed(b)) for b in range(len(self._launched))]
                            + [float(received == name) for name in STOP_SIGNALS], dtype=like.dtype, device=like.device)
        if loss is not None:
            tail[0] = loss.reshape(()).to(tail) * share
        self._launch(last, tail) if self.params else self._start(tail, [])
        flats = [self._wait(b) for b in range(len(self._launched))]
        total, counts = flats[-1][-len(tail)], flats[-1][-len(tail):].tolist()
        flats[-1] = flats[-1][:-len(tail)]
        has, stale, stops = (counts[1:1 + len(self.params)], counts[1 + len(self.params):-len(STOP_SIGNALS)],
                             counts[-len(STOP_SIGNALS):])
        for b in (b for b, n in enumerate(stale) if n):  # the same buckets, in the same order, on every rank
            flat = self._flat(b)
            self.collective("the gradient all-reduce", dist.all_reduce, flat)
            flats[b] = flat
        for indices, flat in zip(self.buckets, flats):
            for i, chunk in zip(indices, flat.split([self.params[i].numel() for i in indices])):
                self.params[i].grad = chunk.view_as(self.params[i]) if has[i] else None
        self.agreed = next((name for name, n in zip(STOP_SIGNALS, stops) if n), None)
        self.share = None
        return total

    def _hook(self, i: int) -> Callable[[Tensor], None]:
        def ready(param: Tensor) -> None:
            """Count parameter i's gradient; launch every full bucket whose turn has come."""
            if self.share is None:
                return
            b = self.bucket_of[i]
            if i in self._seen:
                if b < len(self._launched):
                    self._stale.add(b)
                return
            self._seen.add(i)
            self._missing[b] -= 1
            while len(self._launched) < len(self.buckets) - 1 and not self._missing[len(self._launched)]:
                self._launch(len(self._launched))
        return ready

    def _flat(self, b: int, tail: Tensor | None = None) -> Tensor:
        """Bucket b's gradients weighted by the share, flat, zeros where a parameter has none; then ``tail``."""
        like = self.params[self.buckets[b][0]]
        parts = [self.params[i].grad.reshape(-1) if self.params[i].grad is not None
                 else like.new_zeros(self.params[i].numel()) for i in self.buckets[b]]
        n = sum(part.numel() for part in parts)
        flat = like.new_empty(n + (len(tail) if tail is not None else 0))
        torch.cat(parts, out=flat[:n]).mul_(self.share)
        if tail is not None:
            flat[n:] = tail
        return flat

    def _launch(self, b: int, tail: Tensor | None = None) -> None:
        grads = [(g, g._version) for g in (self.params[i].grad for i in self.buckets[b]) if g is not None]
        self._start(self._flat(b, tail), grads)

    def _start(self, flat: Tensor, grads: list[tuple[Tensor, int]]) -> None:
        work = self.collective("the gradient all-reduce", dist.all_reduce, flat, async_op=True)
        self._launched.append((flat, work, grads))

    def _changed(self, b: int) -> bool:
        """Whether a gradient of bucket b was replaced or changed in place after the bucket was launched."""
        indices, (_, _, grads) = self.buckets[b], self._launched[b]
        now = [self.params[i].grad for i in indices if self.params[i].grad is not None]
        return len(now) != len(grads) or any(g is not old or g._version != v for g, (old, v) in zip(now, grads))

    def _wait(self, b: int) -> Tensor:
        flat, work, _ = self._launched[b]
        self.collective("the gradient all-reduce", work.wait)
        return flat
