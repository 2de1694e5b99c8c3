"""The model protocol: what ppgen needs from a generative model.

A model is a Pyro program held by a ``torch.nn.Module``:

* ``model(x)`` (or ``model(x, y, ...)`` on aligned inputs) draws the latents and observes ``x`` inside the plate
  of the data points, ``pyro.plate("data", x.shape[0])``, found as Pyro defines a subsampled plate (any name; see
  :mod:`ppgen.program.plates`); it may use ``x`` only through ``obs=`` statements and its shape, so that running it
  with the observation released on a placeholder draws x ~ p(x). Sites outside that plate are global latents. A
  program that takes the whole data set and subsamples it (``pyro.plate("documents", D, subsample_size=32) as ind``,
  ``data[:, ind]``, as Pyro's LDA) is called with all of it at every step, its plate given the batch's indices.
* ``guide(x)`` (where the model has latents to infer) draws them from q(z|x), with the same inputs;
* ``log_prob(x) -> Tensor[N]`` (optional) is the exact log-likelihood log p(x); a model whose ``log_prob`` is a lower
  bound on it instead (a diffusion model's variational bound) says so with the class attribute
  ``log_prob_is_bound = True``: ``fit.log_prob`` answers with it, but it is not taken for exact (maximum likelihood
  refuses the model, and ``ELBO()`` is its default backend);
* ``sample(n, *given, **options) -> Tensor[n, ...]`` (optional) is the model's own sampler, which
  ``fit.sample(n, *given, **options)`` calls instead of running ``model`` forward: for a program whose model, run
  forward, does not draw x ~ p(x) (a diffusion model's sampled-t program), or that offers further samplers;
* ``initialize(x)`` (optional) sets data-dependent starting values once, before the first step; it sees x
  in the dtype and on the device the model has before ``fit`` moves it, and may refuse the data with a
  ``ValueError`` before it changes anything.

Discrete latents marked ``infer={"enumerate": "parallel"}`` in the model need no guide: they are summed out
exactly. The zoo follows this protocol and nothing else. Two plain functions ``(model_fn, guide_fn)``
are wrapped by :class:`PyroFunctions`, which gives the parameters they create with ``pyro.param``
or ``pyro.module`` a store of their own, so that several fits live side by side in one process. What ppgen
learns of a program by tracing it is in :mod:`ppgen.program.structure`; how it runs one, in :mod:`ppgen.program.traces`.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import pyro
import torch
from torch import Tensor, nn
from torch.distributions import constraints, transform_to

from ppgen.program.inputs import Batch

DATA_PLATE = "data"
"""The conventional name of the plate of the data points, ``pyro.plate(DATA_PLATE, x.shape[0])``; ppgen finds the
plate of the data points under any name, and takes this one where two plates could each be it."""


class Model(nn.Module):
    """Optional base class for models that :func:`ppgen.load` can rebuild from a checkpoint.

    A subclass takes keyword arguments only; the arguments it was built with are kept in
    :attr:`config`, so that a saved fit records how to build its model again.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__init__

        @functools.wraps(init)
        def recording_init(self: Model, *args: Any, **config: Any) -> None:
            if args:
                raise TypeError(f"{cls.__name__}() takes keyword arguments only, got {len(args)} positional")
            init(self, **config)
            if type(self) is cls:
                self.config = {key: _plain(value) for key, value in config.items()}

        cls.__init__ = recording_init  # type: ignore[method-assign]


def _plain(value: Any) -> Any:
    """A keyword argument as plain Python, which a checkpoint read with ``weights_only=True`` can hold: NumPy and
    torch scalars become numbers (``x_dim=np.prod(shape)`` is an ``np.int64``), inside lists and tuples too."""
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, np.generic) or (isinstance(value, torch.Tensor) and value.dim() == 0):
        return value.item()
    return value


