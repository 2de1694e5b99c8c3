"""The sections on the latent-variable families and on classification, from ``bench/latent_families.json``."""

from __future__ import annotations

from .formatting import side_json


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


def latent_section() -> str:
    """The page's section on the latent-variable families and on classification, from
    ``bench/latent_families.json`` where ``bench/latent_families.py`` has run."""
    latent = side_json("latent_families.json")
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
