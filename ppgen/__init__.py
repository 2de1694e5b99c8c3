"""ppgen: deep generative models as Pyro programs.

Declare a model (a Pyro ``model`` and, where it has latents, a ``guide``), fit it with the
inference backend of your choice, and ask it for log p(x), new samples x ~ p(x), and q(z|x)::

    import ppgen
    from ppgen import datasets, inference, models

    fit = ppgen.fit(models.VAE(x_dim=64), datasets.digits(binarize=True), inference=inference.IWAE(k=5))
    fit.log_prob(datasets.digits(split="test", binarize=True), k=1000)
"""

from ppgen import datasets
from ppgen.classifier import GenerativeClassifier
from ppgen.fitting import fit
from ppgen.posterior import Posterior
from ppgen.program import DATA_PLATE, Model
from ppgen.result import Fit, load
from ppgen.structure import Structure
from ppgen.weights import log_weights

__version__ = "0.1.0"
__all__ = ["DATA_PLATE", "Fit", "GenerativeClassifier", "Model", "Posterior", "Structure", "datasets", "fit",
           "load", "log_weights"]
