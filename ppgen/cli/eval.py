"""``ppgen eval``: estimate a run's test log-likelihood again, with the bounds and weight diagnostics of
:meth:`ppgen.Fit.evaluate` and the sample metrics of its draws against the test set, and record them in its
metrics.json. A model without a density (a generator) has no log-likelihood: its draws alone are scored."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from ppgen.cli import common, data_sets


#: the commands its ``--help`` ends with, after the run that ``ppgen fit --help``'s example writes.
EXAMPLES = ("ppgen eval runs/demo --k 100 --metrics mmd",)


def add_parser(commands: Any) -> None:
    """Add the ``eval`` command to the subparsers ``commands``."""
    evaluate = common.add_command(
        commands, "eval", run, EXAMPLES,
        help="re-evaluate the test log-likelihood and the sample metrics of a run",
        description="Load RUN/fit.pt, rebuild the run's test set, estimate log p(x), score as many draws of the model "
                    "against the test set (--metrics) and record both in metrics.json; a model without a density (a "
                    "generator) has its draws scored alone. The files must all be those of one run (its manifest's "
                    "digests).",
    )
    evaluate.add_argument("--k", type=common.positive_int, default=None,
                          help="importance samples (default: the run's --eval-k; none for a model without a "
                               "density)")
    evaluate.add_argument("--seed", type=common.seed_type, default=None,
                          help="seed of the estimate (default: the run's)")
    evaluate.add_argument("--metrics", type=metric_names, default=None,
                          help="sample metrics, comma-separated among mmd, c2st, frechet (on x itself), or none "
                               "(default: mmd,c2st,frechet)")
    common.add_compile(evaluate, "the importance-sampled passes")
    common.add_common(evaluate)


def run(args: argparse.Namespace) -> int:
    """Check the run, estimate log p(x) on its test set (where the model has a density) and score the model's draws,
    record them under ``eval`` in metrics.json (an earlier record of other settings moves to ``earlier_evals``)."""
    from ppgen.run.folder import RunFolder

    metrics_path = args.run / common.METRICS_FILE
    fit, manifest = common.load_run(args.run, args.device, common.METRICS_FILE)
    implicit = fit.structure.implicit  # no density: its draws alone are scored
    if implicit and args.k is not None:
        raise ValueError(f"--k {args.k}: the run's model has no density (it is implicit, x = G(z)), so there is no "
                         f"log-likelihood to estimate with importance samples: leave --k out (--metrics names what "
                         f"scores its draws)")
    if implicit and args.metrics == ():
        raise ValueError("--metrics none: the run's model has no density (it is implicit, x = G(z)), so its draws are "
                         "all there is to evaluate: name metrics among mmd, c2st, frechet, or leave --metrics out")
    # the result is written back into the run: refuse an unwritable one now, not after minutes of work
    RunFolder(args.run).check_writable(resume=True, label="RUN")
    config = common.run_settings(manifest, args.run / "manifest.json")
    try:
        metrics = json.loads(metrics_path.read_text())
    except ValueError as error:
        raise ValueError(f"{metrics_path} is not valid JSON ({error})") from None
    if not isinstance(metrics, dict):
        raise ValueError(f"{metrics_path}: expected a JSON object, got {type(metrics).__name__}")
    k = args.k if args.k is not None else config["eval_k"]
    seed = args.seed if args.seed is not None else config["seed"]
    data = data_sets.run_data(config)

    import pyro

    from ppgen.datasets.dequantize import grid_spacing

    start = time.perf_counter()
    spacing, grid = config.get("dequantize"), grid_spacing(data.test)
    comparable = (implicit or spacing is not None or grid is None
                  or not common.is_density(fit.structure.data_support))
    compile = common.COMPILE_CHOICES[args.compile]
    if implicit:
        estimate = None
        figures = {"k": None, "exact": False, "bound": False, "seed": seed, "test_log_likelihood": None,
                   "test_figure": common.NO_DENSITY}
    else:
        estimate = common.test_log_likelihood(fit, data.test, k=k, seed=seed, spacing=spacing, compile=compile)
        figures = {"k": estimate.k, "exact": estimate.exact, "bound": estimate.bound, "annealed": estimate.annealed,
                   "seed": seed, "test_log_likelihood": common.finite_or_none(estimate.log_likelihood)}
    pyro.set_rng_seed(seed)  # as common.test_sample_quality, so that a generator's scores are fit's again
    # bounds, weight diagnostics and sample metrics beside the estimate, unless the guide's log w are no importance
    # weights (a DDPM's)
    refused = fit.structure.guided and fit.structure.reweighted
    report = None if refused else fit.evaluate(data.test, k=k, metrics=args.metrics, seed=seed, compile=compile)
    record = {
        **figures,
        "n_test": len(data.test),
        **common.comparability(comparable, grid),
        "wall_time_s": time.perf_counter() - start,
        "report": None if report is None else report.to_dict(),
    }
    kept = keep_records(metrics, record, metrics_path)
    RunFolder(args.run).write(common.METRICS_FILE, common.json_bytes(metrics))
    if estimate is not None:
        print(estimate)
    if report is not None:
        print(report)
    print(f"recorded under 'eval' in {metrics_path}"
          + (f"; the earlier records, with {', '.join(kept)}, are kept under 'earlier_evals'" if kept else ""))
    return 0


def metric_names(text: str) -> tuple[str, ...]:
    """``--metrics``: ``none``, or names among the sample metrics that need nothing but the test set."""
    names = () if text == "none" else tuple(name.strip() for name in text.split(","))
    choices = ("mmd", "c2st", "frechet")
    unknown = [name for name in names if name not in choices]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown {', '.join(map(repr, unknown))}: give none or names among "
                                         f"{', '.join(choices)}")
    return names


def keep_records(metrics: dict[str, Any], record: dict[str, Any], where: Path) -> list[str]:
    """Make ``record`` the ``eval`` entry of ``metrics``, keeping the earlier ones under ``earlier_evals``, oldest
    first, one per setting of k and seed (a record of the same settings is the same estimate again, and replaced);
    returns the settings of the records kept, as ``k=..., seed=...``."""
    earlier = metrics.get("earlier_evals", [])
    previous = metrics.get("eval")
    if not (isinstance(earlier, list) and all(isinstance(r, dict) for r in earlier)
            and (previous is None or isinstance(previous, dict))):
        raise ValueError(f"{where}: fields 'eval' and 'earlier_evals' must be a record and a list of records")
    settings = (record["k"], record["seed"])
    kept = [r for r in [*earlier, *([previous] if previous else [])] if (r.get("k"), r.get("seed")) != settings]
    metrics["eval"] = record
    metrics.pop("earlier_evals", None)
    if kept:
        metrics["earlier_evals"] = kept
    return [f"k={'exact' if r.get('k') is None else r.get('k')}, seed={r.get('seed')}" for r in kept]
