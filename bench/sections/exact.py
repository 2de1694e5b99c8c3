"""The section on the exact-likelihood families, from ``bench/results.json``."""

from __future__ import annotations


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
