"""``ppgen posterior``: posterior draws of a few test points of a run, written as ArviZ's InferenceData in NetCDF."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ppgen.cli import common, data_sets

METHODS = ("guide", "importance", "nuts")


#: the commands its ``--help`` ends with, after the run that ``ppgen fit --help``'s example writes.
EXAMPLES = ("ppgen posterior runs/demo --index 0 1 --method importance --num-samples 100 --out post.nc",)


def add_parser(commands: Any) -> None:
    """Add the ``posterior`` command to the subparsers ``commands``."""
    posterior = common.add_command(
        commands, "posterior", run, EXAMPLES,
        help="draw from the posterior of test points of a run, to NetCDF",
        description="Load RUN/fit.pt, rebuild the run's test set, draw from the posterior of the latents of the "
                    "points at --index (from the guide, importance-resampled, or by NUTS) and write the draws, "
                    "their diagnostics, the per-point log-likelihood and the data as an ArviZ InferenceData in "
                    "NetCDF (read it back with arviz.from_netcdf).",
    )
    posterior.add_argument("--index", type=common.non_negative_int, nargs="+", default=[0], metavar="I",
                           help="which test points (0-based)")
    posterior.add_argument("--method", choices=METHODS, default="guide", help="how to draw")
    posterior.add_argument("--num-samples", type=common.positive_int, default=1000,
                           help="draws per point (per chain, for nuts)")
    posterior.add_argument("--k", type=common.positive_int, default=None,
                           help="importance proposals per point (default: 10 x --num-samples)")
    posterior.add_argument("--num-chains", type=common.positive_int, default=4, help="NUTS chains")
    posterior.add_argument("--warmup-steps", type=common.positive_int, default=None,
                           help="NUTS warm-up steps per chain (default: --num-samples)")
    posterior.add_argument("--out", type=Path, default=None, metavar="FILE",
                           help="NetCDF file to write (default: RUN/posterior-<method>.nc)")
    posterior.add_argument("--seed", type=common.seed_type, default=0, help="seed of the draws")
    common.add_common(posterior)


def run(args: argparse.Namespace) -> int:
    """Check the output, the run and the indices, draw, write the NetCDF file atomically."""
    out = args.out if args.out is not None else args.run / f"posterior-{args.method}.nc"
    common.check_picture_out(out, "post.nc")
    fit, manifest = common.load_run(args.run, args.device)
    config = common.run_settings(manifest, args.run / "manifest.json")
    data = data_sets.run_data(config)
    outside = [i for i in args.index if i >= len(data.test)]
    if outside:
        raise ValueError(f"--index {outside[0]} is outside the run's test set of {len(data.test)} points")

    import pyro

    from ppgen.utils.paths import naming_path

    pyro.set_rng_seed(args.seed)
    posterior = fit.posterior(data.test[list(args.index)], num_samples=args.num_samples, method=args.method,
                              k=args.k, num_chains=args.num_chains, warmup_steps=args.warmup_steps)
    with naming_path(out, "--out"):
        common.write_netcdf(posterior.to_arviz(points=args.index), out)
    print(f"wrote {posterior.num_draws} draws of {', '.join(posterior.samples)} for test point(s) "
          f"{', '.join(map(str, args.index))} ({args.method}) to {out}")
    return 0
