"""The section on ``compile="auto"``, from ``bench/auto_compile.json``."""

from __future__ import annotations

from .formatting import side_json

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
    data = side_json("auto_compile.json")
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
the same model (every compilation writes that record, under `compile=True` as under `"auto"`): the seconds and the
compiled step's gain it recorded then (before `"auto"` has measured a gain, {priors['COMPILED_RATIO']}) (a warm compilation, before one is
recorded, {priors['WARM_OF_COLD']} of the cold one); cold otherwise, {priors['COLD_COMPILE_TRACES']} traces' time,
with a compiled step {priors['COMPILED_RATIO']} of the captured one (the least gain measured, on the 784-400-32
VAE). A fall-back under `"auto"` is logged at level INFO (`ppgen.program.automatic`), never warned: the user asked
for no path, and the plain step gives the same fit; every choice is logged there too, with its figures. A shape
that `"auto"` compiles computes Adam's update inside the compiled graph, as `compile=True` does, while its plain and
captured shapes keep torch's fused step; the path each shape settled on is saved in the checkpoint, and a resumed fit
takes it again without probing; under `torch.use_deterministic_algorithms(True)` nothing is compiled (a captured step
gives the plain step's floats).

The costs and the break-even figures (`{data['command']}`, {data['date']}, one thread; CPU time of the process and
of the children it waited for, inductor's g++ among them, so that the load of the shared 2-core machine (other
jobs, at times tens of them) leaves them alone; each workload in fresh processes over one new inductor cache folder:
the first compiles the graph (cold, inductor's precompiled header made before), the second finds it (warm); batch 128,
step times the least of 20 calls):

{chr(10).join(cost_lines)}

The rule's priors wait longer than these break-evens (measured here on a quiet machine, in CPU time): the rule
times with the wall clock, as a user waits, and a loaded machine stretches a trace's or a compilation's seconds more
than a step's milliseconds (the same measurement in wall time, under a load average of 18 on the 2 cores, gave
break-evens of 779 and 1330 steps on the small VAE); the priors keep a fit that short from paying a trace it does not
repay on a loaded machine, at the price of the saving a capture would bring on a quiet one. A fit shorter than that
stays on the plain step, whose cost under `"auto"` is the rule's bookkeeping, a dictionary look-up a step.
{chr(10).join(fit_lines)}

Each path ran in a fresh process of its own, the fits of every length in turn, shortest first, the four processes
side by side in each round; a fit's CPU time from the call to the return (set-up, trace and compilation included),
every fit of a workload over one inductor cache folder warmed by one fit of each path before, so that
`compile=True` and `"auto"` compile warm, as in a second run of the same model. `"auto"`'s first trace in its
process is that of its first fit long enough to capture, as in a user's process that runs one fit; `"capture"`'s
and `True`'s that of their one-epoch fit, whose ratio holds torch's one-time set-up of the trace. The rule's own
timings are wall-clock: where a round's three replays, timed just after the trace on a loaded machine, came out
no faster than its plain steps, that round's fit went back to the plain step, which the last column shows for the
last round only. `"auto"` compiles only where it prices the compilation as repaid: here it found the record
that the other paths' compilations left in the cache folder, priced the compilation warm and compiled on the longest
fit, whose ratio still holds what `True`'s does not: the plain steps it probes first, a capture and a second trace
with Adam's update, and a compilation read from the on-disk cache, where `True`'s process compiled the same graph in
its shorter fits before and found it in memory. On fits of a fraction of a second a single
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
