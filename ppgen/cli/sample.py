"""``ppgen sample``: draw x ~ p(x) from a run and write them as a picture; with ``--mean``, the decoder's means
E[x | z] of the same draws z beside them."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ppgen.cli import common

#: the commands ``ppgen sample --help`` ends with, after the run that ``ppgen fit --help``'s example writes.
EXAMPLES = ("ppgen sample runs/demo -n 16 --mean --out samples.png",)


def add_parser(commands: Any) -> None:
    """Add the ``sample`` command to the subparsers ``commands``."""
    sample = common.add_command(
        commands, "sample", run, EXAMPLES,
        help="draw samples from a run and write a picture",
        description="Load RUN/fit.pt, draw n samples x ~ p(x) and write them as a picture: each row draws the "
                    "latents z ~ p(z), then x ~ p(x | z) (a Bernoulli decoder's draws are black and white pixels). "
                    "With --mean, the decoder's means E[x | z] of the same z are written beside them, the picture "
                    "`ppgen fit` writes as samples.png for image data (the VAE literature's pictures).",
    )
    sample.add_argument("-n", type=common.positive_int, default=common.N_SAMPLES, help="number of samples")
    sample.add_argument("--max-samples", type=common.positive_int, default=common.MAX_SAMPLES,
                        help="refuse an -n above this budget")
    sample.add_argument("--out", type=Path, default=None, metavar="FILE",
                        help="picture of the draws to write; the extension picks the format (default: "
                             "RUN/samples-<n>.png)")
    sample.add_argument("--mean", action="store_true",
                        help="also write the means E[x | z] of the same latent draws z, to FILE with -mean before "
                             "its extension (samples-mean.png beside samples.png), for a model whose likelihood has "
                             "a closed-form mean")
    sample.add_argument("--seed", type=common.seed_type, default=0, help="seed of the draws")
    common.add_common(sample)


def mean_path(out: Path) -> Path:
    """Where ``--mean`` writes the means beside the draws written to ``out``: ``-mean`` before its extension."""
    return out.with_name(f"{out.stem}-mean{out.suffix}")


def run(args: argparse.Namespace) -> int:
    """Check the outputs, load the run, draw (and take the means of the same latent draws), write the pictures
    (atomically, never through a link)."""
    if args.n > args.max_samples:
        args.parser.error(f"-n {args.n} is over the budget of {args.max_samples} samples: a picture of that many "
                          f"is unreadable; raise --max-samples to insist")
    out = args.out if args.out is not None else args.run / f"samples-{args.n}.png"
    outs = [out, mean_path(out)] if args.mean else [out]
    for path in outs:
        common.check_picture_out(path, "samples.png")
    fit, _ = common.load_run(args.run, args.device)

    import pyro

    from ppgen.utils.paths import naming_path

    pictures = []
    for mean in (False, True)[:len(outs)]:
        pyro.set_rng_seed(args.seed)  # the same latent draws z for the draws and for their means
        pictures.append(fit.sample(args.n, mean=mean))
    titles = [r"samples $x \sim p_\theta(x)$", r"decoder means $E[x \mid z]$, $z \sim p(z)$"]
    for x, path, title in zip(pictures, outs, titles):
        with naming_path(path, "--out"):
            common.draw_samples(x, path, title=title)
    print(f"wrote {args.n} samples to {out}" + (f", their means E[x | z] to {outs[1]}" if args.mean else ""))
    return 0
