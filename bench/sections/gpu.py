"""The section on a GPU at batch 1024, from ``bench/gpu.json``."""

from __future__ import annotations

from .formatting import number, side_json

#: the columns of the GPU tables: the paths of ``bench/gpu.py``.
STEPPED_PATHS = ["captured, host guard", "captured, device guard", "compiled, host guard", "compiled, device guard"]
FIT_PATHS = ["fit, plain", "fit, capture", "fit, compiled"]


def gpu_section() -> str:
    """The GPU figures at batch 1024, from ``bench/gpu.json`` where ``bench/gpu.py`` has run on a GPU."""
    data = side_json("gpu.json")
    head = "\n## On a GPU, batch 1024\n\n"
    how = ("On CUDA the captured step adds no host-device synchronisation of its own; `fit` moves an epoch's data "
           "order to the device once an epoch; and with the default fused Adam the divergence guard judges each step "
           "on the device (`ppgen.training.guard.DeviceGuard`), reading the loss back once an epoch instead of at "
           "each step, with the same verdicts (see the runs page). `python bench/gpu.py` measures this on a GPU: ms "
           "per step at batch 1024 against the hand-written loop, under each guard, with the synchronisations per step "
           "counted by CUDA's sync debug mode.")
    if data is None:
        return f"{head}{how} No GPU was lent to this work yet, so there are no GPU figures here.\n"
    settings = data["settings"]
    lines = [f"{head}{how}\n\nMeasured {data['date']} on {data['card']} by `{data['command']}`: "
             f"{settings['points']} generated rows, {settings['epochs_per_run']} epochs a run, the median of "
             f"{settings['repeats']} interleaved rounds. Absolute ms per step, with the ratio to the hand-written "
             f"loop, and the host-device synchronisations per step:\n",
             "| workload | hand-written | " + " | ".join(STEPPED_PATHS) + " |",
             "|---|---:|" + "---:|" * len(STEPPED_PATHS)]
    for entry in data["workloads"]:
        rows = entry["rows"]
        cells = [f"{rows[p]['ms_per_step']:.2f} ms ({rows[p]['ratio']:.2f}x, {rows[p]['syncs_per_step']:.2g} syncs)"
                 for p in ["handwritten", *STEPPED_PATHS]]
        lines.append(f"| {entry['workload']} | " + " | ".join(cells) + " |")
    lines += ["", "Whole fits, set-up, trace and compilation included, as ratios to the hand-written loop's time:", "",
              "| workload | " + " | ".join(FIT_PATHS) + " |", "|---|" + "---:|" * len(FIT_PATHS)]
    for entry in data["workloads"]:
        lines.append(f"| {entry['workload']} | " + " | ".join(number(entry["rows"][p]["ratio"]) for p in FIT_PATHS)
                     + " |")
    return "\n".join(lines) + "\n"
