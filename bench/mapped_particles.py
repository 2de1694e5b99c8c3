"""The cost of K particles of a program that does not broadcast over them: mapped by vmap against one at a time.

Two programs written the natural way, which a plate of particles cannot broadcast:

* ``regression``: Bayesian linear regression, ``mean = X @ w`` with a global w ~ N(0, I) drawn by a diagonal Normal
  guide (N = 200 points, D = 20);
* ``decoder-view``: a VAE's decoder that reshapes to the batch, ``decoder(z.view(-1, d))``, with an MLP encoder
  (64-128-8, Gaussian likelihood, a batch of 128).

Each is timed for one step of the ELBO's loss and gradient (``inference.ELBO(num_particles=K)``, ``loss.backward()``)
at K = 5 and K = 50, three ways, interleaved in one process with ``torch.set_num_threads(1)``: one particle at a time
(the plan ppgen used before), the one-particle pass mapped over K by ``torch.func.vmap`` (ppgen's plan now), and the
program rewritten by hand to broadcast (``(X * w).sum(-1)``, ``z`` kept [K, B, d]) in a plate of particles, for
reference. Each figure is the median of ``--repeats`` timings of ``--steps`` steps; the speed-up is one-at-a-time time
over mapped time; the machine's 1-minute load average is read before the first round and after each.
``python bench/mapped_particles.py`` (part of ``make bench``) prints the table and writes
``bench/mapped_particles.json`` (``--output``), which ``bench/render.py`` renders into ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from ppgen import inference
from ppgen.program.inputs import as_batch
from ppgen.program.structure import inspect

from machine import machine
from sections.mapped_particles import table
from timing import timed

RESULTS = Path(__file__).resolve().with_suffix(".json")


class Regression(nn.Module):
    """y_n ~ N(x_n . w, 0.5^2), w ~ N(0, I); q(w) = N(mu, diag(s^2)). ``broadcasts``: ``(X * w).sum(-1)``."""

    def __init__(self, dim: int, broadcasts: bool) -> None:
        super().__init__()
        self.mu, self.log_s = nn.Parameter(torch.zeros(dim)), nn.Parameter(torch.full((dim,), -1.0))
        self.dim, self.broadcasts = dim, broadcasts

    def model(self, X: torch.Tensor, y: torch.Tensor) -> None:
        w = pyro.sample("w", dist.Normal(torch.zeros(self.dim), 1.0).to_event(1))
        with pyro.plate("data", len(X)):
            pyro.sample("y", dist.Normal((X * w).sum(-1) if self.broadcasts else X @ w, 0.5), obs=y)

    def guide(self, X: torch.Tensor, y: torch.Tensor) -> None:
        pyro.sample("w", dist.Normal(self.mu, self.log_s.exp()).to_event(1))


class DecoderView(nn.Module):
    """z ~ N(0, I_8), x | z ~ N(MLP(z), 0.5^2 I_64); q(z|x) = N(MLP(x)). ``broadcasts``: the decoder on z as it is,
    [K, B, 8], else on ``z.view(-1, 8)`` reshaped back to the batch."""

    def __init__(self, broadcasts: bool, x_dim: int = 64, hidden: int = 128, z_dim: int = 8) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(x_dim, hidden), nn.Tanh(), nn.Linear(hidden, 2 * z_dim))
        self.decoder = nn.Sequential(nn.Linear(z_dim, hidden), nn.Tanh(), nn.Linear(hidden, x_dim))
        self.z_dim, self.broadcasts = z_dim, broadcasts

    def model(self, x: torch.Tensor) -> None:
        with pyro.plate("data", len(x)):
            z = pyro.sample("z", dist.Normal(torch.zeros(self.z_dim), 1.0).to_event(1))
            loc = self.decoder(z) if self.broadcasts else self.decoder(z.view(-1, self.z_dim)).view(len(x), -1)
            pyro.sample("x", dist.Normal(loc, 0.5).to_event(1), obs=x)

    def guide(self, x: torch.Tensor) -> None:
        loc, log_scale = self.encoder(x).chunk(2, -1)
        with pyro.plate("data", len(x)):
            pyro.sample("z", dist.Normal(loc, log_scale.exp()).to_event(1))


def programs() -> dict[str, tuple[type, dict, tuple[torch.Tensor, ...]]]:
    generator = torch.Generator().manual_seed(0)
    X = torch.randn(200, 20, generator=generator)
    y = X @ torch.randn(20, generator=generator) + 0.5 * torch.randn(200, generator=generator)
    x = torch.randn(128, 64, generator=generator)
    return {"regression": (Regression, {"dim": 20}, (X, y)), "decoder-view": (DecoderView, {}, (x,))}


def measure(repeats: int, steps: int) -> tuple[list[dict], list[float]]:
    """The rows of the table (ms per step of each way, and the speed-up of mapping), and the machine's 1-minute load
    average before the first round and after each."""
    rows, loads = [], [os.getloadavg()[0]]
    for name, (cls, kwargs, data) in programs().items():
        natural, rewritten = cls(broadcasts=False, **kwargs), cls(broadcasts=True, **kwargs)
        rewritten.load_state_dict(natural.state_dict())
        batch = as_batch(data)
        mapped = inspect(natural, data)
        assert mapped.plan.mapped, mapped.plan
        ways = {"one at a time": (natural, dataclasses.replace(mapped, plan=mapped.plan.one_particle_at_a_time())),
                "mapped": (natural, mapped), "rewritten to broadcast": (rewritten, inspect(rewritten, data))}
        for k in (5, 50):
            objective = inference.ELBO(num_particles=k)

            def step(module=None, structure=None):
                module.zero_grad()
                objective.loss(module, structure, batch).backward()

            times = {way: [] for way in ways}
            for way, (module, structure) in ways.items():  # warm-up
                timed(lambda: step(module, structure), 2)
            for _ in range(repeats):  # interleaved
                for way, (module, structure) in ways.items():
                    times[way].append(timed(lambda: step(module, structure), steps)[0])
                loads.append(os.getloadavg()[0])
            medians = {way: statistics.median(values) * 1e3 for way, values in times.items()}
            rows.append({"program": name, "K": k, **{f"{way} ms": round(ms, 3) for way, ms in medians.items()},
                         "speed-up": round(medians["one at a time"] / medians["mapped"], 2)})
            print(rows[-1], flush=True)
    return rows, loads


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timings of each way, interleaved (default 7)")
    parser.add_argument("--steps", type=int, default=5, help="steps a timing (default 5)")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"the JSON file written (default {RESULTS.name})")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    pyro.set_rng_seed(0)
    measured_on = machine(torch.get_num_threads())  # before the figures are written: the commit as checked out
    start = time.perf_counter()
    rows, loads = measure(args.repeats, args.steps)
    result = {"command": " ".join(["python bench/mapped_particles.py", *(sys.argv[1:] if argv is None else argv)]),
              "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "seconds": round(time.perf_counter() - start, 1), "machine": measured_on,
              "settings": {"repeats": args.repeats, "steps": args.steps, "torch_threads": torch.get_num_threads()},
              "load_average": {"min": min(loads), "max": max(loads)}, "rows": rows}
    args.output.write_text(json.dumps(result, indent=1) + "\n")
    print(table(result))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
