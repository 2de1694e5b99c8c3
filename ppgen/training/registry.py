"""Names for the zoo and the backends, for the CLI and for ``fit``'s defaults (its backend, a two-player objective's
critic): the one core module that imports both."""

from __future__ import annotations

import math
from typing import Any

from torch import nn

from ppgen import inference as backends
from ppgen import models as zoo
from ppgen.objective.base import Objective
from ppgen.program.structure import Structure

MODELS: dict[str, type[nn.Module]] = {
    "vae": zoo.VAE, "conv-vae": zoo.ConvVAE, "hvae": zoo.HVAE, "gmvae": zoo.GMVAE, "ppca": zoo.PPCA,
    "factor-analysis": zoo.FactorAnalysis, "gmm": zoo.GMM, "mixture-of-bernoullis": zoo.MixtureOfBernoullis,
    "fvsbn": zoo.FVSBN, "nade": zoo.NADE, "made": zoo.MADE,
    "realnvp": zoo.RealNVP, "maf": zoo.MAF, "nsf": zoo.NeuralSplineFlow, "dequantized": zoo.DequantizedFlow,
    "flowvae": zoo.FlowVAE, "generator": zoo.Generator, "conv-generator": zoo.ConvGenerator, "ddpm": zoo.DDPM,
}
#: the zoo's models of x given a further input, ``model(x, y)``: labels (SSVAE) or a condition (CVAE). They are
#: fitted on aligned inputs ``ppgen.fit(model, (x, y))``; the CLI, which reads x alone, does not offer them.
CONDITIONAL_MODELS: dict[str, type[nn.Module]] = {"ssvae": zoo.SSVAE, "cvae": zoo.CVAE}
#: the zoo's energy-based models, exp(-E(x)) without log Z: fitted by score matching (their default), NCE or CD. They
#: are kept out of MODELS, whose zoo-wide tests ask every model for the bound through a guide, which an energy model
#: has not; the CLI offers both (``build_model`` builds either).
ENERGY_MODELS: dict[str, type[nn.Module]] = {"energy": zoo.EnergyModel, "conv-energy": zoo.ConvEnergy}
INFERENCE: dict[str, type[Objective]] = {"mle": backends.MLE, "elbo": backends.ELBO, "iwae": backends.IWAE,
                                         "renyi": backends.RenyiVI, "rws": backends.RWS, "vimco": backends.VIMCO,
                                         "mmd": backends.MMD, "adversarial": backends.Adversarial,
                                         "wasserstein": backends.Wasserstein}
#: the backends of energy-based models, by name: kept out of INFERENCE, whose backends the zoo-wide tests fit to
#: every model of MODELS (these refuse them all); ``build_inference`` builds either.
ENERGY_INFERENCE: dict[str, type[Objective]] = {"score-matching": backends.ScoreMatching, "nce": backends.NCE,
                                                "contrastive-divergence": backends.ContrastiveDivergence}
#: the backends without a K (importance samples or particles): ``build_inference`` builds them as they are.
WITHOUT_K = ("adversarial", "contrastive-divergence", "mle", "mmd", "nce", "score-matching", "wasserstein")


def default_inference(structure: Structure) -> Objective:
    """``ScoreMatching()`` for an energy-based model, ``MMD()`` for an implicit one (a generator, no density),
    ``MLE()`` where log p(x) is exact, ``ELBO()`` where latents need a guide."""
    if structure.unnormalized:
        return backends.ScoreMatching()
    if structure.implicit:
        return backends.MMD()
    return backends.MLE() if structure.exact else backends.ELBO()


def default_critic(point_shape: tuple[int, ...]) -> nn.Module:
    """The zoo's critic for data points of ``point_shape``: ``ConvCritic`` for images (C, H, W) of sides 4 or more
    (two halvings of the DCGAN discriminator), ``Critic`` on the flattened values otherwise."""
    x_dim = math.prod(point_shape)
    if len(point_shape) == 3 and min(point_shape[1:]) >= 4:
        return zoo.ConvCritic(x_dim=x_dim, image_shape=point_shape)
    return zoo.Critic(x_dim=x_dim)


def model_class(name: str) -> type[nn.Module]:
    """The zoo's class called ``name``, in MODELS or ENERGY_MODELS."""
    family = {**MODELS, **ENERGY_MODELS}
    if name not in family:
        raise ValueError(f"unknown model {name!r}: choose one of {sorted(family)}")
    return family[name]


def build_model(name: str, x_dim: int, **options: Any) -> nn.Module:
    """The zoo model called ``name`` (of MODELS or ENERGY_MODELS) for data of size ``x_dim``, with its other keyword
    arguments."""
    return model_class(name)(x_dim=x_dim, **options)


def build_inference(name: str, k: int | None = None, **options: Any) -> Objective:
    """The backend called ``name`` (of INFERENCE or ENERGY_INFERENCE) with its defaults (``Adversarial()`` is the
    Jensen-Shannon f-GAN) but for ``options``, its other keyword arguments; ``k`` is the ELBO's number of particles
    and every other bound's K (those of :data:`WITHOUT_K` have none)."""
    named = {**INFERENCE, **ENERGY_INFERENCE}
    if name not in named:
        raise ValueError(f"unknown inference {name!r}: choose one of {sorted(named)}")
    if k is not None and name not in WITHOUT_K:
        options["num_particles" if name == "elbo" else "k"] = k
    return named[name](**options)
