"""What the ``ppgen`` commands share: argument types, the help format, data sets, the run folder, results.

Nothing here imports torch at module level, so that building the parser (and ``ppgen --help``) is quick.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    import ppgen

#: the zoo's and the backends' names, as ``ppgen.training.registry`` has them (a test keeps the two in step).
MODEL_NAMES = ("conv-energy", "conv-generator", "conv-vae", "ddpm", "dequantized", "energy", "factor-analysis",
               "flowvae", "fvsbn", "generator", "gmm", "gmvae", "hvae", "made", "maf", "mixture-of-bernoullis", "nade",
               "nsf", "ppca", "realnvp", "vae")
INFERENCE_NAMES = ("adversarial", "contrastive-divergence", "elbo", "iwae", "mle", "mmd", "nce", "renyi", "rws",
                   "score-matching", "vimco", "wasserstein")
#: the backends that train a critic beside the model (two-player): ``--compile`` and ``--distributed`` take none yet.
TWO_PLAYER = ("adversarial", "wasserstein")
#: the observation likelihoods of the VAE family, as ``ppgen.models.likelihoods.LIKELIHOODS`` has them.
LIKELIHOOD_NAMES = ("bernoulli", "gaussian", "continuous_bernoulli", "discretised_logistic")
#: the backends without a K (importance samples, particles), to which ``--k`` does not apply.
WITHOUT_K = ("adversarial", "contrastive-divergence", "mle", "mmd", "nce", "score-matching", "wasserstein")
#: the data sets ``--data`` names (besides ``idx:PATH``).
DATA_NAMES = ("digits", "moons", "fashion-mnist")
METRICS_FILE = "metrics.json"
N_SAMPLES = 64
#: the most samples ``ppgen sample`` draws unless ``--max-samples`` raises it.
MAX_SAMPLES = 100_000


class HelpFormatter(argparse.HelpFormatter):
    """Shows each option's default once: appended to its help, unless the help already says it; keeps the lines of
    an example (indented by two spaces, as :func:`example` writes them) as they are, and fills the rest."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        prose, _, lines = text.partition("\n  ")
        filled = super()._fill_text(prose, width, indent)
        return filled if not lines else filled + "\n" + "\n".join(indent + "  " + line.strip()
                                                                    for line in lines.split("\n  "))

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default in (None, argparse.SUPPRESS) or not action.option_strings:
            return text
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            return text
        return f"{text} (default: %(default)s)"


# ---------------------------------------------------------------------------------------------
# Argument types


def argument_type(parse: Callable[[str], Any], check_name: str) -> Callable[[str], Any]:
    """An argparse ``type``: the string ``parse``d, then checked by ``ppgen.utils.checks.<check_name>`` (imported on
    use). A failure becomes an :class:`argparse.ArgumentTypeError`, which argparse reports after the flag."""

    def convert(text: str) -> Any:
        from ppgen.utils import checks

        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {parse.__name__}, got {text!r}") from None
        try:
            return getattr(checks, check_name)(value, "value")
        except (TypeError, ValueError) as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    convert.__name__ = check_name.removeprefix("check_")
    return convert


positive_int = argument_type(int, "check_positive_int")


