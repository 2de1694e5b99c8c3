"""Sampling: new x ~ p(x), or x ~ p(x | c) given the model's other inputs, by running the model forward."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pyro.poutine as poutine
import torch
from torch import Tensor, nn

from ppgen.program.inputs import Batch
from ppgen.program.structure import Structure, sampled_site
from ppgen.program.traces import BatchRows, Unobserve, as_rows

if TYPE_CHECKING:
    from ppgen.objective.sampler import Draws


def input_names(module: nn.Module, count: int) -> list[str]:
    """The names of the program's ``count`` inputs, as its model function calls them (``model(x, y)``: x, y), so that
    a message names them as the user does; "input i" where the signature does not say."""
    fn = getattr(module, "model_fn", None) or module.model  # a function pair's own function, else the method
    try:
        names = [p.name for p in inspect.signature(fn).parameters.values()
                 if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):  # a callable without a signature Python can read
        names = []
    return [names[i] if i < len(names) else f"input {i}" for i in range(count)]


def check_given(module: nn.Module, structure: Structure, given: tuple[Any, ...]) -> None:
    """A ``TypeError`` unless ``given`` holds one value for each input of the program but the one :func:`sample` draws,
    naming the inputs as the program does."""
    names = input_names(module, structure.num_inputs)
    drawn = structure.observed_input or 0
    others = [name for i, name in enumerate(names) if i != drawn]
    if len(given) != len(others):
        takes = f"its other input(s) {', '.join(others)}, one row per draw" if others else "no other input"
        raise TypeError(f"sample(n, ...) draws {names[drawn]} of model({', '.join(names)}) and takes {takes}: got "
                        f"{len(given)} value(s) after n")


def own_sampler(module: nn.Module, options: dict[str, Any], mean: bool) -> Callable[..., Tensor] | None:
    """The model's own ``sample(n, *given, **options)`` method, or ``None`` where it has none and no options were
    given; a ``TypeError`` for options without such a sampler, a ``ValueError`` for ``mean=True`` with one."""
    own = getattr(module, "sample", None)
    if not callable(own):
        if options:
            raise TypeError(f"sample() got the option(s) {', '.join(sorted(options))}, but "
                            f"{type(module).__name__} has no sampler of its own (a sample(n, ...) method) to take them")
        return None
    if mean:
        raise ValueError(f"mean=True returns E[x | z] of the data site, but {type(module).__name__} draws x by its own "
                         f"sample(n, ...) method: call sample without mean=True")
    return own


def sample(module: nn.Module, structure: Structure, example: Batch, n: int, given: tuple[Tensor, ...], *,
           mean: bool = False, draws: Draws | None = None) -> Tensor:
    """n draws x ~ p(x) from the prior predictive, or x ~ p(x | given) where the model takes further inputs; with
    ``mean=True``, the decoder's means E[x | z] instead, one for each draw z of the latents.

    Arguments:
        module: the program.
        structure: its structure.
        example: a few rows of the training inputs, whose first row stands in for x (the model may use x only
            through ``obs=`` and its shape).
        n: the number of draws.
        given: the model's inputs other than x, each with n rows (one draw per row), already validated.
        mean: return the mean of the data site's distribution given each draw of the latents, not a draw from it.
        draws: a sampler's draws of the global latents theta (:class:`~ppgen.objective.sampler.Draws`): each row then
            takes theta from one of them, chosen uniformly, so that the rows follow the posterior predictive
            p(x | data).

    Returns:
        Tensor[n, ...]: the values of the sampled site, or their means.

    Raises:
        ValueError: ``mean=True`` and the data site's distribution has no closed-form mean.
        NotImplementedError: an energy-based model (``structure.unnormalized``), which has no direct sampler.
    """
    if structure.unnormalized:
        raise NotImplementedError("sample: an energy-based model's exp(-E(x)) has no direct sampler; fit.sample(n) "
                                  "draws by Markov chains on its log-density (ppgen.queries.energy_sampling)")
    if draws is None:
        return _sample(module.model, structure, example, n, given, mean)
    which = torch.randint(draws.num_draws, (n,))
    parts, rows = [], []
    for s in which.unique().tolist():
        at = (which == s).nonzero().squeeze(1)
        theta = {name: value[s].to(example.args[0].device) for name, value in draws.samples.items()}
        model = poutine.condition(module.model, data=theta)
        parts.append(_sample(model, structure, example, len(at), tuple(g[at.to(g.device)] for g in given), mean))
        rows.append(at)
    return torch.cat(parts)[torch.argsort(torch.cat(rows)).to(parts[0].device)]


def decode(module: nn.Module, structure: Structure, example: Batch, latents: dict[str, Tensor], *,
           mean: bool = True) -> Tensor:
    """x given chosen values of latent sites, one row per value: E[x | z] (``mean=True``) or x ~ p(x | z); latents
    not given are drawn from the model given those that are.

    Arguments:
        module: the program.
        structure: its structure.
        example: a few rows of the training inputs (see :func:`sample`); the model must take x alone.
        latents: each site's values, Tensor[n, ...] laid out as the model draws the site for n points.
        mean: return the mean of the data site's distribution rather than a draw from it.

    Returns:
        Tensor[n, ...]: the decoded points.
    """
    if structure.num_inputs != 1:
        raise ValueError(f"decoding latents needs a model of x alone; this one takes {structure.num_inputs} inputs")
    n = len(next(iter(latents.values())))
    return _sample(poutine.condition(module.model, data=latents), structure, example, n, (), mean)


def _sample(model: Callable[..., Any], structure: Structure, example: Batch, n: int, given: tuple[Tensor, ...],
            mean: bool) -> Tensor:
    site = sampled_site(structure)
    data_input = structure.observed_input or 0
    placeholder = example.args[data_input][:1].expand(n, *example.args[data_input].shape[1:])
    others = iter(given)
    args = tuple(placeholder if i == data_input else next(others) for i in range(structure.num_inputs))
    batch = Batch(args, torch.arange(n, device=placeholder.device), example.size)
    node = poutine.trace(Unobserve(site)(BatchRows(batch)(model))).get_trace(*args).nodes[site]
    if not mean:
        return as_rows(node["value"], node, structure, placeholder.shape)
    try:
        return as_rows(node["fn"].mean.expand(node["value"].shape), node, structure, placeholder.shape)
    except NotImplementedError:
        raise ValueError(f"mean=True returns E[x | z], but the distribution of the data site {site!r}, "
                         f"{type(node['fn']).__name__}, has no closed-form mean: draw samples with "
                         f"mean=False") from None
