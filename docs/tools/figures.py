"""The figures a tutorial's text quotes, read back from a full run of the tutorial and compared within a tolerance.

A tutorial's "Full-run figures" are typed into its text; :data:`QUOTED` says, for each figure, where the text quotes
it (a regular expression whose first group is the number), which value of the run it is (an expression over the
tutorial's globals once it has run to the end) and how far a rerun elsewhere may move it. The tolerance is stated in
the tutorial's text (``±T``): on the machine, torch build and thread count that measured a figure a rerun gives it
bitwise; on another machine the floating-point sums round differently, the training runs drift apart and the figure
moves like a rerun with another seed, so the tolerance is the largest deviation over reruns with other seeds,
rounded up.

Usage::

    OMP_NUM_THREADS=1 python docs/tools/figures.py docs/tutorials/inference.py              # quoted against run
    OMP_NUM_THREADS=1 python docs/tools/figures.py docs/tutorials/inference.py --seeds 1 2 3  # the spread

The first runs the tutorial in full (``PPGEN_QUICK`` unset) and prints each figure quoted and measured, exiting with
1 where one is outside its tolerance; the second runs it once per seed offset (every ``torch.manual_seed(s)`` and
``pyro.set_rng_seed(s)`` of the tutorial and of ppgen becomes ``s + 1000 * offset``) and prints the largest
deviation from the quoted figure, from which the tolerance is set. ``tests/test_tutorials.py`` runs the first
(marked ``slow``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import runpy
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

NUMBER = r"([-+]?\d+(?:\.\d+)?)"


@dataclass(frozen=True)
class Figure:
    """One figure a tutorial quotes.

    Attributes:
        quote: a regular expression that finds the figure in the tutorial's text; ``{n}`` stands for the number.
        value: an expression over the tutorial's globals after a full run that computes the figure.
        tolerance: the largest difference from the quoted figure that a rerun on another machine may show.
    """

    quote: str
    value: str
    tolerance: float

    def quoted(self, text: str) -> float:
        """The number the text quotes for this figure."""
        pattern = self.quote.format(n=NUMBER)
        found = re.findall(pattern, text)
        if len(found) != 1:
            raise ValueError(f"the text quotes {pattern!r} {len(found)} times, expected once")
        return float(found[0])


#: the VAE fits of docs/tutorials/inference.py, as its table names them
VAE_BACKENDS = ("ELBO()", "ELBO(num_particles=5)", "IWAE(k=5)", "IWAE(k=20)")


def wrapped(quote: str) -> str:
    """A quote whose every space may also be a line break of the tutorial's comment (a newline, ``#`` and indent)."""
    return quote.replace(" ", r"\s+(?:#\s+)?")


#: tutorial 11's evaluation table: each row's tolerance of each column it fills, in the order of CHOICE_OF_D_COLUMNS
CHOICE_OF_D_TABLE = {
    ("two moons", "KL (flow, MLE)"): (0.2, 0.02, 0.04),
    ("two moons", "JS"): (None, 0.007, 0.05),
    ("two moons", "W1"): (None, 3, 0.4),
    ("two moons", "MMD"): (None, 0.03, 0.04),
    ("ring of 8", "KL (flow, MLE)"): (2, 0.04, 0.05, 1, 0.09),
    ("ring of 8", "JS"): (None, 0.2, 0.09, 4, 0.3),
    ("ring of 8", "W1"): (None, 2, 0.3, 2, 0.09),
    ("ring of 8", "MMD"): (None, 0.02, 0.06, 0, 0.02),
}
#: the value of each column of that table for a row (data, objective)
CHOICE_OF_D_COLUMNS = ("reports[{row!r}].exact.mean().item()",
                       *[f"reports[{{row!r}}].samples.scores[{metric!r}].value"
                         for metric in ("mmd", "c2st", "modes", "high_quality")])