def non_negative_int(text: str) -> int:
    """An argparse ``type``: an index, 0 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an int of 0 or more, got {value}")
    return value


positive_float = argument_type(float, "check_positive_float")
seed_type = argument_type(int, "check_seed")


def threads_type(text: str) -> int:
    """An argparse ``type``: CPU threads for torch, at most this machine's CPUs (torch takes a C ``int``, and more
    threads than CPUs only slow it down)."""
    value = positive_int(text)
    if value > (os.cpu_count() or 1):
        raise argparse.ArgumentTypeError(f"expected at most this machine's {os.cpu_count() or 1} CPUs, got {value}")
    return value
device_type = argument_type(str, "check_device")


def data_arg(value: str) -> str:
    """``--data``: ``digits``, ``moons``, ``fashion-mnist`` or ``idx:PATH`` (made absolute, so ``eval`` finds it
    from anywhere)."""
    if value in DATA_NAMES:
        return value
    if value.startswith("idx:") and len(value) > len("idx:"):
        return "idx:" + str(Path(value[len("idx:"):]).expanduser().resolve())
    raise argparse.ArgumentTypeError(f"unknown data set {value!r} (choose from digits, moons, fashion-mnist, "
                                     f"idx:PATH)")


def data_kind(spec: str) -> str:
    """``idx`` for ``idx:PATH``, else the spec itself."""
    return "idx" if spec.startswith("idx:") else spec


def example(*commands: str) -> str:
    """The epilog of a command's ``--help``: commands that run as written (a test runs each, in order, in an empty
    folder), each on its own line."""
    return "example:\n" + "".join(f"  {command}\n" for command in commands).rstrip("\n")


def add_command(commands: Any, name: str, func: Callable[[argparse.Namespace], int], examples: tuple[str, ...], *,
                help: str, description: str, of_run: bool = True) -> argparse.ArgumentParser:
    """The parser of command ``name``, added to the subparsers ``commands``: its ``--help`` laid out by
    :class:`HelpFormatter` and ending with ``examples`` (:func:`example`), ``func`` called with the parsed arguments;
    with ``of_run``, its first argument RUN, the folder of a run that ``ppgen fit`` wrote."""
    parser = commands.add_parser(name, help=help, description=description, formatter_class=HelpFormatter,
                                 epilog=example(*examples))
    if of_run:
        parser.add_argument("run", type=Path, metavar="RUN", help="run folder written by `ppgen fit`")
    parser.set_defaults(func=func, parser=parser)
    return parser


def add_common(parser: argparse.ArgumentParser) -> None:
    """The options every command takes: ``--device`` and ``--threads``."""
    parser.add_argument("--device", type=device_type, default="cpu", help="where the model runs, e.g. cuda")
    parser.add_argument("--threads", type=threads_type, default=None,
                        help="CPU threads torch may use (default: torch's choice)")


#: ``--compile``'s choices, as ``ppgen.fit``'s and the queries' ``compile`` argument.
COMPILE_CHOICES = {"auto": "auto", "false": False, "capture": "capture", "true": True}


def add_compile(parser: argparse.ArgumentParser, what: str) -> None:
    """``--compile auto|false|capture|true``: ``compile=`` of ``ppgen.fit`` and of the queries, for ``what``."""
    parser.add_argument("--compile", choices=list(COMPILE_CHOICES), default="auto",
                        help=f"{what}: auto (the default), chosen per batch shape from the steps left and the costs "
                             f"measured as it runs; false, the plain computation; capture, traced once per batch "
                             f"shape and replayed; true, also compiled by torch.compile when a shape comes back "
                             f"(seconds, once a shape); each checked against the plain one on the same draws")


def set_threads(threads: int | None) -> None:
    """Give torch ``threads`` CPU threads, where the command asked for a number."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


# ---------------------------------------------------------------------------------------------
# Run folders


def load_run(run: Path, device: Any, *names: str) -> tuple[ppgen.Fit, dict[str, Any]]:
    """The fit of a finished run and its manifest, once ``fit.pt`` and ``names`` are checked to be that run's."""
    import ppgen
    from ppgen.run.folder import FIT, RunFolder

    if not run.exists():
        raise FileNotFoundError(f"run folder {run} not found")
    if not run.is_dir():
        raise NotADirectoryError(f"{run} is not a run folder (the folder `ppgen fit --out` writes)")
    if not (run / FIT).is_file():
        raise FileNotFoundError(f"{run / FIT} not found: {run} is not a finished `ppgen fit` run")
    manifest = RunFolder(run).verify(FIT, *names)
    return ppgen.load(run / FIT, device=device), manifest


