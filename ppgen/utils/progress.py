"""Progress of long queries: a bar on a terminal for importance-sampled queries large enough to take a while."""

from __future__ import annotations

import sys

from tqdm.auto import tqdm

#: particle-points (K times N) from which a query shows a bar on a terminal; about a second of a small VAE's work.
SHOWN_FROM = 2**22


def query_bar(particle_points: int, desc: str) -> tqdm:
    """A bar counting the particle-points of a query as its chunks finish.

    It is shown when stderr is a terminal and the query holds at least :data:`SHOWN_FROM` particle-points, so a
    long ``log_prob(x, k=...)`` or ``evaluate`` says how far it is and how long it has left, while scripts, logs
    and small queries print nothing.

    Arguments:
        particle_points: K times N, the work of the whole query.
        desc: the query's name, shown in front of the bar.
    """
    shown = sys.stderr.isatty() and particle_points >= SHOWN_FROM
    return tqdm(total=particle_points, desc=desc, unit="draw", unit_scale=True, disable=not shown, leave=False)