class PyroFunctions(nn.Module):
    """A ``(model_fn, guide_fn)`` pair as a module whose parameters live in a param store of its own.

    The functions run inside ``pyro.get_param_store().scope(...)`` with this module's state; every
    parameter they create becomes an ``nn.Parameter`` of the module, so the optimiser, ``state_dict``
    and ``.to(device)`` see it like any other.

    Arguments:
        model_fn: the Pyro model, called as ``model_fn(x)`` (or ``model_fn(x, y, ...)`` on aligned inputs).
        guide_fn: the guide, called with the same inputs; ``None`` for a model without latents to guide.
    """

    def __init__(self, model_fn: Callable[..., Any], guide_fn: Callable[..., Any] | None = None) -> None:
        super().__init__()
        if not callable(model_fn):
            raise TypeError(f"model_fn must be callable, got {type(model_fn).__name__}")
        if guide_fn is not None and not callable(guide_fn):
            raise TypeError(f"guide_fn must be callable or None, got {type(guide_fn).__name__}")
        self.model_fn = model_fn
        self.guide_fn = guide_fn
        self.params = nn.ParameterDict()
        self._store: dict[str, dict] = {"params": {}, "constraints": {}}

    def _run(self, fn: Callable[..., Any], *args: Tensor) -> Any:
        with pyro.get_param_store().scope(self._store) as store:
            result = fn(*args)
        for name, value in store["params"].items():
            key = _param_key(name)
            if key not in self.params:
                self.params[key] = value if isinstance(value, nn.Parameter) else nn.Parameter(value.detach())
            store["params"][name] = self.params[key]
        return result

    def model(self, *args: Tensor) -> Any:
        return self._run(self.model_fn, *args)

    def guide(self, *args: Tensor) -> Any:
        if self.guide_fn is None:
            raise AttributeError("this program has no guide")
        return self._run(self.guide_fn, *args)

    def forget(self, names: Iterable[str]) -> None:
        """Drop the ``pyro.param`` parameters called ``names``, so that the functions make them again on their next
        run (at the size of that run's inputs)."""
        for name in names:
            del self.params[_param_key(name)]
            self._store["params"].pop(name, None)
            self._store["constraints"].pop(name, None)

    def _apply(self, fn: Callable, *args: Any, **kwargs: Any) -> PyroFunctions:
        super()._apply(fn, *args, **kwargs)  # moves self.params; the store must follow them
        self._point_store_at_params()
        return self

    @contextlib.contextmanager
    def store_reads_params(self) -> Iterator[None]:
        """Within this context ``pyro.param`` reads the tensors that ``self.params`` holds now, such as those that
        ``torch.func.functional_call`` swaps in; the store is restored afterwards."""
        saved = dict(self._store["params"])
        self._point_store_at_params()
        try:
            yield
        finally:  # a run of the program may have replaced the dict: restore the one it holds now
            self._store["params"].update(saved)

    def _point_store_at_params(self) -> None:
        for name in self._store["params"]:
            self._store["params"][name] = self.params[_param_key(name)]


def _param_key(name: str) -> str:
    """The ``ParameterDict`` key of the ``pyro.param`` called ``name``: no dots, and never the name of one of
    the dict's own attributes (a parameter called ``"half"`` or ``"to"`` is a parameter, not a method)."""
    return "param:" + name.replace(".", "$")


def as_module(model: Any) -> nn.Module:
    """The model as an ``nn.Module`` that follows the protocol, or a ``TypeError`` that says why not."""
    if isinstance(model, tuple):
        if len(model) != 2:
            raise TypeError(f"model as a tuple must be (model_fn, guide_fn), got {len(model)} items")
        return PyroFunctions(*model)
    if callable(model) and not isinstance(model, nn.Module):
        return PyroFunctions(model)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module with a model(x) method or a (model_fn, guide_fn) pair, "
                        f"got {type(model).__name__}")
    if not callable(getattr(model, "model", None)):
        raise TypeError(f"model {type(model).__name__} has no model(x) method: a ppgen model is a Pyro program")
    return model


def bounds_itself(module: nn.Module) -> bool:
    """Whether the module's own ``log_prob(x)`` is a lower bound on log p(x) (``log_prob_is_bound = True``)."""
    return callable(getattr(module, "log_prob", None)) and getattr(module, "log_prob_is_bound", False) is True


def has_guide(module: nn.Module) -> bool:
    """Whether the module offers q(z|x)."""
    if isinstance(module, PyroFunctions):
        return module.guide_fn is not None
    return callable(getattr(module, "guide", None))


def as_model_input(batch: Batch, module: nn.Module) -> Batch:
    """The batch on the device and in the floating-point dtype of the module's parameters as they are now (torch's
    default dtype, on the CPU, for a program whose parameters do not exist before its first run)."""
    param = next((p for p in module.parameters() if p.is_floating_point()), None)
    if param is None:
        return batch.to(device="cpu", dtype=torch.get_default_dtype())
    return batch.to(device=param.device, dtype=param.dtype)


def constrained_params(module: nn.Module) -> dict[str, Tensor]:
    """Every learnt parameter of a program by the name the program gave it, constrained.

    A ``pyro.param`` of a function pair appears under its own name, in its constrained space (a
    ``constraint=positive`` scale is positive); an ``nn.Module``'s parameters under their ``state_dict`` names.
    """
    if not isinstance(module, PyroFunctions):
        return {name: param.detach() for name, param in module.named_parameters()}
    return {name: transform_to(module._store["constraints"].get(name, constraints.real))(param).detach()
            for name, param in module._store["params"].items()}


class ProgramCall(nn.Module):
    """``fn`` called as the forward of a module holding ``program``, so that ``functional_call`` can swap its
    parameters for detached copies."""

    def __init__(self, program: nn.Module, fn: Callable[..., Any]) -> None:
        super().__init__()
        self.program, self.fn = program, fn

    def forward(self, *args: Tensor) -> Any:
        return self.fn(*args)
