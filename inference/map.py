"""Maximum a posteriori: maximise log p(x | theta) + log p(theta) over point estimates of the global latents theta."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from ppgen.objective.base import Objective, check_normalized
from ppgen.objective.bounds import elbo_terms
from ppgen.program.inputs import Batch
from ppgen.program.structure import Structure


@dataclass(frozen=True, kw_only=True)
class MAP(Objective):
    """Maximum a posteriori estimation of the latents that carry a prior.

    The objective per point is (1/N) [log p(x | theta) + log p(theta)], with theta the model's global latents
    (sites outside the data plate: weights with a prior, shared means) held at point estimates by a guide of
    point masses, ``pyro.infer.autoguide.AutoDelta`` or ``Delta`` sites of one's own; discrete latents summed out
    by the model are summed out exactly. It is the ELBO of that guide (a point mass adds no entropy), so MAP is
    maximum likelihood with the log prior added, and the two agree as the prior flattens.

    Example:
        >>> from pyro.infer.autoguide import AutoDelta
        >>> fit = ppgen.fit((model, AutoDelta(model)), (x, y), inference=inference.MAP())  # doctest: +SKIP
    """

    def check(self, structure: Structure) -> None:
        check_normalized(self, structure)
        if not structure.global_sites:
            raise ValueError("MAP() maximises log p(x | theta) + log p(theta), but the model has no latent with a prior "
                             "outside the data plate: fit its parameters by inference.MLE()")
        spread = [s for s in structure.guided if s not in structure.point_estimates] + list(structure.unguided)
        if spread:
            raise ValueError(
                f"MAP() needs a point estimate of every latent it does not sum out, but site(s) {tuple(spread)} are "
                f"drawn from a distribution with spread, or from no guide: use AutoDelta(model) as the guide (and "
                f"infer={{'enumerate': 'parallel'}} for local discrete latents), or fit by inference.ELBO()")

    def loss(self, module: nn.Module, structure: Structure, batch: Batch) -> Tensor:
        return -elbo_terms(module, structure, batch, 1).mean()