def run_settings(manifest: dict[str, Any], where: Path) -> dict[str, Any]:
    """The CLI settings a run's manifest records, checked field by field: nothing in a file is trusted."""
    config = manifest["config"].get("extra")
    if not isinstance(config, dict):
        raise ValueError(f"{where}: field 'config.extra' holds no `ppgen fit` settings: not a run of the CLI")
    checks: dict[str, Callable[[Any], bool]] = {
        "data": lambda v: isinstance(v, str) and (v in DATA_NAMES or bool(re.fullmatch(r"idx:/.+", v))),
        "binarize": lambda v: v is None or isinstance(v, bool),
        "seed": lambda v: type(v) is int and 0 <= v < 2**32,
        "eval_k": lambda v: type(v) is int and v >= 1,
        "dequantize": lambda v: v is None or (type(v) is float and math.isfinite(v) and v > 0),
        "levels": lambda v: v is None or (type(v) is int and 2 <= v <= 2**16),
    }
    for field, ok in checks.items():
        if not ok(config.get(field)):
            raise ValueError(f"{where}: field 'config.extra.{field}' is damaged: {config.get(field)!r}")
    return config


def check_picture_out(out: Path, example: str) -> None:
    """An output file (a picture, a NetCDF file) checked before any work: not a link, and a file that can be written
    (:func:`ppgen.utils.paths.check_output_file`: not a folder, not under a file, in a folder that takes a new file).
    ``example`` is a file name to suggest where ``out`` is a folder."""
    from ppgen.utils.paths import check_output_file

    if out.is_symlink():
        raise ValueError(f"--out {out} is a symbolic link: ppgen never writes through a link; remove it first")
    check_output_file(out, "--out", example)


def write_netcdf(idata: Any, out: Path) -> None:
    """An ArviZ InferenceData to ``out`` as NetCDF, atomically (a link there is replaced, never written through)."""
    import tempfile

    from ppgen.run.checkpoint import atomic_write

    with tempfile.TemporaryDirectory() as folder:
        staged = Path(folder) / "posterior.nc"
        idata.to_netcdf(str(staged))
        content = staged.read_bytes()
    atomic_write(out, lambda f: f.write(content))


# ---------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class Estimate:
    """The mean test log-likelihood, in nats per point, over ``n`` points; ``k`` is None where it is exact, the
    model's own lower bound (``bound``, as a diffusion model's) or an energy model's -E(x) - log Zhat, log Z estimated
    by annealed importance sampling (``annealed``)."""

    log_likelihood: float
    k: int | None
    n: int
    bound: bool = False
    annealed: bool = False

    @property
    def exact(self) -> bool:
        """Whether log p(x) is exact, rather than estimated (with k importance samples, or log Z by AIS) or bounded
        by the model."""
        return self.k is None and not self.bound and not self.annealed

    def __str__(self) -> str:
        method = ("the model's lower bound" if self.bound else "log Z by annealed importance sampling"
                  if self.annealed else "exact" if self.exact else f"k={self.k}")
        return f"test log-likelihood {self.log_likelihood:.4f} nats per point ({method}, {self.n} points)"


def test_log_likelihood(fit: ppgen.Fit, test: torch.Tensor, *, k: int, seed: int,
                        spacing: float | None = None, compile: bool | str = "auto") -> Estimate:
    """Mean log p(x) over the test set; seeded, so `eval` can reproduce `fit`; ``k`` is unused where it is exact.
    With a grid ``spacing``, the test points are dequantised (the noise seeded with ``seed + 1``) and the figure is
    the lower bound on the discrete log P(x) of :mod:`ppgen.datasets.dequantize`."""
    import pyro
    import torch

    from ppgen.datasets.dequantize import dequantize, discrete_log_likelihood
    from ppgen.program.protocol import bounds_itself
    from ppgen.utils.checks import SEED_LIMIT

    if spacing is not None:
        test = dequantize(test, spacing, torch.Generator().manual_seed((seed + 1) % SEED_LIMIT))
    pyro.set_rng_seed(seed)
    log_likelihood = fit.log_prob(test, k=k, compile=compile).detach().double()
    if spacing is not None:
        log_likelihood = discrete_log_likelihood(log_likelihood, spacing, test[0].numel())
    bound, annealed = bounds_itself(fit.model), fit.energy is not None
    return Estimate(log_likelihood.mean().item(), k=None if fit.structure.exact or bound or annealed else k,
                    n=len(test), bound=bound, annealed=annealed)


