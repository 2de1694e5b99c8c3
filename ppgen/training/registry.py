"""Names for the zoo and the backends, for the CLI and for ``fit``'s default: the one core module that imports both."""

from __future__ import annotations

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
    "flowvae": zoo.FlowVAE, "ddpm": zoo.DDPM,
}
#: the zoo's models of x given a further input, ``model(x, y)``: labels (SSVAE) or a condition (CVAE). They are
#: fitted on aligned inputs ``ppgen.fit(model, (x, y))``; the CLI, which reads x alone, does not offer them.
CONDITIONAL_MODELS: dict[str, type[nn.Module]] = {"ssvae": zoo.SSVAE, "cvae": zoo.CVAE}
INFERENCE: dict[str, type[Objective]] = {"mle": backends.MLE, "elbo": backends.ELBO, "iwae": backends.IWAE,
                                         "renyi": backends.RenyiVI, "rws": backends.RWS, "vimco": backends.VIMCO}


def default_inference(structure: Structure) -> Objective:
    """``MLE()`` where log p(x) is exact, ``ELBO()`` where latents need a guide."""
    return backends.MLE() if structure.exact else backends.ELBO()


def build_model(name: str, x_dim: int, **options: Any) -> nn.Module:
    """The zoo model called ``name`` for data of size ``x_dim``, with its other keyword arguments."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}: choose one of {sorted(MODELS)}")
    return MODELS[name](x_dim=x_dim, **options)


def build_inference(name: str, k: int | None = None) -> Objective:
    """The backend called ``name``; ``k`` is the ELBO's number of particles and every other bound's K."""
    if name not in INFERENCE:
        raise ValueError(f"unknown inference {name!r}: choose one of {sorted(INFERENCE)}")
    if k is None or name == "mle":
        return INFERENCE[name]()
    return backends.ELBO(num_particles=k) if name == "elbo" else INFERENCE[name](k=k)
