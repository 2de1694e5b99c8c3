"""``ppgen fit``'s inference backends: the names ``--inference`` takes, each backend's options as flags, and why the
CLI does not offer the API's other backends.

A backend's option is the keyword argument of its class in :mod:`ppgen.inference`, spelt as a flag
(``estimator="dreg"`` is ``--estimator dreg``); the ELBO's ``num_particles`` and every other bound's ``k`` are
``--k``. Nothing here imports torch: the parser stays quick.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ppgen.cli import common

#: the API's backends that ``--inference`` does not offer, and why; ``ppgen fit --help`` says so.
NOT_OFFERED = {
    "map, nuts": "inference.MAP() and inference.NUTS() fit a model whose parameters carry a prior (latents outside "
                 "the data plate), and no model of --model has one: fit such a Pyro program of your own from Python",
}


@dataclass(frozen=True)
class Option:
    """One keyword argument of the backends named ``backends``, as the flag ``--<field with dashes>``.

    Attributes:
        field: the keyword argument, as the backend's class spells it.
        backends: the ``--inference`` names that take it.
        help: what it sets, for ``--help``.
        default: the backends' default, as ``--help`` shows it (a test holds it to the classes' own); a dict of
            them by backend where they differ.
        type: the argparse ``type`` of its value.
        choices: its values, where they are few.
        nargs: argparse's ``nargs``, for a list.
        boolean: a switch, ``--flag`` / ``--no-flag``.
        single: a list of one value given as the value itself (``noise=0.1``, not ``noise=(0.1,)``).
    """

    field: str
    backends: tuple[str, ...]
    help: str
    default: Any
    type: Callable[[str], Any] | None = None
    choices: tuple[str, ...] | None = None
    nargs: str | None = None
    boolean: bool = False
    single: bool = False

    @property
    def flag(self) -> str:
        """The option as a CLI user types it."""
        return "--" + self.field.replace("_", "-")


non_negative_float = common.argument_type(float, "check_non_negative_float")
finite_float = common.argument_type(float, "check_finite_float")

#: every backend option that ``ppgen fit`` takes as a flag, in the order ``--help`` lists them. Options that take a
#: Python object (a critic network, a noise distribution) have no flag: the backend's default is used.
OPTIONS = (
    Option("kl", ("elbo",), "the ELBO's KL(q(z|x) || p(z)) term: sampled, log q(z|x) - log p(z) at the draws; "
           "analytic, in closed form where the guide and the prior have one", "sampled",
           choices=("sampled", "analytic")),
    Option("estimator", ("iwae",), "the gradient estimator of IWAE's bound: standard; dreg, doubly reparameterised "
           "(Tucker et al., 2019); stl, sticking the landing (Roeder et al., 2017)", "standard",
           choices=("standard", "dreg", "stl")),
    Option("alpha", ("renyi", "contrastive-divergence"), "for renyi, the order of the Renyi bound (0 is IWAE's "
           "bound, 1 the ELBO; any finite number); for contrastive-divergence, the weight >= 0 of the energies' "
           "squares added to the loss", {"renyi": 0.5, "contrastive-divergence": 0.0}, type=finite_float),
    Option("latent_mmd", ("elbo", "iwae", "renyi"), "lambda >= 0, the weight of MMD^2(q(z), p(z)) added to the loss "
           "(InfoVAE); 0 is the bound itself", 0.0, type=non_negative_float),
    Option("num_samples", ("mmd",), "r, the model's draws per data point of a batch", 1, type=common.positive_int),
    Option("bandwidths", ("mmd",), "fixed bandwidths h_b of the Gaussian kernels, in the units of x (default: the "
           "median heuristic at every batch)", None, type=common.positive_float, nargs="+"),
    Option("divergence", ("adversarial",), "the f-divergence the critic estimates", "js",
           choices=("kl", "reverse_kl", "pearson", "hellinger", "js", "gan")),
    Option("nonsaturating", ("adversarial",), "the generator maximises log D(G(z)) rather than minimising "
           "log(1 - D(G(z))) (default: for js and gan)", None, boolean=True),
    Option("gradient_penalty", ("wasserstein",), "the weight of WGAN-GP's penalty on the critic's gradient norm",
           10.0, type=non_negative_float),
    Option("one_sided", ("wasserstein",), "penalise only gradient norms above 1", False, boolean=True),
    Option("critic_steps", ("adversarial", "wasserstein"), "critic updates per update of the model",
           {"adversarial": 1, "wasserstein": 5}, type=common.positive_int),
    Option("critic_lr", ("adversarial", "wasserstein"), "the critic's learning rate (default: --lr)", None,
           type=common.positive_float),
    Option("method", ("score-matching",), "denoising, the score of the data convolved with N(0, sigma^2) (Vincent, "
           "2011); sliced, Hyvarinen's objective along random projections (Song et al., 2019)", "denoising",
           choices=("denoising", "sliced")),
    Option("noise", ("score-matching",), "sigma, one noise level or a decreasing sequence of them (several fit a "
           "noise-conditional E(x, sigma), as Song and Ermon; default: 0.1 for denoising, none for sliced)", None,
           type=common.positive_float, nargs="+", single=True),
    Option("projection", ("score-matching",), "the distribution of sliced score matching's projections",
           "rademacher", choices=("rademacher", "gaussian")),
    Option("ratio", ("nce",), "nu, the noise draws (from the Gaussian of the data's moments) per data point", 1,
           type=common.positive_int),
    Option("buffer", ("contrastive-divergence",), "the number of persistent Langevin chains", 10_000,
           type=common.positive_int),
    Option("restart", ("contrastive-divergence",), "the probability that a chain lent to a step starts again from "
           "noise", 0.05, type=common.argument_type(float, "check_probability")),
)


def add_options(parser: argparse.ArgumentParser) -> None:
    """The backend options of :data:`OPTIONS`, each a flag in a group of its own, defaulting to "not given"."""
    group = parser.add_argument_group(
        "inference options", "each applies to the backends it names; left out, the backend's default holds")
    for option in OPTIONS:
        names = ", ".join(option.backends)
        shown = "" if option.default is None or "default" in option.help else f" (default: {shown_default(option)})"
        text = option.help + shown if option.help.startswith("for ") else f"for {names}: {option.help}{shown}"
        if option.boolean:
            group.add_argument(option.flag, action=argparse.BooleanOptionalAction, default=None, help=text)
        else:
            group.add_argument(option.flag, type=option.type, choices=option.choices, nargs=option.nargs,
                               default=None, help=text, metavar=None if option.choices else option.field.upper())


def shown_default(option: Option) -> str:
    """An option's default as ``--help`` says it: a switch's on or off, per backend where they differ."""
    def said(value: Any) -> str:
        return ("on" if value else "off") if option.boolean else str(value)

    if isinstance(option.default, dict):
        return ", ".join(f"{said(value)} for {name}" for name, value in option.default.items())
    return said(option.default)


def given_options(args: argparse.Namespace) -> dict[str, Any]:
    """The backend options given on the command line, as the backend's keyword arguments; an argparse error (status
    2) naming the flag where it does not apply to ``--inference``."""
    options = {}
    for option in OPTIONS:
        value = getattr(args, option.field)
        if value is None:
            continue
        if args.inference not in option.backends:
            given = f"--inference {args.inference}" if args.inference else "the default --inference"
            args.parser.error(f"{option.flag} does not apply to {given}: it is an option of "
                              f"{' and '.join(f'--inference {name}' for name in option.backends)}")
        if option.nargs:
            value = value[0] if option.single and len(value) == 1 else tuple(value)
        options[option.field] = value
    return options


def help_text() -> str:
    """What ``--inference`` says of the backends it offers and of those it does not."""
    others = "; ".join(f"{names}: not offered, as {why}" for names, why in NOT_OFFERED.items())
    return ("inference backend (default: elbo for models with latents, mle for exact-likelihood models, mmd for "
            "generators, score-matching for energy models; adversarial is the Jensen-Shannon f-GAN, wasserstein "
            "WGAN-GP; score-matching, nce and contrastive-divergence fit energy models; their options below). "
            + others)
