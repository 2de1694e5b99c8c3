"""The section on the structure of Burda et al.'s Table 1 and the encoder-gradient SNR, from
``bench/results.json``."""

from __future__ import annotations

from .formatting import number


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


def khat_note(blocks: dict) -> list[str]:
    """A paragraph naming the blocks whose every row has a mean PSIS k-hat above 0.7: there IWAE_K is a lower bound
    on log p(x) whose gap the importance weights cannot vouch for."""
    heavy = [key for key, block in blocks.items() if all(row["khat_mean"] > 0.7 for row in block["rows"])]
    if not heavy:
        return []
    named = heavy[0] if len(heavy) == 1 else f"{', '.join(heavy[:-1])} and {heavy[-1]}"
    return [f"On {named}, every row's mean PSIS k-hat is above 0.7: the importance weights' tails are too",
            "heavy for IWAE_K to be near log p(x) (Vehtari et al.'s threshold), so those figures are lower bounds of",
            "unknown slack, and their rows compare bounds, not densities; the ELBO column is a bound as well.", ""]


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
    lines += khat_note(entry["blocks"])
    lines += ["All measured on a shared 2-core machine: seconds are wall time there, not a speed figure, and the CPU "
              "seconds of the",
              "process beside them are about what one idle core would take. Rerun with",
              "`python bench/burda.py` (`--help`: `--datasets`, `--networks`, `--epochs`, `--k-eval`, `--train-size`, "
              "`--test-size`;",
              "`--train-size 0 --test-size 0` runs Fashion-MNIST full size) or `make bench`.",
              ""]
    return "\n".join(lines)
