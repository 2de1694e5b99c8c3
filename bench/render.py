"""Render ``docs/benchmarks.md`` from ``bench/results.json``; ``python bench/render.py`` re-renders without measuring."""

from __future__ import annotations

import json
from pathlib import Path

from render_step_table import step_table_section

BENCH = Path(__file__).resolve().parent


def number(value: float | None) -> str:
    """Three significant digits, without an exponent for the magnitudes measured here."""
    if value is None:
        return "n/a"
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"


def table(results: dict) -> str:
    """The figures as a Markdown table."""
    lines = ["| device | figure | ppgen path | ratio ppgen / hand-written |", "|---|---|---|---:|"]
    for row in results["figures"]:
        ratio = "n/a" if row["ratio"] is None else f"{row['ratio']:.2f}"
        lines.append(f"| {row['device']} | {row['figure']} | `{row['ppgen_path']}` | {ratio} ({row['unit']}) |")
    for device, why in results["skipped"].items():
        lines.append(f"| {device} | skipped: {why} | | |")
    return "\n".join(lines)


def capture_seconds(results: dict) -> str:
    """The seconds spent capturing and compiling each bound's step, a sentence per device."""
    parts = []
    for device, seconds in results.get("capture_seconds", {}).items():
        listed = "; ".join(f"{name}: {value:.1f} s" for name, value in seconds.items())
        parts.append(f"- {device}, set-up of the captured and compiled steps for both batch shapes of an epoch "
                     f"(128 and the last, 29), untimed in their rows: {listed}")
    return "\n".join(parts)


def _side_json(name: str) -> dict | None:
    path = BENCH / name
    return json.loads(path.read_text()) if path.is_file() else None


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
`ppgen.fit`; the `compiled step` rows below run the step without them, in the hand-written loop). The model stays the user's Pyro
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


#: how ``auto_compile_section`` names the path each of ``compile="auto"``'s last records per batch shape settles on.
SETTLED = {"stay on the plain path": "plain", "run the plain path": "plain", "replay the captured graph": "captured",
           "replay the traced graph": "captured", "run compiled": "compiled"}


def auto_paths(records: list[str]) -> str:
    """The path ``compile="auto"`` settled on for each batch shape, from its INFO records: ``"128: captured, 29:
    plain"``."""
    paths = {}
    for record in records:
        rows, _, rest = record.removeprefix("compile='auto': batches of ").partition(" rows ")
        for phrase, path in SETTLED.items():
            if rest.startswith(phrase):
                paths[rows] = path
    return ", ".join(f"{rows}: {path}" for rows, path in paths.items()) or "n/a"


def auto_compile_section() -> str:
    """The section on ``compile="auto"``, from ``bench/auto_compile.json`` where ``bench/auto_compile.py`` has run."""
    data = _side_json("auto_compile.json")
    if data is None:
        return ""
    priors = data["priors"]
    cost_lines = ["| model and objective | plain step | captured | compiled | first trace | later trace | cold "
                  "compilation | warm | capture repays after (first trace, later) | cold compilation, in traces | "
                  "warm / cold | compiled / captured |", "|---|" + "---:|" * 11]
    for row in data["rows"]:
        cold, warm, c = row["costs"]["cold"], row["costs"]["warm"], row["costs"]
        cost_lines.append(
            f"| {row['bound']} | {cold['plain_ms']:.2f} ms | {cold['captured_ms']:.2f} ms | "
            f"{cold['compiled_ms']:.2f} ms | {cold['first_trace_s']:.2f} s | {cold['trace_s']:.2f} s | "
            f"{cold['compile_s']:.1f} s | {warm['compile_s']:.1f} s | {c['capture_break_even']['first']:.0f}, "
            f"{c['capture_break_even']['later']:.0f} steps | {c['cold_compile_traces']:.0f} | "
            f"{c['warm_of_cold']:.2f} | {c['compiled_ratio']:.2f} |")
    fit_lines = []
    for row in data["rows"]:
        if not row["fits"]:
            continue
        fit_lines += ["", f"{row['bound']}: seconds of a whole fit, as a ratio to `compile=False`'s of the same "
                      f"length (the median of {data['repeats']} rounds; `auto`, worst round: the largest of them):", "",
                      "| epochs | steps | `compile=False` | `\"capture\"` | `True` | `\"auto\"` | "
                      "`\"auto\"`, worst round | where `\"auto\"` went in the last round, by batch rows |",
                      "|---:|---:|---:|---:|---:|---:|---:|---|"]
        for fit in row["fits"]:
            fit_lines.append(f"| {fit['epochs']} | {fit['steps']} | {fit['plain_s']:.1f} s | "
                             f"{fit['capture_ratio']:.2f} | {fit['compiled_ratio']:.2f} | {fit['auto_ratio']:.2f} | "
                             f"{fit['auto_max_ratio']:.2f} | {auto_paths(fit['auto_choices'])} |")
    return f"""
## The default: `compile="auto"`

`ppgen.fit`'s default, `compile="auto"` (`ppgen.program.automatic`), chooses per batch shape between the plain step,
the captured and the compiled one from the steps of that shape the fit has left and costs it measures as it runs: the
first step of a shape runs plain, untimed; the next {priors['PROBES']} plain steps are timed (t_p, the least of them:
a loaded machine only adds time); the shape is captured where its steps left reach the steps a trace repays (before
any trace of the fit, the prior: {priors['FIRST_CAPTURE_BREAK_EVEN']} steps in a process that has not traced yet,
whose first trace also pays torch's one-time set-up, {priors['CAPTURE_BREAK_EVEN']} in one that has; after, this fit's
own trace time over its own saving per step); the next {priors['PROBES']} replays are timed (t_c), and a replay no
faster than the plain step goes back to it; the graph is compiled where the steps left times the expected saving
per step repay the expected compilation: warm where ppgen's record beside inductor's on-disk cache (FX-graph and
AOT-autograd caches, on by default, in `TORCHINDUCTOR_CACHE_DIR`, by default `torchinductor_<user>` in the system's
temporary folder, never the working folder) says this program's graph was compiled before, as in a second run of
the same model: the seconds and the compiled step's gain it recorded then (a warm compilation, before one is
recorded, {priors['WARM_OF_COLD']} of the cold one); cold otherwise, {priors['COLD_COMPILE_TRACES']} traces' time,
with a compiled step {priors['COMPILED_RATIO']} of the captured one (the least gain measured, on the 784-400-32
VAE). A fall-back under `"auto"` is logged at level INFO (`ppgen.program.automatic`), never warned: the user asked
for no path, and the plain step gives the same fit; every choice is logged there too, with its figures.

The costs and the break-even figures (`{data['command']}`, {data['date']}, one thread; CPU time of the process and
of the children it waited for, inductor's g++ among them, so that the shared 2-core machine's load, tens of other
jobs at the time, leaves them alone; each workload in fresh processes over one new inductor cache folder: the first
compiles the graph (cold, inductor's precompiled header made before), the second finds it (warm); batch 128, step
times the least of 20 calls):

{chr(10).join(cost_lines)}

The rule's priors wait some three times longer than these break-evens: the rule times with the wall clock, as a
user waits, and a loaded machine stretches a trace's or a compilation's seconds more than a step's milliseconds (the
same measurement in wall time, under a load average of 18 on the 2 cores, gave break-evens of 779 and 1330 steps
on the small VAE). A fit shorter than that stays on the plain step, whose cost under `"auto"` is the rule's
bookkeeping, a dictionary look-up a step.
{chr(10).join(fit_lines)}

Each path ran in a fresh process of its own, the fits of every length in turn, shortest first, the four processes
side by side in each round; a fit's CPU time from the call to the return (set-up, trace and compilation included),
every fit of a workload over one inductor cache folder warmed by one fit of each path before, so that
`compile=True` and `"auto"` compile warm, as in a second run of the same model. `"auto"`'s first trace in its
process is that of its first fit long enough to capture, as in a user's process that runs one fit; `"capture"`'s
and `True`'s that of their one-epoch fit, whose ratio holds torch's one-time set-up of the trace. The rule's own
timings are wall-clock: where a round's three replays, timed just after the trace on the loaded machine, came out
no faster than its plain steps, that round's fit went back to the plain step, which the last column shows for the
last round only. `"auto"` compiles only where it prices the compilation as repaid; with no record of its own of an
earlier compilation of this model (a `compile=True` run writes none), it prices it cold, which a few thousand steps
do not repay, while `True`'s column shows what the warm one gains there. On fits of a fraction of a second a single
round's ratio swings by a tenth either way (hundredths of a second of CPU time); `"auto"` ran the plain step on
those, as the last column shows. A compilation repays, against the captured step, after {compile_break_even(data)}.
"""


