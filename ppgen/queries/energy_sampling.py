"""Draws x ~ p(x) = exp(-E(x)) / Z of an energy-based model, by Markov chains on its log-density: ``fit.sample(n,
method=...)`` for a model whose data site is ``ppgen.Unnormalized``.

* ``"langevin"``: n chains of Metropolis-adjusted Langevin (MALA, :func:`ppgen.objective.langevin.langevin`), which
  leaves p exactly invariant at any step size. Without ``step_size``, the first half of the ``steps`` adapt it, in
  blocks of :data:`ADAPT_BLOCK` steps, towards an acceptance rate of :data:`TARGET_ACCEPTANCE` (Roberts and Rosenthal
  1998), and the second half keep it fixed: those steps alone are the Markov chain whose invariant law is p.
* ``"annealed"``: annealed Langevin dynamics (Song and Ermon 2019) over the noise levels sigma_1 > ... > sigma_L of a
  noise-conditional energy E(x, sigma), unadjusted: its draws follow p_sigma_L, the data's density convolved with
  N(0, sigma_L^2 I), up to a bias of the order of the step size, not p itself.
* ``"nuts"``: Pyro's NUTS (:func:`ppgen.objective.hamiltonian.hmc`) for a point of few coordinates, ``chains``
  chains one after another, each giving its share of the n draws after ``warmup_steps`` adaptation steps.

Every chain starts from ``init`` (Tensor[n, *x_shape]; NUTS's ``chains`` chains from its first rows) or from the Gaussian of the training data's mean and covariance
(:class:`~ppgen.queries.energy.DataMoments`), widened by sigma_1^2 I for annealed Langevin, whose first level is the
data convolved with N(0, sigma_1^2 I). The noise comes from torch's global RNG, as every query's does.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.distributions import MultivariateNormal

from ppgen.objective.hamiltonian import SITE, hmc
from ppgen.objective.langevin import annealed_langevin, check_points, langevin
from ppgen.queries.annealing import default_step_size
from ppgen.utils.checks import check_choice, check_positive_float, check_positive_int

METHODS = ("langevin", "annealed", "nuts")
#: the options each method takes, and their defaults (``None``: see the method).
OPTIONS: dict[str, dict[str, Any]] = {
    "langevin": {"steps": 500, "step_size": None, "init": None, "adjusted": True},
    "annealed": {"steps": 100, "step_size": None, "init": None},
    "nuts": {"warmup_steps": 200, "chains": 2, "init": None},
}
#: MALA's step size is adapted towards this acceptance rate, optimal for a product density (Roberts and Rosenthal).
TARGET_ACCEPTANCE = 0.574
#: the MALA steps between two adaptations of the step size.
ADAPT_BLOCK = 10
#: below this mean acceptance rate, a warning: the chains hardly moved from where they started.
LOW_ACCEPTANCE = 0.1
#: annealed Langevin's default step at the smallest level, as a fraction of sigma_L^2 (Song and Ermon take 2e-5 at
#: sigma_L = 0.01, a fifth of it).
ANNEALED_FRACTION = 0.1


def check_options(method: str, options: dict[str, Any], x_shape: tuple[int, ...], n: int) -> dict[str, Any]:
    """The method's options, its defaults filled in, each checked; a ``TypeError`` naming any option the method does
    not take, a ``TypeError`` or ``ValueError`` naming a bad value: all before any work."""
    method = check_choice(method, METHODS, "method")
    unknown = sorted(set(options) - set(OPTIONS[method]))
    if unknown:
        raise TypeError(f"sample(method={method!r}) takes the option(s) {', '.join(sorted(OPTIONS[method]))}, not "
                        f"{', '.join(unknown)}")
    settings = {**OPTIONS[method], **options}
    for name in ("steps", "warmup_steps", "chains"):
        if name in settings:
            settings[name] = check_positive_int(settings[name], name)
    if settings.get("step_size") is not None:
        settings["step_size"] = check_positive_float(settings["step_size"], "step_size")
    if "adjusted" in settings and not isinstance(settings["adjusted"], bool):
        raise TypeError(f"adjusted must be True (MALA) or False (unadjusted Langevin), got {settings['adjusted']!r}")
    if method == "nuts" and settings["chains"] > n:
        raise ValueError(f"chains: {settings['chains']} NUTS chains for {n} draws; give at most n chains")
    init = settings["init"]
    if init is not None:
        check_points(init, "init")
        if tuple(init.shape) != (n, *x_shape):
            raise ValueError(f"init must hold one starting point per draw, shape {[n, *x_shape]}, got "
                             f"{list(init.shape)}")
    return settings


def draw(method: str, settings: dict[str, Any], n: int, x_shape: tuple[int, ...], base: MultivariateNormal,
         log_f: Callable[[Tensor], Tensor], noisy_log_f: Callable[[Tensor, float], Tensor],
         levels: tuple[float, ...]) -> Tensor:
    """n draws by ``method`` with its checked ``settings``, Tensor[n, *x_shape].

    Arguments:
        base: the Gaussian of the data's moments over x flattened, in the model's dtype and on its device.
        log_f: log p~(x) = -E(x), Tensor[m] for points Tensor[m, *x_shape].
        noisy_log_f: -E(x, sigma) at one noise level sigma, for ``"annealed"``.
        levels: the noise levels sigma_1 > ... > sigma_L, for ``"annealed"``.
    """
    if method == "annealed":
        base = MultivariateNormal(base.loc, base.covariance_matrix + levels[0] ** 2 * torch.eye(
            len(base.loc), dtype=base.loc.dtype, device=base.loc.device))
    count = settings["chains"] if method == "nuts" else n
    x0 = settings["init"]
    if x0 is None:
        x0 = base.sample((count,)).reshape(count, *x_shape)
    else:
        x0 = x0[:count].to(base.loc)
    if method == "nuts":
        per_chain = math.ceil(n / count)
        draws = hmc(log_f, x0, num_samples=per_chain, warmup_steps=settings["warmup_steps"])
        return draws.samples[SITE][torch.arange(n) % count * per_chain + torch.arange(n) // count]
    if method == "annealed":
        step = settings["step_size"] or ANNEALED_FRACTION * levels[-1] ** 2
        return annealed_langevin(x0, levels, step_size=step, steps=settings["steps"], log_f=noisy_log_f)
    return _mala(log_f, x0, settings, base)


def _mala(log_f: Callable[[Tensor], Tensor], x0: Tensor, settings: dict[str, Any], base: MultivariateNormal) -> Tensor:
    """Langevin chains from x0: the first half of the steps adapting the step size where none is given."""
    steps, adjusted, step = settings["steps"], settings["adjusted"], settings["step_size"]
    x = x0
    if step is None:
        step = default_step_size(base)
        warmup = steps // 2
        steps -= warmup
        for start in range(0, warmup, ADAPT_BLOCK):
            chains = langevin(log_f, x, step_size=step, steps=min(ADAPT_BLOCK, warmup - start), adjusted=True)
            x = chains.x
            step *= math.exp(2 * (float(chains.acceptance.mean()) - TARGET_ACCEPTANCE))
    chains = langevin(log_f, x, step_size=step, steps=steps, adjusted=adjusted)
    rate = float(chains.acceptance.mean())
    if rate < LOW_ACCEPTANCE:
        warnings.warn(f"sample: the Langevin chains accepted {rate:.1%} of their proposals at step_size={step:.3g}: "
                      f"they hardly moved from where they started; lower step_size, or leave it out to adapt it",
                      RuntimeWarning, stacklevel=4)
    return chains.x
