"""Peak memory of one workload, measured in a fresh process: ``python bench/memory.py WORKLOAD DEVICE THREADS``.

Prints one JSON line, ``{"workload": ..., "peak_mib": ..., "method": ...}``: the peak above a baseline taken
after the imports, the data load, the workload's set-up, and an optimiser and one forward and backward pass
of the plain network (so that torch's one-time initialisation counts for neither side).

On CUDA the peak is ``torch.cuda.max_memory_allocated``. On CPU it is the peak resident set size. Linux
keeps ``getrusage``'s ``ru_maxrss`` across fork and exec, so a child of a large process would inherit its
parent's peak and report nothing; where Linux lets a process reset its own peak (``/proc/self/clear_refs``)
the peak is read from ``VmHWM`` after a reset at the baseline, otherwise it is ``ru_maxrss`` minus its value
at the baseline (a lower bound: only what rises above the earlier peak counts).
"""

from __future__ import annotations

import json
import resource
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch

from workloads import build, load_data, network

EPOCHS = 2
PROC = Path("/proc/self")


def _status_mib(field: str) -> float:
    """A ``kB`` field of /proc/self/status, MiB."""
    line = next(line for line in (PROC / "status").read_text().splitlines() if line.startswith(field + ":"))
    return int(line.split()[1]) / 2**10


def _max_rss_mib() -> float:
    """``ru_maxrss`` in MiB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def start_cpu_peak() -> tuple[float, Callable[[], float], str]:
    """Reset the peak where possible; return the baseline, a reader of the peak, and the method's name."""
    try:
        (PROC / "clear_refs").write_text("5")  # resets VmHWM to the current resident set
        return _status_mib("VmRSS"), partial(_status_mib, "VmHWM"), "VmHWM after /proc/self/clear_refs"
    except (OSError, StopIteration):
        return _max_rss_mib(), _max_rss_mib, "ru_maxrss"


def measure(name: str, device: torch.device) -> tuple[float, str]:
    """Peak memory of workload ``name`` above the baseline, MiB, and how it was read."""
    workload = build(name, device, EPOCHS)
    train, _ = load_data(device)
    vae = network(device, train.shape[1])  # torch's first optimiser imports torch._dynamo, some 70 MiB
    torch.optim.Adam(vae.parameters()).zero_grad()
    vae.decoder(vae.encoder(train[:128])[:, :vae.z_dim]).sum().backward()
    del vae
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        baseline = torch.cuda.memory_allocated(device)
        workload.run()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - baseline) / 2**20, "torch.cuda.max_memory_allocated"
    baseline, peak, method = start_cpu_peak()
    workload.run()
    return peak() - baseline, method


def main() -> None:
    name, device, threads = sys.argv[1], torch.device(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(threads)
    peak, method = measure(name, device)
    print(json.dumps({"workload": name, "peak_mib": peak, "method": method}))


if __name__ == "__main__":
    main()