#: tutorial 11's two VAEs: the tolerance of each figure, in the order of CHOICE_OF_D_VAE_FIGURES
CHOICE_OF_D_VAE = {
    "ELBO": (0.2, 0.003, 0.0005, 0.06, 2),
    "ELBO(latent_mmd=100)": (0.4, 0.0007, 0.002, 0.05, 5),
}
#: each VAE's figures: its test log p(x), MMD^2(q(z), p(z)), and its draws' MMD^2, C2ST and Fréchet distance
CHOICE_OF_D_VAE_FIGURES = ("vae_reports[{name!r}][0].iwae.mean().item()", "vae_reports[{name!r}][1].value",
                           *[f"vae_reports[{{name!r}}][0].samples.scores[{metric!r}].value"
                             for metric in ("mmd", "c2st", "frechet")])
#: where the text quotes them: after the ELBO's name, then after `ELBO(latent_mmd=100)`: the figures in that order
CHOICE_OF_D_VAE_QUOTES = {
    "ELBO": [r"by the ELBO, test log p\(x\) ~ {n} nats", r"MMD\^2 from the prior {n} \(±",
             r"against the test digits MMD\^2 {n} \(±", r"C2ST {n} \(±",
             r"Fréchet distance \(classifier features\) {n} \(±"],
    "ELBO(latent_mmd=100)": [r"`ELBO\(latent_mmd=100\)`: " + r"[-\d.]+ (?:nats )?\(±[\d.]+\), " * i + "{n} "
                             for i in range(5)],
}

#: tutorial 12's table: each row's tolerance of its test log p(x), AIS ESS (None: not AIS), MMD^2 and C2ST
ENERGY_TABLE = {
    ("moons", "flow, MLE"): (0.08, None, 0.008, 0.04),
    ("moons", "energy, denoising SM"): (0.2, 200, 0.09, 0.09),
    ("moons", "energy, sliced SM"): (0.3, 300, 0.2, 0.08),
    ("moons", "noise-cond. energy, denoising SM"): (0.06, 30, 0.006, 0.05),
    ("moons", "energy, NCE"): (0.05, 40, 0.007, 0.02),
    ("moons", "energy, CD"): (0.03, 40, 0.02, 0.04),
    ("moons", "DDPM, ELBO"): (0.3, None, 0.06, 0.04),
    ("ring", "flow, MLE"): (0.5, None, 0.08, 0.06),
    ("ring", "energy, denoising SM"): (5, 7, 0.02, 0.03),
    ("ring", "energy, sliced SM"): (7, 9, 0.06, 0.08),
    ("ring", "noise-cond. energy, denoising SM"): (4, 200, 0.02, 0.2),
    ("ring", "energy, NCE"): (0.3, 3, 0.02, 0.09),
    ("ring", "energy, CD"): (0.4, 20, 0.02, 0.07),
    ("ring", "DDPM, ELBO"): (0.2, None, 0.05, 0.03),
    ("digits", "flow, MLE"): (400, None, 0.02, 0.04),
    ("digits", "energy, denoising SM"): (2, 20, 0.09, 0.06),
    ("digits", "energy, sliced SM"): (2, 8, 0.008, 0.09),
    ("digits", "noise-cond. energy, denoising SM"): (3, 3, 0.04, 0.06),
    ("digits", "energy, NCE"): (7, 2, 0.07, 0.003),
    ("digits", "energy, CD"): (5, 3, 0.009, 0.08),
    ("digits", "DDPM, ELBO"): (20, None, 0.2, 0.04),
}
#: the value of each of those columns for a row (data, method), and where the row quotes it after its name
ENERGY_COLUMNS = ("densities[{row!r}][0]", "densities[{row!r}][2]", "scores[{row!r}]['mmd'].value",
                  "scores[{row!r}]['c2st'].value")
ENERGY_QUOTES = (r" {n} ±", r" [-\d.]+ ±[\d.]+ \| ESS {n} ±", r"(?:[^|]*\|){{2}} {n} ±",
                 r"(?:[^|]*\|){{3}} {n} ±")

