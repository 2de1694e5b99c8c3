"""The library's messages in the terms of the command line: where an error names a Python spelling that the CLI has a
flag or a command for, the CLI user reads the flag. One place does it for every command (:func:`ppgen.cli.main` and
the backends' option checks), so no library message is written twice.

=========================================  ==========================================
the library writes                          a CLI user reads
=========================================  ==========================================
``inference.IWAE(k=5)``, ``ELBO()``         ``--inference iwae --k 5``, ``--inference elbo``
``ELBO(num_particles=K, kl='analytic')``    ``--inference elbo --k K --kl analytic``
``likelihood='gaussian'``, ``z_dim=8``      ``--likelihood gaussian``, ``--z-dim 8``
``distributed=True``, ``mean=False``        ``--distributed``, without ``--mean``
``fit.posterior(x, method='nuts')``         ``ppgen posterior --method nuts``
``ppgen.fit(..., compile=True)``            ``ppgen fit --compile true``
``alpha must be ...`` (a message's start)   ``--alpha must be ...``
=========================================  ==========================================

Backends the CLI does not offer (``inference.NUTS()``, ``inference.MAP()``) keep their Python spelling: from the
command line there is nothing else to type, and ``ppgen fit --help`` says why.
"""

from __future__ import annotations

import re

from ppgen.cli.backends import OPTIONS

#: the backends' classes, by name, as ``--inference`` names them (``ppgen.training.registry.INFERENCE`` and
#: ``ENERGY_INFERENCE`` reversed; a test keeps them in step).
BACKENDS = {"MLE": "mle", "ELBO": "elbo", "IWAE": "iwae", "RenyiVI": "renyi", "RWS": "rws", "VIMCO": "vimco",
            "MMD": "mmd", "Adversarial": "adversarial", "Wasserstein": "wasserstein", "ScoreMatching": "score-matching",
            "NCE": "nce", "ContrastiveDivergence": "contrastive-divergence"}
#: keyword arguments of ``ppgen.fit``, of the models, of the backends and of the queries, as flags.
KEYWORDS = {"k": "--k", "num_particles": "--k", "likelihood": "--likelihood", "z_dim": "--z-dim",
            "n_components": "--components", "hidden": "--hidden", "epochs": "--epochs", "batch_size": "--batch-size",
            "lr": "--lr", "seed": "--seed", "device": "--device", "compile": "--compile",
            "distributed": "--distributed", "mean": "--mean", "method": "--method", "binarize": "--binarize",
            "progress": "--progress", "checkpoint_every": "--checkpoint-every", "resume": "--resume",
            "overwrite": "--overwrite", "out": "--out", "site": "--site", "num_chains": "--num-chains",
            "warmup_steps": "--warmup-steps", "metrics": "--metrics",
            **{option.field: option.flag for option in OPTIONS}}
#: switches that take ``--no-<name>`` for False; any other False reads "without --<name>".
NEGATABLE = ("binarize", "progress", *(option.field for option in OPTIONS if option.boolean))
#: the queries of a fit, as the commands that ask them.
QUERIES = {"log_prob": "ppgen eval", "evaluate": "ppgen eval", "sample": "ppgen sample", "encode": "ppgen encode",
           "posterior": "ppgen posterior"}

_ARGS = r"\(([^()]*)\)"  # a call's arguments, without nested calls (those are translated first)
_BACKEND_CALL = re.compile(rf"(?<![\w.])(?:ppgen\.)?(?:inference\.)?({'|'.join(BACKENDS)}){_ARGS}")
_QUERY_CALL = re.compile(rf"(?<![\w.])fit\.({'|'.join(QUERIES)}){_ARGS}")
_FIT_CALL = re.compile(rf"(?<![\w.])ppgen\.fit{_ARGS}")
_VALUE = r"""(?:'[^']*'|"[^"]*"|\.\.\.|[\w.+-]+)"""
_KEYWORD = re.compile(rf"(?:\b(with|without) )?(?<![\w.\-/])({'|'.join(sorted(KEYWORDS, key=len, reverse=True))})"
                      rf"=({_VALUE})(?![\w./])")  # not inside a path: runs/lr=0.1/fit.pt stays as it is
_LEADING_FIELD = re.compile(rf"^({'|'.join(sorted(KEYWORDS, key=len, reverse=True))})(?= must|:| is )")


def in_cli_terms(message: str) -> str:
    """``message`` with each Python spelling that the CLI has a flag or a command for replaced by it (see the table
    above); anything else is left as written."""
    message = _BACKEND_CALL.sub(lambda m: " ".join(["--inference", BACKENDS[m[1]],
                                                    *_arguments(m[2], _defaults(BACKENDS[m[1]]))]), message)
    message = _QUERY_CALL.sub(lambda m: " ".join([QUERIES[m[1]], *_arguments(m[2])]), message)
    message = _FIT_CALL.sub(lambda m: " ".join(["ppgen fit", *_arguments(m[1])]), message)
    message = _KEYWORD.sub(_keyword, message)
    return _LEADING_FIELD.sub(lambda m: KEYWORDS[m[1]], message)


def _defaults(backend: str) -> dict[str, str]:
    """The settings of ``backend`` that a CLI user gets by leaving their flags out, as its repr writes them: those of
    the backend built without arguments (imported here, on an error, so that the parser stays quick)."""
    import dataclasses

    from ppgen.training.registry import build_inference

    default = build_inference(backend)
    return {field.name: repr(getattr(default, field.name)) for field in dataclasses.fields(default)}


def _arguments(text: str, defaults: dict[str, str] | None = None) -> list[str]:
    """A call's keyword arguments as flags, but for those at their ``defaults`` (a backend's repr lists every
    setting); positional arguments (``x``, ``n``, ``...``) are the command's own."""
    flags = []
    for argument in (a.strip() for a in text.split(",")):
        name, _, value = argument.partition("=")
        if defaults and defaults.get(name) == value:
            continue
        if value and name in KEYWORDS:
            flags.append(_flag(name, value))
        elif value and name == "inference" and value.startswith("--inference"):
            flags.append(value)
        elif value:
            flags.append(argument)
    return flags


def _keyword(match: re.Match[str]) -> str:
    """``name=value`` in a sentence as a flag, "with" or "without" before it kept or turned: "with mean=False" reads
    "without --mean"."""
    preposition, name, value = match[1], match[2], match[3]
    flag = _flag(name, value)
    if preposition is None or flag.startswith("without"):
        return flag
    return f"without {flag}" if preposition == "without" else f"with {flag}"


def _flag(name: str, value: str) -> str:
    """``name=value`` as the flag a CLI user types."""
    flag, value = KEYWORDS[name], value.strip("'\"")
    if value == "True":
        return flag
    if value == "False":
        return f"--no-{flag[2:]}" if name in NEGATABLE else f"without {flag}"
    if name == "compile":
        value = value.lower()
    return f"{flag} {value}"
