"""The section on data-parallel training, from ``bench/distributed.json``."""

from __future__ import annotations

from .formatting import load_note, side_json

#: the rows of the data-parallel table: a path of ``bench/distributed.json``, and what it is.
DATA_PARALLEL_PATHS = {"ppgen": "ppgen, buckets during backward",
                       "ppgen, one bucket": "ppgen, one bucket after backward",
                       "ppgen, captured": "ppgen, `compile=\"capture\"` (buckets after the step)",
                       "handwritten": "hand-written, `DistributedDataParallel`"}

#: what the load does to the data-parallel figures.
WAIT = ": the two processes' steps wait for each other at every all-reduce, so the slower of them sets the pace"


def distributed_section() -> str:
    """The section on data-parallel training, from ``bench/distributed.json`` where ``bench/distributed.py`` has run."""
    entry = side_json("distributed.json")
    if entry is None:
        return ""
    settings = entry["settings"]
    rows, networks = [], []
    for name, net in entry["networks"].items():
        networks.append(f"{name}: `{net['network']}` on the {net['data']}")
        for side, label in DATA_PARALLEL_PATHS.items():
            if side in net["paths"]:
                row = net["paths"][side]
                versus = f"{row['efficiency_to_ddp']:.2f}" if "efficiency_to_ddp" in row else ""
                rows.append(f"| {name} | {label} | {row['one_process_ms']:.2f} ms/step | "
                            f"{row['two_processes_ms']:.2f} ms/step | {row['speedup']:.2f} | {versus} |")
    ratios = "; ".join(f"{name} {net['ratio_to_handwritten']['one process']:.2f} on one process, "
                       f"{net['ratio_to_handwritten']['two processes']:.2f} on two"
                       for name, net in entry["networks"].items())
    gains = "; ".join(f"{name} {net['overlap_gain']:.2f}" for name, net in entry["networks"].items()
                      if "overlap_gain" in net)
    return f"""
## Data-parallel training on two processes

The ELBO with a global batch of {settings['global_batch']} split across the processes, gloo on CPU,
{settings['torch_threads']} torch thread per process, for two networks ({'; '.join(networks)}); ppgen's
`fit(distributed=True)`, whose gradients are all-reduced in buckets launched while `backward` runs
(`ppgen.run.reducer`; {settings['buckets']}), against the hand-written loop in `DistributedDataParallel`. Time per
step of {settings['epochs_timed']} epochs (the difference of a fit of 1 + {settings['epochs_timed']} epochs and one of
1, after a warm-up fit), the median of {settings['repeats']} interleaved rounds (a ratio: the median of the rounds'
ratios), measured {entry['date']} on a shared {settings['cpu_count']}-core machine (other jobs ran beside it: two
processes compete with them for the two cores), in {entry['seconds']:.0f} s by `python bench/distributed.py` (part of
`make bench`). A speed-up below 1 means two processes were slower than one here; the last column is a path's speed-up
over DDP's, at least 1 where its two processes are as efficient as DDP's.{load_note(entry, settings['cpu_count'], WAIT)}

| network | path | one process | two processes | speed-up, one over two | over DDP's |
|---|---|---:|---:|---:|---:|
{chr(10).join(rows)}

What the overlap buys, the one bucket's time per step over the buckets': {gains or 'not measured'}. ppgen over
hand-written: {ratios}. Every round's time is in `bench/distributed.json` (`runs_ms_per_step`): under a load like
this one a path's time swings between rounds by up to 5x. GPU (NCCL): {entry['gpu'] or 'see the results file'}.
"""
