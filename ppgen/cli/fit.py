"""``ppgen fit``: fit a model of the zoo to a data set and write its run folder, resumably."""

from __future__ import annotations

import argparse
import inspect
import json
import os
import time
from pathlib import Path
from typing import Any

from ppgen.cli import backends, common, data_sets, interrupts
from ppgen.cli.messages import in_cli_terms
from ppgen.cli.watching import DEFAULT_SPLIT, epoch_lines, fraction, held_out


def add_parser(commands: Any) -> None:
    """Add the ``fit`` command to the subparsers ``commands``."""
    fit = common.add_command(
        commands, "fit", run, EXAMPLES,
        help="fit a model and write a run folder",
        description="Fit a model from the zoo to a data set; write the run (manifest.json, checkpoint.pt, fit.pt, "
                    "metrics.json, pictures) into --out. SIGINT or SIGTERM stops after the current step and "
                    "writes a checkpoint; the same command with --resume continues it.",
        of_run=False,
    )
    fit.add_argument("--model", default="vae", choices=common.MODEL_NAMES, help="model family")
    fit.add_argument("--data", default="digits", type=common.data_arg, help="digits, moons, fashion-mnist, or idx:PATH")
    fit.add_argument("--inference", default=None, choices=common.INFERENCE_NAMES, help=backends.help_text())
    fit.add_argument("--k", type=common.positive_int, default=None,
                     help="particles for elbo, importance samples for iwae, renyi, rws and vimco (default: the "
                          "backend's)")
    fit.add_argument("--epochs", type=common.positive_int, default=50, help="passes over the training set")
    fit.add_argument("--batch-size", type=common.positive_int, default=128, help="data points per step")
    fit.add_argument("--lr", type=common.positive_float, default=1e-3, help="learning rate of Adam")
    fit.add_argument("--z-dim", type=common.positive_int, default=None, help="latent dimension (default: the model's)")
    fit.add_argument("--components", type=common.positive_int, default=None,
                     help="mixture components, for gmm (default: the model's)")
    fit.add_argument("--hidden", type=common.positive_int, nargs="+", default=None,
                     help="hidden layer widths, for vae (default: the model's)")
    fit.add_argument("--likelihood", choices=common.LIKELIHOOD_NAMES, default=None,
                     help="observation likelihood, for the VAE family (default: bernoulli for images, gaussian for "
                          "moons); discretised_logistic models an image's pixels as 8-bit levels 0..255, "
                          "round(255 x)")
    fit.add_argument("--binarize", action=argparse.BooleanOptionalAction, default=None,
                     help="binarize image data (default: when the likelihood is Bernoulli)")
    fit.add_argument("--dequantize", action="store_true",
                     help="fit a continuous density to data on a grid plus uniform noise, and report the test "
                          "log-likelihood in the discrete data's units (comparable with discrete models)")
    fit.add_argument("--seed", type=common.seed_type, default=0,
                     help="seed of the initial weights, the data order and every draw")
    fit.add_argument("--eval-k", type=common.positive_int, default=1000,
                     help="importance samples for the test log-likelihood (a model without a density has none: its "
                          "draws are scored against the test set instead)")
    fit.add_argument("--validation-split", type=fraction, default=None, metavar="FRACTION",
                     help="the share of the training rows held out, drawn with --seed and not trained on, whose loss "
                          "(the objective's, as in training) metrics.json records at each epoch; 0 for none (default: "
                          f"{DEFAULT_SPLIT}, where the model and the objective take held-out rows)")
    fit.add_argument("--patience", type=common.positive_int, default=None, metavar="EPOCHS",
                     help="stop after this many epochs without a lower validation loss (default: train every epoch)")
    fit.add_argument("--keep", choices=["last", "best"], default="last",
                     help="the parameters the fit keeps: the last epoch's, or those of the lowest validation loss")
    fit.add_argument("--tensorboard", type=run_folder, default=None, metavar="DIR",
                     help="write TensorBoard event files into DIR: the losses, the learning rate, skipped batches, and "
                          "pictures of samples and of the latent space every 10 epochs (pip install "
                          "\"ppgen[tensorboard]\"; default: none)")
    fit.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                     help="progress bar (default: on a terminal; elsewhere a line per epoch)")
    fit.add_argument("--out", type=run_folder, default=None, metavar="RUN",
                     help="run folder (default: runs/<model>-<data>)")
    fit.add_argument("--checkpoint-every", type=common.positive_int, default=None, metavar="STEPS",
                     help="steps between checkpoints (default: one per epoch)")
    fit.add_argument("--distributed", action="store_true",
                     help="train data-parallel, one process per rank, under `torchrun --nproc_per_node=N -m ppgen "
                          "fit ...`: each batch is split across the ranks, rank 0 writes the run folder")
    common.add_compile(fit, "the training step and the test set's log p(x)")
    again = fit.add_mutually_exclusive_group()
    again.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    again.add_argument("--resume", action="store_true",
                       help="continue the run in --out from its checkpoint (the same arguments, bitwise on CPU)")
    common.add_common(fit)
    backends.add_options(fit)


