"""The section on the plain, captured and compiled training step, from ``bench/results.json``."""

from __future__ import annotations


def capture_seconds(results: dict) -> str:
    """The seconds spent capturing and compiling each bound's step, a sentence per device."""
    parts = []
    for device, seconds in results.get("capture_seconds", {}).items():
        listed = "; ".join(f"{name}: {value:.1f} s" for name, value in seconds.items())
        parts.append(f"- {device}, set-up of the captured and compiled steps for both batch shapes of an epoch "
                     f"(128 and the last, 29), untimed in their rows: {listed}")
    return "\n".join(parts)


def compile_table(results: dict) -> str:
    """``compile=True``'s capture and compilation of each batch shape, from ``compile_time.py``, as a Markdown
    table."""
    rows = results.get("compile_seconds")
    if not rows:
        return ""
    lines = ["| model and objective | full batch (128), new graph | full batch, cached | last batch (29), new graph "
             "| last batch, cached |",
             "|---|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['bound']} | {row['new']['128']:.1f} s | {row['cached']['128']:.1f} s | "
                     f"{row['new']['29']:.1f} s | {row['cached']['29']:.1f} s |")
    header = min(row["header_s"] for row in rows)
    return f"""
Seconds of `fit(compile=True)`'s first two steps of each batch shape (`bench/compile_time.py`, a fresh process
each, inductor's imports excluded): the first traces the step and checks the graph against the plain step on the
same draws, the second, once the shape has come back, compiles the graph and checks it again. *New graph*: the first
compilation of this model's step on a machine where inductor has built its precompiled C++ header (which took
{header:.0f} s or more here, once per inductor cache folder, `TORCHINDUCTOR_CACHE_DIR`); *cached*: the same step
compiled again in a new process, as in a second run of the same model, which finds inductor's cache:

{chr(10).join(lines)}
"""


def fast_path_section(results: dict) -> str:
    """What the fast path is, how its figures above were measured, and what was tried."""
    return f"""
## The training step: plain, captured, compiled

`ppgen.fit(..., compile=False)` runs the plain step: the backend's loss through Pyro's effect
handlers (particle plate, guide trace, replay, `compute_log_prob`) and autograd, in Python, at every step.
`compile="capture"` traces that whole step, guide, model, log weights, objective and `torch.autograd.grad`, once
per batch shape into one graph of tensor operations (`make_fx` on fake tensors, parameters, buffers, data and rows
as inputs, random draws as operations of the graph), drops the operations whose results nothing reads, and replays
it; `compile=True` compiles that graph with inductor (`torch._inductor.compile`, no dynamo guards to check at each
call) once the batch shape comes back (the full batch at the second step, the last, smaller batch of an epoch at the
second epoch), with the default Adam's update and the guard's loss and gradient norm in the same graph (inside
`ppgen.fit`; the `compiled step` rows below run the step without them, in the hand-written loop). \
The model stays the user's Pyro
program. The first step of each batch shape runs the plain step and the graph on the same draws and compares loss,
gradients, buffers and the random stream (so does the first compiled step, its update too), and again every
{results["settings"].get("verify_every", "few hundred")} replays; a program the trace cannot take (data-dependent
control flow or shapes) or whose graph disagrees runs the plain step, and a shape whose compilation fails replays its
traced graph, each with a `FastPathFallback` warning (`tests/test_fastpath.py` checks every zoo model under every
backend, the reference set of users' Pyro programs under ELBO and IWAE, and the fallbacks). The seconds each shape's
capture took are logged at level INFO by the `ppgen.program.fastpath` logger.

Rows `captured step` and `compiled step` run ppgen's step in the hand-written loop, the capture (and compilation)
done in set-up; `ppgen.fit(compile='capture')` and `ppgen.fit(compile=True)` are whole fits, set-up, trace and
compilation included (inductor's cache already warm from the earlier rows), so their distance from the
`captured`/`compiled step` rows is what a fit of this length pays for them once.

{capture_seconds(results)}
{compile_table(results)}
Both sides update the parameters with `ppgen.fit`'s default optimiser, `torch.optim.Adam(fused=True)` (one kernel
per parameter; torch's own default on CPU is a Python loop over the parameters, some three times slower for the
784-400-32 VAE), so the ratios measure the loss and gradient alone.

Limits, as measured: the captured step without a compiler replays its graph one aten operation at a time from
Python, forward and backward (some two hundred operations for a VAE step), while the hand-written loop's backward
runs in autograd's C++ engine: it gains where Pyro's handlers dominate (the small VAE, the enumerated mixture) and
little on the 784-400-32 VAE, where the matrix products do. The compiled step beats the hand-written loop on both
VAEs; on the enumerated mixture it is {_ratio(results, "MixtureOfBernoullis", "compiled step"):.2f} of it, where
Pyro's enumeration scores every pixel under every component, a [10, B, 64] Bernoulli log-density and its gradient,
and the hand-written loss folds the pixels into two matrix products. A program
that falls back runs the plain step, whose ratio is the first row of each block: Pyro's handlers cost about a
millisecond per step, which is most of a small model's step and a tenth of a large one's. Not retried here:
`torch.compile` of the backend's loss as it is, which issue 13 measured at no speed-up (graph breaks in Pyro's
messenger stack); tracing the step first is what removes them. Neither `"capture"` nor `True` is the default:
a trace takes a second or so and a first compilation of a model tens of seconds (table above), more than the short
fits of the tests take in all; the default, `"auto"`, takes each where the fit is long enough to repay it (next
section).
"""


def _ratio(results: dict, figure: str, path: str, device: str = "cpu") -> float:
    """The ratio of the first figure on ``device`` whose name holds ``figure`` and whose ppgen path starts with
    ``path``."""
    return next(row["ratio"] for row in results["figures"]
                if row["device"] == device and figure in row["figure"] and row["ppgen_path"].startswith(path))
