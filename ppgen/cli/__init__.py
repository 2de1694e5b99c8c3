r"""The ``ppgen`` command line: fit a model from the zoo, evaluate it, draw from it.

::

    ppgen fit --model vae --data digits --inference iwae --k 5 --epochs 50 --out runs/demo
    ppgen eval runs/demo --k 5000
    ppgen fit --model generator --data moons --inference wasserstein --out runs/wgan
    ppgen fit --model vae --data moons --inference renyi --alpha 0.2 --k 5 --out runs/renyi
    ppgen fit --model vae --data digits --likelihood discretised_logistic --out runs/levels
    ppgen sample runs/demo -n 64 --mean --out samples.png
    ppgen encode runs/demo --out latent.png
    ppgen posterior runs/demo --index 3 --method importance --out post.nc

``ppgen fit`` writes one folder per run, as one unit: ``manifest.json`` (the run's configuration and a
digest of every file), ``checkpoint.pt`` (the whole state of the run, written every ``--checkpoint-every``
steps, at the end, and on SIGINT/SIGTERM: ``--resume`` continues it), ``fit.pt`` (the fitted model,
:func:`ppgen.load` reads it back), ``metrics.json`` (the training loss per epoch, the loss on the rows
``--validation-split`` held out (``validation_loss``, ``n_validation``, ``best_epoch``, ``stopped``), and the test
log-likelihood, with ``"exact": true`` and ``"eval_k": null`` where the model's log p(x) is exact, ``"bound": true`` and
``"eval_k": null`` where it is the model's own lower bound (a diffusion model's), ``"annealed": true`` and
``"eval_k": null`` where it is an energy model's -E(x) - log Zhat (log Z by annealed importance sampling), or the
importance samples ``eval_k`` of the estimate; for a model without a density, a generator,
``"test_log_likelihood": null`` and ``"test_sample_quality"``, the scores of as many draws as the test set has points
against it, with ``"test_figure"`` saying so), and the pictures ``samples.png``, ``latent.png`` (for models with latent
variables) and ``loss.png``; for image data ``samples.png`` shows the decoder's means E[x | z] of prior draws z
where the likelihood has a mean. ``encode`` draws the run's test set in its latent space; ``posterior`` writes
posterior draws of test points, with their diagnostics, as ArviZ's InferenceData in NetCDF. ``eval``, ``sample``,
``encode`` and ``posterior`` refuse a folder whose files are not all of one run. An
existing run is replaced only with ``--overwrite``, and stays whole until the new run is complete; ``--resume`` of a
finished run rewrites nothing, and ``eval`` keeps its earlier records of other ``--k`` or ``--seed``.

``--inference`` names the backends of :mod:`ppgen.inference` that fit the zoo's models, the energy models' score
matching, NCE and contrastive divergence among them, each with its options as flags (:mod:`ppgen.cli.backends`;
``ppgen fit --help`` says why MAP and NUTS are not offered); ``--likelihood discretised_logistic`` gives the images
as 8-bit levels round(255 x). ``sample --mean`` writes the decoder's means E[x | z] of the same latent draws z beside
the draws x ~ p(x | z). An error raised by the library is said in the command line's terms, ``--inference elbo``
for ``inference.ELBO()`` (:mod:`ppgen.cli.messages`). Every ``--help`` ends with an example that runs as written.

Data sets (``--data``):

- ``digits``: scikit-learn's 8x8 handwritten digits, binarized for a Bernoulli likelihood;
- ``moons``: two moons, train ``n=1000`` with seed ``S``, test ``n=500`` with seed ``S+1``;
- ``fashion-mnist``: Fashion-MNIST's 60,000 training and 10,000 test images of 28x28, read from local files
  (see :func:`ppgen.datasets.fashion_mnist`; ``make data`` installs them);
- ``idx:PATH``: a local MNIST-style IDX image file; the last 20% of the images are the test set.

Comparable figures: a continuous density (a Gaussian likelihood, PPCA, a GMM...) fitted to data on a grid (the
digits' 17 grey levels, 8-bit pixels) reports a log-density that grows without bound and cannot stand beside a
discrete model's log-probability; ``metrics.json`` then says ``"comparable": false``. ``--dequantize`` fits it
to x + delta u, u ~ U[0, 1)^D instead, and reports log p(x + delta u) + D log delta, a lower bound on the
log-probability of the discrete test data, in the same nats per point (:mod:`ppgen.datasets.dequantize`).

Errors a user can cause (a missing run folder, a bad data file, an ``--out`` that cannot be written) are
reported on one line, ``ppgen: error: ...``, with exit status 1, before any work where they can be foreseen;
bad arguments are argparse errors with exit status 2. SIGINT and SIGTERM stop a fit after its current step,
write a checkpoint and say how to resume (exit status 130 and 143); SIGINT at any other moment, start-up included,
prints one line and exits with status 130.

The parser imports neither torch nor Pyro: each command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence

from ppgen.cli import common, interrupts
from ppgen.cli.messages import in_cli_terms

__all__ = ["build_parser", "main"]

#: the commands ``ppgen --help`` ends with: a run fitted, evaluated and drawn from (a test runs them).
EXAMPLES = ("ppgen fit --model vae --data digits --inference iwae --k 5 --epochs 5 --out runs/demo",
            "ppgen eval runs/demo --k 100", "ppgen sample runs/demo -n 16 --mean")

#: the exit status of a run stopped by each signal, as a shell reports it (128 + the signal's number).
SIGNAL_STATUS = {"SIGINT": 130, "SIGTERM": 143}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``ppgen`` command."""
    import ppgen
    from ppgen.cli import encode as encode_command
    from ppgen.cli import eval as eval_command
    from ppgen.cli import fit as fit_command
    from ppgen.cli import posterior as posterior_command
    from ppgen.cli import sample as sample_command

    parser = argparse.ArgumentParser(
        prog="ppgen",
        description="Fit deep generative models written as Pyro programs, evaluate them, draw from them. Each "
                    "command's --help ends with an example.",
        formatter_class=common.HelpFormatter,
        epilog=common.example(*EXAMPLES),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {ppgen.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in (fit_command, eval_command, sample_command, encode_command, posterior_command):
        command.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the ``ppgen`` command with ``argv`` (default: ``sys.argv[1:]``) and returns its exit status.

    SIGINT at any moment ends it with one line on stderr and status 130 (:mod:`ppgen.cli.interrupts`).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    with interrupts.handled():
        try:
            with interrupts.deferred():  # the parser, and torch which set_threads imports
                parser = build_parser()
                args = parser.parse_args(argv)
                common.set_threads(args.threads)
            return args.func(args)
        except SystemExit as stop:  # argparse: --help, --version, and usage errors (status 2)
            code = stop.code
            return code if isinstance(code, int) else (0 if code is None else 1)
        except (ValueError, TypeError, OSError, FloatingPointError) as error:  # OSError: files and folders named
            message = str(error) if isinstance(error, OSError) else in_cli_terms(str(error))  # a path as it is
            print(f"ppgen: error: {message}", file=sys.stderr)
            return 1
        except KeyboardInterrupt as stop:
            return interrupted(stop, argv)


def interrupted(stop: KeyboardInterrupt, argv: list[str]) -> int:
    """Say on one line where a run stopped by a signal is saved and how to resume it; returns the exit status."""
    name = getattr(stop, "signal_name", "SIGINT")
    where = getattr(stop, "checkpoint", None)
    if where is None:
        print("ppgen: interrupted", file=sys.stderr)
    else:
        again = [*argv, "--resume"] if "--resume" not in argv else argv
        again = [a for a in again if a != "--overwrite"]
        print(f"ppgen: {name} at step {stop.step}: the run is saved in {where}; resume it with: "
              f"ppgen {shlex.join(again)}", file=sys.stderr)
    return SIGNAL_STATUS.get(name, 130)


if __name__ == "__main__":
    sys.exit(main())
