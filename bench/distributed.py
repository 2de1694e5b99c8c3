"""The speed-up of data-parallel training on two processes over one, ppgen against hand-written PyTorch DDP.

Two networks train with the ELBO (global batch 128, Adam, lr 1e-3), each workload in fresh processes started by
``torch.multiprocessing`` with a loopback gloo rendezvous, one torch thread each:

* ``small``: ``VAE(x_dim=64)`` (64-400-8, 247 KB of parameters) on the binarised digits. Its gradients fill one
  bucket (``DistributedDataParallel``'s first bucket holds 1 MiB), reduced after ``backward`` on both sides.
* ``large``: ``VAE(x_dim=784, z_dim=32)`` (784-400-32, 2.7 MB) on the first 1437 binarised Fashion-MNIST images
  (skipped where Fashion-MNIST is not installed): the decoder's last layer fills the first bucket, whose all-reduce
  runs while ``backward`` computes the other layers' gradients.

Per network, the workloads:

* ppgen, one process: ``ppgen.fit``;
* ppgen, two processes: ``ppgen.fit(distributed=True)``, 64 rows of each global batch per rank, its gradients reduced
  in buckets launched during ``backward`` (``ppgen.run.reducer``);
* ppgen captured, one process and two: the same with ``compile="capture"``, whose step computes its gradients
  inside its graph, so that every bucket is reduced after it;
* ppgen, two processes, one bucket (``large`` only): the same with every gradient in one bucket, reduced after
  ``backward`` in one all-reduce (as ppgen did before the buckets): what the overlap buys;
* hand-written, one process: the benchmark's hand-written loss and loop (``bench/handwritten.py``);
* hand-written, two processes: the same loss in ``DistributedDataParallel``, each rank its half of every batch.

Each process warms up with a fit of one epoch, then times ``--epochs`` epochs as the difference of a fit of
``1 + epochs`` epochs and one of one epoch (so that a fit's own costs, the captured step's tracing of each batch shape
among them, are left out); the workloads run in turn in each of
``--repeats`` rounds, a time is the median over the rounds, and a ratio the median of the rounds' ratios. The speed-up
is time per step of one process over that of two, on the same global batches; the efficiency of ppgen's two processes
against DDP's is ppgen's speed-up over DDP's. It is measured on a shared 2-core machine, where two processes have at
most the two cores and share them with whatever else runs. Writes ``bench/distributed.json``, which
``docs/benchmarks.md`` quotes. No GPU figure: none was lent when this was written; on a GPU machine the NCCL path runs
the same script.
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
import ppgen.run.reducer
from ppgen import datasets
from ppgen.models import VAE
from ppgen.training.optimizers import adam
from workloads import BATCH_SIZE, FASHION_POINTS, LR, SEED, load_data

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "distributed.json"
#: the networks: ``VAE`` arguments and what they train on.
NETWORKS = {
    "small": {"network": "ppgen.models.VAE(x_dim=64, z_dim=8, hidden=(400,), likelihood='bernoulli')",
              "vae": {"x_dim": 64}, "data": "digits, binarised: 1437 training points of 64 pixels"},
    "large": {"network": "ppgen.models.VAE(x_dim=784, z_dim=32, hidden=(400,), likelihood='bernoulli')",
              "vae": {"x_dim": 784, "z_dim": 32}, "data": "Fashion-MNIST, binarised: the first 1437 training images"},
}
#: each workload's processes; ``ppgen-2-one-bucket`` runs where the overlap can make a difference.
WORKLOADS = {"ppgen-1": 1, "ppgen-2": 2, "ppgen-2-one-bucket": 2, "ppgen-captured-1": 1, "ppgen-captured-2": 2,
             "handwritten-1": 1, "handwritten-2": 2}
#: the paths compared: their workloads on one process and on two.
PATHS = {"ppgen": ("ppgen-1", "ppgen-2"), "ppgen, one bucket": ("ppgen-1", "ppgen-2-one-bucket"),
         "ppgen, captured": ("ppgen-captured-1", "ppgen-captured-2"), "handwritten": ("handwritten-1", "handwritten-2")}


def training_data(name: str) -> Tensor:
    """The training set of network ``name`` (``FileNotFoundError`` where Fashion-MNIST is not installed)."""
    if name == "small":
        return load_data(torch.device("cpu"))[0]
    return datasets.fashion_mnist("train", binarize=True)[:FASHION_POINTS[0]]


def network(name: str) -> VAE:
    """Network ``name``, with the same initial weights each call."""
    torch.manual_seed(SEED)
    return VAE(**NETWORKS[name]["vae"])


class HandwrittenLoss(nn.Module):
    """The hand-written negative ELBO of a batch as a module's ``forward``, which DDP's hooks need."""

    def __init__(self, vae: nn.Module) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, x: Tensor) -> Tensor:
        return handwritten.elbo_loss(self.vae, x)


def train_handwritten(name: str, x: Tensor, epochs: int, world: int, workload: str) -> None:
    """The hand-written loop; with two processes, DDP over each rank's contiguous half of every global batch."""
    loss_fn = HandwrittenLoss(network(name))
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


def train_ppgen(name: str, x: Tensor, epochs: int, world: int, workload: str) -> None:
    """``ppgen.fit``, with ``distributed=True`` on two processes, ``compile="capture"`` for a captured workload."""
    ppgen.fit(network(name), x, epochs=epochs, batch_size=BATCH_SIZE, lr=LR, seed=SEED, progress=False,
              distributed=world > 1, compile="capture" if "captured" in workload else False)