#: for each tutorial (file name in docs/tutorials/), the figures its text quotes
QUOTED: dict[str, list[Figure]] = {
    "density.py": [
        Figure(r"100 epochs of MLE: exact test log p\(x\) = {n} nats", "exact.mean()", 0.02),
        *[Figure(rf"{{n}}(?: nats)? at\s+(?:#\s+)?K = {k} \(±", f"(exact - bounds[{k}]).mean()", tolerance)
          for k, tolerance in ((1, 0.07), (10, 0.03), (100, 0.02), (3000, 0.005))],
        Figure(r"diagonal components\): exact test log p\(x\) = {n} nats", "gmm.log_prob(test).mean()", 0.25),
        *[Figure(rf"{{n}}(?: nats)?\s+(?:#\s+)?\(K = {k}[;)]", f"repeats[{k}].mean()", 0.4 if k == 1 else 0.11)
          for k in (1, 10, 100, 1000)],
    ],
    "exact_models.py": [
        *[Figure(rf"{re.escape(name)} {{n}}\s+(?:#\s+)?\(±", f"exact_log_px[{name.split()[0]!r}]", tolerance)
          for name, tolerance in (("FVSBN", 0.005), ("NADE (500 hidden)", 0.07), ("MADE (one ordering)", 0.16))],
        *[Figure(rf"{{n}} \(K = {k}\)", f"vae_log_px[{k}]", 0.19) for k in (1, 10, 5000)],
        Figure(r"binary vectors = {n} \(±", "total", 1e-6),
        Figure(r"two-moons points: log p\(x\) = {n} nats", "flow.log_prob(moons).mean()", 0.02),
        Figure(r"{n} \(ELBO, K = 1;", "dequantised_log_px[1]", 0.5),
        Figure(r"{n}\s+(?:#\s+)?\(K = 200;", "dequantised_log_px[200]", 0.4),
    ],
    "latent_families.py": [
        *[Figure(rf"\b{name} {{n}} \(±", f"log_px[{name!r}]", tolerance)
          for name, tolerance in (("VAE", 0.2), ("ConvVAE", 2.1), ("HVAE", 0.07), ("GMVAE", 0.25))],
        Figure(r"log P\(x\) >= {n} nats", "fa_bound", 0.05),
        Figure(r"exact log p\(x\) = {n} \(±", "mob.log_prob(test).mean()", 0.08),
        Figure(r"generative classifier {n} \(±", "generative", 0.0005),
        Figure(r"logistic regression {n} \(accuracy;", "discriminative", 0.0005),
        Figure(r"unlabelled images too, {n} \(±", "ssvae_accuracy", 0.15),
        Figure(r"labelled images {n} \(accuracy", "few_accuracy", 0.0005),
        Figure(r"they were asked for: {n} \(±", "cvae_accuracy", 0.03),
    ],
    "backends.py": [
        Figure(r"exact test log p\(x\) {n} \(±", "mixture_log_px", 0.07),
        Figure(r"N\(0, 2\^2\) prior: {n},", "map_mu", 0.0001),
        Figure(r"closed-form mode {n} ", "mode", 0.0001),
        Figure(r"sample mean:\s+(?:#\s+)?{n};", "y.mean()", 0.0001),
        *[Figure(rf"{{n}} with {name}", f"iwae_log_px[{estimator!r}]", 0.11)
          for name, estimator in (("the standard gradient", "standard"), ("DReG", "dreg"), ("STL", "stl"))],
        Figure(r"`RenyiVI\(alpha=0.5\)`: {n} \(±", "renyi_log_px", 0.17),
        *[Figure(rf"{{n}} \({kl}\s+(?:#\s+)?KL\)", f"elbo_loss[{kl!r}]", 0.25) for kl in ("sampled", "analytic")],
        *[Figure(rf"`{name}\(k=5\)`: {{n}}", f"discrete_log_px[{name!r}]", 0.09) for name in ("RWS", "VIMCO")],
        Figure(r"IWAE_2000 {n} \(", "report.means()['iwae']", 0.11),
        Figure(r"ELBO {n}\s+(?:#\s+)?\(±", "report.means()['elbo']", 0.08),
        Figure(r"ESS {n} of 2000", "report.means()['ess']", 14),
        Figure(r"k-hat mean {n} \(±", "report.means()['khat']", 0.05),
        Figure(r"`VRMax\(k=5\)` backend: {n} \(±", "vrmax_log_px", 0.1),
    ],
    "inference.py": [
        *[Figure(rf"`{re.escape(name)}` {{n}} / ", f"results[{name!r}][0]", 0.3) for name in VAE_BACKENDS],
        *[Figure(rf"`{re.escape(name)}` [-\d.]+ / {{n}} /", f"results[{name!r}][1]", 0.4) for name in VAE_BACKENDS],
        *[Figure(rf"`{re.escape(name)}` [-\d.]+ / [-\d.]+ /\s+(?:#\s+)?{{n}}",  # the line may break before the gap
                 f"results[{name!r}][0] - results[{name!r}][1]", 0.3) for name in VAE_BACKENDS],
        Figure(r"\({n} nats both", "ours", 0.3),
        Figure(r"\({n} nats both", "theirs", 0.3),
        Figure(r"fitted at alpha = 0.5, test log p\(x\) ~ {n} nats", "renyi_log_px", 0.2),
    ],
    "learning.py": [
        *[Figure(r"training log p\(x\) of\s+(?:#\s+)?{n} nats", f"results[{name!r}][0].log_prob(train).mean()", 0.1)
          for name in ("MLE", "ELBO", "IWAE(k=5)")],
        *[Figure(r"nats per image \(test: {n}; both", f"results[{name!r}][0].log_prob(test).mean()", 0.1)
          for name in ("MLE", "ELBO", "IWAE(k=5)")],
        Figure(r"against {n} \(test: [-\d.]+; ±0.0005\)", "best_train", 0.0005),
        Figure(r"\(test: {n}; ±0.0005\)", "gaussian_log_prob(test.double().numpy(), mu, cov).mean()", 0.0005),
        Figure(r"test log p\(x\) ~ {n} nats by the ELBO", "vae_log_px['ELBO']", 0.2),
        Figure(r", {n} by IWAE\(k=5\)", "vae_log_px['IWAE(k=5)']", 0.2),
    ],
    "representation.py": [
        Figure(r"classifies {n}% of the test digits \(±", "100 * linear_probe(fit.encode(train), z_test)", 5.0),
        Figure(r"purity of {n}% \(±", "100 * purity", 1.0),
    ],
    "sampling.py": [
        Figure(r"sample mean \({n}, ", "gmm_samples.mean(0)[0]", 0.05),
        Figure(r"sample mean \([-\d.]+, {n}\)", "gmm_samples.mean(0)[1]", 0.05),
        Figure(r"against the data's\s+(?:#\s+)?\({n}, ", "moons.mean(0)[0]", 0.0005),
        Figure(r"against the data's\s+(?:#\s+)?\([-\d.]+, {n}\)", "moons.mean(0)[1]", 0.0005),
        *[Figure(rf"covariance entries {before}{{n}}", f"torch.cov(gmm_samples.T)[{i}, {j}]", 0.05)
          for before, (i, j) in zip(("", r"[-\d.]+, ", r"[-\d.]+, [-\d.]+, "), ((0, 0), (0, 1), (1, 1)))],
        *[Figure(rf"covariance entries [-\d., ]+ against {before}{{n}}", f"torch.cov(moons.T)[{i}, {j}]", 0.0005)
          for before, (i, j) in zip(("", r"[-\d.]+, ", r"[-\d.]+, [-\d.]+, "), ((0, 0), (0, 1), (1, 1)))],
        Figure(r"held-out log p\(x\) = {n} nats", "gmm.log_prob(held_out).mean()", 0.01),
    ],
    "own_model.py": [
        Figure(r"MLE\): test log p\(x\) = {n} nats per image \(±", "pixels_log_px", 0.005),
        Figure(r"frequencies\) gives {n} \(±", "exact", 0.0005),
        Figure(r"summed out: {n} nats per image, exact \(±", "mixture_log_px", 0.5),
        Figure(r"40 epochs\): test log p\(x\) ~ {n} nats \(K = 1000; ±", "vae_log_px", 0.6),
    ],
    "posteriors.py": [
        Figure(r"E\[z0 \| x\] is exactly {n} ", "truth", 0.0005),
        Figure(r"the guide's draws give {n}\s+(?:#\s+)?\(±", "means['guide']", 0.01),
        *[Figure(quote, "means['importance']", 0.06)  # the estimate, and the closed form it estimates
          for quote in (r"\(K = 20,000\) gives {n} \(±", r"E\[z0 \| x\] is exactly {n} ")],
        Figure(r"k-hat\s+(?:#\s+)?of {n} \(±", "posteriors['importance'].khat[0].item()", 0.1),
        *[Figure(quote, "means['nuts']", 0.02)
          for quote in (r"NUTS \(4 chains of 1,000 draws\) {n} \(±", r"E\[z0 \| x\] is exactly {n} ")],
        *[Figure(quote, f"az.mcse(posteriors[{method!r}].to_arviz(), var_names=['z'])['z'].values[0, 0].item()", 0.002)
          for quote, method in ((r"`arviz.mcse`, {n} and", "importance"), (r"`arviz.mcse`, [\d.]+ and {n};", "nuts"))],
        *[Figure(quote, f"regression_data.posterior['b'].mean(('chain', 'draw'))[{i}].item()", 0.002)
          for i, quotes in enumerate(((r"posterior means {n} and", r"against the conjugate {n} and"),
                                      (r"posterior means [-\d.]+ and {n}\s",
                                       r"against the conjugate [-\d.]+ and {n} ")))
          for quote in quotes],  # the NUTS estimates, and the closed forms they estimate
        Figure(r"against the conjugate {n} and", "conjugate_mean[0].item()", 0.0001),
        Figure(r"against the conjugate [-\d.]+ and {n} ", "conjugate_mean[1].item()", 0.0001),
        *[Figure(r"R-hat {n} for both", f"az.rhat(regression_data)['b'].values.{end}().item()", 0.01)
          for end in ("min", "max")],
        Figure(r"PSIS-LOO elpd {n} \(±", "loo.elpd_loo", 0.07),
        Figure(r"log p\(y_n \| data\),\s+(?:#\s+)?{n} \(±", "in_sample", 0.01),
        Figure(r"classifies {n}% of the test", "100 * code_accuracy", 2.0),
        Figure(r"random projections of x {n}%", "100 * projection_accuracy", 0.05),
    ],
    "choice_of_d.py": [
        *[Figure(r"\| {} \| {} \|".format(*map(re.escape, row)) + r"[^|]*\|" * column + " {n} ±",
                 CHOICE_OF_D_COLUMNS[column].format(row=row), tolerance)
          for row, tolerances in CHOICE_OF_D_TABLE.items() for column, tolerance in enumerate(tolerances)
          if tolerance is not None],
        *[Figure(wrapped(quote), value.format(name=name), tolerance)
          for name, tolerances in CHOICE_OF_D_VAE.items()
          for quote, value, tolerance in zip(CHOICE_OF_D_VAE_QUOTES[name], CHOICE_OF_D_VAE_FIGURES, tolerances)],
    ],
    "energy_score_diffusion.py": [
        *[Figure(r"\| {} \| {} \|".format(*map(re.escape, row)) + quote, value.format(row=row), tolerance)
          for row, tolerances in ENERGY_TABLE.items()
          for quote, value, tolerance in zip(ENERGY_QUOTES, ENERGY_COLUMNS, tolerances) if tolerance is not None],
        *[Figure(wrapped(rf"on {place} {{n}} ±"), f"fits[{name!r}]['energy, NCE'].model.log_normalizer.item()",
                 tolerance)
          for place, name, tolerance in (("moons", "moons", 0.05), ("the ring", "ring", 0.04),
                                         ("the digits", "digits", 0.009))],
        *[Figure(wrapped(rf"on {place} [-\d.]+ ±[\d.]+ against {{n}} ±"), f"float(log_zs[{name!r}]['energy, NCE'])",
                 tolerance)
          for place, name, tolerance in (("moons", "moons", 0.06), ("the ring", "ring", 0.6))],
        Figure(wrapped(r"last training loss was {n} nats"), "fits['digits']['flow, MLE'].history[-1]", 2),
    ],
}


