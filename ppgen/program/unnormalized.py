"""Energy-based models as Pyro programs: an unnormalised density p~(x) = exp(-E_theta(x)) at the data site.

The convention: the model observes its data through :class:`Unnormalized`, inside the data plate::

    def model(self, x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", Unnormalized(lambda v: -self.energy(v), event_shape=x.shape[1:]), obs=x)

Its ``log_prob(x)`` is log p~(x) = -E(x), without log Z = log int exp(-E(x)) dx, which nothing computes exactly.
``pyro.factor("energy", -self.energy(x))`` would add the same number to the trace, but it has no data site: a factor
is not a distribution of x, so ppgen could not tell which input the density is of, check data against its support,
perturb x (score matching) or give it other points (noise-contrastive estimation), and ``fit.sample`` would not know
what to draw. The class says all of that in one place, and :class:`~ppgen.program.structure.Structure` learns from
it that the model is unnormalised (``structure.unnormalized``), so that a backend whose objective needs log p(x)
refuses it instead of fitting -E(x) as if it were log p(x).

:func:`log_density` evaluates -E_theta(x) of a program for any batch of points, differentiably in x and theta: the
function that samplers (Langevin dynamics, HMC) and estimates of log Z (annealed importance sampling) take.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from pyro.distributions import TorchDistribution
from pyro.distributions.torch_distribution import ExpandedDistribution
from torch import Tensor, nn
from torch.distributions import constraints

from ppgen.program.inputs import Batch
from ppgen.program.traces import trace_alone

if TYPE_CHECKING:
    from ppgen.program.structure import Structure


class Unnormalized(TorchDistribution):
    """The unnormalised density p~(x) = exp(log_density(x)) = exp(-E(x)) of a point x of shape ``event_shape``.

    ``log_prob(x)`` is ``log_density(x)``: log p(x) + log Z, not a normalised log-density. A model that observes its
    data through this distribution is fitted by objectives that never need log Z (``inference.ScoreMatching``,
    ``inference.NCE``); maximum likelihood and the ELBO refuse it.

    Arguments:
        log_density: x -> -E(x), Tensor[..., *event_shape] -> Tensor[...], one number per point; differentiable in x
            for score matching. With ``noise_conditional``, (x, sigma) -> -E(x, sigma), sigma a Tensor[...] of noise
            levels, one per point (0: the data's own density, which ``log_prob`` evaluates).
        event_shape: the shape of one point x, ``(D,)`` for vectors, ``(C, H, W)`` for images.
        support: the constraint every coordinate of x satisfies (``constraints.real`` by default); data outside it
            are refused before a fit.
        log_normalizer: an estimate c of log Z, a scalar parameter of the model that ``inference.NCE`` learns
            (log p(x) ~= log_density(x) - c after such a fit); ``None`` where the model has none.
        noise_conditional: whether ``log_density`` takes the noise level sigma as its second argument
            (noise-conditional score networks, Song and Ermon, 2019).

    ``sample`` raises ``NotImplementedError``: exp(-E) has no direct sampler; draws come from Markov chains on it.

    Example:
        >>> d = Unnormalized(lambda x: -(x ** 2).sum(-1) / 2, event_shape=(2,))
        >>> d.log_prob(torch.zeros(3, 2))
        tensor([-0., -0., -0.])
    """

    arg_constraints: dict[str, constraints.Constraint] = {}
    has_rsample = False

    def __init__(self, log_density: Callable[..., Tensor], *, event_shape: Any,
                 support: constraints.Constraint = constraints.real, log_normalizer: Tensor | None = None,
                 noise_conditional: bool = False, batch_shape: Any = (), validate_args: bool | None = None) -> None:
        if not callable(log_density):
            raise TypeError(f"log_density must be a function x -> -E(x), got {type(log_density).__name__}")
        try:
            event_shape = torch.Size(event_shape)
        except TypeError as error:
            raise TypeError(f"event_shape must be a tuple of ints, the shape of one point, got {event_shape!r}") \
                from error
        if not isinstance(support, constraints.Constraint):
            raise TypeError(f"support must be a torch.distributions.constraints.Constraint, got "
                            f"{type(support).__name__}")
        if support.event_dim > len(event_shape):
            raise ValueError(f"support {support} constrains {support.event_dim} dimension(s) at once, more than "
                             f"event_shape {tuple(event_shape)} has")
        if log_normalizer is not None and not (isinstance(log_normalizer, Tensor) and log_normalizer.numel() == 1):
            raise TypeError(f"log_normalizer must be a scalar tensor (a parameter of the model), got "
                            f"{type(log_normalizer).__name__}")
        if not isinstance(noise_conditional, bool):
            raise TypeError(f"noise_conditional must be True or False, got {noise_conditional!r}")
        self.log_density = log_density
        self.log_normalizer = log_normalizer
        self.noise_conditional = noise_conditional
        extra = len(event_shape) - support.event_dim
        self._support = constraints.independent(support, extra) if extra else support
        super().__init__(torch.Size(batch_shape), event_shape, validate_args=validate_args)

    @constraints.dependent_property(is_discrete=False, event_dim=0)
    def support(self) -> constraints.Constraint:
        return self._support

    def expand(self, batch_shape: Any, _instance: Any = None) -> Unnormalized:
        new = self._get_checked_instance(Unnormalized, _instance)
        new.log_density, new.log_normalizer = self.log_density, self.log_normalizer
        new.noise_conditional, new._support = self.noise_conditional, self._support
        super(Unnormalized, new).__init__(torch.Size(batch_shape), self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def log_prob(self, value: Tensor) -> Tensor:
        """log p~(x) = -E(x) (at noise level 0 for a noise-conditional energy), Tensor[batch shape]."""
        if self._validate_args:
            self._validate_sample(value)
        return self.noisy_log_prob(value, None)

    def noisy_log_prob(self, value: Tensor, sigma: Tensor | None) -> Tensor:
        """-E(x, sigma) for a noise-conditional energy (sigma = 0 where ``None``), -E(x) at every level otherwise.

        Raises:
            ValueError: ``log_density`` returned other than one number per point.
        """
        points = value.shape[:value.dim() - len(self.event_shape)]
        if self.noise_conditional:
            sigma = value.new_zeros(points) if sigma is None else sigma.expand(points)
            out = self.log_density(value, sigma)
        else:
            out = self.log_density(value)
        if not isinstance(out, Tensor) or out.shape != points:
            got = list(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ValueError(f"Unnormalized: log_density must return one number per point, shape {list(points)} for x "
                             f"of shape {list(value.shape)} (event_shape {list(self.event_shape)}), got {got}")
        return out.expand(torch.broadcast_shapes(self.batch_shape, points))

    def sample(self, sample_shape: Any = torch.Size()) -> Tensor:
        raise NotImplementedError(
            "Unnormalized: exp(-E(x)) has no direct sampler; fit.sample(n) draws from an energy model by Markov chains "
            "(Langevin dynamics, HMC) on its log-density (ppgen.program.unnormalized.log_density)")


def unnormalized_of(fn: Any) -> Unnormalized | None:
    """The :class:`Unnormalized` under a site's distribution (through Pyro's ``expand``, ``to_event``, ``mask``), or
    ``None`` where there is none."""
    while not isinstance(fn, Unnormalized) and hasattr(fn, "base_dist"):
        fn = fn.base_dist
    return fn if isinstance(fn, Unnormalized) else None


def energy_site(module: nn.Module, batch: Batch, site: str) -> Unnormalized:
    """The :class:`Unnormalized` distribution that the model of ``module`` puts at its data site ``site`` when run on
    ``batch``: its ``log_density`` closes over the model's parameters, so that a backend evaluates it on points of its
    own (perturbed data, noise draws) without running the program again.

    Raises:
        ValueError: the site is not observed through :class:`Unnormalized`, or is wrapped in more than the data
            plate's ``expand`` (a ``to_event`` or ``mask`` would change what log_density's numbers mean).
    """
    fn = trace_alone(module.model, batch).nodes[site]["fn"]
    if isinstance(fn, ExpandedDistribution):
        fn = fn.base_dist
    if not isinstance(fn, Unnormalized):
        raise ValueError(f"site {site!r} is observed through {type(fn).__name__}, not through "
                         f"ppgen.Unnormalized(log_density, event_shape=...) as such, which an energy-based objective "
                         f"evaluates on points of its own: put the Unnormalized distribution at the site unwrapped")
    return fn


def log_density(module: nn.Module, structure: Structure, batch: Batch | Tensor, sigma: Tensor | None = None) -> Tensor:
    """log p~(x_n) = -E_theta(x_n) of the points of ``batch`` under an energy-based program, Tensor[N].

    The unnormalised log-density at the model's data site, without log Z, differentiable in x (the score
    grad_x log p~(x) = -grad_x E(x) by autograd) and in theta: the function that samplers (Langevin dynamics, HMC) and
    estimates of log Z take, ``lambda x: log_density(fit.model, fit.structure, x)``. ``batch``: the points x,
    Tensor[N, *x_shape] on the model's device and in its dtype, or a :class:`~ppgen.program.inputs.Batch` of every
    input of a model of several (``model(x, y)``). ``sigma``: the noise level of each point, Tensor[N], for a
    noise-conditional energy (``None``: the data's own density, sigma = 0); a plain energy ignores it.

    Raises:
        ValueError: the model is not unnormalised (``structure.unnormalized`` is false), or takes further inputs and
            ``batch`` is a tensor.
    """
    if not structure.unnormalized:
        raise ValueError("log_density: the model's data site is not ppgen.Unnormalized; its log p(x) is normalised: "
                         "ask fit.log_prob(x)")
    if isinstance(batch, Tensor):
        if structure.num_inputs != 1:
            raise ValueError(f"log_density: the model takes {structure.num_inputs} inputs; pass them as a "
                             f"ppgen.program.inputs.Batch, not x alone")
        batch = Batch((batch,), torch.arange(len(batch), device=batch.device), len(batch))
    x = batch.args[structure.observed_input]
    return energy_site(module, batch, structure.data_site).noisy_log_prob(x, sigma)


def refuse_unnormalized(structure: Structure, what: str, way_out: str) -> None:
    """A ``ValueError`` naming ``what`` and ``way_out`` where the model is unnormalised (``structure.unnormalized``):
    for whatever needs log p(x), of which the model gives -E(x) = log p(x) + log Z alone."""
    if structure.unnormalized:
        raise ValueError(f"{what} needs log p(x), but the model observes its data through ppgen.Unnormalized, whose "
                         f"log_prob is -E(x) without log Z = log int exp(-E(x)) dx: {way_out}")
