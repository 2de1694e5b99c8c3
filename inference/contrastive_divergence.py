"""Contrastive divergence with persistent chains: the gradient of the negative log-likelihood of an unnormalised
density, E_data[grad E(x)] - E_p_theta[grad E(x)], its second term estimated on the states of Markov chains that
persist from one step to the next (Hinton, 2002; Tieleman, 2008; Du and Mordatch, 2019)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ppgen.objective.base import Objective
from ppgen.objective.densities import check_density_model, density
from ppgen.objective.langevin import Langevin, where_rows
from ppgen.program.inputs import Batch
from ppgen.program.structure import Structure
from ppgen.utils.checks import check_non_negative_float, check_positive_int, check_probability

#: the names of the tensors a prepared objective carries between steps (see :meth:`ContrastiveDivergence.prepare`).
STATE = ("chains", "low", "high")


@dataclass(frozen=True, kw_only=True)
class ContrastiveDivergence(Objective):
    """Persistent contrastive divergence (PCD) of an energy-based model (a data site ``ppgen.Unnormalized``), or of
    any model whose log p(x) is exact, with Langevin chains kept in a replay buffer (Du and Mordatch, 2019).

    For p_theta(x) = exp(-E_theta(x)) / Z_theta, the gradient of the negative log-likelihood per data point is
    E_data[grad E(x)] - E_p_theta[grad E(x~)]. Each step the buffer lends as many chains as the batch holds points
    (all of it where it holds fewer), each chain restarted from noise with probability ``restart``; the sampler moves
    them (K Langevin steps on log f = -E_theta), they go back into the buffer, and their states x~ (detached) stand in
    for draws of p_theta in the loss

        L = mean_data E(x) - mean_chains E(x~) + alpha (mean_data E(x)^2 + mean_chains E(x~)^2),

    whose gradient in theta is the CD estimate of the NLL's gradient (plus the regulariser's): its minimiser over a
    family that holds p_data is p_data, where the chains mix. ``L`` itself is not a log-likelihood and has no fixed
    sign: ``fit.history`` holds its mean per epoch, the data's mean energy minus the chains' (plus the regulariser),
    near 0 where the chains are distributed as the data; a rise means the energy separates the data from the chains
    faster than the chains follow.

    The buffer, drawn when the fit starts from torch's RNG, is a tensor of ``buffer`` points, each coordinate uniform
    between that coordinate's least and greatest value in the data (in memory, or a stream's first batch), as Du and
    Mordatch start from uniform noise over the pixels' range; restarts draw from the same box. The chains, the box,
    and torch's RNG from which every draw comes are in the run's checkpoints, so that a run stopped and resumed
    continues bitwise (on CPU). A chain that left the finite numbers makes its step's loss NaN, which the divergence
    guard judges as every step's (``on_nan``), and goes back to the buffer restarted from noise.

    Arguments:
        sampler: the chains' moves, :class:`~ppgen.objective.langevin.Langevin` (``inference.Langevin``): step size
            eps, steps K, the noise's scale c (c < 1: Du and Mordatch's colder chains) and whether MALA adjusts them;
            or a mapping of its settings (as a saved fit records them).
        buffer: the number of persistent chains; ``buffer`` equal to the batch size and ``restart=0`` is Tieleman's
            PCD, every chain moved at every step.
        restart: the probability that a chain lent to a step starts again from noise (Du and Mordatch: 0.05).
        alpha: the weight of the energies' squares (Du and Mordatch: 1 for images); 0 by default, as it pulls the
            energies towards 0 and so biases the fit of a family that holds p_data.

    The refusals are score matching's: a model with latents, a data site that is not real-valued, a program that takes
    the whole data set; and a model of x given further inputs (the chains are draws of x alone).

    References:
        Training Products of Experts by Minimizing Contrastive Divergence (Hinton, 2002).
        https://doi.org/10.1162/089976602760128018
        Training Restricted Boltzmann Machines using Approximations to the Likelihood Gradient (Tieleman, 2008).
        https://doi.org/10.1145/1390156.1390290
        Implicit Generation and Modeling with Energy-Based Models (Du and Mordatch, 2019).
        https://arxiv.org/abs/1903.08689

    Example:
        >>> cd = inference.ContrastiveDivergence(sampler=inference.Langevin(step_size=0.01, steps=20))  # doctest: +SKIP
        >>> fit = ppgen.fit(models.EnergyModel(x_dim=2), x, inference=cd)  # doctest: +SKIP
    """

    state_between_steps = "keeps persistent Markov chains from step to step"

    sampler: Langevin | dict[str, Any] | None = None
    buffer: int = 10_000
    restart: float = 0.05
    alpha: float = 0.0

    def __post_init__(self) -> None:
        sampler = Langevin() if self.sampler is None else self.sampler
        if isinstance(sampler, dict):
            sampler = Langevin(**sampler)
        if not isinstance(sampler, Langevin):
            raise TypeError(f"sampler must be an inference.Langevin(step_size=..., steps=...), got "
                            f"{type(sampler).__name__}")
        object.__setattr__(self, "sampler", sampler)
        object.__setattr__(self, "buffer", check_positive_int(self.buffer, "buffer"))
        object.__setattr__(self, "restart", check_probability(self.restart, "restart"))
        object.__setattr__(self, "alpha", check_non_negative_float(self.alpha, "alpha"))

    @property
    def units(self) -> str:
        return "energy: the data's mean E(x) minus the chains' mean E(x~) (plus alpha's regulariser), not nats"

    def check(self, structure: Structure) -> None:
        check_density_model(self, structure, normalized=True)
        if structure.num_inputs > 1:
            raise ValueError(f"ContrastiveDivergence()'s chains are draws of x alone, but the model takes "
                             f"{structure.num_inputs} inputs (x and its conditions): fit it by "
                             f"inference.ScoreMatching()")

    def prepare(self, module: nn.Module, structure: Structure, data: Batch) -> ContrastiveDivergence:
        """This objective with its buffer of chains (see the class): ``buffer`` points drawn uniformly in the box of
        the data's least and greatest values, coordinate by coordinate, from torch's RNG."""
        x = data.args[structure.observed_input].detach().to(data.float_dtype)
        flat = x.flatten(1)
        low, high = flat.min(0).values, flat.max(0).values
        prepared = copy.copy(self)
        object.__setattr__(prepared, "_state", {"chains": uniform(low, high, self.buffer).reshape(-1, *x.shape[1:]),
                                                "low": low, "high": high})
        return prepared

    def persistent_state(self) -> dict[str, Tensor]:
        """The buffer of chains, Tensor[buffer, *x_shape], and the box its noise is drawn in, ``low`` and ``high``,
        Tensor[D] each; empty before :meth:`prepare`."""
        return getattr(self, "_state", {})

    def loss(self, module: nn.Module, structure: Structure, batch: Batch) -> Tensor:
        if not self.persistent_state():
            raise ValueError("ContrastiveDivergence(): the buffer of chains is made before the first step, by "
                             "ppgen.fit (or ContrastiveDivergence().prepare(module, structure, data))")
        x = batch.args[structure.observed_input]
        state = self._placed(x)
        chains = state["chains"]
        n = min(len(x), len(chains))
        lent = torch.randperm(len(chains), device=chains.device)[:n]
        fresh = uniform(state["low"], state["high"], n).reshape(n, *chains.shape[1:])
        start = where_rows(torch.rand(n, device=chains.device) < self.restart, fresh, chains[lent])
        log_p = density(module, structure, Batch((start,), torch.arange(n, device=start.device), n))
        moved = self.sampler.run(lambda v: log_p(v, None), start)
        with torch.no_grad():
            chains[lent] = where_rows(torch.isfinite(moved.flatten(1)).all(1), moved, fresh)
        energy_data, energy_chains = -density(module, structure, batch)(x, None), -log_p(moved, None)
        loss = energy_data.mean() - energy_chains.mean()
        if self.alpha:
            loss = loss + self.alpha * (energy_data.square().mean() + energy_chains.square().mean())
        return loss

    def _placed(self, like: Tensor) -> dict[str, Tensor]:
        """The state on the device and in the dtype of the data, moved there (once) where it is not."""
        state = self.persistent_state()
        if (state["chains"].device, state["chains"].dtype) != (like.device, like.dtype):
            state.update({name: t.to(like) for name, t in state.items()})
        return state


def uniform(low: Tensor, high: Tensor, n: int) -> Tensor:
    """n points uniform in the box [low, high], Tensor[n, D], from torch's RNG."""
    return low + (high - low) * torch.rand(n, len(low), dtype=low.dtype, device=low.device)