#: the commands ``ppgen fit --help`` ends with (a test runs them).
EXAMPLES = ("ppgen fit --model vae --data digits --inference iwae --k 5 --epochs 5 --out runs/demo",
            "ppgen fit --model vae --data moons --inference renyi --alpha 0.5 --k 5 --epochs 2 --out runs/renyi")


#: the flag of each setting the CLI records in a run's manifest (``config.extra``), and of each model option.
FLAGS = {"model": "--model", "inference": "--inference", "k": "--k", "data": "--data", "binarize": "--binarize",
         "epochs": "--epochs", "batch_size": "--batch-size", "lr": "--lr", "seed": "--seed", "eval_k": "--eval-k",
         "device": "--device", "dequantize": "--dequantize", "z_dim": "--z-dim", "n_components": "--components",
         "hidden": "--hidden", "likelihood": "--likelihood", "validation_split": "--validation-split",
         "patience": "--patience", "keep": "--keep", **{o.field: o.flag for o in backends.OPTIONS}}


def run_folder(text: str) -> Path:
    """An argparse ``type``: the path of a run folder, which an empty string is not (it would be the working
    folder)."""
    if not text:
        raise argparse.ArgumentTypeError("expected the path of a folder for the run, got an empty string")
    return Path(text)


def accepted_options(model: str) -> set[str] | None:
    """The keyword arguments the model class takes, or None when it takes any (``**kwargs``)."""
    from ppgen.training import registry

    parameters = inspect.signature(registry.model_class(model)).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return {p.name for p in parameters}


