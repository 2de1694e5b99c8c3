"""Hamiltonian Monte Carlo on an unnormalised density f(x) = exp(-E(x)) of few coordinates, by Pyro's NUTS on the
potential energy U(x) = -log f(x) = E(x).

Each chain runs Pyro's No-U-Turn sampler (adaptive path lengths, the step size and a diagonal mass matrix adapted in
warmup) from its own starting point, the chains one after another as :func:`ppgen.objective.sampler.run_chains`
runs them, so that a seed fixes every draw. Its cost grows with the dimension and with each chain's trajectories:
it suits a density of up to ``BUDGET.nuts_coordinates`` coordinates; Langevin dynamics
(:mod:`ppgen.objective.langevin`) moves a large batch of chains at once.

References:
    The No-U-Turn Sampler: Adaptively Setting Path Lengths in Hamiltonian Monte Carlo (Hoffman and Gelman, 2014).
    https://jmlr.org/papers/v15/hoffman14a.html
"""

from __future__ import annotations

from torch import Tensor

from ppgen.objective.langevin import LogDensity, first_point
from ppgen.objective.sampler import Draws, RecordedNUTS, run_chains
from ppgen.utils.budget import BUDGET
from ppgen.utils.checks import check_positive_float, check_positive_int

#: the name of the one site the chains move, in :attr:`Draws.samples`.
SITE = "x"


def hmc(log_f: LogDensity, x0: Tensor, *, num_samples: int, warmup_steps: int, target_accept_prob: float = 0.8,
        max_tree_depth: int = 10, progress: bool = False) -> Draws:
    """One chain of Pyro's NUTS on the potential U(x) = -log f(x) per row of ``x0``.

    Arguments:
        log_f: log f(x) up to a constant, Tensor[n] for points Tensor[n, ...], differentiable in x.
        x0: the chains' starting points, a floating Tensor[C, ...]: C chains.
        num_samples: draws kept per chain.
        warmup_steps: adaptation steps per chain (step size and diagonal mass matrix), discarded.
        target_accept_prob: the acceptance rate the step size adapts to, in (0, 1).
        max_tree_depth: the most doublings of one trajectory.
        progress: show Pyro's progress bar.

    Returns:
        The :class:`~ppgen.objective.sampler.Draws`: ``samples["x"]``, Tensor[C * num_samples, ...], chain after
        chain, and each draw's ``diverging``, ``step_size``, ``tree_depth`` and ``lp`` = log f(x).

    Raises:
        TypeError, ValueError: an argument is not as above, a point has more than ``BUDGET.nuts_coordinates``
            coordinates, or ``log_f(x0)`` is not a finite Tensor[C] that depends on x; all before any step.

    Example:
        >>> import torch
        >>> draws = hmc(lambda x: -0.5 * x.square().sum(-1), torch.zeros(2, 3), num_samples=50, warmup_steps=50)
        >>> draws.samples["x"].shape, draws.chains
        (torch.Size([100, 3]), 2)
    """
    num_samples = check_positive_int(num_samples, "num_samples")
    warmup_steps = check_positive_int(warmup_steps, "warmup_steps")
    max_tree_depth = check_positive_int(max_tree_depth, "max_tree_depth")
    if not check_positive_float(target_accept_prob, "target_accept_prob") < 1:
        raise ValueError(f"target_accept_prob must be in (0, 1), got {target_accept_prob!r}")
    first_point(log_f, x0)
    if x0[0].numel() > BUDGET.nuts_coordinates:
        raise ValueError(f"NUTS over {x0[0].numel()} coordinates is over the budget of {BUDGET.nuts_coordinates}: "
                         f"each draw would cost minutes. Use Langevin dynamics, or raise "
                         f"ppgen.utils.budget.BUDGET.nuts_coordinates")

    def potential(params: dict[str, Tensor]) -> Tensor:
        return -log_f(params[SITE].unsqueeze(0)).squeeze(0)

    def kernel() -> RecordedNUTS:
        return RecordedNUTS(potential_fn=potential, target_accept_prob=target_accept_prob,
                            max_tree_depth=max_tree_depth, jit_compile=False)
    return run_chains(kernel, [{SITE: row.detach()} for row in x0], num_samples=num_samples,
                      warmup_steps=warmup_steps, progress=progress)
