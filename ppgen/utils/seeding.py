"""Seeds for a run that repeats: every RNG a fit draws from, set from one integer.

The first use of ppgen's library in a process seeds torch, NumPy and Python's ``random`` with
:data:`DEFAULT_SEED` (see :mod:`ppgen`), so a script that builds a model and fits it prints the same numbers on
every run, with a model of the zoo or a user's own: its initial weights are drawn from the seeded RNG.
:func:`seed` reseeds them all at once, for instance before building a second model.
"""

from __future__ import annotations

import pyro

from ppgen.utils.checks import check_seed

#: the seed of every process that uses ppgen, until :func:`seed` or ``fit(seed=...)`` sets another.
DEFAULT_SEED = 0


def seed(value: int = DEFAULT_SEED) -> None:
    """Seed torch (every device), NumPy and Python's ``random`` with ``value``, as ``pyro.set_rng_seed`` does.

    Arguments:
        value: an int in [0, 2**32).

    Raises:
        TypeError, ValueError: ``value`` is not such an int.

    Example:
        >>> import ppgen, torch
        >>> ppgen.seed(1); a = torch.randn(2)
        >>> ppgen.seed(1); bool((torch.randn(2) == a).all())
        True
    """
    pyro.set_rng_seed(check_seed(value))


seed(DEFAULT_SEED)
