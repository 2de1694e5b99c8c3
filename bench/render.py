"""Render ``docs/benchmarks.md`` from ``bench/results.json`` and the other JSON files of ``bench/``, one section a
module of ``bench/sections/``; ``python bench/render.py`` re-renders without measuring."""

from __future__ import annotations

import json

from sections import formatting
from sections.auto_compile import auto_compile_section
from sections.burda import burda
from sections.choice_of_d import choice_of_d_section
from sections.distributed import distributed_section
from sections.energy import energy_section
from sections.exact import exact_section
from sections.fast_path import fast_path_section
from sections.gpu import gpu_section
from sections.latent import latent_section
from sections.mapped_particles import mapped_particles_section
from sections.scale import evaluate_section, fashion_section, scale_section
from sections.speed import speed_section
from sections.step_table import step_table_section


def render(results: dict) -> str:
    """The benchmarks page: the sections from ``results`` (``bench/results.json``) and from the JSON files beside it,
    a section left out where its benchmark has not run."""
    return "".join([
        speed_section(results), fast_path_section(results), step_table_section(), auto_compile_section(),
        gpu_section(), fashion_section(), evaluate_section(), scale_section(), mapped_particles_section(),
        "\n", exact_section(results), latent_section(), choice_of_d_section(),
        "\n", burda(results), distributed_section(), energy_section(),
    ])


def main() -> None:
    """Write ``docs/benchmarks.md`` from the JSON files of ``bench/`` as they are on disk."""
    bench = formatting.BENCH
    (bench.parent / "docs" / "benchmarks.md").write_text(render(json.loads((bench / "results.json").read_text())))


if __name__ == "__main__":
    main()
