"""The default optimiser's update as a function of tensors, so that the compiled training step
(:class:`~ppgen.training.step.Gradients`: under ``compile=True``, and the shapes ``"auto"`` compiles) computes it in
the same graph as the loss and its gradient, and the guard
(:class:`~ppgen.training.guard.Guard`) makes it the model's by swapping tensors instead of copying them.

For each parameter theta with gradient g, Adam (Kingma and Ba, 2015) with learning rate lr, betas (b1, b2), eps and
weight decay lambda, at its step t (counted from 1):

    g <- g + lambda theta,   m <- b1 m + (1 - b1) g,   v <- b2 v + (1 - b2) g^2,
    theta <- theta - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps),

as ``torch.optim.Adam`` computes it (fused or not, up to float rounding; the bias corrections in float64 on the
host, once a step, as its fused kernel's). The hyperparameters are read when the update is made: a fit does not
change them. Here every result is a new tensor: the old theta, m and v are left as they were, so that a bad
step's update is dropped by not taking it, and the parameters of the last good step are the tensors the model held
before the update, with nothing copied.

References:
    Adam: A Method for Stochastic Optimization (Kingma and Ba, 2015). https://arxiv.org/abs/1412.6980
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

#: the options of ``torch.optim.Adam`` whose update :class:`AdamUpdate` computes only at these values.
PLAIN_ADAM = {"amsgrad": False, "maximize": False, "differentiable": False, "capturable": False,
              "decoupled_weight_decay": False}


class AdamUpdate:
    """``optimizer``'s Adam update of ``params`` as a function of tensors: :meth:`state` lists the inputs it reads
    of the optimiser's state (torch's own, made as torch makes it on a first step), :meth:`new` computes the new
    parameters and state, :meth:`apply` makes them the model's and the optimiser's.

    Build it with :meth:`of`, which says where it applies. The optimiser's ``state_dict`` stays torch's, so a
    checkpoint resumes with the optimiser's own ``step()`` as well, and the other way round.
    """

    def __init__(self, optimizer: torch.optim.Adam, params: list[nn.Parameter]) -> None:
        self.optimizer, self.params = optimizer, params
        group = optimizer.param_groups[0]
        self.lr, (self.beta1, self.beta2) = float(group["lr"]), group["betas"]
        self.eps, self.weight_decay = group["eps"], group["weight_decay"]
        self.fused = bool(group.get("fused"))
        #: the outputs of the last step computed and not yet applied or dropped: see :meth:`take`.
        self.pending: list[Tensor | None] | None = None

    @staticmethod
    def of(optimizer: torch.optim.Optimizer, params: list[nn.Parameter]) -> AdamUpdate | None:
        """The update of ``optimizer`` where it is ``torch.optim.Adam`` itself (not a subclass such as AdamW) with
        one group holding ``params`` in their order, a learning rate and betas that are numbers, and
        :data:`PLAIN_ADAM`'s options; where every parameter is a dense floating-point tensor on one device; ``None``
        elsewhere (that optimiser's own ``step()`` updates the model)."""
        if type(optimizer) is not torch.optim.Adam or len(optimizer.param_groups) != 1 or not params:
            return None
        group = optimizer.param_groups[0]
        if (len(group["params"]) != len(params) or any(a is not b for a, b in zip(group["params"], params))
                or any(group.get(name, value) != value for name, value in PLAIN_ADAM.items())
                or any(isinstance(value, Tensor) for value in (group["lr"], *group["betas"]))):
            return None
        device = params[0].device
        if any(p.device != device or not p.is_floating_point() or p.layout != torch.strided or p.is_complex()
               for p in params):
            return None
        return AdamUpdate(optimizer, params)

    def state(self) -> list[Tensor]:
        """The optimiser's state that the update reads: every m, then every v, then every step count t (made as
        ``torch.optim.Adam`` makes it where a parameter has none yet: zeros, t = 0); and last, the float64 factors
        [lr / (1 - b1^(t+1)), sqrt(1 - b2^(t+1))] of each parameter's next step, one row each, computed here from t
        (read back: a step count lives on the CPU, or with a fused Adam on the parameter's device, where the update
        is computed in the graph only on the CPU): a compiled graph would compute them again for every entry."""
        moments, squares, steps = [], [], []
        for p in self.params:
            state = self.optimizer.state[p]
            if not state:
                if self.fused:  # as torch's Adam: a float32 count on the parameter's device, else on the CPU
                    state["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
                else:
                    float64 = torch.get_default_dtype() == torch.float64
                    state["step"] = torch.tensor(0.0, dtype=torch.float64 if float64 else torch.float32, device="cpu")
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            moments.append(state["exp_avg"])
            squares.append(state["exp_avg_sq"])
            steps.append(state["step"])
        factors = []
        for t in steps:
            t = float(t) + 1
            factors.append((self.lr / (1 - self.beta1 ** t), math.sqrt(1 - self.beta2 ** t)))
        return [*moments, *squares, *steps, torch.tensor(factors, dtype=torch.float64, device=self.params[0].device)]

    def new(self, params: list[Tensor], grads: list[Tensor | None], state: list[Tensor]) -> list[Tensor | None]:
        """The new parameters, then the new m, v and t of each parameter, each list in the parameters' order;
        ``None`` for a parameter without a gradient, which Adam leaves as it is."""
        count = len(params)
        moments, squares, steps = state[:count], state[count:2 * count], state[2 * count:3 * count]
        factors = state[3 * count]
        news: list[list[Tensor | None]] = [[], [], [], []]
        for i, (theta, g, m, v, t) in enumerate(zip(params, grads, moments, squares, steps)):
            results = (None,) * 4 if g is None else self._adam(theta, g, m, v, t, factors[i])
            for out, value in zip(news, results):
                out.append(value)
        return [value for out in news for value in out]

    def _adam(self, theta: Tensor, g: Tensor, m: Tensor, v: Tensor, t: Tensor,
              factors: Tensor) -> tuple[Tensor, ...]:
        if self.weight_decay:
            g = g + self.weight_decay * theta
        m = torch.lerp(m, g, 1 - self.beta1)
        v = torch.addcmul(v * self.beta2, g, g, value=1 - self.beta2)
        step_size, root = factors.to(theta.dtype).unbind()
        return theta - step_size * (m / (v.sqrt() / root + self.eps)), m, v, t + 1

    def take(self) -> list[Tensor | None] | None:
        """The outputs of :meth:`new` of the step just computed, left for the guard to apply or drop; ``None``
        where the step did not compute them (it failed before)."""
        pending, self.pending = self.pending, None
        return pending

    def apply(self, outputs: list[Tensor | None], good: list[Tensor]) -> None:
        """Make ``outputs`` (of :meth:`new`) the parameters and the optimiser's state; ``good`` receives the tensors
        the parameters held before, with nothing copied (a parameter that the step does not update is copied)."""
        count = len(self.params)
        with torch.no_grad():
            for i, p in enumerate(self.params):
                theta, m, v, t = outputs[i], outputs[count + i], outputs[2 * count + i], outputs[3 * count + i]
                if theta is None:
                    good[i].copy_(p)
                    continue
                good[i] = p.detach()
                p.data = _laid_out_as(theta, p)
                state = self.optimizer.state[p]
                state["exp_avg"] = _laid_out_as(m, state["exp_avg"])
                state["exp_avg_sq"] = _laid_out_as(v, state["exp_avg_sq"])
                state["step"] = t


def _laid_out_as(new: Tensor, old: Tensor) -> Tensor:
    """``new``, or a copy of it with ``old``'s strides where a compiled graph laid it out otherwise."""
    return new if new.stride() == old.stride() else torch.empty_like(old).copy_(new)
