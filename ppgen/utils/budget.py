"""Size budgets of the queries and of a training step: a request past one is refused at once, before it runs for
hours or exhausts memory.

The budgets live in :data:`BUDGET`, which a user raises to insist::

    import ppgen.utils.budget
    ppgen.utils.budget.BUDGET.particle_points = 2**34   # allow K * N up to 2**34 in one query
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class Budget:
    """The largest requests ppgen runs without being asked.

    Attributes:
        particle_points: K times N of one importance-sampled query (``log_prob``, ``iwae_bound``,
            ``posterior``), and K times the batch's points of one training step (``inference.IWAE(k=K)``,
            ``inference.ELBO(num_particles=K)``); past it a query would run for hours, and a step exhaust memory.
        sample_values: numbers drawn by one ``sample(n)`` call (n times the size of a data point); 2**28 is
            1 GiB of float32.
        checkpoint_parameters: parameters a checkpoint may make :func:`ppgen.load` build, and the sizes given to
            ``ppgen fit`` (``--hidden``, ``--z-dim``, ``--components``) make it build.
        nuts_coordinates: latent coordinates (points times latent dimensions) that NUTS moves in one
            ``posterior(x, method="nuts")`` or one ``inference.NUTS`` fit; past it each draw takes minutes.
    """

    particle_points: int = 2**31
    sample_values: int = 2**28
    checkpoint_parameters: int = 2**30
    nuts_coordinates: int = 2**12


#: the budgets in force; raise a field to allow larger requests.
BUDGET = Budget()


def check_particle_budget(k: int, n: int, name: str = "k", points: str = "data points") -> None:
    """A ``ValueError`` naming ``name`` when ``k`` particles for ``n`` points exceed the budget; ``points`` says what
    the ``n`` points are (a query's data points, a training step's batch)."""
    if k * n > BUDGET.particle_points:
        raise ValueError(f"{name}={k} for {n} {points} is {k * n} particle-points, over the budget of "
                         f"{BUDGET.particle_points}: lower {name}, or raise ppgen.utils.budget.BUDGET.particle_points")


def check_sample_budget(n: int, shape: tuple[int, ...]) -> None:
    """A ``ValueError`` when ``n`` draws of data points of ``shape`` exceed the budget."""
    values = n * math.prod(shape)
    if values > BUDGET.sample_values:
        raise ValueError(f"n={n} draws of shape {list(shape)} are {values} values, over the budget of "
                         f"{BUDGET.sample_values}: draw in smaller batches, or raise "
                         f"ppgen.utils.budget.BUDGET.sample_values")
