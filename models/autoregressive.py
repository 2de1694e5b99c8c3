"""Autoregressive distributions over binary vectors, the shared building block of FVSBN, NADE and MADE.

An autoregressive model of x in {0, 1}^D factorises p(x) by the chain rule along an ordering o of the
dimensions,

    p(x) = prod_{t=1}^{D} p(x_{o_t} | x_{o_<t}),   p(x_{o_t} = 1 | x_{o_<t}) = sigmoid(l_{o_t}(x_{o_<t})),

so log p(x) is exact and costs one pass of a network whose output l_d sees only the inputs before d
(masks make it so). A model with several orderings o^1..o^M is the uniform mixture
p(x) = (1/M) sum_m p_m(x), still exact: log p(x) = logsumexp_m log p_m(x) - log M.

:class:`AutoregressiveBernoulli` is that density as a Pyro distribution: ``log_prob`` is the one-pass
exact likelihood, ``sample`` draws an ordering and then x dimension by dimension. A model observes x with
it inside its data plate, so maximum likelihood uses the exact log p(x) and running the model
unconditioned (``Fit.sample``) draws x ~ p(x).
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable

import pyro
import torch
from pyro.distributions import TorchDistribution
from torch import Size, Tensor
from torch.distributions import constraints
from torch.nn.functional import binary_cross_entropy_with_logits

from ppgen.program.protocol import DATA_PLATE, Model

#: maps x, Tensor[..., D], to the logits of every ordering, Tensor[..., M, D]; the logit of dimension d under
#: ordering m may depend only on the dimensions before d in that ordering.
Conditionals = Callable[[Tensor], Tensor]


class AutoregressiveBernoulli(TorchDistribution):
    """p(x) = (1/M) sum_m prod_t Bernoulli(x_{o^m_t}; sigmoid(l^m_{o^m_t}(x))) over x in {0, 1}^D.

    Arguments:
        conditionals: the network, x -> logits Tensor[..., M, D] (see :data:`Conditionals`).
        orders: Tensor[M, D], row m the ordering o^m, a permutation of 0..D-1.
        dtype: the floating-point dtype of x, that of the network's parameters.
        batch_shape: the batch shape (a plate expands it).

    References:
        The Neural Autoregressive Distribution Estimator (Larochelle and Murray, 2011).
        https://proceedings.mlr.press/v15/larochelle11a.html
    """

    arg_constraints: dict = {}
    has_rsample = False

    def __init__(self, conditionals: Conditionals, orders: Tensor, dtype: torch.dtype, batch_shape: Size = Size(),
                 validate_args: bool | None = None) -> None:
        if orders.dim() != 2:
            raise ValueError(f"orders must be a Tensor[M, D] of orderings, got shape {list(orders.shape)}")
        self.conditionals = conditionals
        self.orders = orders
        self.dtype = dtype
        super().__init__(Size(batch_shape), Size(orders.shape[-1:]), validate_args=validate_args)

    @constraints.dependent_property
    def support(self) -> constraints.Constraint:
        return constraints.independent(constraints.boolean, 1)

    def expand(self, batch_shape: Size, _instance: AutoregressiveBernoulli | None = None) -> AutoregressiveBernoulli:
        return AutoregressiveBernoulli(self.conditionals, self.orders, self.dtype, Size(batch_shape),
                                       validate_args=self._validate_args)

    def log_prob(self, value: Tensor) -> Tensor:
        """Exact log p(x), one pass of the network for every ordering: Tensor[batch]."""
        if self._validate_args:
            self._validate_sample(value)
        logits = self.conditionals(value)  # [..., M, D]
        per_order = -binary_cross_entropy_with_logits(logits, value.unsqueeze(-2).expand_as(logits),
                                                      reduction="none").sum(-1)
        return per_order.logsumexp(-1) - math.log(self.orders.shape[0])

    @torch.no_grad()
    def sample(self, sample_shape: Size = Size()) -> Tensor:
        """x ~ p(x): an ordering m uniformly, then x_{o^m_1}, x_{o^m_2}, ... each given those before (D passes)."""
        shape = Size(sample_shape) + self.batch_shape
        order_count, dims = self.orders.shape
        which = torch.randint(order_count, shape, device=self.orders.device)
        orders = self.orders[which]  # [..., D]: each draw's own ordering
        x = torch.zeros(shape + (dims,), dtype=self.dtype, device=self.orders.device)
        for t in range(dims):
            logits = self.conditionals(x).gather(-2, which[..., None, None].expand(*shape, 1, dims))[..., 0, :]
            d = orders[..., t:t + 1]
            x.scatter_(-1, d, torch.bernoulli(torch.sigmoid(logits.gather(-1, d))))
        return x


class AutoregressiveModel(Model):
    """The Pyro program shared by the autoregressive zoo: x ~ :class:`AutoregressiveBernoulli` in the data plate.

    A subclass registers its orderings as the buffer ``orders``, Tensor[M, D], and defines :meth:`logits`.
    """

    orders: Tensor

    @abc.abstractmethod
    def logits(self, x: Tensor) -> Tensor:
        """The logits l^m_d(x_{o^m_<t}) of every ordering m and dimension d, Tensor[..., M, D]."""
        raise NotImplementedError

    def distribution(self, dtype: torch.dtype) -> AutoregressiveBernoulli:
        """p(x) as a Pyro distribution over one data point."""
        return AutoregressiveBernoulli(self.logits, self.orders, dtype)

    def model(self, x: Tensor) -> None:
        with pyro.plate(DATA_PLATE, x.shape[0]):
            pyro.sample("x", self.distribution(x.dtype), obs=x)

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact log p(x), Tensor[N]."""
        return self.distribution(x.dtype).log_prob(x)


def natural_order(dims: int) -> Tensor:
    """The single ordering 0, 1, ..., D-1, as Tensor[1, D]."""
    return torch.arange(dims).unsqueeze(0)
