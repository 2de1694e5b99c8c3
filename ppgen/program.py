"""The model protocol: what ppgen needs from a generative model, and what it learns about one.

A model is a Pyro program held by a ``torch.nn.Module``:

* ``model(x)`` draws the latents and observes ``x`` inside ``pyro.plate("data", x.shape[0])``;
  it may use ``x`` only through ``obs=`` statements and its shape, so that running it unconditioned
  on a placeholder draws x ~ p(x);
* ``guide(x)`` (where the model has continuous latents) draws them from q(z|x), in the same plate;
* ``log_prob(x) -> Tensor[N]`` (optional) is the exact log-likelihood log p(x);
* ``initialize(x)`` (optional) sets data-dependent starting values once, before the first step; it sees x
  in the dtype and on the device the model has before ``fit`` moves it, and may refuse the data with a
  ``ValueError`` before it changes anything.

Discrete latents marked ``infer={"enumerate": "parallel"}`` need no guide: they are summed out
exactly. The zoo follows this protocol and nothing else. Two plain functions ``(model_fn, guide_fn)``
are wrapped by :class:`PyroFunctions`, which gives the parameters they create with ``pyro.param``
or ``pyro.module`` a store of their own, so that several fits live side by side in one process.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyro
import pyro.poutine as poutine
import torch
from pyro.poutine.subsample_messenger import _Subsample
from torch import Tensor, nn
from torch.distributions import constraints

DATA_PLATE = "data"
"""The plate of the data points: every site of a program sits inside ``pyro.plate(DATA_PLATE, N)``."""
PARTICLE_PLATE = "particles"


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
        model_fn: the Pyro model, called as ``model_fn(x)``.
        guide_fn: the guide, called as ``guide_fn(x)``; ``None`` for a model without continuous latents.
    """

    def __init__(self, model_fn: Callable[[Tensor], Any], guide_fn: Callable[[Tensor], Any] | None = None) -> None:
        super().__init__()
        if not callable(model_fn):
            raise TypeError(f"model_fn must be callable, got {type(model_fn).__name__}")
        if guide_fn is not None and not callable(guide_fn):
            raise TypeError(f"guide_fn must be callable or None, got {type(guide_fn).__name__}")
        self.model_fn = model_fn
        self.guide_fn = guide_fn
        self.params = nn.ParameterDict()
        self._store: dict[str, dict] = {"params": {}, "constraints": {}}

    def _run(self, fn: Callable[[Tensor], Any], x: Tensor) -> Any:
        with pyro.get_param_store().scope(self._store) as store:
            result = fn(x)
        for name, value in store["params"].items():
            key = _param_key(name)
            if key not in self.params:
                self.params[key] = value if isinstance(value, nn.Parameter) else nn.Parameter(value.detach())
            store["params"][name] = self.params[key]
        return result

    def model(self, x: Tensor) -> Any:
        return self._run(self.model_fn, x)

    def guide(self, x: Tensor) -> Any:
        if self.guide_fn is None:
            raise AttributeError("this program has no guide")
        return self._run(self.guide_fn, x)

    def _apply(self, fn: Callable, *args: Any, **kwargs: Any) -> PyroFunctions:
        super()._apply(fn, *args, **kwargs)  # moves self.params; the store must follow them
        for name in self._store["params"]:
            self._store["params"][name] = self.params[_param_key(name)]
        return self


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


def has_guide(module: nn.Module) -> bool:
    """Whether the module offers q(z|x)."""
    if isinstance(module, PyroFunctions):
        return module.guide_fn is not None
    return callable(getattr(module, "guide", None))


@dataclass(frozen=True)
class Structure:
    """What one trace of a program shows: its sites and plates, learnt once before fitting.

    Attributes:
        max_plate_nesting: how many batch dimensions the model's plates use.
        data_dim: the batch dimension of the data plate, the leftmost of them.
        observed: the names of the observed sites, x.
        guided: the latent sites that the guide draws from q(z|x).
        enumerated: the model's discrete latents that are summed out exactly.
        unguided: the model's latents that neither the guide draws nor enumeration can sum out.
        exact: whether log p(x) is available exactly (a ``log_prob`` method, or all latents enumerated).
        reparameterized: whether every guide site has a reparameterised sampler (``rsample``).
        data_support: the support of the likelihood of x, to check data against before fitting.
    """

    max_plate_nesting: int
    data_dim: int
    observed: tuple[str, ...]
    guided: tuple[str, ...]
    enumerated: tuple[str, ...]
    unguided: tuple[str, ...]
    exact: bool
    reparameterized: bool
    data_support: constraints.Constraint | None

    @property
    def particle_dim(self) -> int:
        """The batch dimension of the particle plate: left of every plate of the program."""
        return -self.max_plate_nesting - 1

    def check_data(self, x: Tensor, name: str) -> None:
        """Raise a ``ValueError`` naming ``name`` if a row of x lies outside the support of the likelihood."""
        if self.data_support is None:
            return
        ok = self.data_support.check(x)
        if not bool(ok.all()):
            bad = (~ok).reshape(x.shape[0], -1).any(1).nonzero()[:, 0]
            support = self.data_support
            while isinstance(support, constraints.independent):  # the support of one coordinate of x
                support = support.base_constraint
            hint = ": values in {0, 1}, as a Bernoulli likelihood needs" if support is constraints.boolean else ""
            raise ValueError(
                f"{name}: {bad.numel()} data point(s) lie outside the support of the model's likelihood "
                f"({self.data_support}{hint}), the first at row {bad[0].item()}")