def compile_break_even(data: dict) -> str:
    """The steps of one batch shape after which its compilation repays against the captured step, cold and warm, for
    each workload of ``bench/auto_compile.json``: a sentence's end."""
    parts = []
    for row in data["rows"]:
        cold, warm = row["costs"]["cold"], row["costs"]["warm"]
        steps = [run["compile_s"] * 1e3 / (run["captured_ms"] - run["compiled_ms"]) for run in (cold, warm)]
        parts.append(f"{steps[0]:,.0f} steps cold and {steps[1]:,.0f} warm on {row['bound']}")
        parts[-1] = parts[-1] if min(steps) > 0 else f"never on {row['bound']}"
    return "; ".join(parts) + " (the compiled step's saving over the captured one at 128 rows, as measured above)"


def gpu_section() -> str:
    """The GPU figures at batch 1024, from ``bench/gpu.json`` where ``bench/gpu.py`` has run on a GPU."""
    data = _side_json("gpu.json")
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


#: the columns of the GPU tables: the paths of ``bench/gpu.py``.
STEPPED_PATHS = ["captured, host guard", "captured, device guard", "compiled, host guard", "compiled, device guard"]
FIT_PATHS = ["fit, plain", "fit, capture", "fit, compiled"]


def _ratio(results: dict, figure: str, path: str, device: str = "cpu") -> float:
    """The ratio of the first figure on ``device`` whose name holds ``figure`` and whose ppgen path starts with
    ``path``."""
    return next(row["ratio"] for row in results["figures"]
                if row["device"] == device and figure in row["figure"] and row["ppgen_path"].startswith(path))


