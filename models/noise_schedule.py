"""The fixed forward process of a diffusion model: a variance schedule beta_1..beta_T and the Gaussians it defines."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ppgen.utils.checks import check_choice, check_positive_int

#: the variance schedules by name: Ho, Jain and Abbeel (2020) and Nichol and Dhariwal (2021).
SCHEDULES = ("linear", "cosine")
#: the largest beta_t either schedule takes, as Nichol and Dhariwal clip it: beta_t = 1 would erase x_{t-1}.
MAX_BETA = 0.999


class NoiseSchedule:
    """q(x_t | x_{t-1}) = N(sqrt(alpha_t) x_{t-1}, beta_t I), alpha_t = 1 - beta_t, for t = 1..T; with
    abar_t = prod_{s <= t} alpha_s (abar_0 = 1), in closed form

        q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I),
        q(x_{t-1} | x_t, x_0) = N(mu~_t, beta~_t I),  mu~_t = sqrt(abar_{t-1}) beta_t / (1 - abar_t) x_0
                                                             + sqrt(alpha_t) (1 - abar_{t-1}) / (1 - abar_t) x_t,
                                                    beta~_t = (1 - abar_{t-1}) / (1 - abar_t) beta_t.

    The schedule is computed once in float64 and handed out in the dtype and on the device of the tensor that
    asks (:meth:`at`), so that a float64 fit uses it unrounded. Every table is indexed by t itself: entry 0 is
    the data, beta_0 = 0 and abar_0 = 1.

    Arguments:
        steps: T.
        schedule: ``"linear"``: beta_t evenly from 1e-4 to 0.02 at T = 1000, both ends scaled by 1000 / T
            (as Nichol and Dhariwal do, so that abar_T is near 0 at any T); ``"cosine"``: abar_t = f(t) / f(0),
            f(t) = cos((t / T + s) / (1 + s) pi / 2)^2 with s = 0.008. Both clip beta_t at :data:`MAX_BETA`.

    References:
        Denoising Diffusion Probabilistic Models (Ho, Jain and Abbeel, 2020). https://arxiv.org/abs/2006.11239
        Improved Denoising Diffusion Probabilistic Models (Nichol and Dhariwal, 2021).
        https://arxiv.org/abs/2102.09672
    """

    def __init__(self, steps: int, schedule: str = "linear") -> None:
        self.steps = check_positive_int(steps, "steps")
        self.schedule = check_choice(schedule, SCHEDULES, "schedule")
        beta = _betas(self.steps, self.schedule)
        abar = torch.cat([beta.new_ones(1), torch.cumprod(1 - beta, 0)])
        beta = torch.cat([beta.new_zeros(1), beta])
        posterior = torch.zeros_like(beta)
        posterior[1:] = (1 - abar[:-1]) / (1 - abar[1:]) * beta[1:]
        self._tables = {"beta": beta, "abar": abar, "posterior_variance": posterior}
        self._cast: dict[tuple[torch.dtype, torch.device], dict[str, Tensor]] = {}

    def at(self, like: Tensor) -> dict[str, Tensor]:
        """The tables beta, abar and beta~ (``"posterior_variance"``), each Tensor[T + 1] indexed by t, in the dtype
        and on the device of ``like``."""
        key = (like.dtype, like.device)
        if key not in self._cast:
            self._cast[key] = {name: t.to(dtype=like.dtype, device=like.device) for name, t in self._tables.items()}
        return self._cast[key]

    def marginal(self, x0: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """The mean and standard deviation of q(x_t | x_0) for x0 Tensor[..., D] and integer t Tensor[...]."""
        abar = self.at(x0)["abar"][t].unsqueeze(-1)
        loc = abar.sqrt() * x0
        return loc, (1 - abar).sqrt().expand_as(loc)

    def posterior(self, x0: Tensor, xt: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """The mean mu~_t and standard deviation sqrt(beta~_t) of q(x_{t-1} | x_t, x_0), for t >= 2 (at t = 1 it is
        the point mass at x_0)."""
        table = self.at(x0)
        beta, abar, abar_before = (table["beta"][t].unsqueeze(-1), table["abar"][t].unsqueeze(-1),
                                   table["abar"][t - 1].unsqueeze(-1))
        loc = (abar_before.sqrt() * beta * x0 + (1 - beta).sqrt() * (1 - abar_before) * xt) / (1 - abar)
        return loc, table["posterior_variance"][t].unsqueeze(-1).sqrt().expand_as(loc)


def _betas(steps: int, schedule: str) -> Tensor:
    """beta_1..beta_T, Tensor[T] in float64."""
    if schedule == "linear":
        scale = 1000 / steps
        beta = torch.linspace(1e-4 * scale, 0.02 * scale, steps, dtype=torch.float64)
    else:
        s, t = 0.008, torch.arange(steps + 1, dtype=torch.float64) / steps
        f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
        beta = 1 - f[1:] / f[:-1]
    return beta.clamp(max=MAX_BETA)
