"""The speed-up of data-parallel training on two processes over one, ppgen against hand-written PyTorch DDP.

Four workloads train ``VAE(x_dim=64)`` with the ELBO on the binarised digits (global batch 128, Adam, lr 1e-3), each
in fresh processes started by ``torch.multiprocessing`` with a loopback gloo rendezvous, one torch thread each:

* ppgen, one process: ``ppgen.fit``;
* ppgen, two processes: ``ppgen.fit(distributed=True)``, 64 rows of each global batch per rank;
* hand-written, one process: the benchmark's hand-written loss and loop (``bench/handwritten.py``);
* hand-written, two processes: the same loss in ``DistributedDataParallel``, each rank its half of every batch.

Each process warms up for one epoch, then times ``--epochs`` epochs; the four workloads run in turn in each of
``--repeats`` rounds, a time is the median over the rounds, and a ratio the median of the rounds' ratios. The speed-up is time per step of one process over that of two,
on the same global batches; it is measured on a shared 2-core machine, where two processes have at most the two
cores and share them with whatever else runs. Writes ``bench/distributed.json``, which ``docs/benchmarks.md``
quotes. No GPU figure: none was lent when this was written; on a GPU machine the NCCL path runs the same script.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import Tensor, nn

import handwritten  # bench/ is on sys.path when a script in it runs
import ppgen
from ppgen.training.optimizers import adam
from workloads import BATCH_SIZE, LR, SEED, load_data, network

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "distributed.json"
WORKLOADS = {"ppgen-1": 1, "ppgen-2": 2, "handwritten-1": 1, "handwritten-2": 2}


class HandwrittenLoss(nn.Module):
    """The hand-written negative ELBO of a batch as a module's ``forward``, which DDP's hooks need."""

    def __init__(self, vae: nn.Module) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, x: Tensor) -> Tensor:
        return handwritten.elbo_loss(self.vae, x)


def train_handwritten(x: Tensor, epochs: int, world: int) -> None:
    """The hand-written loop; with two processes, DDP over each rank's contiguous half of every global batch."""
    loss_fn = HandwrittenLoss(network(x.device, x.shape[1]))
    model = nn.parallel.DistributedDataParallel(loss_fn) if world > 1 else loss_fn
    optimizer = adam(list(model.parameters()), LR)  # ppgen.fit's default optimiser
    order = torch.Generator().manual_seed(SEED)
    rank = dist.get_rank() if world > 1 else 0
    for _ in range(epochs):
        total = x.new_zeros(())
        for rows in torch.randperm(len(x), generator=order).split(BATCH_SIZE):
            xb = x[rows.tensor_split(world)[rank]]
            loss = model(xb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach() * len(xb)
        total.item()


def train_ppgen(x: Tensor, epochs: int, world: int) -> None:
    """``ppgen.fit``, with ``distributed=True`` on two processes."""
    ppgen.fit(network(x.device, x.shape[1]), x, epochs=epochs, batch_size=BATCH_SIZE, lr=LR, seed=SEED,
              progress=False, distributed=world > 1)


def worker(rank: int, world: int, port: int, workload: str, epochs: int, out: str) -> None:
    """One process of a workload: a warm-up epoch, then ``epochs`` timed ones; rank 0 writes seconds per step."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    if world > 1:
        dist.init_process_group("gloo")
    x, _ = load_data(torch.device("cpu"))
    train = train_ppgen if workload.startswith("ppgen") else train_handwritten
    train(x, 1, world)
    if world > 1:
        dist.barrier()
    start = time.perf_counter()
    train(x, epochs, world)
    if world > 1:
        dist.barrier()
    seconds = time.perf_counter() - start
    if rank == 0:
        Path(out).write_text(json.dumps(seconds / (epochs * math.ceil(len(x) / BATCH_SIZE))))
    if world > 1:
        dist.destroy_process_group()


def free_port() -> int:
    """A TCP port free on the loopback interface, for the rendezvous."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ratio(times: dict[str, list[float]], over: str, under: str) -> float:
    """The median over rounds of one workload's time over another's in the same round: runs side by side share
    the machine's load, which changes between rounds."""
    return statistics.median(a / b for a, b in zip(times[over], times[under]))


def measure(epochs: int, repeats: int) -> dict:
    """Seconds per step of each workload, ``repeats`` interleaved rounds, and the speed-ups of two processes."""
    times: dict[str, list[float]] = {name: [] for name in WORKLOADS}
    start, load = time.perf_counter(), [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as folder:
        for round_ in range(repeats):
            for name, world in WORKLOADS.items():
                out = os.path.join(folder, f"{name}-{round_}.json")
                mp.spawn(worker, args=(world, free_port(), name, epochs, out), nprocs=world, join=True)
                times[name].append(json.loads(Path(out).read_text()))
                print(f"  round {round_ + 1}, {name}: {times[name][-1] * 1e3:.2f} ms/step", flush=True)
            load.append(os.getloadavg()[0])
    median = {name: statistics.median(values) for name, values in times.items()}
    return {
        "settings": {"network": "ppgen.models.VAE(x_dim=64, z_dim=8, hidden=(400,), likelihood='bernoulli')",
                     "inference": "ELBO()", "data": "digits, binarised: 1437 training points of 64 pixels",
                     "global_batch": 128, "epochs_timed": epochs, "repeats": repeats, "torch_threads": 1,
                     "backend": "gloo", "cpu_count": os.cpu_count(), "torch": torch.__version__},
        "ms_per_step": {name: value * 1e3 for name, value in median.items()},
        "runs_ms_per_step": {name: [v * 1e3 for v in values] for name, values in times.items()},
        "speedup": {side: ratio(times, f"{side}-1", f"{side}-2") for side in ("ppgen", "handwritten")},
        "ratio_to_handwritten": {"one process": ratio(times, "ppgen-1", "handwritten-1"),
                                 "two processes": ratio(times, "ppgen-2", "handwritten-2")},
        "gpu": "not measured: no GPU was lent to this run" if not torch.cuda.is_available() else None,
        "load_average": {"min": min(load), "max": max(load)},  # the machine's 1-minute load, between rounds
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - start, 1),
    }


def main(argv: list[str] | None = None) -> dict:
    """Measure, write ``bench/distributed.json``, and return the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=10, help="timed epochs per process (default 10)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds (default 3)")
    args = parser.parse_args(argv)
    results = measure(args.epochs, args.repeats)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"two processes over one: ppgen x{results['speedup']['ppgen']:.2f}, hand-written DDP "
          f"x{results['speedup']['handwritten']:.2f}; wrote {RESULTS.relative_to(BENCH.parent)}")
    return results


if __name__ == "__main__":
    main()
