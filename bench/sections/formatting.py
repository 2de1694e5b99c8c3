"""What every section of the benchmarks page shares: where the figures are read from, and how a number, a spread and
the machine's load are written."""

from __future__ import annotations

import json
from pathlib import Path

#: the folder of the JSON files the sections are rendered from (a test points it at fixtures).
BENCH = Path(__file__).resolve().parents[1]


def read_json(path: Path) -> dict | None:
    """The JSON object in ``path``, or ``None`` where there is no such file."""
    return json.loads(path.read_text()) if path.is_file() else None


def side_json(name: str) -> dict | None:
    """The JSON object in ``BENCH / name``, or ``None`` where its benchmark has not run."""
    return read_json(BENCH / name)


def number(value: float | None) -> str:
    """Three significant digits, without an exponent for the magnitudes measured here."""
    if value is None:
        return "n/a"
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"


def plus_minus(value: float, sd: float | None, digits: int) -> str:
    """``value +- sd`` to ``digits`` decimals (``value`` alone where there is no ``sd``)."""
    return f"{value:.{digits}f}" + ("" if sd is None else f" +- {sd:.{digits}f}")


def mean_sd(entry: dict, key: str, digits: int) -> str:
    """``mean +- sd`` over seeds of ``entry[key]``, its standard deviation in ``entry[key + "_sd"]`` (the mean alone
    for one seed)."""
    return plus_minus(entry[key], entry.get(f"{key}_sd"), digits)


def load_note(entry: dict, cores: int, why: str = "") -> str:
    """The machine's 1-minute load average while a benchmark ran, where ``entry["load_average"]`` recorded it, as a
    sentence (``why`` ends it: what the load does to the figures)."""
    load = entry.get("load_average")
    if load is None:
        return ""
    return (f" The machine's 1-minute load average was between {load['min']:.1f} and {load['max']:.1f} during the "
            f"run (on {cores} cores){why}.")
