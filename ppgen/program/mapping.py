"""K particles of a program that does not broadcast over them, run as one pass: its one-particle pass mapped over the
K particles by ``torch.func.vmap``.

A program written the natural way, ``X @ w`` with a global ``w`` drawn by the guide, does not broadcast over a plate of
particles left of its own plates (w is then [K, 1, D], which ``@`` takes for a stack of matrices). Run one particle at a
time it works, and ``vmap`` runs that same one-particle pass (no particle plate, ``count=1``) for all K particles at
once: every tensor operation sees one particle's tensors, and is batched over the K of them underneath. Each particle
draws its own randomness (``randomness="different"``); the outputs come back stacked, [K, 1, ...], and are merged to
[K, ...], the layout of one vectorised pass of K.

Two things differ from the one-at-a-time pass, neither in distribution:

* torch's samplers that fill a tensor in place (``Tensor.normal_``, which ``Normal.rsample`` calls, ``uniform_``,
  ``exponential_``, ``cauchy_``, ``log_normal_``) cannot draw different values per particle into a tensor made inside
  the pass; :class:`MappedDraws` gives them out-of-place draws of the same distribution instead. The random stream is
  thus consumed otherwise than by K passes of one particle: the same program on the same seed draws other particles.
* Pyro's and torch.distributions' validation is off inside the pass (a check ``if not valid.all(): raise`` is Python
  control flow on a tensor's value, which ``vmap`` cannot take); :func:`ppgen.program.structure.inspect` ran the same
  program with validation on before choosing this path.

Gradients flow through the mapped pass as through the plain one (reparameterised draws carry theirs, a score-function
term log q(z_k|x) is per particle).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import pyro
import torch
from pyro.poutine.messenger import Messenger
from torch import Tensor
from torch._C._functorch import is_batchedtensor
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_map

Output = TypeVar("Output")


def mapped(run: Callable[[Any], Output], count: int, given: dict[str, Tensor] | None = None) -> Output:
    """``run`` (one particle's pass, whose outputs are Tensor[1, ...], or a tuple or dict of them) mapped over
    ``count`` particles by ``torch.func.vmap(randomness="different")``; outputs Tensor[count, ...].

    Arguments:
        run: one particle's pass; it is called once, with each particle's share of ``given``, Tensor[1, ...] (or
            ``None``), and traced by ``vmap``.
        count: the particles.
        given: values that differ by particle, each Tensor[count, ...] (draws to condition on, say), or ``None``.
    """
    def one(_: Tensor, values: dict[str, Tensor] | None) -> Output:
        shares = None if values is None else {name: value.unsqueeze(0) for name, value in values.items()}
        with MappedDraws(), pyro.validation_enabled(False), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="There is a performance drop because we have not yet implemented")
            return run(shares)

    in_dims = (0, None if given is None else 0)
    stacked = torch.func.vmap(one, in_dims=in_dims, randomness="different")(torch.arange(count), given)
    return tree_map(lambda value: value.flatten(0, 1), stacked)


class MappedDraws(TorchFunctionMode):
    """torch's in-place samplers, called on a tensor made inside a mapped pass (one ``vmap`` does not batch), made
    out-of-place draws of the same distribution, which ``vmap(randomness="different")`` draws per particle.

    The call returns the draws and leaves the tensor itself as it was: torch's distributions use what the call returns
    (``torch.empty(shape).normal_()``), while a program that fills a tensor and then reads the tensor would read it
    unfilled, the same in every particle; :func:`ppgen.program.broadcasting.mapping_failure` finds that (equal draws,
    or log weights that differ from one particle at a time) and runs such a program one particle at a time."""

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        draw = _OUT_OF_PLACE.get(func)
        if draw is None or is_batchedtensor(args[0]) or kwargs.get("generator") is not None:
            return func(*args, **kwargs)
        defaults, sampler = draw
        tensor, given = args[0], list(args[1:])
        values = given + [kwargs.get(name, default) for name, default in list(defaults.items())[len(given):]]
        return sampler(tensor.shape, dict(dtype=tensor.dtype, device=tensor.device), *values)


#: each in-place sampler: its arguments and their defaults, and an out-of-place draw (shape, dtype and device, args).
_OUT_OF_PLACE: dict[Any, tuple[dict[str, float], Callable[..., Tensor]]] = {
    Tensor.normal_: ({"mean": 0.0, "std": 1.0}, lambda shape, like, mean, std: torch.randn(shape, **like) * std + mean),
    Tensor.log_normal_: ({"mean": 1.0, "std": 2.0},
                         lambda shape, like, mean, std: (torch.randn(shape, **like) * std + mean).exp()),
    Tensor.uniform_: ({"from": 0.0, "to": 1.0},
                      lambda shape, like, low, high: torch.rand(shape, **like) * (high - low) + low),
    Tensor.exponential_: ({"lambd": 1.0}, lambda shape, like, rate: -torch.log1p(-torch.rand(shape, **like)) / rate),
    Tensor.cauchy_: ({"median": 0.0, "sigma": 1.0}, lambda shape, like, median, sigma:
                     median + sigma * torch.tan(math.pi * (torch.rand(shape, **like) - 0.5))),
}


class Given(Messenger):
    """Gives the latent sites named in ``values`` those values instead of drawing them (as ``poutine.replay`` does,
    without marking them observed): a pass run on draws made elsewhere."""

    def __init__(self, values: dict[str, Tensor]) -> None:
        super().__init__()
        self.values = values

    def _pyro_sample(self, msg: dict) -> None:
        if msg["name"] in self.values and not msg["is_observed"]:
            msg["value"] = self.values[msg["name"]]
