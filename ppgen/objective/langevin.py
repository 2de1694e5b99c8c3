"""Langevin dynamics for a batch of chains on an unnormalised density f(x) = exp(-E(x)), given as log f.

One step of the unadjusted Langevin algorithm (ULA) with step size eps moves every chain at once,

    x' = x + (eps / 2) grad log f(x) + sqrt(eps) xi,        xi ~ N(0, I),

and leaves f invariant only as eps -> 0: its draws carry a bias of order eps. ``adjusted=True`` makes each step a
Metropolis-Hastings proposal (MALA), accepted per chain with probability

    min(1, f(x') q(x | x') / (f(x) q(x' | x))),        q(x' | x) = N(x'; x + (eps / 2) grad log f(x), eps I),

which leaves f exactly invariant at any eps: the chains then trade the bias for rejections (aim at an acceptance
rate near 0.57, Roberts and Rosenthal 1998). Annealed Langevin (:func:`annealed_langevin`) runs ULA over a
decreasing ladder of noise levels for a noise-conditional score model (Song and Ermon 2019, Algorithm 1).
:class:`Langevin` holds the settings of chains that an objective moves inside its loss (persistent contrastive
divergence), with a noise scale c that Du and Mordatch (2019) lower below Langevin's own; its chains, unchecked, leave
the judging of a chain that diverged to the training step's guard.

Gradients are taken by ``torch.autograd.grad`` with respect to x alone: a model's parameters keep their ``.grad``,
and no graph outlives its step, so memory stays flat in the number of steps. Noise is drawn from torch's global RNG,
which ``ppgen.seed`` and ``fit(seed=...)`` set.

References:
    Exponential convergence of Langevin distributions and their discrete approximations (Roberts and Tweedie, 1996).
    https://doi.org/10.2307/3318418
    Optimal scaling of discrete approximations to Langevin diffusions (Roberts and Rosenthal, 1998).
    https://doi.org/10.1111/1467-9868.00123
    Generative Modeling by Estimating Gradients of the Data Distribution (Song and Ermon, 2019).
    https://arxiv.org/abs/1907.05600
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from ppgen.utils.checks import check_positive_float, check_positive_int

#: log f: points Tensor[n, ...] -> log f of each, Tensor[n].
LogDensity = Callable[[Tensor], Tensor]


class Point(NamedTuple):
    """Chains where they stand: x Tensor[n, ...], log f(x) Tensor[n] and grad_x log f(x) Tensor[n, ...], detached."""

    x: Tensor
    log_density: Tensor
    grad: Tensor


@dataclass(frozen=True)
class Chains:
    """What :func:`langevin` leaves.

    Attributes:
        x: the chains' last states, Tensor[n, ...] shaped as x0.
        acceptance: each chain's fraction of proposals accepted, Tensor[n] (all ones for the unadjusted algorithm).
    """

    x: Tensor
    acceptance: Tensor


def langevin(log_f: LogDensity, x0: Tensor, *, step_size: float, steps: int, adjusted: bool = False) -> Chains:
    """``steps`` Langevin steps of size eps = ``step_size`` for each of the n chains started at the rows of ``x0``.

    Arguments:
        log_f: log f(x) up to a constant, Tensor[n] for points Tensor[n, ...], differentiable in x.
        x0: the chains' starting points, a floating Tensor[n, ...] with n >= 1 rows.
        step_size: eps > 0, the variance of each step's noise.
        steps: the number of steps, >= 1.
        adjusted: accept or reject each step by Metropolis-Hastings (MALA), so that f is left exactly invariant;
            by default every step is taken (ULA), whose draws are biased by O(eps).

    Returns:
        The :class:`Chains`: the last states and each chain's acceptance rate.

    Raises:
        TypeError, ValueError: an argument is not as above, or ``log_f(x0)`` is not a finite Tensor[n] that depends
            on x; checked on one evaluation at x0, before any step. ValueError: the chains left the finite numbers
            (a step size too large for f).

    Example:
        >>> import torch
        >>> chains = langevin(lambda x: -0.5 * x.square().sum(-1), torch.zeros(500, 2), step_size=0.1, steps=200,
        ...                   adjusted=True)
        >>> chains.x.shape, bool(chains.acceptance.mean() > 0.9)
        (torch.Size([500, 2]), True)
    """
    step_size = check_positive_float(step_size, "step_size")
    steps = check_positive_int(steps, "steps")
    if not isinstance(adjusted, bool):
        raise TypeError(f"adjusted must be True (MALA) or False (ULA), got {type(adjusted).__name__}")
    point = first_point(log_f, x0)
    chains = move(log_f, point, step_size, steps, adjusted)
    check_finite_chains(chains.x, step_size)
    return chains


def move(log_f: LogDensity, point: Point, step_size: float, steps: int, adjusted: bool, noise: float = 1.0
         ) -> Chains:
    """``steps`` Langevin moves of the chains at ``point`` (Metropolis-adjusted where ``adjusted``), each move's noise
    ``noise`` sqrt(eps) xi; no argument checked, and chains that leave the finite numbers are left as they are (NaN
    or infinite), for the caller to judge: :func:`langevin` refuses them, a training step lets its guard see them."""
    accepted = torch.zeros(len(point.x), dtype=point.x.dtype, device=point.x.device)
    for _ in range(steps):
        proposal = gradient(log_f, propose(point.x, point.grad, step_size, noise))
        if not adjusted:
            point = proposal
            continue
        accept = torch.rand_like(point.log_density).log() < log_acceptance(point, proposal, step_size)
        point = Point(*(where_rows(accept, new, old) for new, old in zip(proposal, point)))
        accepted += accept
    return Chains(x=point.x, acceptance=accepted / steps if adjusted else torch.ones_like(accepted))


@dataclass(frozen=True, kw_only=True)
class Langevin:
    """Langevin chains as a sampler that an objective runs inside its loss (``inference.ContrastiveDivergence``):
    ``steps`` moves of

        x' = x + (eps / 2) grad log f(x) + c sqrt(eps) xi,        xi ~ N(0, I),

    from each chain's state, eps = ``step_size``, c = ``noise``. With c = 1 this is Langevin dynamics, the unadjusted
    algorithm (biased by O(eps)) or, ``adjusted=True``, MALA (exact at any eps). With c < 1 the chains follow the
    gradient with less noise than Langevin dynamics asks, as Du and Mordatch (2019) do with an energy network: for a
    small eps they then sample f^(1/c^2), a colder density than f, in exchange for faster descent into its modes.

    Arguments:
        step_size: eps > 0.
        steps: K >= 1, moves per call.
        noise: c > 0, the scale of each move's noise relative to Langevin dynamics' sqrt(eps); 1 for MALA.
        adjusted: accept or reject each move by Metropolis-Hastings (MALA).

    Raises:
        TypeError, ValueError: an argument is not as above.
    """

    step_size: float = 0.01
    steps: int = 20
    noise: float = 1.0
    adjusted: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "step_size", check_positive_float(self.step_size, "step_size"))
        object.__setattr__(self, "steps", check_positive_int(self.steps, "steps"))
        object.__setattr__(self, "noise", check_positive_float(self.noise, "noise"))
        if not isinstance(self.adjusted, bool):
            raise TypeError(f"adjusted must be True (MALA) or False (ULA), got {type(self.adjusted).__name__}")
        if self.adjusted and self.noise != 1.0:
            raise ValueError(f"noise={self.noise} with adjusted=True: the Metropolis-Hastings correction of MALA is "
                             f"that of Langevin dynamics' own noise; leave noise at 1.0, or adjusted=False")

    def run(self, log_f: LogDensity, x0: Tensor) -> Tensor:
        """The chains' states after :attr:`steps` moves from the rows of ``x0``, detached, Tensor shaped as x0; rows
        that left the finite numbers are returned as they are, for the caller to judge."""
        return move(log_f, gradient(log_f, x0), self.step_size, self.steps, self.adjusted, self.noise).x


def annealed_langevin(x0: Tensor, sigmas: Sequence[float] | Tensor, *, step_size: float, steps: int,
                      score: Callable[[Tensor, float], Tensor] | None = None,
                      log_f: Callable[[Tensor, float], Tensor] | None = None) -> Tensor:
    """Annealed Langevin dynamics (Song and Ermon 2019, Algorithm 1): for each noise level sigma_i of the decreasing
    ladder sigma_1 > ... > sigma_L, ``steps`` unadjusted steps of size alpha_i = eps sigma_i^2 / sigma_L^2,

        x <- x + (alpha_i / 2) s(x, sigma_i) + sqrt(alpha_i) xi,        xi ~ N(0, I),

    where s(x, sigma) = grad_x log p_sigma(x) is the score of the data's density convolved with N(0, sigma^2 I).
    Give the score itself (``score=``) or a noise-conditional log density whose gradient it is (``log_f=``).

    Arguments:
        x0: the chains' starting points, a floating Tensor[n, ...] (Song and Ermon start from uniform noise).
        sigmas: the noise levels, positive and strictly decreasing.
        step_size: eps > 0, the step at the last (smallest) level.
        steps: T >= 1, the steps at each level.
        score: s(x, sigma) -> Tensor shaped as x, for points x Tensor[n, ...] and a level sigma (a float).
        log_f: log p_sigma(x) up to a constant, (x, sigma) -> Tensor[n], differentiable in x.

    Returns:
        The chains' last states, Tensor shaped as ``x0``.

    Raises:
        TypeError, ValueError: not exactly one of ``score`` and ``log_f`` is given, another argument is not as above,
            or the first level's score at x0 is not finite or not shaped as x0; checked before any step.
            ValueError: the chains left the finite numbers.

    Example:
        >>> import torch
        >>> x = annealed_langevin(torch.rand(500, 2), [1.0, 0.5], step_size=0.1, steps=50,
        ...                       score=lambda x, sigma: -x / (1 + sigma**2))
        >>> x.shape
        torch.Size([500, 2])
    """
    if (score is None) == (log_f is None):
        raise TypeError("annealed_langevin takes exactly one of score= (s(x, sigma), shaped as x) and log_f= "
                        "(log p_sigma(x), Tensor[n])")
    ladder = check_sigmas(sigmas)
    step_size = check_positive_float(step_size, "step_size")
    steps = check_positive_int(steps, "steps")
    if log_f is not None:
        first_point(lambda y: log_f(y, ladder[0]), x0, name="log_f(x, sigma)")

        def field(x: Tensor, sigma: float) -> Tensor:
            return gradient(lambda y: log_f(y, sigma), x).grad
    else:
        check_score(score, x0, ladder[0])

        def field(x: Tensor, sigma: float) -> Tensor:
            with torch.no_grad():  # a score network builds no graph
                return score(x, sigma)
    x = x0.detach()
    for sigma in ladder:
        alpha = step_size * sigma**2 / ladder[-1] ** 2
        for _ in range(steps):
            x = propose(x, field(x, sigma), alpha)
    check_finite_chains(x, step_size)
    return x


def gradient(log_f: LogDensity, x: Tensor) -> Point:
    """log f(x) and grad_x log f(x) at x by autograd, detached: the graph is freed at once, and only x is
    differentiated (the ``.grad`` of parameters inside log f are left as they were)."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        value = log_f(x)
        (grad,) = torch.autograd.grad(value.sum(), x)
    return Point(x.detach(), value.detach(), grad)