def model_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options given on the command line, checked against what the model takes."""
    accepted = accepted_options(args.model)
    given = {
        "z_dim": ("--z-dim", args.z_dim),
        "n_components": ("--components", args.components),
        "hidden": ("--hidden", list(args.hidden) if args.hidden else None),
        "likelihood": ("--likelihood", args.likelihood),
        "noise_conditional": ("--noise", True if args.noise and len(args.noise) > 1 else None),  # E(x, sigma)
    }
    options = {}
    for name, (flag, value) in given.items():
        if value is None:
            continue
        if accepted is not None and name not in accepted:
            args.parser.error(f"{flag} does not apply to model {args.model!r}")
        options[name] = value
    if "likelihood" not in options and accepted is not None and "likelihood" in accepted:
        options["likelihood"] = "gaussian" if common.data_kind(args.data) == "moons" else "bernoulli"
    return options


def check_particles(args: argparse.Namespace, points: int) -> None:
    """``--k`` particles for each of the ``points`` of a step, held to the budget ``ppgen.fit`` holds them to
    (:data:`ppgen.utils.budget.BUDGET`), as an argparse error naming ``--k``."""
    from ppgen.utils.budget import BUDGET

    if args.k is not None and args.k * points > BUDGET.particle_points:
        args.parser.error(f"--k {args.k} for the {points} data points of a step (--batch-size {args.batch_size}) is "
                          f"{args.k * points} particle-points, over the budget of {BUDGET.particle_points}: lower --k "
                          f"or --batch-size")


def check_model_size(args: argparse.Namespace, x_dim: int, options: dict[str, Any]) -> None:
    """The model the options build, measured on the meta device (no memory), held to the parameter budget that
    :func:`ppgen.load` holds a checkpoint to (:data:`ppgen.utils.budget.BUDGET`), as an argparse error naming the
    options: ``--hidden 1000000000000`` is refused, not an allocator's traceback. A model whose constructor computes on
    its tensors (a MADE's masks) cannot be built on the meta device, and is built for real unmeasured."""
    import torch

    from ppgen.training import registry
    from ppgen.utils.budget import BUDGET

    try:
        with torch.device("meta"):
            size = sum(p.numel() for p in registry.build_model(args.model, x_dim, **options).parameters())
    except (RuntimeError, NotImplementedError):
        return
    if size > BUDGET.checkpoint_parameters:
        sizes = {"--z-dim": [args.z_dim], "--components": [args.components], "--hidden": args.hidden or [None]}
        given = " ".join(f"{flag} {' '.join(map(str, values))}" for flag, values in sizes.items() if values[0])
        args.parser.error(f"{given}: {args.model} would have {size} parameters, over the budget of "
                          f"{BUDGET.checkpoint_parameters}: give smaller sizes")


def run(args: argparse.Namespace) -> int:
    """Fit, then write the run's metrics and pictures; every file is recorded in the run's manifest."""
    kind = common.data_kind(args.data)
    if args.k is not None and args.inference is None:
        args.parser.error("--k needs --inference (iwae: importance samples, elbo: particles)")
    if args.k is not None and args.inference in common.WITHOUT_K:
        args.parser.error(f"--k does not apply to --inference {args.inference}")
    if args.inference in common.TWO_PLAYER:  # as ppgen.fit refuses compile= and distributed=, but before any work
        for flag, given, step in (("--compile " + args.compile, args.compile not in ("auto", "false"),
                                   "the captured step"),
                                  ("--distributed", args.distributed, "data-parallel training")):
            if given:
                args.parser.error(f"{flag} does not apply to --inference {args.inference}: it trains a critic beside "
                                  f"the model, which {step} does not take yet; leave {flag.split()[0]} out")
    if kind == "moons" and args.binarize is not None:
        args.parser.error("--binarize/--no-binarize applies to image data (digits, fashion-mnist, idx:PATH), "
                          "not moons")
    if kind == "moons" and args.likelihood == "discretised_logistic":
        args.parser.error("--likelihood discretised_logistic models the 8-bit levels of image data (digits, "
                          "fashion-mnist, idx:PATH), not the real points of moons: use --likelihood gaussian")
    inference_options = backends.given_options(args)
    with interrupts.deferred():  # SIGINT waits for the imports' end (see ppgen.cli.interrupts)
        import pyro
        import torch

        from ppgen.cli.pictures import draw_pictures
        from ppgen.datasets.dequantize import dequantize, grid_spacing
        from ppgen.program.structure import inspect as inspect_program
        from ppgen.queries.sample_quality import DEFAULT_METRICS, MIN_POINTS
        from ppgen.run.distributed import current, launched_world_size
        from ppgen.run.folder import FIT, RunFolder
        from ppgen.run.opening import resume_source
        from ppgen.training import registry
        from ppgen.training.fitting import fit as fit_model

    if launched_world_size() > 1 and not args.distributed:
        args.parser.error(f"this process is one of {launched_world_size()} that a launcher (torchrun) started, but "
                          f"--distributed is not given: each would fit alone and write the same run folder; pass "
                          f"--distributed to train them together")
    options = model_options(args)
    levels = data_sets.levels_of(options.get("likelihood"))
    binarize = None
    if kind != "moons":
        binarize = args.binarize if args.binarize is not None else options.get("likelihood") == "bernoulli"
    out = args.out if args.out is not None else Path("runs") / f"{args.model}-{kind}"
    if not args.distributed or os.environ.get("RANK", "0") == "0":  # rank 0 alone writes the run folder
        RunFolder(out).check_writable(overwrite=args.overwrite, resume=args.resume, label="--out")  # before any work
    config = {"model": args.model, "model_options": options, "inference": args.inference, "k": args.k,
              "data": args.data, "binarize": binarize, "epochs": args.epochs, "batch_size": args.batch_size,
              "lr": args.lr, "seed": args.seed, "eval_k": args.eval_k, "device": str(args.device), "levels": levels,
              "inference_options": {k: list(v) if isinstance(v, tuple) else v for k, v in inference_options.items()}}
    data = data_sets.load_data(args.data, binarize=binarize, seed=args.seed, levels=levels)
    check_particles(args, min(args.batch_size, len(data.train)))
    pyro.set_rng_seed(args.seed)  # the initial weights are drawn here, before ppgen.fit seeds the training
    check_model_size(args, data.train.shape[1], options)
    model = registry.build_model(args.model, data.train.shape[1], **options)
    try:
        backend = registry.build_inference(args.inference, args.k, **inference_options) if args.inference else None
    except (TypeError, ValueError) as error:  # a value the backend refuses: an argument error, said by its flag
        args.parser.error(in_cli_terms(str(error)))
    spacing = grid_spacing(data.train)
    structure = inspect_program(model, data.train[:2])
    implicit = structure.implicit  # no density: the test set scores its draws, by the metrics its points allow
    fewest = min(MIN_POINTS[name] for name in DEFAULT_METRICS)
    if implicit and len(data.test) < fewest:
        raise ValueError(f"--data {args.data}: its test set of {len(data.test)} point(s) is too few to score the draws "
                         f"of {args.model}, which has no density, by any sample metric (they take {fewest} or more): "
                         f"give more data")
    continuous = common.is_density(structure.data_support) and not implicit
    if args.dequantize and not (continuous and spacing is not None):
        why = ("it has no density (it is implicit, x = G(z))" if implicit else "its likelihood is discrete"
               if not continuous else "the data do not lie on a grid of at most 256 values")
        args.parser.error(f"--dequantize applies to a continuous density on discrete data, but for {args.model} "
                          f"on {kind} {why}")
    config["dequantize"] = spacing if args.dequantize else None
    train = dequantize(data.train, spacing, torch.Generator().manual_seed(args.seed)) if args.dequantize \
        else data.train
    train, validation = held_out(args, train, structure, backend)
    if validation is not None:
        config.update(validation_split=args.validation_split or DEFAULT_SPLIT, patience=args.patience, keep=args.keep)

    compile = common.COMPILE_CHOICES[args.compile]
    earlier = 0.0  # the seconds that the processes before this one trained the run resumed
    if args.resume:  # the run's own arguments, named as flags, before any work on it
        source = resume_source(out)
        check_same_arguments(source, config)
        earlier = source.seconds() if source.manifest_path.is_file() else 0.0
    start = time.perf_counter()
    with epoch_lines(args.progress):
        fit = fit_model(model, train, inference=backend, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                        seed=args.seed, device=args.device, progress=args.progress, out=out,
                        checkpoint_every=args.checkpoint_every, resume=args.resume, overwrite=args.overwrite,
                        run_config=config, distributed=args.distributed, compile=compile, validation=validation,
                        patience=args.patience, keep=args.keep, log_dir=args.tensorboard)
    wall_time = earlier + time.perf_counter() - start
    folder, group = RunFolder(out), current()
    if group.from_writer(lambda: common.METRICS_FILE in folder.read_manifest()["files"]):
        # a finished run, resumed: its results stand as written (a fresh or replacing run has none recorded yet)
        return report_finished(folder, args.model, kind) if group.writer else 0
    if implicit:  # the draws are scored by rank 0 alone, which writes the rest
        if not group.writer:
            return 0
        quality = common.test_sample_quality(fit, data.test, seed=args.seed)
        figures = {"test_log_likelihood": None, "eval_k": None, "exact": False, "bound": False,
                   "test_figure": common.NO_DENSITY, "test_sample_quality": quality.to_dict()}
        result = f"{common.NO_DENSITY}\n{quality}"
    else:
        estimate = common.test_log_likelihood(fit, data.test, k=args.eval_k, seed=args.seed,
                                              spacing=config["dequantize"], compile=compile)
        # the test set was evaluated by every rank, a share each; rank 0 writes the rest
        if not group.writer:
            return 0
        figures = {"test_log_likelihood": common.finite_or_none(estimate.log_likelihood), "eval_k": estimate.k,
                   "exact": estimate.exact, "bound": estimate.bound, "annealed": estimate.annealed}
        result = str(estimate)
    comparable = not continuous or spacing is None or args.dequantize
    metrics = {
        "config": config,
        "x_dim": data.train.shape[1],
        "n_train": len(data.train),
        "n_test": len(data.test),
        "train_loss": [common.finite_or_none(loss) for loss in fit.history],
        "n_validation": 0 if validation is None else len(validation),  # held out of the n_train rows
        "validation_loss": [common.finite_or_none(loss) for loss in fit.validation_history],
        "best_epoch": fit.best_epoch,
        "stopped": fit.stopped,
        "objective": common.objective_label(fit.inference),
        **figures,
        **common.comparability(comparable, spacing),
        "wall_time_s": wall_time,
        "world_size": group.world_size,
    }
    pictures, skipped = draw_pictures(fit, data, folder, args.seed)
    folder.write(common.METRICS_FILE, common.json_bytes(metrics))  # last: its record says the results are complete
    before = f", {earlier:.1f} s of them before it was resumed" if earlier else ""
    epochs = f"{args.epochs} epochs" if fit.stopped is None else f"{len(fit.history)} epochs ({fit.stopped})"
    print(f"{args.model} on {kind}, {epochs} in {wall_time:.1f} s{before}: {result}")
    if not comparable:
        print(f"note: {metrics['comparability']}")
    print(f"wrote {', '.join(str(out / name) for name in [FIT, common.METRICS_FILE, *pictures])}")
    if skipped is not None:
        print(f"latent.png skipped: {skipped}")
    return 0


def check_same_arguments(source: Any, config: dict[str, Any]) -> None:
    """A ``ValueError`` naming, as flags, the arguments in which ``config`` differs from those the run to resume
    (``source``, a :class:`~ppgen.run.folder.RunFolder`) was started with; nothing without a run of the CLI there."""
    recorded = source.read_manifest()["config"].get("extra") if source.manifest_path.is_file() else None
    if not isinstance(recorded, dict):
        return
    nested = ("model_options", "inference_options")
    pairs = [(key, config.get(key), recorded.get(key)) for key in sorted(set(config) | set(recorded))
             if key not in nested]
    for group in nested:
        mine, theirs = config.get(group) or {}, recorded.get(group) or {}
        pairs += [(key, mine.get(key), theirs.get(key)) for key in sorted(set(mine) | set(theirs))]

    def shown(value: Any) -> str:
        return "not given" if value is None else " ".join(map(str, value)) if isinstance(value, list) else str(value)

    differ = [f"{FLAGS.get(key, key)} {shown(given)} here, {shown(was)} in the run"
              for key, given, was in pairs if given != was]
    if differ:
        raise ValueError(f"--resume: the run in {source.path} was started with other arguments ({'; '.join(differ)}): "
                         f"give its own to continue it, --overwrite to replace it, or another --out")


def report_finished(folder: Any, model: str, kind: str) -> int:
    """Say that the run in ``folder`` was finished already, with the results it recorded; nothing is rewritten."""
    folder.verify(common.METRICS_FILE)
    metrics = json.loads((folder.path / common.METRICS_FILE).read_text())
    figure, quality = metrics.get("test_log_likelihood"), metrics.get("test_sample_quality")
    if isinstance(figure, float):
        result = str(common.Estimate(figure, metrics.get("eval_k"), metrics.get("n_test"), bool(metrics.get("bound")),
                                     bool(metrics.get("annealed"))))
    elif isinstance(quality, dict):  # a model without a density: the scores of its draws
        scores = [f"{name} {entry['value']:.4g}" for name, entry in quality.items()
                  if isinstance(entry, dict) and isinstance(entry.get("value"), float)]
        result = f"no test log-likelihood (the model has no density); its draws scored {', '.join(scores)}"
    else:
        result = "a test log-likelihood that is not finite"
    print(f"{model} on {kind}: the run in {folder.path} was finished already ({len(metrics.get('train_loss', []))} "
          f"epochs in {metrics.get('wall_time_s', float('nan')):.1f} s): {result}; nothing was rewritten")
    return 0