def evaluate_section() -> str:
    """``bench/evaluate.py``'s table: log p(x) throughput and peak memory against the hand-written chunked loop."""
    data = _side_json("evaluate.json")
    if data is None:
        return ""
    lines = ["| N | K | throughput, ppgen / hand-written | `compile=True`, a new fit's first query | "
             "`compile=True`, a later query | peak MiB, ppgen | peak MiB, hand-written |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for row in data["rows"]:
        compiled = [f"{row[key]:.2f}" if key in row else "n/a"
                    for key in ("compiled_first_throughput_ratio", "compiled_throughput_ratio")]
        lines.append(f"| {row['n']} | {row['k']} | {row['throughput_ratio']:.2f} | {' | '.join(compiled)} | "
                     f"{row['ppgen_peak_mib']:.0f} | {row['handwritten_peak_mib']:.0f} |")
    budget = ["| particles x points per pass | peak MiB, ppgen | peak MiB, hand-written | throughput ratio |",
              "|---:|---:|---:|---:|"]
    for row in data["budgets"]:
        budget.append(f"| {row['particle_points_per_pass']} | {row['ppgen_peak_mib']:.0f} "
                      f"| {row['handwritten_peak_mib']:.0f} | {row['throughput_ratio']:.2f} |")
    skipped = ", ".join(f"N={row['n']} K={row['k']}" for row in data["skipped"]) or "none"
    return f"""
## log p(x) at scale

`fit.log_prob(x, k=K)` against a hand-written chunked loop of the same estimate, both in passes of at most
`ppgen.queries.density.PARTICLE_POINTS_PER_PASS` = {data['default_particle_points_per_pass']} particles x points
(the chunk budget: set that attribute to trade memory for speed). `fit.log_prob(x, k=K, compile=True)` traces a
pass once per chunk shape and compiles it with inductor when the shape comes back (a shape met once, such as the last,
smaller chunk, is replayed as traced until a later query meets it again); the fit keeps the graphs for its later
queries, which check each graph once more against the plain pass on its first chunk. The first query of a fit pays
the capture and compilation (seconds; inductor's cache warm after the first configuration), which the larger
queries repay; a later query replays. Throughput ratio above 1: ppgen faster. Peak: the resident
set's peak above its level before the query. Measured {data['date']} on a shared 2-core machine, interleaved,
torch.set_num_threads(1), by `{data['command']}`; left out as too long here (run them with `--full`): {skipped}.

{chr(10).join(lines)}

Peak memory against the chunk budget, N = 1000, K = 1000 (measured in one process: a query whose memory the
allocator had kept from an earlier one reads lower, down to 0):

{chr(10).join(budget)}
"""


def scale_section() -> str:
    """``bench/scale.py``'s picture and where the per-step overhead stops mattering."""
    data = _side_json("scale.json")
    if data is None:
        return ""
    rows = {(row["varied"], row["setting"][row["varied"]]): row for row in data["rows"]}
    biggest = max((row for row in data["rows"] if row["varied"] == "batch size"),
                  key=lambda row: row["setting"]["batch size"])
    smallest = min((row for row in data["rows"] if row["varied"] == "batch size"),
                   key=lambda row: row["setting"]["batch size"])
    ratio = lambda row, side: row[side] / row["handwritten"]  # noqa: E731
    compiled = (f"; the compiled step's: from {ratio(smallest, 'compiled'):.2f} to {ratio(biggest, 'compiled'):.2f}"
                if "compiled" in smallest else "")
    return f"""
## How the step time scales

![Step time as a ratio to hand-written PyTorch against batch size, width, K and N](images/scale.png)

`bench/scale.py` varies one setting at a time from the speed figures' (batch 128, width 400, K = 1, N = 1437).
The plain step's ratio goes from {ratio(smallest, 'plain'):.2f} at batch {smallest['setting']['batch size']} to
{ratio(biggest, 'plain'):.2f} at batch {biggest['setting']['batch size']} (the captured step's: from
{ratio(smallest, 'captured'):.2f} to {ratio(biggest, 'captured'):.2f}{compiled}): the fixed cost per step matters
less as the work per step grows. The size of the data set N leaves it where it was (plain step:
{", ".join(f"{ratio(rows[key], 'plain'):.2f}" for key in sorted(k for k in rows if k[0] == 'N'))} for N =
{", ".join(str(key[1]) for key in sorted(k for k in rows if k[0] == 'N'))}).
Measured {data['date']} on a shared 2-core machine, interleaved,
torch.set_num_threads(1), {data['steps']} steps x {data['repeats']} rounds per point.
"""


def fashion_section() -> str:
    """``bench/fashion.py``'s time per epoch on Fashion-MNIST, as ratios."""
    data = _side_json("fashion.json")
    if data is None:
        return ""
    paths = {"plain": "`ppgen.fit`", "capture": "`ppgen.fit(compile='capture')`",
             "compiled": "`ppgen.fit(compile=True)`"}
    shown = [path for path in paths if all(f"{path}_ratio" in row for row in data["rows"])]
    lines = ["| objective | " + " | ".join(f"{paths[path]} / hand-written" for path in shown) + " |",
             "|---|" + "---:|" * len(shown)]
    for row in data["rows"]:
        lines.append(f"| {row['bound']} | " + " | ".join(f"{row[f'{path}_ratio']:.2f}" for path in shown) + " |")
    return f"""
## Fashion-MNIST, one epoch

Time per epoch of `VAE(x_dim=784, z_dim=32, hidden=(400,))` on the {data['images']} binarised training images
(batch 128, {data.get('optimizer', 'torch.optim.Adam')} on both sides), after an untimed warm-up epoch of each path on
the first 2048 images, one epoch per run, the paths interleaved, the median of {data['repeats']} rounds (the capture's
trace and the compilation, inductor's cache warm, counted in their epochs), measured {data['date']} on a shared 2-core machine, torch.set_num_threads(1), by
`{data['command']}`:

{chr(10).join(lines)}
"""


def sanity(results: dict) -> str:
    """The hand-written reference checked against ppgen, as a list."""
    lines = []
    for device, checks in results["sanity"].items():
        for name, check in checks.items():
            diff = {k: v for k, v in check.items() if k not in ("ppgen", "handwritten")}
            detail = ", ".join(f"{k.replace('_', ' ')} {v:.2g}" for k, v in diff.items())
            lines.append(f"- {device}, {name} on the same weights and draws: ppgen {check['ppgen']:.5f}, "
                         f"hand-written {check['handwritten']:.5f} ({detail})")
        for bound, loss in results["final_training_loss"].get(device, {}).items():
            lines.append(f"- {device}, {bound}, mean loss of the last training epoch after all timed runs: "
                         f"ppgen.fit {loss['ppgen.fit']:.3f}, hand-written {loss['handwritten']:.3f}")
    return "\n".join(lines)


def memory_method(results: dict) -> str:
    """How the peaks were read, from the memory rows."""
    methods = sorted({f"`{row['method']}` on {row['device']}" for row in results["figures"] if "method" in row})
    return ", ".join(methods) or "no memory figures"


def exact_table(table: dict) -> str:
    """The exact-likelihood families: test log-likelihood per image, size and training time, one data set a block."""
    lines = ["| data | model | test log-likelihood (nats per image) | how it is measured | parameters "
             "| training time / VAE's |", "|---|---|---:|---|---:|---:|"]
    for data, label in (("binary", "binarised digits"), ("grey", "digits, 17 grey levels (0..16)")):
        for name, row in table[data].items():
            value = f"{row['nats']:.2f}"
            if "elbo" in row:
                value = f"{row['elbo']:.2f} (ELBO); {row['nats']:.2f} (IWAE)"
            ratio = "n/a (closed form)" if row["time_ratio"] is None else f"{row['time_ratio']:.2f}"
            lines.append(f"| {label} | {name} | {value} | {row['estimate']} | {row['parameters']} | {ratio} |")
    return "\n".join(lines)


def exact_section(results: dict) -> str:
    """The page's section on the exact-likelihood families, empty when they were not measured."""
    if "exact_families" not in results:
        return ""
    table = results["exact_families"]
    settings = table["settings"]
    worst = "is" if table["fvsbn_worst_of_autoregressive"] else "is not"
    return f"""
## Exact-likelihood families on the digits

Test log-likelihood of the 360 held-out digits, in nats per image (higher is better), by `bench/exact_families.py`
(`python bench/exact_families.py` reruns this table alone, about {table['seconds']:.0f} s here). Every model is
fitted with the same budget: {settings['epochs']} epochs, batch {settings['batch_size']}, Adam with lr
{settings['lr']}, seed {settings['seed']}, one thread. Exact models (the baselines, FVSBN, NADE, MADE) report
log p(x) itself; the VAEs their IWAE-{settings['iwae_k']} estimate, a stochastic lower bound close to log p(x);
the flows, fitted to uniformly dequantised pixels (`models.DequantizedFlow`: v = x + u, u ~ U[0, 1)^64, the flow
on the pixels' own unit-bin scale, so no rescaling term), the standard bound log P(x) >= E_u[log p(x + u)]
({settings['elbo_particles']} draws of u per image) and the tighter IWAE-{settings['flow_k']} estimate, both
lower bounds on the discrete log P(x). The two data sets differ (2 against 17 values per pixel): compare rows
within a block only. Training time is the wall time of `ppgen.fit` as a ratio to the VAE's, measured in the same
run on a shared 2-core machine.

{exact_table(table)}

On binarised MNIST pytorch-generative reports FVSBN 96.58, NADE 85.65 and MADE 84.87 nats (negative
log-likelihoods): FVSBN worst of the three. On the binarised digits that ordering {worst} reproduced: FVSBN
{worst} the worst of the three autoregressive models here.
"""


def latent_results() -> dict | None:
    """The last results of ``latent_families.py``, if it has run."""
    path = BENCH / "latent_families.json"
    return json.loads(path.read_text()) if path.is_file() else None


def family_tables(latent: dict) -> str:
    """One Markdown table per data set: test log-likelihood and training time of each latent-variable family."""
    settings, parts = latent["settings"], []
    for data, block in latent["families"].items():
        lines = [f"**{data}**: {block['data']}; {block['epochs']} epochs each.", "",
                 f"| model | test log-likelihood, IWAE-{settings['k']} (nats per image) | final training loss "
                 f"(-ELBO) | training wall time | training step time / VAE's |", "|---|---:|---:|---:|---:|"]
        for row in block["rows"]:
            lines.append(f"| `{row['model']}` | {row['test_log_likelihood']:.2f} ± {row['standard_error']:.2f} "
                         f"| {row['final_training_loss']:.2f} | {row['train_seconds']:.0f} s "
                         f"| {row['time_ratio_to_vae']:.2f} |")
        parts.append("\n".join(lines))
    for data, why in latent["skipped"].items():
        parts.append(f"**{data}**: skipped: {why}")
    return "\n\n".join(parts)


def classification_tables(latent: dict) -> str:
    """One Markdown table per data set: accuracy and log loss against the number of labels, one row per size and
    classifier."""
    parts = []
    blocks = sorted(latent["classification"]["blocks"].items(), key=lambda item: item[0] != "digits")
    for data, block in blocks:
        ssvae = block["ssvae"]
        cpu = f" ({block['cpu_seconds']:.0f} s of CPU time, one thread)" if "cpu_seconds" in block else ""
        lines = [f"**{data}**: {block['data']}; the SSVAE built as "
                 f"`models.SSVAE(x_dim=D, hidden={tuple(ssvae['hidden'])})`, fitted for {ssvae['epochs']} epochs "
                 f"(ELBO, Adam, lr {ssvae['lr']}, batch {ssvae['batch_size']}); "
                 f"measured in {block['seconds']:.0f} s of wall time{cpu}.", "",
                 "| labelled images | classifier | test accuracy | test log loss |", "|---:|---|---:|---:|"]
        for row in block["rows"]:
            lines.append(f"| {row['n_labels']} | {row['classifier']} | {row['accuracy']:.3f} "
                         f"| {row['log_loss']:.3f} |")
        parts.append("\n".join(lines))
    for data, why in latent["classification"]["skipped"].items():
        parts.append(f"**{data}**: skipped: {why}")
    return "\n\n".join(parts)


def latent_section(latent: dict | None) -> str:
    """The page's section on the latent-variable families and on classification."""
    if latent is None:
        return ""
    settings = latent["settings"]
    measured = f", these tables in {latent['families_seconds']:.0f} s" if "families_seconds" in latent else ""
    return f"""
## Latent-variable families

Each family built with the zoo's defaults (`models.NAME(x_dim=D)`), fitted with `{settings['inference']}`, Adam
(lr {settings['lr']}, batch {settings['batch_size']}), seed {settings['seed']}, {settings['threads']} torch thread;
log p(x) is the importance-sampled estimate `fit.log_prob(test, k={settings['k']})` (± one standard error over
the test images). Times were measured on a shared 2-core machine whose load changes during a run: the total
training wall time is shown as measured, and the ratio to the VAE is that of a training step (ELBO, backward,
Adam, batch 128), the median of rounds in which the four families take their steps in turn.
Written by `bench/latent_families.py` (part of `make bench`, or `bench/run.py --suite latent`) to
`bench/latent_families.json`{measured}.

{family_tables(latent)}

## Generative against discriminative classification

`ppgen.GenerativeClassifier` fits one density p(x|y) per class to the labelled images and classifies by Bayes'
rule; `models.SSVAE` (Kingma et al.'s M2) is fitted to every training image, the labels of the others set to
-1 (unknown) and summed out, and classifies by its posterior p(y|x) = E_q(z|x)[p(y|x, z)] (`fit.encode(x,
SSVAE.unlabelled(n), site="y")`): it alone uses the unlabelled images, which is its point. It has no
separate classifier q(y|x) and so none of M2's extra classification loss (Kingma et al.'s alpha term): its
p(y|x) is learnt from the bound on the joint likelihood alone. scikit-learn's `LogisticRegression` (default
regularisation) is the discriminative reference. Each figure is the mean over the seeds shown; times measured
on a shared 2-core machine, one torch thread.

{classification_tables(latent)}
"""


def burda_gap(rows: list[dict]) -> float | None:
    """Test log p(x) of IWAE at k=50 minus the ELBO-trained network's, in nats, where both rows are there."""
    by_objective = {row["objective"]: row["test_iwae"] for row in rows}
    if "IWAE k=50" not in by_objective or "ELBO" not in by_objective:
        return None
    return by_objective["IWAE k=50"] - by_objective["ELBO"]


#: Burda et al. (2015), Table 1, on (binarised) MNIST: test log p(x) estimated with k = 5000 and the active units,
#: for their one-stochastic-layer network (784-200-200-50, as the Fashion-MNIST ``VAE`` here) and two-stochastic-layer
#: one (784-100-100-100-50-50-50, as the ``HVAE``), by the objective of each row of the table here; the ELBO row is
#: their VAE at k = 1. Another data set than the rows beside them: a reader's reference for scale and ordering only.
BURDA_MNIST = {
    "VAE": {"ELBO": (-86.76, "19"), "IWAE k=1": (-86.76, "19"), "IWAE k=5": (-85.54, "22"),
            "IWAE k=50": (-84.78, "25")},
    "HVAE": {"ELBO": (-85.33, "16+5"), "IWAE k=1": (-85.33, "16+5"), "IWAE k=5": (-83.89, "21+5"),
             "IWAE k=50": (-82.90, "26+7")},
}


def burda_block(key: str, block: dict) -> list[str]:
    """One data set and network of Burda's table: its settings, its rows, and the VAE-vs-IWAE(k=50) gap; the
    Fashion-MNIST blocks with Burda et al.'s MNIST figures of the same network and objective beside them."""
    seconds = "" if block["seconds"] is None else f", in {block['seconds']:.0f} s"
    command = f" Command: `{block['command']}`." if "command" in block else ""
    reference = BURDA_MNIST.get(key.split("/")[-1], {}) if key.startswith("fashion-mnist") else {}
    lines = [f"**{key}**: `{block['network']}`, {block['epochs']} epochs, on {block['data']}; evaluated by "
             f"`fit.evaluate(test, k={block['eval_k']})`. Measured {block['date']} with {block['torch_threads']} "
             f"torch thread(s){seconds}.{command}", "",
             f"| objective | test log p(x), IWAE_{block['eval_k']} | test ELBO | PSIS k-hat (mean; points > 0.7) "
             "| active units (z1+z2) | training s (of CPU) | evaluation s (of CPU) |"
             + (" Burda et al., MNIST, another data set: log p(x) (active units) |" if reference else ""),
             "|---|---:|---:|---:|---:|---:|---:|" + ("---:|" if reference else "")]
    for row in block["rows"]:
        cpu = {part: f" ({row[f'{part}_cpu_seconds']:.0f})" if f"{part}_cpu_seconds" in row else ""
               for part in ("train", "eval")}
        evaluation = f"{row['eval_seconds']:.0f}{cpu['eval']}" if "eval_seconds" in row else "n/a"
        lines.append(f"| `{row['backend']}` | {row['test_iwae']:.3f} | {row['test_elbo']:.3f} | "
                     f"{number(row['khat_mean'])}; {row['khat_above_0.7']} | "
                     f"{'+'.join(str(n) for n in row['active_units'])} | {row['train_seconds']:.0f}{cpu['train']} | "
                     f"{evaluation} |" + (burda_reference(reference, row["objective"]) if reference else ""))
    return lines + [""]


def burda_gap_mnist(network: str) -> float:
    """Burda et al.'s MNIST gap of ``network``: log p(x) of IWAE at k=50 minus the VAE's at k=1, in nats."""
    return BURDA_MNIST[network]["IWAE k=50"][0] - BURDA_MNIST[network]["ELBO"][0]


def burda_reference(reference: dict, objective: str) -> str:
    """The cell of Burda et al.'s MNIST figure for ``objective``, or n/a (DReG is not in their table)."""
    if objective not in reference:
        return " n/a |"
    log_px, active = reference[objective]
    return f" {log_px:.2f} ({active}) |"


def burda(results: dict) -> str:
    """The section on Burda et al.'s table and the encoder-gradient SNR, if ``bench/burda.py`` has run."""
    if "burda" not in results:
        return ""
    entry, settings = results["burda"], results["burda"]["settings"]
    lines = [
        "## Importance-weighted bounds: the structure of Burda et al. (2015), Table 1",
        "",
        "Per data set, a one-stochastic-layer VAE and the two-stochastic-layer HVAE, each trained by each objective",
        f"from the same initial weights (batch {settings['batch_size']}, {settings['optimizer']}, lr {settings['lr']}, "
        f"seed {settings['seed']}), then",
        "evaluated on the test split by `fit.evaluate`. Active units: latent coordinates u with Cov_x(E_q[z_u|x]) > "
        f"{settings['active_threshold']}",
        "over the test set (Burda's measure), counted per stochastic layer as Burda reports them (z1+z2; for z2,",
        "E_q(z1|x) E_q(z2|z1)[z2] over draws of z1). Burda et al. found IWAE at k=50 better than the VAE (k=1) by "
        f"{burda_gap_mnist('VAE'):.2f} nats",
        f"with one stochastic layer and by {burda_gap_mnist('HVAE'):.2f} with two, on MNIST (Table 1); here, with far "
        "smaller budgets, the gap",
        "measured (test log p(x) of the IWAE k=50 row minus the ELBO row's):",
        "",
        "| data set / network | IWAE (k=50) - VAE, nats | Burda et al., MNIST |",
        "|---|---:|---:|",
    ]
    for key, block in entry["blocks"].items():
        gap = burda_gap(block["rows"])
        network = key.split("/")[-1]
        reference = f"{burda_gap_mnist(network):+.2f}" if network in BURDA_MNIST else "n/a"
        lines.append(f"| {key} | {'n/a' if gap is None else f'{gap:+.2f}'} | {reference} |")
    lines.append("")
    for key, block in entry["blocks"].items():
        lines += burda_block(key, block)
    if "snr" in entry:
        snr_entry = entry["snr"]
        ks = sorted({row["k"] for row in snr_entry["rows"]})
        estimators = list(dict.fromkeys(row["estimator"] for row in snr_entry["rows"]))
        snr = {(row["k"], row["estimator"]): row["median_snr"] for row in snr_entry["rows"]}
        lines += [
            "Encoder-gradient signal-to-noise ratio |E g| / std(g) of IWAE_k's gradient estimators, per parameter "
            f"over {snr_entry['repeats']}",
            f"estimates on {snr_entry['batch']} test points, the median over the encoder's parameters, on "
            f"`{snr_entry['network']}`",
            f"trained by the ELBO for {snr_entry['epochs']} epochs on the digits (measured {snr_entry['date']}):",
            "",
            "| k | " + " | ".join(estimators) + " |",
            "|---:|" + "---:|" * len(estimators),
        ]
        for k in ks:
            lines.append(f"| {k} | " + " | ".join(f"{snr[(k, e)]:.3f}" for e in estimators) + " |")
        lines.append("")
    lines += ["All measured on a shared 2-core machine: seconds are wall time there, not a speed figure, and the CPU "
              "seconds of the",
              "process beside them are about what one idle core would take. Rerun with",
              "`python bench/burda.py` (`--help`: `--datasets`, `--networks`, `--epochs`, `--k-eval`, `--train-size`, "
              "`--test-size`;",
              "`--train-size 0 --test-size 0` runs Fashion-MNIST full size) or `make bench`.",
              ""]
    return "\n".join(lines)


def load_note(entry: dict) -> str:
    """The machine's load while ``bench/distributed.py`` ran, where it was recorded."""
    load = entry.get("load_average")
    if load is None:
        return ""
    return (f" The machine's 1-minute load average was between {load['min']:.1f} and {load['max']:.1f} during the "
            f"run (on 2 cores): the two processes' steps wait for each other at every all-reduce, so the slower of "
            f"them sets the pace.")


#: the rows of the data-parallel table: a path of ``bench/distributed.json``, and what it is.
DATA_PARALLEL_PATHS = {"ppgen": "ppgen, buckets during backward",
                       "ppgen, one bucket": "ppgen, one bucket after backward",
                       "ppgen, captured": "ppgen, `compile=\"capture\"` (buckets after the step)",
                       "handwritten": "hand-written, `DistributedDataParallel`"}


def distributed_section() -> str:
    """The section on data-parallel training, from ``bench/distributed.json`` where ``bench/distributed.py`` has run."""
    path = BENCH / "distributed.json"
    if not path.is_file():
        return ""
    entry = json.loads(path.read_text())
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
over DDP's, at least 1 where its two processes are as efficient as DDP's.{load_note(entry)}

| network | path | one process | two processes | speed-up, one over two | over DDP's |
|---|---|---:|---:|---:|---:|
{chr(10).join(rows)}

What the overlap buys, the one bucket's time per step over the buckets': {gains or 'not measured'}. ppgen over
hand-written: {ratios}. Every round's time is in `bench/distributed.json` (`runs_ms_per_step`): under a load like
this one a path's time swings between rounds by up to 5x. GPU (NCCL): {entry['gpu'] or 'see the results file'}.
"""


def _mean_sd(entry: dict, key: str, digits: int) -> str:
    """``mean +- sd`` over seeds (the mean alone for one seed)."""
    sd = entry.get(f"{key}_sd")
    return f"{entry[key]:.{digits}f}" + ("" if sd is None else f" +- {sd:.{digits}f}")


def energy_section() -> str:
    """``bench/energy_score_diffusion.py``'s table: energy models, a DDPM and a flow on the same data."""
    data = _side_json("energy_score_diffusion.json")
    if data is None:
        return ""
    lines = ["| data | model, objective | seeds | test log p(x), nats | what log p(x) is "
             "| ESS of the AIS chains (mean) | MMD^2 | C2ST accuracy | fit time / the flow's |",
             "|---|---|---:|---:|---|---:|---:|---:|---:|"]
    checks = []
    for entry in data["summary"]:
        ess = f"{entry['ess']:.0f} of {data['settings'][entry['data']]['chains']}" if "ess" in entry else ""
        lines.append(f"| {entry['data']} | {entry['method']} | {entry['seeds']} | {_mean_sd(entry, 'log_p', 3)} | "
                     f"{entry['log_p_kind']} | {ess} | {_mean_sd(entry, 'mmd', 4)} | {_mean_sd(entry, 'c2st', 3)} | "
                     f"{_mean_sd(entry, 'fit_time_ratio_to_flow', 2)} |")
        if "nce_log_normalizer" in entry:
            checks.append(f"{entry['data']}: c = {_mean_sd(entry, 'nce_log_normalizer', 2)}, AIS log Zhat = "
                          f"{_mean_sd(entry, 'log_z', 2)}")
    return f"""
## Energy, score and diffusion

The table of [tutorial 12](tutorials/energy_score_diffusion.py) over seeds: on two moons and the ring of 8 Gaussians
(1000 training and 500 test points; the ring's modes have standard deviation 0.02) and on the dequantised digits
(1437 and 360, one seed), a flow (`RealNVP`) by `inference.MLE()`; an `EnergyModel` by denoising score matching
(sigma = 0.1), by sliced score matching, and noise-conditional by denoising score matching over
{len(data['settings']['moons']['levels'])} levels (digits: {len(data['settings']['digits']['levels'])}) from 1 to
{data['settings']['moons']['levels'][-1]} (digits: {data['settings']['digits']['levels'][-1]}); an `EnergyModel`
by `inference.NCE(ratio=4)` and by `inference.ContrastiveDivergence(alpha=0.1)`; a `DDPM` of {data['ddpm_steps']} steps
by `inference.ELBO(kl="analytic")`. Test log p(x)
is the flow's exact log-density, the DDPM's variational bound (`fit.log_prob`, a lower bound on log p(x)), and an
energy's -E(x) - log Zhat, log Z by annealed importance sampling from a Gaussian fitted to the training data
(`ppgen.queries.annealing.log_normalizer`; biased high by the bias of log Zhat, which is low: trust it where the
effective sample size is a good fraction of the chains, never on the digits here). The draws, as many as test
points, come from `fit.sample`, or for an energy from {data['sampler_steps']} Metropolis-adjusted Langevin steps
(annealed Langevin over the levels for the noise-conditional one) started at that Gaussian, and are scored against
the test set by `sample_quality(..., metrics=("mmd", "c2st"))` (C2ST 0.5: indistinguishable). Mean +- standard
deviation over seeds (the networks' initial weights differ between the runs too); fit time as a ratio to the flow's
fit of the same seed in the same run, on a loaded machine (a rough figure). Measured
{data['date']} on a shared 2-core machine, torch.set_num_threads(1), by
`{data['command']}` (part of `make bench`; `--skip-energy` keeps these).

{chr(10).join(lines)}

NCE's learnt log-normaliser c against the AIS estimate of log Z of the same model: {"; ".join(checks)}.
"""
def _metric(row: dict, name: str, digits: int = 3) -> str:
    """A sample metric's value (with its p-value where it has one), or n/a."""
    score = row.get(name)
    if not score or score["value"] is None:
        return "n/a"
    text = f"{score['value']:.{digits}f}"
    return text + (f" (p = {score['p_value']:.2g})" if score.get("p_value") is not None else "")


def choice_of_d_section() -> str:
    """``bench/choice_of_d.py``'s tables: the objectives on the 2-D sets, and generators against VAEs on
    Fashion-MNIST."""
    data = _side_json("choice_of_d.json")
    blocks = [data[key] for key in ("moons", "ring") if data is not None and key in data]
    if not blocks:
        return ""
    commands = data.get("commands", {})
    how = "; ".join(f"{block['rows'][0]['data']}: {block.get('date', data['date'])}, {block['wall_seconds']:.0f} s of "
                    f"wall time, `{commands.get(key, data['command'])}`"
                    for key, block in zip(("moons", "ring"), blocks))
    two_d = {"data": blocks[0]["data"], "rows": [row for block in blocks for row in block["rows"]]}
    lines = ["| data | objective | test log p(x) (nats per point) | MMD^2 (permutation p-value) | C2ST accuracy | "
             "modes captured | high-quality draws | seconds per epoch / MMD's | epochs, batch |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row in two_d["rows"]:
        ring = "modes" in row
        log_p = "n/a (no density)" if row["log_p"] is None else f"{row['log_p']:.3f}"
        modes = f"{row['modes']['value']:.0f} of 8" if ring else ""
        quality = _metric(row, "high_quality") if ring else ""
        lines.append(f"| {row['data']} | {row['objective']} | {log_p} | {_metric(row, 'mmd', 4)} | "
                     f"{_metric(row, 'c2st')} | {modes} | {quality} | {row['epoch_time_ratio_to_mmd']:.2f} | "
                     f"{row['epochs']}, {row['batch_size']} |")
    fashion = data.get("fashion", {})
    if "rows" in fashion:
        flines = ["| model, objective | Fréchet distance, classifier features | MMD^2 (permutation p-value) | "
                  "C2ST accuracy | test log p(x), IWAE (nats per image) | seconds per epoch / MMD's |",
                  "|---|---:|---:|---:|---:|---:|"]
        for row in fashion["rows"]:
            log_p = "n/a (no density)" if row["log_p"] is None else f"{row['log_p']:.1f} ± {row['log_p_se']:.1f}"
            flines.append(f"| {row['model']} | {_metric(row, 'frechet', 2)} | {_metric(row, 'mmd', 4)} | "
                          f"{_metric(row, 'c2st')} | {log_p} | {row['epoch_time_ratio_to_mmd']:.2f} |")
        fashion_text = f"""On {fashion['data']}, {fashion['epochs']} epochs each: `models.ConvGenerator(x_dim=784,
image_shape=(1, 28, 28))` (z of 16 dimensions, DCGAN-style) fitted by `Adversarial(divergence="js")` (its default
`models.ConvCritic`, batch 64, Adam lr 2e-4, betas (0.5, 0.9)) and by `MMD()` (batch 256, Adam lr 1e-3, betas
(0.5, 0.9)), against `models.VAE(x_dim=784)` and `models.ConvVAE(x_dim=784)` built and fitted as in the
latent-family table (zoo defaults, the ELBO, batch 128, Adam lr 1e-3, the same images) but for these epochs (that
table fits 10). As many draws as test images, each scored against
them; a VAE's draws are its Bernoulli samples, 0/1 pixels as the data. The feature classifier (an MLP trained on the
subset's labels, 20 epochs) classifies {fashion['feature_classifier_accuracy']:.3f} of the test images correctly.
**The Fréchet distance is not the Inception FID**: it is FID's formula on the penultimate layer of that small
classifier, so its numbers are comparable within this table only, never with published FIDs. Measured
{fashion.get('date', data['date'])} in {fashion['wall_seconds']:.0f} s of wall time, one torch thread, by
`{data.get('commands', {}).get('fashion', data['command'])}`.

{chr(10).join(flines)}
"""
    elif "skipped" in fashion:
        fashion_text = f"Fashion-MNIST part skipped: {fashion['skipped']}.\n"
    else:
        fashion_text = ""
    return f"""
## The choice of d

The objectives of [tutorial 11](tutorials/choice_of_d.py), one `models.Generator(x_dim=2)` (z of 8 dimensions, two
hidden layers of 128) fitted by each likelihood-free objective and `models.RealNVP(x_dim=2)` by maximum likelihood
(KL), on {two_d['data']} of each set; every fit with Adam at betas (0.5, 0.9), its critic too. Each fit draws as many points as
the held-out set has and `fit.evaluate` scores them: MMD^2 under a mixture of Gaussian kernels at multiples of the
median distance, with its permutation p-value (200 permutations: 0.005 is the smallest); the classifier two-sample
test's held-out accuracy (0.5: indistinguishable); on the ring, VEEGAN's modes captured (at least n / 40 draws
within 3 standard deviations, 0.06, of a mode's centre) and fraction of high-quality draws. Only the flow has a
density: its exact test log p(x). Time per epoch as a ratio to MMD's on the same data, in the same run (epochs differ
in steps with the batch size, and a critic's objective spends most of its steps on the critic). Measured on a
shared 2-core machine under the load of other jobs, torch.set_num_threads(1), each data set in a process of its own
(part of `make bench`, or `python bench/choice_of_d.py --part 2d`): {how}.

{chr(10).join(lines)}

{fashion_text}"""


def render(results: dict, latent: dict | None = None) -> str:
    """The benchmarks page; with ``latent``, the results of ``latent_families.py`` too."""
    machine, settings = results["machine"], results["settings"]
    gpu = f", GPU {machine['gpu']}" if machine["gpu"] else ""
    return f"""# Benchmarks

<!-- Generated by bench/render.py from bench/results.json: edit those, not this page. -->

ppgen aims at a training step as fast as hand-written PyTorch. Every figure here is a ratio against a
hand-written PyTorch loop of the *same network*, measured in the same run. The networks: {settings['network']}.
The reference uses a VAE's `encoder` and `decoder` modules directly, with the loss written in torch
(reparameterised z, Bernoulli log-likelihood by `binary_cross_entropy_with_logits`, Normal log-densities,
`logsumexp` over the k particles), the same `{settings['optimizer']}` (lr {settings['lr']}; `ppgen.fit`'s default
optimiser), the same batches
and the same initial weights. Data: {settings['data']}.

- **Training step**: wall time of a run of {settings['epochs_per_run']} epochs divided by its optimiser steps
  (batch {settings['batch_size']}, the last one of an epoch smaller), the median of {settings['repeats']} runs interleaved with
  the reference's after a warm-up run. `ppgen.fit` is the public path, set-up included. The
  `inference.loss + backward + step` row runs ppgen's loss in the reference's own loop, with Pyro's argument
  validation off as `fit` runs it: it is the cost of the loss alone, and its distance from the `ppgen.fit`
  row the cost of `fit`'s set-up and loop.
- **Query**: `fit.log_prob(test, k={settings['query_k']})` against the same importance-sampled estimate by
  hand, both {settings['particle_points_per_pass']} particles x points a pass.
- **Peak memory**: each workload in a fresh process (training: 2 epochs), the peak above a baseline taken
  after imports, data, set-up and torch's one-time initialisation ({memory_method(results)}).

Rerun with `make bench` (everything below: 47 min on a fresh clone here, install included), or the figures of this
first table alone (about {results['seconds']:.0f} s here) with
`make bench BENCH_ARGS="--suite speed --skip-scaling --skip-distributed"`
(`bench/run.py --help` for the options); it rewrites `bench/results.json` and this page. Tests never fail on a
timing.

Ratios only (the absolute times are in `bench/results.json`), measured on a shared 2-core machine, interleaved,
torch.set_num_threads(1), by `{results.get('command', 'make bench')}`:
{machine['date']} on {machine['cpu']} ({machine['cpu_count']} CPUs{gpu}), torch
{machine['torch']} with {machine['torch_threads']} thread(s), Pyro {machine['pyro']}, Python {machine['python']},
ppgen {machine['ppgen']} at `{machine['commit']}`.

{table(results)}

Checks of the reference against ppgen:

{sanity(results)}
{fast_path_section(results) + step_table_section() + auto_compile_section()}\
{gpu_section() + fashion_section()}{evaluate_section()}{scale_section()}
{exact_section(results)}{latent_section(latent)}{choice_of_d_section()}
{burda(results)}{distributed_section()}{energy_section()}"""


def main() -> None:
    results = json.loads((BENCH / "results.json").read_text())
    (BENCH.parent / "docs" / "benchmarks.md").write_text(render(results, latent_results()))


if __name__ == "__main__":
    main()
