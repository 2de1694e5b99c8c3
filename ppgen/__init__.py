"""ppgen: deep generative models as Pyro programs.

Declare a model (a Pyro ``model`` and, where it has latents, a ``guide``), fit it with the
inference backend of your choice, and ask it for log p(x), new samples x ~ p(x), and q(z|x)::

    import ppgen
    from ppgen import datasets, inference, models

    fit = ppgen.fit(models.VAE(x_dim=64), datasets.digits(binarize=True), inference=inference.IWAE(k=5))
    fit.log_prob(datasets.digits(split="test", binarize=True), k=1000)

The names below are imported on first use, so that ``ppgen --help`` needs neither torch nor Pyro. That first
use (or ``import ppgen`` itself, where torch is imported already) seeds torch, NumPy and Python's RNGs with
:data:`ppgen.utils.seeding.DEFAULT_SEED`: a script builds the same initial weights on every run (see :func:`seed`).
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what the names are, for readers and tools (the documentation's reference among them)
    from ppgen import datasets, inference, models, plots
    from ppgen.classifier import GenerativeClassifier
    from ppgen.objective.weights import log_weights
    from ppgen.program.protocol import DATA_PLATE, Model
    from ppgen.program.structure import Structure
    from ppgen.program.unnormalized import Unnormalized
    from ppgen.queries.posterior import Posterior
    from ppgen.queries.result import Fit, load
    from ppgen.run.signals import Interrupted
    from ppgen.training.callbacks import Callback, EpochEnd
    from ppgen.training.fitting import fit
    from ppgen.training.guard import Diverged
    from ppgen.training.tensorboard import TensorBoard
    from ppgen.utils.seeding import seed

__version__ = "0.1.0"

#: public name -> the module that defines it (a module name alone: the name is that submodule).
_LAZY = {
    "Callback": "ppgen.training.callbacks",
    "DATA_PLATE": "ppgen.program.protocol",
    "EpochEnd": "ppgen.training.callbacks",
    "Diverged": "ppgen.training.guard",
    "Fit": "ppgen.queries.result",
    "GenerativeClassifier": "ppgen.classifier",
    "Interrupted": "ppgen.run.signals",
    "Model": "ppgen.program.protocol",
    "Posterior": "ppgen.queries.posterior",
    "Structure": "ppgen.program.structure",
    "TensorBoard": "ppgen.training.tensorboard",
    "Unnormalized": "ppgen.program.unnormalized",
    "datasets": "ppgen.datasets",
    "fit": "ppgen.training.fitting",
    "inference": "ppgen.inference",
    "load": "ppgen.queries.result",
    "log_weights": "ppgen.objective.weights",
    "models": "ppgen.models",
    "plots": "ppgen.plots",
    "seed": "ppgen.utils.seeding",
}
__all__ = ["Callback", "DATA_PLATE", "Diverged", "EpochEnd", "Fit", "GenerativeClassifier", "Interrupted", "Model",
           "Posterior", "Structure", "TensorBoard", "Unnormalized", "datasets", "fit", "inference", "load",
           "log_weights", "models", "plots", "seed"]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'ppgen' has no attribute {name!r}")
    importlib.import_module("ppgen.utils.seeding")
    module = importlib.import_module(_LAZY[name])
    value = module if module.__name__ == f"ppgen.{name}" else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


if "torch" in sys.modules:  # torch's import cost is paid already: seed now, before the user builds a model
    importlib.import_module("ppgen.utils.seeding")
