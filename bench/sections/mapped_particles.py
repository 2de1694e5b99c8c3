"""The section on K particles of a program that does not broadcast over them, from ``bench/mapped_particles.json``."""

from __future__ import annotations

from .formatting import load_note, number, side_json

#: the programs of ``bench/mapped_particles.py``, as the table names them.
PROGRAMS = {"regression": "regression, `X @ w`", "decoder-view": "VAE decoder, `z.view(-1, d)`"}
#: what the load does to these figures.
SWING = ": the milliseconds grow with it; the speed-up, a ratio of timings interleaved in one run, much less"


def table(result: dict) -> str:
    """The rows as a Markdown table: ms per step of each way of running the K particles, and the speed-up of mapping
    (one at a time over mapped)."""
    lines = ["| program | K | one at a time (ms) | mapped by vmap (ms) | rewritten by hand to broadcast (ms) | "
             "speed-up of mapping |", "|---|---:|---:|---:|---:|---:|"]
    for row in result["rows"]:
        lines.append(f"| {PROGRAMS[row['program']]} | {row['K']} | {number(row['one at a time ms'])} | "
                     f"{number(row['mapped ms'])} | {number(row['rewritten to broadcast ms'])} | "
                     f"{number(row['speed-up'])}x |")
    return "\n".join(lines)


def mapped_particles_section() -> str:
    """The page's section on mapping the particles by vmap, empty where ``bench/mapped_particles.py`` has not run."""
    result = side_json("mapped_particles.json")
    if result is None:
        return ""
    machine, settings = result["machine"], result["settings"]
    repeats, steps, threads = settings["repeats"], settings["steps"], settings["torch_threads"]
    return f"""
## K particles of a program that does not broadcast over them

A program written the natural way, `x @ w` with a global `w` or a decoder that reshapes to the batch
(`z.view(-1, d)`), cannot take the K particles in a plate; ppgen maps its one-particle pass over them with
`torch.func.vmap` ([how](programs.md#programs-that-do-not-broadcast-over-particles)). Milliseconds of one step of
`ELBO(num_particles=K)`'s loss and gradient on the two programs of `bench/mapped_particles.py` (Bayesian linear
regression, N = 200, D = 20; a 64-128-8 VAE with a Gaussian likelihood, batch 128), three ways interleaved in one
process: one particle at a time, mapped by vmap, and the program rewritten by hand to broadcast in a plate of
particles; the median of {repeats} timings of {steps} steps each, torch.set_num_threads({threads}). The speed-up
is the time one at a time over the time mapped, in the same run.

Measured {result['date']} on {machine['cpu']} ({machine['cpu_count']} CPUs, shared with other jobs), torch
{machine['torch']}, Pyro {machine['pyro']}, ppgen at `{machine['commit']}`, in {result['seconds']:.0f} s by
`{result['command']}` (part of `make bench`; `--skip-mapped-particles` keeps these figures).\
{load_note(result, machine['cpu_count'], SWING)}

{table(result)}
"""
