"""Which plate holds the data points, read off a program's trace the way Pyro defines a subsampled plate.

Pyro knows no "data plate": a program subsamples a plate that declares the data set's size N,
``pyro.plate("data", N, subsample_size=B)``, and Pyro scales its terms by N / B. ppgen reads the plate of the data
points the same way. Around the observed sites it takes, in this order:

0. a plate that the program subsamples itself, ``pyro.plate("documents", D, subsample_size=32)``;
1. a plate that declares the data set's size N (with or without ``subsample_size`` or ``subsample``);
2. a plate without a size, ``pyro.plate("data")``, whose size Pyro infers from the observed tensors;
3. a plate of the size of the batch the program was called with, ``pyro.plate("data", len(x))``.

A program called with the whole data set, laid out as it takes it (Pyro's LDA takes word ids [words, documents]),
has points that need not be rows: there the plates it subsamples come first, then the plate called ``"data"``, then
the outermost plate it opens around the observed sites. Observed sites outside every plate (a ``pyro.factor`` on
global latents) are global terms, not data. Where the program ran on a batch of another size too, only the plates
whose size followed the batch's are candidates (a plate of time steps that happens to have N entries is not). Where
two plates still qualify alike, the one called ``"data"`` is taken; only where that leaves two is the program
refused.
"""

from __future__ import annotations

from collections.abc import Iterable

from pyro.poutine.indep_messenger import CondIndepStackFrame

from ppgen.program.protocol import DATA_PLATE


def plate_frames(site: dict) -> list[CondIndepStackFrame]:
    """The vectorised plates around a site, outermost first."""
    return [frame for frame in site["cond_indep_stack"] if frame.vectorized]


def sizeless(frame: CondIndepStackFrame) -> bool:
    """Whether the plate was declared without a size, ``pyro.plate(name)``: Pyro infers it from the tensors."""
    return frame.size is None or frame.size < 0


def declared_size(frame: CondIndepStackFrame) -> int:
    """The size a plate declares: its full size N where it subsamples."""
    return frame.full_size if frame.full_size is not None else frame.size


def plate_size(site: dict, frame: CondIndepStackFrame) -> int:
    """The number of entries of a site along a plate: its declared (subsampled) size, or for a plate without a size
    the size of the site's value along the plate's dimension, which Pyro infers from the tensors."""
    if not sizeless(frame):
        return frame.size
    value = site["value"]
    dim = frame.dim - site["fn"].event_dim
    return value.shape[dim] if value.dim() >= -dim else 1


def subsampled_plates(traces: Iterable, data_size: int | None = None) -> dict[str, int]:
    """The plates that the program subsamples itself, ``pyro.plate(name, N, subsample_size=B)`` with N other than
    ``data_size`` (a plate of the data set's size may be subsampled by ppgen's own rows), by name: their B."""
    return {frame.name: frame.size for trace in traces if trace is not None for site in trace.nodes.values()
            if site["type"] == "sample" for frame in plate_frames(site)
            if not sizeless(frame) and frame.full_size is not None and frame.size < frame.full_size
            and frame.full_size != data_size}


def find_data_plate(observed: list[dict], data_size: int, batch_len: int | None,
                    followers: Iterable[str] | None = None, subsampled: Iterable[str] = ()) -> CondIndepStackFrame:
    """The frame of the plate of the data points (see the module's docstring).

    Arguments:
        observed: the model's observed sites, in one trace.
        data_size: N, the number of rows in the data set.
        batch_len: the number of rows the program was called with; ``None`` where it was called with the whole data
            set laid out as it takes it, whose points need not be rows: then after the plates it subsamples come the
            plate called ``"data"`` and else the outermost plate that the program opens around the observed sites.
        followers: the names of the plates whose size changed when the program ran on a batch of another size
            (``None`` where it was not run so): where any of them is around the observed sites, only those are
            candidates.
        subsampled: the plates the program subsamples itself (:func:`subsampled_plates`), which come first.

    Raises:
        ValueError: no plate around the observed sites qualifies, or two qualify alike; the message names the plates
            and the one-line fix.
    """
    plated = [site for site in observed if plate_frames(site)]
    names = ", ".join(repr(site["name"]) for site in observed)
    if not plated:
        raise ValueError(f"the observed site(s) {names} sit in no pyro.plate: observe the data inside "
                         f"pyro.plate('{DATA_PLATE}', len(x)), one data point per row")
    common = set.intersection(*({frame.name for frame in plate_frames(site)} for site in plated))
    frames = [frame for frame in plate_frames(plated[0]) if frame.name in common]
    subsampled = set(subsampled)
    following = [f for f in frames if f.name in set(followers or ())]
    if batch_len is not None and following:  # a plate that does not follow the batch holds no data points
        frames = following
    ranks = [[f for f in frames if f.name in subsampled],
             [f for f in frames if not sizeless(f) and declared_size(f) == data_size],
             [f for f in frames if sizeless(f)],
             [f for f in frames if not sizeless(f) and declared_size(f) == batch_len]]
    if batch_len is None:  # the points need not be rows: the plate called "data", else the outermost of the program
        ranks[1:] = [[f for f in frames if f.name == DATA_PLATE], frames[:1]]
    found = next((rank for rank in ranks if rank), [])
    if not found:
        plates = ", ".join(f"pyro.plate('{f.name}', {'no size' if sizeless(f) else declared_size(f)})"
                           for f in frames) or "none"
        raise ValueError(
            f"no plate around the observed site(s) {', '.join(repr(s['name']) for s in plated)} holds the data "
            f"points (plates around all of them: {plates}); the data set has {data_size} points and the batch "
            f"{batch_len}: observe the data inside pyro.plate('{DATA_PLATE}', len(x)), or declare the data set's "
            f"size, pyro.plate('{DATA_PLATE}', {data_size}, subsample_size=len(x))")
    if len(found) > 1:
        narrowed = [f for f in found if f.name == DATA_PLATE]
        if len(narrowed) != 1:
            raise ValueError(f"plates {sorted(f.name for f in found)} around the observed site(s) {names} could each "
                             f"be the plate of the data points (they have the same size): name the plate of the data "
                             f"points '{DATA_PLATE}'")
        found = narrowed
    return found[0]
