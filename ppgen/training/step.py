"""The training step: the loss of a batch and its gradient, through Pyro's handlers or through the graph that
:mod:`ppgen.program.fastpath` captured of them; in the compiled graph, with the default optimiser, its update too."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ppgen.objective.base import Objective
from ppgen.program.fastpath import ShapeCapture
from ppgen.program.inputs import Batch
from ppgen.program.records import identity
from ppgen.program.structure import Structure
from ppgen.training.boundary import check_scalar_loss
from ppgen.training.guard import gradient_norm
from ppgen.training.update import AdamUpdate


class Gradients(ShapeCapture):
    """The loss of a batch, with its gradient put into each parameter's ``.grad`` (replacing what was there): the
    training step, guide, model, log weights, objective and ``torch.autograd.grad`` traced as one graph.

    With an :class:`~ppgen.training.update.AdamUpdate` (:meth:`updating`), a call made compiled (``compile`` is
    ``True`` at that call: every call of a ``compile=True`` fit, the calls of the shapes that ``"auto"`` compiles)
    computes the optimiser's update as well, and the pair (loss, gradient norm) that the guard judges, in the same
    graph (on the plain path of a batch shape that the graph does not take, eagerly): such a call leaves the update,
    not the gradient, which waits in :attr:`update`'s ``pending`` for the guard
    (:class:`~ppgen.training.guard.Guard`) to apply or drop; any other call leaves the gradient in ``.grad``, for the
    optimiser's own ``step()``. A batch shape has a graph of each kind (:meth:`variant`), and the check of each
    against the plain step compares the update too.

    Arguments:
        module, compile: see :class:`~ppgen.program.fastpath.ShapeCapture`.
        structure: the program's :class:`~ppgen.program.structure.Structure`.
        inference: the backend whose ``loss`` is differentiated.
    """

    what = "step"

    def __init__(self, module: nn.Module, structure: Structure, inference: Objective,
                 compile: bool | str = False) -> None:
        super().__init__(module, compile)
        self.structure, self.inference = structure, inference
        self.update: AdamUpdate | None = None

    def updating(self, optimizer: torch.optim.Optimizer | None) -> AdamUpdate | None:
        """Compute ``optimizer``'s update in the calls made compiled from now on, where it is one that
        :meth:`AdamUpdate.of <ppgen.training.update.AdamUpdate.of>` takes; ``None``: no update (nor with any other
        optimiser), the caller runs ``optimizer.step()`` after every call. Returns the update, or ``None``. Graphs
        captured before are dropped: the update's hyperparameters are constants of a graph that computes it.

        Only compiled: inductor fuses the update of each parameter into one loop, where a captured graph replayed
        as traced would run it as a dozen small operations a parameter, slower than the fused Adam's one kernel and
        the guard's copy together (``bench/steady_step.py``, ``bench/update_outside_graph.py``)."""
        if self.update is not None or optimizer is not None:
            self._graphs.clear()
        self.update = AdamUpdate.of(optimizer, self.params) if optimizer is not None else None
        return self.update

    @property
    def updates(self) -> bool:
        """Whether this call computes the optimiser's update: there is one (:meth:`updating`), and the call is
        made compiled."""
        return self.update is not None and self.compile is True

    def variant(self) -> bool:
        """A batch shape's graph with the update (:attr:`updates`) and its graph without are two graphs."""
        return self.updates

    def identity(self) -> str:
        return identity(self.module, self.inference)

    def plain(self, batch: Batch) -> list[Tensor | None]:
        """The plain step: the backend's loss through Pyro's handlers, and ``backward``; [loss, *gradients]."""
        loss = self._loss(batch)
        for p in self.params:
            p.grad = None
        loss.backward()
        grads = [p.grad for p in self.params]
        if self.updates:  # the update carries the step on, and .grad is left empty, as the graph leaves it
            for p in self.params:
                p.grad = None
        return [loss.detach(), *grads]

    def outputs(self, batch: Batch, params: tuple[Tensor, ...]) -> list[Tensor | None]:
        loss = self._loss(batch)
        trained = [p for p in params if p.requires_grad]  # a frozen parameter's gradient is None, as backward leaves it
        grads = iter(torch.autograd.grad(loss, trained, allow_unused=True) if trained else ())
        return [loss.detach(), *(next(grads) if p.requires_grad else None for p in params)]

    def _loss(self, batch: Batch) -> Tensor:
        loss = self.inference.loss(self.module, self.structure, batch)
        check_scalar_loss(loss, self.inference)
        return loss

    def state(self) -> list[Tensor]:
        return self.update.state() if self.updates else []

    def extend(self, outputs: list[Tensor | None], params: list[Tensor], state: list[Tensor]) -> list[Tensor | None]:
        """[loss, *gradients], followed with an update by the pair (loss, gradient norm) and the update's
        outputs (:meth:`AdamUpdate.new <ppgen.training.update.AdamUpdate.new>`)."""
        if not self.updates:
            return outputs
        loss, grads = outputs[0], outputs[1:]
        norm = gradient_norm(grads).to(loss.device)
        dtype = torch.promote_types(loss.dtype, norm.dtype)  # not float64: compared at the loss's precision
        judged = torch.stack([loss.to(dtype), norm.to(dtype)])
        return [*outputs, judged, *self.update.new(params, grads, state)]

    def reference(self, expected: list[Tensor | None], replayed: list[Tensor | None]) -> list[Tensor | None]:
        """The plain outputs, with the update computed again from the graph's own gradients: the gradients are
        compared with the plain ones, the graph's update with Adam's of its gradients."""
        if not self.updates:
            return expected
        count = len(self.params)
        with torch.no_grad():
            update = self.update.new([p.detach() for p in self.params], replayed[1:1 + count], self.state())
        return [*expected[:2 + count], *update]

    def finish(self, outputs: list[Tensor | None]) -> Tensor:
        """The loss (detached); the gradients go into the parameters' ``.grad``, or with an update, the pair judged
        and the update into its ``pending``."""
        count = len(self.params)
        if self.updates:
            self.update.pending = outputs[1 + count:]
            return outputs[0]
        for p, g in zip(self.params, outputs[1:]):
            p.grad = g
        return outputs[0]

    def names(self, count: int) -> list[str]:
        params = len(self.params)
        names = ["loss", *(f"gradient of parameter {i}" for i in range(params))]
        if self.updates:
            names.append("loss and gradient norm")
            for what in ("update", "Adam's m", "Adam's v", "Adam's step count"):
                names.extend(f"{what} of parameter {i}" for i in range(params))
        return names
