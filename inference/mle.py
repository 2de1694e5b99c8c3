"""Maximum likelihood: minimise -(1/N) sum_n log p(x_n), i.e. KL(p_data || p_theta) up to a constant."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from ppgen.objective.base import Objective, check_normalized
from ppgen.objective.bounds import exact_log_prob
from ppgen.program.inputs import Batch
from ppgen.program.structure import Structure


@dataclass(frozen=True, kw_only=True)
class MLE(Objective):
    """Maximum likelihood on the exact log p(x).

    For a model with a ``log_prob(x)`` method, or whose latents are all discrete and marked
    ``infer={"enumerate": "parallel"}`` (they are summed out exactly). A model with continuous
    latents and no closed-form likelihood is refused before training: fit it with ``ELBO`` or ``IWAE``.

    Example:
        >>> from ppgen import models, inference
        >>> fit = ppgen.fit(models.PPCA(x_dim=4, z_dim=2), x, inference=inference.MLE())  # doctest: +SKIP
    """

    def check(self, structure: Structure) -> None:
        check_normalized(self, structure)
        if not structure.exact:
            latent = ", ".join(repr(s) for s in structure.guided + structure.unguided)
            raise ValueError(
                f"MLE() needs the exact log-likelihood, but latent site(s) {latent} can be neither summed out "
                f"nor integrated in closed form (and the model has no log_prob(x)): use inference.ELBO() or "
                f"inference.IWAE()")

    def loss(self, module: nn.Module, structure: Structure, batch: Batch) -> Tensor:
        return -exact_log_prob(module, structure, batch).mean()