def propose(x: Tensor, grad: Tensor, step_size: float, noise: float = 1.0) -> Tensor:
    """One Langevin move, x + (eps / 2) grad + c sqrt(eps) xi with xi ~ N(0, I), c = ``noise`` (1: Langevin's)."""
    scale = math.sqrt(step_size) if noise == 1.0 else noise * math.sqrt(step_size)
    return x + step_size / 2 * grad + scale * torch.randn_like(x)


def log_acceptance(current: Point, proposal: Point, step_size: float) -> Tensor:
    """The MALA log acceptance ratio of each chain, log f(x') - log f(x) + log q(x | x') - log q(x' | x), Tensor[n];
    NaN where log f(x') is NaN, so that a comparison with it rejects."""
    def log_q(to: Point, start: Point) -> Tensor:  # log N(to; start + (eps/2) grad(start), eps I), constants dropped
        residual = to.x - start.x - step_size / 2 * start.grad
        return -residual.square().flatten(1).sum(-1) / (2 * step_size)
    return proposal.log_density - current.log_density + log_q(current, proposal) - log_q(proposal, current)


def where_rows(mask: Tensor, new: Tensor, old: Tensor) -> Tensor:
    """Row n of ``new`` where ``mask[n]``, of ``old`` elsewhere."""
    return torch.where(mask.reshape(-1, *(1,) * (new.dim() - 1)), new, old)