def worker(rank: int, world: int, port: int, name: str, workload: str, epochs: int, out: str) -> None:
    """One process of a workload on network ``name``: a warm-up fit of one epoch, then a timed fit of one epoch and one
    of ``1 + epochs``, whose difference is ``epochs`` epochs' steps without what a fit pays once (the captured step's
    tracing of each batch shape, DDP's broadcast); rank 0 writes seconds per step."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    if world > 1:
        dist.init_process_group("gloo")
    if workload.endswith("one-bucket"):
        ppgen.run.reducer.FIRST_BUCKET_BYTES = ppgen.run.reducer.BUCKET_BYTES = 1 << 62
    x = training_data(name)
    train = train_ppgen if workload.startswith("ppgen") else train_handwritten
    train(name, x, 1, world, workload)
    seconds = []
    for timed in (1, 1 + epochs):
        if world > 1:
            dist.barrier()
        start = time.perf_counter()
        train(name, x, timed, world, workload)
        if world > 1:
            dist.barrier()
        seconds.append(time.perf_counter() - start)
    seconds = seconds[1] - seconds[0]
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


def workloads(name: str) -> dict[str, int]:
    """The workloads run on network ``name``: one bucket is the same as the buckets on the small network."""
    return {w: n for w, n in WORKLOADS.items() if name == "large" or not w.endswith("one-bucket")}


def summary(times: dict[str, list[float]]) -> dict:
    """Medians, speed-ups and ratios of one network's times."""
    paths = {}
    for path, (one, two) in PATHS.items():
        if two not in times:
            continue
        paths[path] = {"one_process_ms": statistics.median(times[one]) * 1e3,
                       "two_processes_ms": statistics.median(times[two]) * 1e3,
                       "speedup": ratio(times, one, two)}
        if path != "handwritten":
            # this path's speed-up over DDP's, round by round: at least 1 where its two processes are as efficient
            paths[path]["efficiency_to_ddp"] = statistics.median(
                (a1 / a2) / (b1 / b2) for a1, a2, b1, b2 in zip(times[one], times[two], times["handwritten-1"],
                                                                times["handwritten-2"]))
    result = {
        "runs_ms_per_step": {name: [v * 1e3 for v in values] for name, values in times.items()},
        "paths": paths,
        "ratio_to_handwritten": {"one process": ratio(times, "ppgen-1", "handwritten-1"),
                                 "two processes": ratio(times, "ppgen-2", "handwritten-2")},
    }
    if "ppgen-2-one-bucket" in times:
        result["overlap_gain"] = ratio(times, "ppgen-2-one-bucket", "ppgen-2")
    return result


def measure(epochs: int, repeats: int, names: list[str]) -> dict:
    """Seconds per step of each workload, ``repeats`` interleaved rounds, and the speed-ups of two processes."""
    times = {name: {w: [] for w in workloads(name)} for name in names}
    start, load = time.perf_counter(), [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as folder:
        for round_ in range(repeats):
            for name in names:
                for workload, world in workloads(name).items():
                    out = os.path.join(folder, f"{name}-{workload}-{round_}.json")
                    mp.spawn(worker, args=(world, free_port(), name, workload, epochs, out), nprocs=world, join=True)
                    times[name][workload].append(json.loads(Path(out).read_text()))
                    print(f"  round {round_ + 1}, {name} {workload}: {times[name][workload][-1] * 1e3:.2f} ms/step",
                          flush=True)
            load.append(os.getloadavg()[0])
    return {
        "settings": {"inference": "ELBO()", "global_batch": BATCH_SIZE, "epochs_timed": epochs, "repeats": repeats,
                     "torch_threads": 1, "backend": "gloo", "cpu_count": os.cpu_count(), "torch": torch.__version__,
                     "buckets": f"ppgen: {ppgen.run.reducer.FIRST_BUCKET_BYTES} bytes first, then "
                                f"{ppgen.run.reducer.BUCKET_BYTES}; DDP: its defaults (1 MiB first, then 25 MiB)"},
        "networks": {name: {**{k: v for k, v in NETWORKS[name].items() if k != "vae"}, **summary(times[name])}
                     for name in names},
        "gpu": "not measured: no GPU was lent to this run" if not torch.cuda.is_available() else None,
        "load_average": {"min": min(load), "max": max(load)},  # the machine's 1-minute load, between rounds
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - start, 1),
    }


def main(argv: list[str] | None = None) -> dict:
    """Measure, write ``bench/distributed.json``, and return the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=10, help="timed epochs per process (default 10)")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds (default 5)")
    args = parser.parse_args(argv)
    names = list(NETWORKS)
    try:
        training_data("large")
    except FileNotFoundError as error:
        print(f"the large network is skipped: {error}")
        names.remove("large")
    results = measure(args.epochs, args.repeats, names)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    for name, entry in results["networks"].items():
        print(f"{name}: two processes over one: " + ", ".join(f"{path} x{value['speedup']:.2f}"
                                                             for path, value in entry["paths"].items()))
    print(f"wrote {RESULTS.relative_to(BENCH.parent)}")
    return results


if __name__ == "__main__":
    main()
