"""The interface of a backend that minimises a loss (a sampler such as ``inference.NUTS`` implements
:class:`~ppgen.objective.sampler.Sampler` instead).

A backend is an objective: a differentiable loss for a mini-batch whose minimiser fits the model.
The fitting loop calls nothing else, so any loss built on :func:`ppgen.objective.bounds.log_weights` (or on
anything differentiable) plugs in. A complete backend, the ELBO with K particles, is five lines::

    from dataclasses import dataclass
    from ppgen.inference import Objective
    from ppgen.objective.bounds import log_weights

    @dataclass(frozen=True, kw_only=True)
    class MyELBO(Objective):
        num_particles: int = 1

        def loss(self, module, structure, batch):
            return -log_weights(module, structure, batch, self.num_particles).mean()

Backends are frozen dataclasses with keyword arguments only, so that a saved fit records which
objective made it and with what settings. An objective that never evaluates the model's density (it compares the
model's samples with the data) says so with the class flag ``likelihood_free = True``: only such an objective fits
an implicit model, x = G(z) (:mod:`ppgen.program.implicit`); :func:`check_fits` refuses every other.

An objective may keep state between steps besides the model's parameters, which ``ppgen.fit`` keeps in the run's state,
checkpoints and resumes bitwise: a critic trained beside the model (:class:`~ppgen.objective.adversary.Adversary`, with
an optimiser and a step of its own) or tensors that its ``loss`` updates as it goes, such as the persistent chains of
contrastive divergence (:meth:`Objective.persistent_state`). It says so in words, :attr:`Objective.state_between_steps`,
which the refusals of what cannot carry such state yet (``distributed=True``, ``compile=``) quote.
"""

from __future__ import annotations

import abc
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, ClassVar

from torch import Tensor, nn

from ppgen.program.implicit import check_density
from ppgen.program.inputs import Batch
from ppgen.program.structure import Structure
from ppgen.program.unnormalized import refuse_unnormalized

if TYPE_CHECKING:
    from ppgen.objective.sampler import Sampler


class Objective(abc.ABC):
    """An inference backend: a loss L(theta, phi; x) to minimise over mini-batches x.

    The class flag ``likelihood_free`` (``False`` here) says whether the loss never evaluates a log-density of the
    model (it compares the model's samples with the data, as an MMD or a critic does), so that it fits an implicit
    model. The flag ``learns_log_normalizer`` (``False`` here) says whether it fits an energy-based model's
    ``log_normalizer`` c as an estimate of log Z (``inference.NCE``), which ``fit.evaluate`` then reports beside its
    own estimate.
    """

    likelihood_free: ClassVar[bool] = False
    #: what the objective keeps between steps besides the model's parameters, as words that finish the sentence
    #: "X() ...", such as "trains a critic beside the model"; ``None``: nothing (each step stands alone).
    state_between_steps: ClassVar[str | None] = None
    learns_log_normalizer: ClassVar[bool] = False

    @abc.abstractmethod
    def loss(self, module: nn.Module, structure: Structure, batch: Batch) -> Tensor:
        """The scalar loss for a mini-batch of the data (its inputs ``batch.args``, B points of N), in nats per data
        point: the mean over the batch of per-point terms, an unbiased estimate of the full-data loss / N (or in the
        :attr:`units` an objective names, such as MMD^2)."""

    @property
    def units(self) -> str:
        """What the loss (and ``fit.history``) is measured in: nats per data point, as :meth:`loss` says, unless the
        objective says otherwise (``inference.MMD``: MMD^2)."""
        return "nats per data point"

    @property
    def min_points(self) -> int:
        """The fewest data points a batch may hold: 1, or 2 for an objective that compares distinct pairs of points
        (the unbiased MMD^2); ``ppgen.fit`` refuses a ``batch_size`` that leaves a smaller batch, before it starts."""
        return 1

    def check(self, structure: Structure) -> None:
        """Raise a ``ValueError`` before any training if this objective cannot fit a model of this structure: by
        default, one that evaluates log p(x, z) - log q(z|x) needs a reparameterised guide of every latent it does not
        sum out; a likelihood-free objective needs none."""
        if self.likelihood_free:
            return
        check_normalized(self, structure)
        if structure.unguided:
            raise ValueError(
                f"{type(self).__name__}() needs q(z|x) for the model's latent site(s) "
                f"{', '.join(repr(s) for s in structure.unguided)}: give the model a guide(x) that samples them, "
                f"or mark discrete ones infer={{'enumerate': 'parallel'}} so they are summed out")
        if not structure.reparameterized:
            raise ValueError(
                f"{self!r} differentiates through samples of q(z|x), but guide site(s) "
                f"{', '.join(map(repr, structure.unreparameterized))} have no reparameterised sampler (rsample): sum "
                f"discrete latents out in the model, enumerate them in the guide (config_enumerate) under "
                f"inference.ELBO(), or fit with a backend that needs no reparameterisation, inference.RWS() or "
                f"inference.VIMCO()")

    def prepare(self, module: nn.Module, structure: Structure, data: Batch) -> Objective:
        """The objective for this model and data set, built once before the first step (``data``: the whole data set in
        memory, or a stream's first batch): this one, unless the backend builds something from the data, such as
        ``inference.NCE``'s noise distribution, when it returns a copy that holds it. A ``ValueError`` where the model
        lacks what the objective needs, before any step."""
        return self

    def persistent_state(self) -> dict[str, Tensor]:
        """The tensors this objective carries from one step to the next (the prepared objective's, made by
        :meth:`prepare`), by name: ``ppgen.fit`` saves them in a checkpoint under ``objective`` (each checked on resume
        for its shape, dtype and finite values) and puts them back in place, before the first step of the resumed
        run; the objective may move them to the data's device in its ``loss``. None by default."""
        return {}

    @property
    def config(self) -> dict[str, Any]:
        """The keyword arguments that rebuild this objective."""
        return asdict(self)  # type: ignore[call-overload]


def check_fits(backend: Objective | Sampler, structure: Structure) -> None:
    """A ``ValueError`` before any work where ``backend`` cannot fit a model of this structure: an implicit model for
    a backend that is not likelihood-free, which it names (:func:`~ppgen.program.implicit.check_density`), then the
    backend's own :meth:`~Objective.check`."""
    if not backend.likelihood_free:
        check_density(structure, repr(backend))
    backend.check(structure)


def check_normalized(objective: Objective, structure: Structure) -> None:
    """A ``ValueError`` where the model is unnormalised, for an objective built on log p(x) (maximum likelihood, MAP,
    the ELBO and the bounds above it): log Z depends on theta, so the objective without it would be silently wrong."""
    refuse_unnormalized(structure, repr(objective), "maximising -E(x) would lower the energy everywhere instead of "
                        "fitting the data. Fit an energy-based model by inference.ScoreMatching() or inference.NCE(), "
                        "or with persistent chains by inference.ContrastiveDivergence()")
