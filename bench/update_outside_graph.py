"""The update of a step that is not compiled, two ways: the divergence guard's copy of every parameter and torch's fused
Adam step (what the plain and the captured step do), against the default Adam's update computed eagerly as new
tensors and swapped in (``ppgen.training.update.AdamUpdate``, what the compiled step does inside its graph), which
would save the copy. One thread, process CPU time, interleaved, median of 7 repeats of 200 updates on the same
gradients; the fused step alone is the baseline.

    OMP_NUM_THREADS=1 python bench/update_outside_graph.py
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

import workloads  # bench/ is on sys.path when a script in it runs
from ppgen.training.optimizers import adam
from ppgen.training.update import AdamUpdate


def updates(bound: str) -> dict[str, Callable[[], None]]:
    """The three ways of updating ``bound``'s network, each on its own copy with the same fixed gradients."""
    train, _ = workloads.data_of(bound, torch.device("cpu"))
    params = [list(workloads.model_of(bound, train).parameters()) for _ in range(2)]
    generator = torch.Generator().manual_seed(0)
    grads = [torch.randn(p.shape, generator=generator) * 1e-2 for p in params[0]]
    for p, g in zip(params[0], grads):
        p.grad = g
    optimizer = adam(params[0], workloads.LR)
    update = AdamUpdate.of(adam(params[1], workloads.LR), params[1])
    good = [[p.detach().clone() for p in ps] for ps in params]

    def copy_and_fused_step() -> None:
        with torch.no_grad():
            torch._foreach_copy_(good[0], [p.detach() for p in params[0]])
        optimizer.step()

    def new_tensors_swapped_in() -> None:
        with torch.no_grad():
            update.apply(update.new([p.detach() for p in params[1]], grads, update.state()), good[1])

    return {"fused step alone": optimizer.step, "copy + fused step": copy_and_fused_step,
            "eager update swapped in": new_tensors_swapped_in}


def main() -> None:
    torch.set_num_threads(1)
    for bound in ("elbo", "elbo784"):
        ways = updates(bound)
        times: dict[str, list[float]] = {name: [] for name in ways}
        for _ in range(7):
            for name, run in ways.items():
                start = time.process_time()
                for _ in range(200):
                    run()
                times[name].append((time.process_time() - start) / 200 * 1e3)
        print(workloads.BOUNDS[bound].name, {name: round(statistics.median(t), 4) for name, t in times.items()},
              "ms per update", flush=True)


if __name__ == "__main__":
    main()
