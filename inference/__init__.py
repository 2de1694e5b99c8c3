"""Inference backends: interchangeable objectives behind one small interface (:class:`ppgen.objective.Objective`)."""

from ppgen.inference.elbo import ELBO
from ppgen.inference.iwae import IWAE
from ppgen.inference.map import MAP
from ppgen.inference.mle import MLE
from ppgen.objective import Objective

__all__ = ["ELBO", "IWAE", "MAP", "MLE", "Objective"]