def sample_sites(trace: poutine.Trace) -> list[dict]:
    """The sample sites of a trace, without the subsample sites that plates add."""
    return [s for s in trace.nodes.values() if s["type"] == "sample" and not isinstance(s["fn"], _Subsample)]


def _data_dim(site: dict, program: str) -> int:
    """The batch dimension of the data plate at a site, which must sit in it, left of any other plate of its own."""
    plates = {frame.name: frame.dim for frame in site["cond_indep_stack"] if frame.vectorized}
    if DATA_PLATE not in plates:
        raise ValueError(
            f"{program} site '{site['name']}' is outside pyro.plate('{DATA_PLATE}', ...): ppgen's bounds are "
            f"per data point, so every latent and observed site must sit inside the plate named '{DATA_PLATE}'")
    if plates[DATA_PLATE] != min(plates.values()):
        raise ValueError(
            f"{program} site '{site['name']}' has a plate left of pyro.plate('{DATA_PLATE}', ...): give the data "
            f"plate the leftmost dim (e.g. dim=-2 around a plate with dim=-1), so that a point is a row")
    return plates[DATA_PLATE]


def inspect(module: nn.Module, x: Tensor, name: str = "x") -> Structure:
    """Trace the guide and the model once on ``x`` and read off their :class:`Structure`.

    Arguments:
        module: the program.
        x: a few data points to run it on.
        name: what the caller calls the data, for error messages.

    Raises:
        ValueError: the program fails on x (data of the wrong shape, for one), or breaks the protocol (no
            observed site, a site outside the data plate, a guide site the model does not have, a
            sequentially enumerated site).
    """
    try:
        with poutine.block():
            guide_trace = poutine.trace(module.guide).get_trace(x) if has_guide(module) else None
            replayed = poutine.replay(module.model, trace=guide_trace) if guide_trace else module.model
            model_trace = poutine.trace(replayed).get_trace(x)
    except (RuntimeError, ValueError, IndexError) as error:
        raise ValueError(f"{name}: the program fails on rows of shape {list(x.shape[1:])} and dtype {x.dtype}: "
                         f"{error}") from error
    guide_sites = sample_sites(guide_trace) if guide_trace else []
    model_sites = sample_sites(model_trace)
    observed = tuple(s["name"] for s in model_sites if s["is_observed"])
    if not observed:
        raise ValueError("the model observes nothing: pass the data with pyro.sample(..., obs=x)")
    data_dims = {_data_dim(site, "guide") for site in guide_sites} | {_data_dim(site, "model") for site in model_sites}
    if len(data_dims) > 1:
        raise ValueError(f"pyro.plate('{DATA_PLATE}', ...) must have one dim throughout, got {sorted(data_dims)}")
    guided = tuple(s["name"] for s in guide_sites)
    latent = [s for s in model_sites if not s["is_observed"]]
    orphans = set(guided) - {s["name"] for s in latent}
    if orphans:
        raise ValueError(f"guide site(s) {', '.join(map(repr, sorted(orphans)))} are not latent sites of the model: "
                         f"q(z|x) must draw the model's own latents, under the same names")
    for site in latent:
        if site["infer"].get("enumerate") == "sequential":
            raise ValueError(f"site '{site['name']}' asks for sequential enumeration; ppgen sums out "
                             f"discrete latents in parallel: use infer={{'enumerate': 'parallel'}}")
    enumerated = tuple(s["name"] for s in latent if s["name"] not in guided and _enumerable(s))
    unguided = tuple(s["name"] for s in latent if s["name"] not in guided and s["name"] not in enumerated)
    all_enumerable = all(_enumerable(s) for s in latent)
    dims = [-frame.dim for s in guide_sites + model_sites for frame in s["cond_indep_stack"] if frame.vectorized]
    return Structure(
        max_plate_nesting=max(dims, default=0),
        data_dim=data_dims.pop(),
        observed=observed,
        guided=guided,
        enumerated=enumerated,
        unguided=unguided,
        exact=callable(getattr(module, "log_prob", None)) or all_enumerable,
        reparameterized=all(s["fn"].has_rsample for s in guide_sites),
        data_support=next((s["fn"].support for s in model_sites
                           if s["is_observed"] and s["value"] is x), None),
    )


def _enumerable(site: dict) -> bool:
    return site["infer"].get("enumerate") == "parallel" and site["fn"].has_enumerate_support


def as_model_input(x: Tensor, module: nn.Module) -> Tensor:
    """x on the device and in the floating-point dtype of the module's parameters as they are now (torch's
    default dtype, on the CPU, for a program whose parameters do not exist before its first run)."""
    param = next((p for p in module.parameters() if p.is_floating_point()), None)
    if param is None:
        return x.to(device="cpu", dtype=torch.get_default_dtype())
    return x.to(device=param.device, dtype=param.dtype)


def example_batch(x: Tensor, size: int = 2) -> Tensor:
    """A few rows of ``x`` to trace a program on."""
    return x[:size]
