"""The training step: the loss of a batch and its gradient, through Pyro's handlers or through the graph that
:mod:`ppgen.program.fastpath` captured of them."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ppgen.objective.base import Objective
from ppgen.program.fastpath import ShapeCapture
from ppgen.program.inputs import Batch
from ppgen.program.structure import Structure
from ppgen.training.boundary import check_scalar_loss


class Gradients(ShapeCapture):
    """The loss of a batch, with its gradient put into each parameter's ``.grad`` (replacing what was there): the
    training step, guide, model, log weights, objective and ``torch.autograd.grad`` traced as one graph.

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

    def plain(self, batch: Batch) -> list[Tensor | None]:
        """The plain step: the backend's loss through Pyro's handlers, and ``backward``; [loss, *gradients]."""
        loss = self._loss(batch)
        for p in self.params:
            p.grad = None
        loss.backward()
        return [loss.detach(), *(p.grad for p in self.params)]

    def outputs(self, batch: Batch, params: tuple[Tensor, ...]) -> list[Tensor | None]:
        loss = self._loss(batch)
        return [loss.detach(), *torch.autograd.grad(loss, params, allow_unused=True)]

    def _loss(self, batch: Batch) -> Tensor:
        loss = self.inference.loss(self.module, self.structure, batch)
        check_scalar_loss(loss, self.inference)
        return loss

    def finish(self, outputs: list[Tensor | None]) -> Tensor:
        """The loss (detached); the gradients go into the parameters' ``.grad``."""
        for p, g in zip(self.params, outputs[1:]):
            p.grad = g
        return outputs[0]

    def names(self, count: int) -> list[str]:
        return ["loss", *(f"gradient of parameter {i}" for i in range(count - 1))]
