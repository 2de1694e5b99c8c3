"""Render ``docs/benchmarks.md`` from ``bench/results.json``; ``python bench/render.py`` re-renders without measuring."""

from __future__ import annotations

import json
from pathlib import Path

BENCH = Path(__file__).resolve().parent


def number(value: float | None) -> str:
    """Three significant digits, without an exponent for the magnitudes measured here."""
    if value is None:
        return "n/a"
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"


def table(results: dict) -> str:
    """The figures as a Markdown table."""
    lines = ["| device | figure | ppgen path | ppgen | hand-written | ratio ppgen / hand-written |",
             "|---|---|---|---:|---:|---:|"]
    for row in results["figures"]:
        unit = row["unit"]
        ratio = "n/a" if row["ratio"] is None else f"{row['ratio']:.2f}"
        lines.append(f"| {row['device']} | {row['figure']} | `{row['ppgen_path']}` | {number(row['ppgen'])} {unit} "
                     f"| {number(row['handwritten'])} {unit} | {ratio} |")
    for device, why in results["skipped"].items():
        lines.append(f"| {device} | skipped: {why} | | | | |")
    return "\n".join(lines)


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


def burda(results: dict) -> str:
    """The section on Burda et al.'s table and the encoder-gradient SNR, if ``bench/burda.py`` has run."""
    if "burda" not in results:
        return ""
    entry, settings = results["burda"], results["burda"]["settings"]
    lines = [
        "## Importance-weighted bounds: the structure of Burda et al. (2015), Table 1",
        "",
        f"`{settings['network']}` on {settings['data']}, trained by each objective from the same initial weights",
        f"for {settings['epochs']} epochs (batch {settings['batch_size']}, {settings['optimizer']}, lr {settings['lr']},",
        f"seed {settings['seed']}), then evaluated on the test split by `fit.evaluate(test, k={settings['eval_k']})`.",
        "Active units: latent coordinates u with Cov_x(E_q[z_u|x]) > "
        f"{settings['active_threshold']} over the test set (Burda's measure). Burda et al. found IWAE at k=50 better",
        "than the VAE by 1.9 nats on MNIST; here, on 8x8 digits with a far smaller network and budget:",
        "",
        f"| objective | test log p(x), IWAE_{settings['eval_k']} | test ELBO | PSIS k-hat (mean; points > 0.7) "
        "| active units | training s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in entry["table"]:
        lines.append(f"| `{row['backend']}` | {row['test_iwae_5000']:.3f} | {row['test_elbo']:.3f} | "
                     f"{number(row['khat_mean'])}; {row['khat_above_0.7']} | {row['active_units']} | "
                     f"{row['train_seconds']:.0f} |")
    ks = sorted({row["k"] for row in entry["snr"]})
    estimators = list(dict.fromkeys(row["estimator"] for row in entry["snr"]))
    snr = {(row["k"], row["estimator"]): row["median_snr"] for row in entry["snr"]}
    lines += [
        "",
        "Encoder-gradient signal-to-noise ratio |E g| / std(g) of IWAE_k's gradient estimators, per parameter over "
        f"{settings['snr_repeats']}",
        f"estimates on {settings['snr_batch']} test points, the median over the encoder's parameters, on the "
        "ELBO-trained network:",
        "",
        "| k | " + " | ".join(estimators) + " |",
        "|---:|" + "---:|" * len(estimators),
    ]
    for k in ks:
        lines.append(f"| {k} | " + " | ".join(f"{snr[(k, e)]:.3f}" for e in estimators) + " |")
    lines += ["", f"Measured {entry['date']} on a shared 2-core machine with {settings['torch_threads']} torch "
              f"thread(s), in {entry['seconds']:.0f} s (training seconds are wall time on that shared machine, "
              "not a speed figure); rerun with `python bench/burda.py` (`--help` for options) or `make bench`.",
              ""]
    return "\n".join(lines)


def render(results: dict) -> str:
    """The benchmarks page."""
    machine, settings = results["machine"], results["settings"]
    gpu = f", GPU {machine['gpu']}" if machine["gpu"] else ""
    return f"""# Benchmarks

<!-- Generated by bench/render.py from bench/results.json: edit those, not this page. -->

ppgen aims at a training step as fast as hand-written PyTorch. Every figure here is a ratio against a
hand-written PyTorch loop of the *same network*, measured in the same run. The network is

    {settings['network']}

and the reference uses its `encoder` and `decoder` modules directly, with the loss written in torch
(reparameterised z, Bernoulli log-likelihood by `binary_cross_entropy_with_logits`, Normal log-densities,
`logsumexp` over the k particles), the same `{settings['optimizer']}` (lr {settings['lr']}), the same batches
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

Rerun with `make bench` (about {results['seconds']:.0f} s here; `bench/run.py --help` for options); it rewrites
`bench/results.json` and this page. Tests never fail on a timing.

Measured {machine['date']} on {machine['cpu']} ({machine['cpu_count']} CPUs{gpu}), torch
{machine['torch']} with {machine['torch_threads']} thread(s), Pyro {machine['pyro']}, Python {machine['python']},
ppgen {machine['ppgen']} at `{machine['commit']}`.

{table(results)}

Checks of the reference against ppgen:

{sanity(results)}

{burda(results)}"""


def main() -> None:
    results = json.loads((BENCH / "results.json").read_text())
    (BENCH.parent / "docs" / "benchmarks.md").write_text(render(results))


if __name__ == "__main__":
    main()