#: what a run of a model without a density records and says in place of a test log-likelihood.
NO_DENSITY = ("the model has no density (it is implicit, x = G(z)), so no test log-likelihood: its draws are scored "
              "against the test set instead")


def test_sample_quality(fit: ppgen.Fit, test: torch.Tensor, *, seed: int) -> Any:
    """The :class:`~ppgen.queries.sample_quality.SampleQuality` of as many draws of the model as ``test`` has points,
    scored against it by :meth:`ppgen.Fit.evaluate`'s default metrics (those the points allow); seeded as `eval`
    seeds its report, so that `eval` with the default ``--metrics`` reproduces it."""
    import pyro

    pyro.set_rng_seed(seed)
    return fit.evaluate(test, seed=seed).samples


def objective_label(objective: Any) -> str:
    """An objective on one line, for metrics.json and a picture's title: its repr, but a critic (a module, whose repr
    spans many lines) named by its class."""
    critic = getattr(objective, "critic", None)
    if critic is None:
        return repr(objective)
    settings = "".join(f", {name}={value!r}" for name, value in objective.config.items())
    return f"{type(objective).__name__}(critic={type(critic).__name__}{settings})"


def is_density(support: Any) -> bool:
    """Whether a likelihood with this support (a :class:`~ppgen.program.structure.Structure`'s ``data_support``) is a
    density, whose log p(x) is not a log-probability."""
    return support is not None and not support.is_discrete


def comparability(comparable: bool, spacing: float | None) -> dict[str, Any]:
    """The ``comparable`` entry of metrics.json, with the reason where it is false."""
    if comparable:
        return {"comparable": True}
    levels = "a grid of values" if spacing is None else f"a grid of spacing {spacing:.4g}"
    return {"comparable": False,
            "comparability": f"a continuous density fitted to data on {levels}: the test figure is a log-density, "
                             f"not comparable with a discrete model's log-probability; refit with --dequantize"}


def finite_or_none(value: float) -> float | None:
    """``value`` as a float, or ``None`` where it is not finite (JSON has no NaN)."""
    value = float(value)
    return value if math.isfinite(value) else None


def json_bytes(obj: Any) -> Callable[[Any], None]:
    """A writer of ``obj`` as JSON, for :func:`ppgen.run.checkpoint.atomic_write` and :meth:`RunFolder.write`."""
    text = json.dumps(obj, indent=2, allow_nan=False) + "\n"
    return lambda f: f.write(text.encode())


def draw_samples(x: torch.Tensor, path: Path, reference: torch.Tensor | None = None,
                 title: str = r"samples $x \sim p_\theta(x)$") -> None:
    """Samples as a picture: a scatter plot of 2-D points, an image grid otherwise."""
    from ppgen import plots

    x = x.detach().cpu().reshape(len(x), -1)
    if x.shape[1] == 2:
        plots.scatter(x, path, reference=reference, title=title)
    else:
        plots.image_grid(x, path, title=title)


def pictured_samples(fit: ppgen.Fit, n: int, image: bool) -> tuple[torch.Tensor, str]:
    """n samples for a picture, and its title: for images the decoder's means E[x | z] of prior draws z (the VAE
    literature's pictures, not speckled 0/1 draws) where the likelihood has a mean; draws x ~ p(x) otherwise."""
    if image:
        try:
            return fit.sample(n, mean=True), r"decoder means $E[x \mid z]$, $z \sim p(z)$"
        except ValueError:  # a likelihood without a closed-form mean (a flow's): draws instead
            pass
    return fit.sample(n), r"samples $x \sim p_\theta(x)$"
