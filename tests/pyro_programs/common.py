"""What every program of the reference set shares: the :class:`Case` record, builders, data."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyro
import torch
from pyro.infer.autoguide import init_to_mean
from torch import Tensor, nn
from torch.distributions import constraints

N, D = 5, 3
ENUM = {"enumerate": "parallel"}


@dataclass(frozen=True)
class Case:
    """One program and how Pyro evaluates it.

    Attributes:
        name: the test id.
        make: builds the program afresh: ``(what ppgen gets, model_fn, guide_fn)``.
        data: builds the data, a tuple of aligned tensors passed positionally.
        enum: whether Pyro's reference is ``TraceEnum_ELBO`` (else ``Trace_ELBO``).
        max_plate_nesting: what Pyro is told.
        iwae: K for ``RenyiELBO(alpha=0)``, where Pyro's IWAE is per point (no global latents); ``None`` otherwise.
        exact: whether the draws are identical under one seed (else the test compares Monte Carlo means).
        broadcasts: whether the program broadcasts over a particle dimension (Pyro's particles vectorised).
        guide_enumerates: whether the guide enumerates a discrete site (config_enumerate(guide)): there are no
            importance weights then, and ppgen's ELBO is read from the first loss of ``ppgen.fit``.
        may_refuse: whether ppgen may refuse the program although Pyro evaluates it, with a message naming one of
            ``sites`` (the issue's "agrees with Pyro or is refused with a message that names the site").
        refused: the regex of the error Pyro raises, for a program Pyro refuses.
        sites: names, one of which ppgen's refusal must mention (for an enumerating guide: its enumerated sites).
    """

    name: str
    make: Callable[[], tuple[Any, Callable, Callable]]
    data: Callable[[], tuple[Tensor, ...]]
    enum: bool = False
    max_plate_nesting: int = 1
    iwae: int | None = None
    exact: bool = True
    broadcasts: bool = True
    guide_enumerates: bool = False
    may_refuse: bool = False
    refused: str | None = None
    sites: tuple[str, ...] = ()


def pair(model: Callable, guide: Callable) -> Callable[[], tuple[Any, Callable, Callable]]:
    return lambda: ((model, guide), model, guide)


def module(build: Callable[[], nn.Module]) -> Callable[[], tuple[Any, Callable, Callable]]:
    def make() -> tuple[Any, Callable, Callable]:
        program = build()
        return program, program.model, program.guide
    return make


def autoguide(model: Callable, guide_class: type, **kwargs: Any) -> Callable[[], tuple[Any, Callable, Callable]]:
    """A fresh AutoGuide per call, started deterministically (``init_to_mean`` draws nothing)."""
    def make() -> tuple[Any, Callable, Callable]:
        guide = guide_class(model, init_loc_fn=init_to_mean, **kwargs)
        return (model, guide), model, guide
    return make


def empty_guide(*args: Tensor) -> None:
    """The guide of a program whose latents are all summed out in the model."""


def randn(*shape: int, seed: int) -> Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def bits(*shape: int, seed: int) -> Tensor:
    return torch.bernoulli(torch.full(shape, 0.4, dtype=torch.float64), generator=torch.Generator().manual_seed(seed))


def positive(name: str, value: float) -> Tensor:
    return pyro.param(name, torch.tensor(value), constraint=constraints.positive)



def reals() -> tuple[Tensor]:
    return (randn(N, seed=1),)


def matrix() -> tuple[Tensor]:
    return (randn(N, D, seed=2),)


def binary() -> tuple[Tensor]:
    return (bits(N, 8, seed=3),)


def with_mask(data: Callable[[], tuple[Tensor, ...]]) -> Callable[[], tuple[Tensor, ...]]:
    return lambda: (*data(), torch.tensor([True, False, True, True, False]))


def labelled() -> tuple[Tensor, Tensor, Tensor]:
    x = 2.0 * randn(N, seed=4)
    return x, torch.tensor([2, 0, 1, 0, 2]), torch.tensor([True, False, False, True, False])
