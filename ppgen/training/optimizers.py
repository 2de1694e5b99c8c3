"""The optimiser of a fit: Adam by default (fused where torch has the kernel), a torch optimiser class, or Pyro's."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from pyro.optim import PyroOptim
from pyro.optim.lr_scheduler import PyroLRScheduler
from torch import nn


#: the devices whose parameters the default Adam updates with torch's fused kernel.
FUSED_ADAM_DEVICES = ("cpu", "cuda")


def adam(params: list[nn.Parameter], lr: float) -> torch.optim.Adam:
    """The default optimiser: ``torch.optim.Adam(params, lr=lr)``, with ``fused=True`` where every parameter is on
    a device of :data:`FUSED_ADAM_DEVICES`: the same update up to float rounding, each parameter's in one kernel
    (on one CPU thread, a third of the time of torch's default per-tensor loop for a 784-400-32 VAE)."""
    fused = bool(params) and all(p.device.type in FUSED_ADAM_DEVICES for p in params)
    return torch.optim.Adam(params, lr=lr, fused=fused or None)


def optimizer_factory(optim: Any, lr: float) -> Callable[[list[nn.Parameter]], torch.optim.Optimizer]:
    """What builds the torch optimiser from the parameters, given ``optim`` (see :func:`ppgen.fit`); checked now,
    called once the model is ready."""
    if optim is None:
        return functools.partial(adam, lr=lr)
    if isinstance(optim, type) and issubclass(optim, torch.optim.Optimizer):
        return functools.partial(optim, lr=lr)
    if isinstance(optim, PyroLRScheduler):  # its pt_optim_args are the wrapped optimiser's: the schedule would be lost
        scheduler = optim.pt_scheduler_constructor.__name__
        raise TypeError(f"optim: a pyro.optim learning-rate scheduler ({scheduler}) is not supported: a fit never "
                        f"calls its step(), so that its schedule would be lost; pass the "
                        f"optimiser itself (pyro.optim.Adam({{...}}) or a torch.optim class)")
    if isinstance(optim, PyroOptim):
        if not isinstance(optim.pt_optim_args, dict):
            raise TypeError("optim: a pyro.optim optimiser with per-parameter arguments is not supported; "
                            "pass its arguments as a dict")
        return functools.partial(optim.pt_optim_constructor, **optim.pt_optim_args)
    raise TypeError(f"optim must be None, a torch.optim.Optimizer class or a pyro.optim optimiser, "
                    f"got {type(optim).__name__}")
