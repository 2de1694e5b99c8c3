"""``ppgen encode``: a run's representation of its test set, E[z | x] in 2-D and coloured by label, as a picture."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ppgen.cli import common, data_sets


#: the commands its ``--help`` ends with, after the run that ``ppgen fit --help``'s example writes.
EXAMPLES = ("ppgen encode runs/demo --out latent.png",)


def add_parser(commands: Any) -> None:
    """Add the ``encode`` command to the subparsers ``commands``."""
    encode = common.add_command(
        commands, "encode", run, EXAMPLES,
        help="draw a run's latent space over its test set",
        description="Load RUN/fit.pt, encode the run's test set, E[z | x] per point, and draw it in 2-D (PCA where "
                    "z has more than two dimensions), coloured by the test labels where the data set has them.",
    )
    encode.add_argument("--out", type=Path, default=None, metavar="FILE",
                        help="picture to write; the extension picks the format (default: RUN/encoded.png)")
    encode.add_argument("--site", default=None, help="the latent site, where the model has several")
    encode.add_argument("--seed", type=common.seed_type, default=0,
                        help="seed of the draws behind a mean without a closed form")
    common.add_common(encode)


def run(args: argparse.Namespace) -> int:
    """Check the output and the run, rebuild its test set, encode it, write the picture (never through a link)."""
    out = args.out if args.out is not None else args.run / "encoded.png"
    common.check_picture_out(out, "encoded.png")
    fit, manifest = common.load_run(args.run, args.device)
    config = common.run_settings(manifest, args.run / "manifest.json")
    data = data_sets.run_data(config)

    import pyro

    from ppgen import plots
    from ppgen.utils.paths import naming_path

    pyro.set_rng_seed(args.seed)
    with naming_path(out, "--out"):
        plots.latent(fit, data.test, data.test_labels, site=args.site, path=out)
    print(f"wrote the codes of {len(data.test)} test points to {out}")
    return 0
