"""Inference backends: interchangeable objectives behind one small interface (:class:`~ppgen.objective.base.Objective`),
and samplers behind another (:class:`~ppgen.objective.sampler.Sampler`); ``Langevin``, the settings of the chains
that ``ContrastiveDivergence`` moves inside its loss."""

from ppgen.inference.adversarial import Adversarial
from ppgen.inference.contrastive_divergence import ContrastiveDivergence
from ppgen.inference.elbo import ELBO
from ppgen.inference.iwae import IWAE
from ppgen.inference.map import MAP
from ppgen.inference.mle import MLE
from ppgen.inference.mmd import MMD
from ppgen.inference.nce import NCE
from ppgen.inference.nuts import NUTS
from ppgen.inference.renyi import RenyiVI
from ppgen.inference.rws import RWS
from ppgen.inference.score_matching import ScoreMatching
from ppgen.inference.vimco import VIMCO
from ppgen.inference.wasserstein import Wasserstein
from ppgen.objective.base import Objective
from ppgen.objective.langevin import Langevin

__all__ = ["ELBO", "IWAE", "MAP", "MLE", "MMD", "NCE", "NUTS", "RWS", "VIMCO", "Adversarial", "ContrastiveDivergence",
           "Langevin", "Objective", "RenyiVI", "ScoreMatching", "Wasserstein"]