def first_point(log_f: LogDensity, x0: Tensor, name: str = "log_f") -> Point:
    """log f and its gradient at the starting points, or a ``TypeError``/``ValueError`` naming ``name`` where x0 is
    not a floating Tensor[n, ...] or log f(x0) is not a finite Tensor[n] differentiable in x."""
    check_points(x0, "x0")
    if not callable(log_f):
        raise TypeError(f"{name} must be a callable x -> log f(x), Tensor[n], got {type(log_f).__name__}")
    with torch.enable_grad():
        x = x0.detach().requires_grad_(True)
        value = log_f(x)
        if not isinstance(value, Tensor) or value.shape != (len(x0),):
            shape = list(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise ValueError(f"{name} must return one value per point, Tensor[{len(x0)}] for x0 of shape "
                             f"{list(x0.shape)}, got {shape}")
        bad = (~torch.isfinite(value)).nonzero().flatten()
        if len(bad):
            raise ValueError(f"{name}(x0) is not finite at row(s) {bad[:5].tolist()} (values "
                             f"{value.detach()[bad[:5]].tolist()}): start the chains where log f is finite")
        grad = torch.autograd.grad(value.sum(), x, allow_unused=True)[0] if value.requires_grad else None
    if grad is None:
        raise ValueError(f"{name}(x) does not depend on x through torch operations: Langevin dynamics follows its "
                         f"gradient in x")
    if not torch.isfinite(grad).all():
        raise ValueError(f"the gradient of {name} at x0 is not finite: start the chains where log f is smooth")
    return Point(x.detach(), value.detach(), grad)


def check_score(score: Callable[[Tensor, float], Tensor], x0: Tensor, sigma: float) -> None:
    """A ``TypeError``/``ValueError`` where x0 is not a floating Tensor[n, ...] or s(x0, sigma) is not a finite
    Tensor shaped as x0."""
    check_points(x0, "x0")
    if not callable(score):
        raise TypeError(f"score must be a callable (x, sigma) -> s(x, sigma), got {type(score).__name__}")
    value = score(x0.detach(), sigma)
    if not isinstance(value, Tensor) or value.shape != x0.shape:
        shape = list(value.shape) if isinstance(value, Tensor) else type(value).__name__
        raise ValueError(f"score must return a Tensor shaped as x, {list(x0.shape)} for x0, got {shape}")
    if not torch.isfinite(value).all():
        raise ValueError(f"score(x0, sigma={sigma}) is not finite: start the chains where the score is finite")


def check_points(x: object, name: str) -> Tensor:
    """``x`` unchanged; a ``TypeError``/``ValueError`` naming ``name`` unless it is a floating Tensor[n, ...] with
    n >= 1 points, each of at least one coordinate, every value finite."""
    if not isinstance(x, Tensor) or not x.is_floating_point():
        kind = f"a Tensor of dtype {x.dtype}" if isinstance(x, Tensor) else type(x).__name__
        raise TypeError(f"{name} must be a floating-point Tensor[n, ...] of points, got {kind}")
    if x.dim() < 2 or x.shape[0] == 0 or x[0].numel() == 0:
        raise ValueError(f"{name} must hold n >= 1 points of at least one coordinate, Tensor[n, ...], got shape "
                         f"{list(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} holds values that are not finite")
    return x


def check_sigmas(sigmas: Sequence[float] | Tensor) -> list[float]:
    """The noise levels as floats; a ``TypeError``/``ValueError`` unless they are positive and strictly
    decreasing."""
    if isinstance(sigmas, (str, bytes)) or not isinstance(sigmas, (Sequence, Tensor)):
        raise TypeError(f"sigmas must be a sequence of noise levels, got {type(sigmas).__name__}")
    ladder = [check_positive_float(float(s) if isinstance(s, Tensor) else s, "each of sigmas") for s in sigmas]
    if not ladder:
        raise ValueError("sigmas must hold at least one noise level, got none")
    if any(later >= earlier for earlier, later in zip(ladder, ladder[1:])):
        raise ValueError(f"sigmas must decrease strictly, from the largest noise level to the smallest, got {ladder}")
    return ladder


def check_finite_chains(x: Tensor, step_size: float) -> None:
    """A ``ValueError`` where a chain has left the finite numbers."""
    bad = (~torch.isfinite(x.flatten(1)).all(-1)).sum().item()
    if bad:
        raise ValueError(f"{bad} of {len(x)} chains diverged (values no longer finite) at step_size={step_size}: "
                         f"lower step_size")