def tutorial_text(path: Path) -> str:
    """The tutorial's file, where its markdown cells quote the figures."""
    return path.read_text(encoding="utf-8")


def run_tutorial(path: Path, offset: int = 0) -> dict:
    """Run a tutorial to the end in this process (its prints go to stderr) and return its globals.

    Arguments:
        path: the tutorial's file.
        offset: added, times 1000, to every seed that ``torch.manual_seed`` receives (``pyro.set_rng_seed`` and
            ``ppgen.seed`` call it), so that ``offset > 0`` is a rerun with other seeds.
    """
    import torch

    if offset:
        manual_seed = torch.manual_seed
        torch.manual_seed = lambda seed: manual_seed(int(seed) + 1000 * offset)
        import ppgen

        ppgen.seed()  # ppgen seeds torch when it is first imported, perhaps before the patch: seed it again, moved
    os.environ.setdefault("MPLBACKEND", "Agg")
    with contextlib.redirect_stdout(sys.stderr):
        return runpy.run_path(str(path), run_name="__main__")


def measure(path: Path, offset: int = 0) -> list[dict]:
    """Each quoted figure of a tutorial beside its value in a run of the tutorial (with seeds moved by offset)."""
    figures = QUOTED[path.name]
    text = tutorial_text(path)
    namespace = run_tutorial(path, offset)
    rows = []
    for figure in figures:
        quoted, measured = figure.quoted(text), float(eval(figure.value, namespace))  # noqa: S307 - our own table
        rows.append({"figure": figure.value, "quoted": quoted, "measured": measured, "tolerance": figure.tolerance,
                     "within": abs(measured - quoted) <= figure.tolerance})
    return rows


