"""The step table of ``bench/step_table.py`` (``bench/step_table.json``) as a section of ``docs/benchmarks.md``."""

from __future__ import annotations

from .formatting import plus_minus, side_json

#: the table's columns: the ratios of ``bench/step_table.py``, by contender.
COLUMNS = {"ppgen default": "ppgen default", "ppgen compile=True": "ppgen `compile=True`, steady",
           "Pyro SVI": "Pyro SVI", "NumPyro jit": "NumPyro jit, steady"}


def step_table(results: dict) -> str:
    """The rows as a Markdown table: the hand-written loop's ms per step, each contender's ratio to it, the default
    ``ppgen.fit``'s whole call (set-up included, twice the steps) as a ratio too, and the steps of a timed run."""
    lines = ["| workload | hand-written, ms/step | " + " | ".join(COLUMNS.values()) +
             " | ppgen default, whole fit | steps a run |", "|---|" + "---:|" * (len(COLUMNS) + 3)]
    for row in results["rows"]:
        net = row["network"].removeprefix("VAE ")
        cells = [f"{row['ms_per_step']['handwritten']:.2f}", *(f"{row['ratio'][name]:.2f}" for name in COLUMNS),
                 f"{row['ratio_ppgen_default_whole_fit']:.2f}", str(row["steps_per_run"])]
        lines.append(f"| {net} {row['bound']}, batch {row['batch']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def checks(results: dict) -> str:
    """The bound checks, a line per network and bound."""
    lines = []
    for row in results["rows"]:
        if "check" not in row:
            continue
        same, mc = row["check"]["same_draws"], row["check"]["monte_carlo"]
        lines.append(f"- {row['network']}, {row['bound']}, the first {row['check']['points']} points: on the same "
                     f"draws, hand-written {same['handwritten']:.4f}, "
                     + (f"ppgen {same['ppgen']:.4f}, " if "ppgen" in same else "") +
                     f"Pyro {same['pyro']:.4f}, NumPyro "
                     f"{same['numpyro']:.4f} nats per point; over {mc['numpyro']['keys']} fresh draws each, "
                     f"hand-written {plus_minus(mc['handwritten']['mean'], mc['handwritten']['sd'], 3)}, NumPyro "
                     f"{plus_minus(mc['numpyro']['mean'], mc['numpyro']['sd'], 3)} (z = {mc['z']:.2f})")
    means = {(row["network"], row["bound"]): row["check"]["monte_carlo"]["handwritten"] for row in results["rows"]
             if "check" in row}
    for network in dict.fromkeys(net for net, _ in means):
        if (network, "ELBO") in means and (network, "IWAE5") in means:
            elbo, iwae = means[network, "ELBO"], means[network, "IWAE5"]
            se = (elbo["sd"] ** 2 / elbo["seeds"] + iwae["sd"] ** 2 / iwae["seeds"]) ** 0.5
            lines.append(f"- the two bounds on {network}, hand-written, differ by {elbo['mean'] - iwae['mean']:.3f} "
                         f"nats per point, {(elbo['mean'] - iwae['mean']) / se:.0f} standard errors: the Monte Carlo "
                         f"check tells the ELBO from IWAE5")
    return "\n".join(lines)


def earlier(results: dict) -> str:
    """The rows that an earlier run measured (a run of some rows, ``--rows``, keeps the others), as a clause."""
    older = [f"{row['network']} {row['bound']} at batch {row['batch']} ({row['date']}, `{row['command']}`)"
             for row in results["rows"] if row.get("command", results["command"]) != results["command"]
             or row.get("date", results["date"]) != results["date"]]
    return "; measured earlier: " + ", ".join(older) if older else ""


def step_table_section() -> str:
    """The page's section on the step table, empty where ``bench/step_table.py`` has not run."""
    results = side_json("step_table.json")
    if results is None:
        return ""
    machine, load, np_versions = results["machine"], results["load_average"], results["numpyro"]
    mode = ("**quick mode** (`--quick`: fewer steps a run, 3 rounds)" if results["mode"] == "quick"
            else "full mode")
    return f"""
## The training step against Pyro and NumPyro

Process CPU time per training step (`time.process_time()`), as a ratio to the hand-written eager PyTorch loop of the
same VAE with fused Adam (`bench/handwritten.py`), measured side by side in one run by `bench/step_table.py`:
`ppgen.fit` with no `compile` argument (its default) and with `compile=True`, each timed over the second half of its
epochs (after its set-up, trace and compilation: steady state; the *whole fit* column times the default's whole call,
set-up included, over twice the steps); `pyro.infer.SVI` on the VAE's own Pyro model and guide (`Trace_ELBO`, and for
IWAE5 `RenyiELBO(alpha=0, num_particles=5, vectorize_particles=True)`, which is the 5-sample IWAE bound per data
point; `pyro.optim.Adam`, Pyro's validation settings left as they are); NumPyro {np_versions['numpyro']}'s `SVI`
with the same MLPs written in jax.numpy from the same initial weights (`Trace_ELBO` / `RenyiELBO(alpha=0,
num_particles=5)`, `numpyro.optim.Adam`, `jax.jit(svi.update)` with the batch gathered inside the step, compilation
in an untimed warm-up run), jax {np_versions['jax']} on CPU in its own virtual environment
(`build/bench-numpyro-venv`, created by the script; never a dependency of ppgen). Every contender takes the same
number of full batches a run (the last column), each epoch's loss read back at its end; a figure is the median over
{results['repeats']} interleaved rounds of the round's ratio (absolute ms per step of every round, and each contender's
last loss, are in `bench/step_table.json`: the hand-written loop, Pyro and NumPyro train on from run to run, each
`ppgen.fit` starts again from the initial weights). One torch thread and one XLA thread
(`{results['settings']['xla_flags']}`). Data: {results['data']['small']} (64 pixels) and {results['data']['large']}
(784), cut to a whole number of batches. Rerun the table alone with `make bench-steps` (`STEP_ARGS="--quick"` for
fewer steps), or some rows with `python bench/step_table.py --rows small:elbo:128 ...`.

Measured {results['date']} in {mode} on {machine['cpu']} ({machine['cpu_count']} CPUs, shared with other jobs: the
1-minute load average was {load['min']:.1f} to {load['max']:.1f}, median {load['median']:.1f}), torch
{machine['torch']}, Pyro {machine['pyro']}, ppgen at `{machine['commit']}`, by `{results['command']}` in
{results['seconds']:.0f} s (part of `make bench`; `--skip-step-table` keeps these figures){earlier(results)}:

{step_table(results)}

Each bound checked against the hand-written one on the same initial weights before timing:

{checks(results)}
"""
