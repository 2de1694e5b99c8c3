"""``ppgen sample``: draw x ~ p(x) from a run and write them as a picture."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ppgen.cli import common


def add_parser(commands: Any) -> None:
    """Add the ``sample`` command to the subparsers ``commands``."""
    sample = commands.add_parser(
        "sample",
        help="draw samples from a run and write a picture",
        description="Load RUN/fit.pt, draw n samples x ~ p(x) and write them as a picture.",
        formatter_class=common.HelpFormatter,
    )
    sample.add_argument("run", type=Path, metavar="RUN", help="run folder written by `ppgen fit`")
    sample.add_argument("-n", type=common.positive_int, default=common.N_SAMPLES, help="number of samples")
    sample.add_argument("--max-samples", type=common.positive_int, default=common.MAX_SAMPLES,
                        help="refuse an -n above this budget")
    sample.add_argument("--out", type=Path, default=None, metavar="FILE",
                        help="picture to write; the extension picks the format (default: RUN/samples-<n>.png)")
    sample.add_argument("--seed", type=common.seed_type, default=0, help="seed of the draws")
    common.add_common(sample)
    sample.set_defaults(func=run, parser=sample)


def run(args: argparse.Namespace) -> int:
    """Check the output, load the run, draw, write the picture (atomically, never through a link)."""
    if args.n > args.max_samples:
        args.parser.error(f"-n {args.n} is over the budget of {args.max_samples} samples: a picture of that many "
                          f"is unreadable; raise --max-samples to insist")
    out = args.out if args.out is not None else args.run / f"samples-{args.n}.png"
    common.check_picture_out(out, "samples.png")
    fit, _ = common.load_run(args.run, args.device)

    import pyro

    from ppgen.utils.paths import naming_path

    pyro.set_rng_seed(args.seed)
    x = fit.sample(args.n)
    with naming_path(out, "--out"):
        common.draw_samples(x, out)
    print(f"wrote {args.n} samples to {out}")
    return 0
