"""The section on the choice of d, from ``bench/choice_of_d.json``."""

from __future__ import annotations

from .formatting import side_json


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
    data = side_json("choice_of_d.json")
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
(KL), on {two_d['data']} of each set; every fit with Adam at betas (0.5, 0.9), its critic too. \
Each fit draws as many points as
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
