"""How a training step's time grows with batch size, model width, K and N: ppgen's plain, captured and compiled
steps as ratios to the hand-written step, plotted to ``docs/images/scale.png`` and written to ``bench/scale.json``.

Each point varies one setting from the speed figures' (batch 128, ``VAE(x_dim=64, hidden=(400,))``, IWAE with
K = 1, that is the ELBO, N = 1437 binarised digits, tiled for larger N): ``steps`` optimiser steps (loss, gradient,
Adam, fused, as ``ppgen.fit``'s default) on the same random batches for each path, interleaved, ``repeats`` rounds,
the median per step, one torch thread. The captured step's trace and the compiled step's trace and compilation
(once per batch shape) are set-up, outside the timing. Where the ratio nears 1
the fixed cost per step (Pyro's handlers, Python) no longer matters.

Run: ``python bench/scale.py [--steps S] [--repeats R]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pyro  # noqa: E402
import torch  # noqa: E402

import handwritten  # noqa: E402  (bench/ is on sys.path when a script in it runs)
from ppgen import inference  # noqa: E402
from ppgen.models import VAE  # noqa: E402
from ppgen.program.inputs import Batch  # noqa: E402
from ppgen.program.structure import inspect  # noqa: E402
from ppgen.training.optimizers import adam  # noqa: E402
from ppgen.training.step import Gradients  # noqa: E402
from workloads import LR, SEED, load_data  # noqa: E402

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "scale.json"
FIGURE = BENCH.parent / "docs" / "images" / "scale.png"
DEFAULTS = {"batch size": 128, "width": 400, "K": 1, "N": 1437}
GRID = {"batch size": (16, 64, 128, 512, 1437), "width": (50, 100, 400, 1600), "K": (1, 5, 20, 50),
        "N": (1437, 10_000, 100_000)}
PATHS = ("plain", "captured", "compiled", "handwritten")


def timings(setting: dict, train: torch.Tensor, steps: int, repeats: int) -> dict[str, float]:
    """Median seconds per step of each path at ``setting``."""
    torch.manual_seed(SEED)
    x = train.repeat(setting["N"] // len(train) + 1, 1)[:setting["N"]]
    vae = VAE(x_dim=x.shape[1], hidden=(setting["width"],))
    optimizer = adam(list(vae.parameters()), LR)
    generator = torch.Generator().manual_seed(SEED)
    batches = [torch.randperm(len(x), generator=generator)[:setting["batch size"]] for _ in range(steps)]
    k, structure = setting["K"], inspect(vae, x[:2])
    plain = Gradients(vae, structure, inference.IWAE(k=k), False)
    captured = Gradients(vae, structure, inference.IWAE(k=k), "capture")
    compiled = Gradients(vae, structure, inference.IWAE(k=k), True)

    def hand(batch: Batch) -> None:
        optimizer.zero_grad(set_to_none=True)
        handwritten.iwae_loss(vae, batch.args[0], k).backward()

    paths = {"plain": plain, "captured": captured, "compiled": compiled, "handwritten": hand}
    data = [Batch((x[rows],), rows, len(x)) for rows in batches]
    seconds = {path: [] for path in PATHS}
    with pyro.validation_enabled(False):
        for call in (captured, compiled, compiled):  # the trace, and the compilation when the shape comes back:
            call(data[0])                              # set-up, not timed
        for round_ in range(repeats):
            for path in PATHS if round_ % 2 == 0 else PATHS[::-1]:
                start = time.perf_counter()
                for batch in data:
                    paths[path](batch)
                    optimizer.step()
                seconds[path].append((time.perf_counter() - start) / steps)
    if captured.fallbacks or compiled.fallbacks or compiled.uncompiled:
        raise RuntimeError(f"the step was not captured (or compiled) at {setting}: "
                           f"{captured.fallbacks or compiled.fallbacks or compiled.uncompiled}")
    return {path: statistics.median(values) for path, values in seconds.items()}


def plot(rows: list[dict], path: Path) -> None:
    """One panel per varied setting: each ppgen path's step time as a ratio to the hand-written step's."""
    fig, axes = plt.subplots(1, len(GRID), figsize=(4 * len(GRID), 3.4), sharey=True)
    for ax, name in zip(axes, GRID):
        points = [row for row in rows if row["varied"] == name]
        values = [row["setting"][name] for row in points]
        for side, style in (("plain", "o-"), ("captured", "s-"), ("compiled", "^-")):
            ax.plot(values, [row[side] / row["handwritten"] for row in points], style, label=f"ppgen, {side} step")
        ax.axhline(1.0, color="grey", lw=1, ls="--")
        ax.set_xscale("log")
        ax.set_xlabel(name)
        ax.set_title(f"varying {name}")
    axes[0].set_ylabel("step time / hand-written")
    axes[0].legend(fontsize=8)
    fig.suptitle("Training step time as a ratio to hand-written PyTorch (shared 2-core machine, 1 thread)",
                 fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=30, help="optimiser steps per timed run (default 30)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs per point (default 3)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    train, _ = load_data(torch.device("cpu"))
    rows = []
    for name, values in GRID.items():
        for value in values:
            setting = {**DEFAULTS, name: value}
            rows.append({"varied": name, "setting": setting, **timings(setting, train, args.steps, args.repeats)})
            print(name, value, {p: round(rows[-1][p] / rows[-1]["handwritten"], 2) for p in PATHS}, flush=True)
    RESULTS.write_text(json.dumps({"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "threads": 1,
                                   "steps": args.steps, "repeats": args.repeats, "rows": rows}, indent=2) + "\n")
    plot(rows, FIGURE)
    print(f"wrote {RESULTS} and {FIGURE}")


if __name__ == "__main__":
    main()
