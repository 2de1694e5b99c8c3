"""The section on energy, score and diffusion models, from ``bench/energy_score_diffusion.json``."""

from __future__ import annotations

from .formatting import mean_sd, side_json


def energy_section() -> str:
    """``bench/energy_score_diffusion.py``'s table: energy models, a DDPM and a flow on the same data."""
    data = side_json("energy_score_diffusion.json")
    if data is None:
        return ""
    lines = ["| data | model, objective | seeds | test log p(x), nats | what log p(x) is "
             "| ESS of the AIS chains (mean) | MMD^2 | C2ST accuracy | fit time / the flow's |",
             "|---|---|---:|---:|---|---:|---:|---:|---:|"]
    checks = []
    for entry in data["summary"]:
        ess = f"{entry['ess']:.0f} of {data['settings'][entry['data']]['chains']}" if "ess" in entry else ""
        lines.append(f"| {entry['data']} | {entry['method']} | {entry['seeds']} | {mean_sd(entry, 'log_p', 3)} | "
                     f"{entry['log_p_kind']} | {ess} | {mean_sd(entry, 'mmd', 4)} | {mean_sd(entry, 'c2st', 3)} | "
                     f"{mean_sd(entry, 'fit_time_ratio_to_flow', 2)} |")
        if "nce_log_normalizer" in entry:
            checks.append(f"{entry['data']}: c = {mean_sd(entry, 'nce_log_normalizer', 2)}, AIS log Zhat = "
                          f"{mean_sd(entry, 'log_z', 2)}")
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
