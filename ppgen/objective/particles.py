"""K particles (or S posterior draws) of a program in passes: all at once where it broadcasts or can be mapped, one at a
time where not.

A program that broadcasts over a plate of particles left of its own plates (``Plan.vectorized``) runs its K particles
in one pass, or in passes of at most a given number where memory bounds them. One that does not (``X @ w`` over draws
of w, a ``z.view(-1, d)``, a convolution over a reshaped batch) runs each particle without a particle plate, as Pyro's
``Trace_ELBO`` runs a program that it does not vectorise: its one-particle pass mapped over the particles of a pass by
``torch.func.vmap`` where that gives the same values (``Plan.mapped``, learnt by
:func:`ppgen.program.structure.inspect`; see :mod:`ppgen.program.mapping`), else K passes of one particle each. Every
bound, gradient estimator and query that runs a program over particles or draws chooses its passes here, so that each
sees the program the same way; the outputs of the passes are concatenated along their first dimension, the
particles', in order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import Tensor

from ppgen.program.mapping import mapped
from ppgen.program.traces import Plan

Output = TypeVar("Output")


def passes(total: int, plan: Plan, most: int | None = None) -> list[tuple[int, int]]:
    """The passes over ``total`` particles, each ``(start, count)``: ``most`` at a time (all of them where ``most``
    is ``None``) for a program that broadcasts over particles or is mapped over them, one at a time otherwise."""
    size = (most or total) if plan.many_at_once else 1
    return [(start, min(size, total - start)) for start in range(0, total, size)]


def in_passes(run: Callable[..., Output], total: int, plan: Plan, most: int | None = None,
              given: dict[str, Tensor] | None = None) -> Output:
    """``run(start, count)`` over the :func:`passes` of ``total`` particles, its outputs (a Tensor[count, ...], or a
    tuple or dict of them) concatenated along the first dimension: the same layout as one pass of all of them.

    Arguments:
        run: a pass over particles ``start`` to ``start + count``; with ``count > 1`` it is called only for a program
            that broadcasts over particles. For a mapped program (``plan.mapped``) a pass of several particles calls
            ``run(start, 1)`` once, traced by ``torch.func.vmap`` (:func:`ppgen.program.mapping.mapped`): each particle
            draws its own randomness, and what differs by particle otherwise must come through ``given``.
        total: K, the particles (or draws) in all.
        plan: the program's :class:`~ppgen.program.traces.Plan`, which says whether it broadcasts.
        most: the most particles in one pass (all of them by default).
        given: values that differ by particle, each Tensor[total, ...] (draws to condition on, say); ``run`` then
            takes them as a third argument, ``run(start, count, values)``, each value its pass's Tensor[count, ...].
    """
    def one_pass(start: int, count: int) -> Output:
        share = None if given is None else {name: value[start:start + count] for name, value in given.items()}
        if plan.mapped and count > 1:
            return mapped(lambda values: run(start, 1, *(() if given is None else (values,))), count, share)
        return run(start, count, *(() if given is None else (share,)))

    outputs = [one_pass(start, count) for start, count in passes(total, plan, most)]
    return outputs[0] if len(outputs) == 1 else _concatenated(outputs)


def _concatenated(outputs: list[Any]) -> Any:
    first = outputs[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(outputs)
    if isinstance(first, tuple):
        return tuple(_concatenated(list(parts)) for parts in zip(*outputs))
    return {name: _concatenated([output[name] for output in outputs]) for name in first}