def spread(path: Path, offsets: list[int]) -> list[dict]:
    """Rerun a tutorial once per seed offset, each in a fresh process, and return each figure's largest deviation
    from the quoted figure over the reruns."""
    runs = []
    for offset in offsets:
        done = subprocess.run([sys.executable, __file__, str(path), "--offset", str(offset)], capture_output=True,
                              text=True, check=True)
        runs.append(json.loads(done.stdout))
    return [{"figure": rows[0]["figure"], "quoted": rows[0]["quoted"],
             "measured": [row["measured"] for row in rows],
             "largest_deviation": max(abs(row["measured"] - row["quoted"]) for row in rows),
             "tolerance": rows[0]["tolerance"]}
            for rows in zip(*runs)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tutorial", type=Path, help="a tutorial in docs/tutorials/ with an entry in QUOTED")
    parser.add_argument("--seeds", type=int, nargs="+", metavar="OFFSET",
                        help="rerun with every seed moved by 1000 * OFFSET, once per offset, and report the spread")
    parser.add_argument("--offset", type=int, default=None, help=argparse.SUPPRESS)  # one rerun of spread()
    args = parser.parse_args(argv)
    if args.tutorial.name not in QUOTED:
        parser.error(f"tutorial: {args.tutorial.name} quotes no figures listed in QUOTED ({', '.join(QUOTED)})")
    if args.seeds:
        print(json.dumps(spread(args.tutorial, args.seeds), indent=1))
        return 0
    rows = measure(args.tutorial, args.offset or 0)
    print(json.dumps(rows, indent=1))
    return 0 if args.offset is not None or all(row["within"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
