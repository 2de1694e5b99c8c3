"""The maximum mean discrepancy between the data and the model's own draws, minimised over theta: generative moment
matching (Li, Swersky and Zemel, 2015; Dziugaite, Roy and Ghahramani, 2015)."""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ppgen.objective.base import Objective
from ppgen.objective.generated import check_no_guide, generated
from ppgen.objective.kernels import flat, median_bandwidths, mmd2_unbiased
from ppgen.program.inputs import Batch
from ppgen.program.structure import Structure, sampled_site
from ppgen.utils.checks import check_choice, check_positive_float, check_positive_int

KERNELS = ("rbf",)


@dataclass(frozen=True, kw_only=True)
class MMD(Objective):
    """Moment matching: the unbiased estimate of MMD^2 between the batch's B points and r B draws of the model,

        loss = MMD^2_u({x_i}, {x~_j}),  x~_j ~ p_theta(x | c_j),  i <= B, j <= r B,

    with the kernel k(x, y) = sum_b exp(-||x - y||^2 / (2 h_b^2)) (:mod:`ppgen.objective.kernels`). Its expectation is
    MMD^2(p_data, p_theta), zero exactly when the model's distribution is the data's; the gradient reaches theta
    through the draws x~, made by running the model forward with its data site unobserved (latents from their
    priors, x from its likelihood, reparameterised: a ``Delta`` of a generator's output, a Normal likelihood). A model
    of x given further inputs c (``model(x, y)``) draws x~_i given the batch's own c_i, and the kernel compares the
    pairs (x, c) (the concatenated vectors): the joint distributions are equal exactly when p_theta(x | c) is the
    data's conditional for (almost) every c of the data.

    The loss is not in nats: it is MMD^2, in the units of the kernel (between 0 and 2 ``len(bandwidths)``; the
    unbiased estimate may dip below zero), and so is ``fit.history``, the mean estimate over each epoch's batches.

    Arguments:
        kernel: ``"rbf"``, the mixture of Gaussian kernels above.
        bandwidths: ``None`` (the median heuristic): h_b = c_b * the median distance between the points of the
            pooled sample, for each c_b in :data:`~ppgen.objective.kernels.MEDIAN_MULTIPLES`, recomputed at every
            batch without gradient; or a tuple of positive numbers, fixed h_b in the units of x.
        num_samples: r, the model's draws per data point of the batch. More draws lower the variance of the model's
            half of the estimate (the terms in k(x~, x~') and k(x, x~)) at (1 + r)^2 B^2 kernel evaluations per step
            instead of 4 B^2; the data's half, of variance O(1/B), stays, so that a larger batch is the first remedy
            and r > 1 pays off where the batch is small or the data set is.

    Every batch needs at least 2 points (the unbiased estimate compares distinct pairs): ``ppgen.fit`` refuses a
    ``batch_size`` that leaves a batch of 1 (an epoch's last) before it starts. Refused by :meth:`check`, naming
    the site and the way out: a program with a guide (MMD fits p_theta(x) alone and would leave q(z|x) untrained), a
    data site or latent drawn without a reparameterised sampler (a Bernoulli likelihood, a discrete latent: its draws
    carry no gradient), draws that depend on no parameter being learnt, and a program that subsamples its data itself.

    Example:
        >>> fit = ppgen.fit(generator, x, inference=inference.MMD(num_samples=2))  # doctest: +SKIP

    References:
        Generative Moment Matching Networks (Li, Swersky and Zemel, 2015). https://arxiv.org/abs/1502.02761
        Training generative neural networks via Maximum Mean Discrepancy optimization (Dziugaite, Roy and
        Ghahramani, 2015). https://arxiv.org/abs/1505.03906
        A Kernel Two-Sample Test (Gretton et al., 2012). https://jmlr.org/papers/v13/gretton12a.html
    """

    likelihood_free = True  # a class attribute, not a field: it compares draws of x with data, never a density

    kernel: str = "rbf"
    bandwidths: tuple[float, ...] | None = None
    num_samples: int = 1

    def __post_init__(self) -> None:
        check_choice(self.kernel, KERNELS, "kernel")
        object.__setattr__(self, "bandwidths", check_bandwidths(self.bandwidths))
        object.__setattr__(self, "num_samples", check_positive_int(self.num_samples, "num_samples"))

    @property
    def units(self) -> str:
        return "MMD^2, the kernel's units"

    @property
    def min_points(self) -> int:
        return 2

    def check(self, structure: Structure) -> None:
        site = sampled_site(structure)
        if structure.plan.whole_data:
            raise ValueError(f"{self!r} compares a batch of x with as many draws, but the program takes the whole data "
                             f"set and subsamples pyro.plate('{structure.plan.data_plate}') itself: give it a batch "
                             f"of rows, pyro.plate('{structure.plan.data_plate}', len(x))")
        check_no_guide(repr(self), structure, "inference.ELBO(latent_mmd=...)")
        if site in structure.forward_unreparameterized:
            raise ValueError(f"{self!r} differentiates through draws of the data site {site!r}, but its distribution "
                             f"has no reparameterised sampler (rsample), as a Bernoulli likelihood has not: give it a "
                             f"reparameterised one (a Normal, or a Delta of a generator's output) or fit by "
                             f"inference.ELBO() or inference.MLE()")
        latents = [s for s in structure.forward_unreparameterized if s != site]
        if latents:
            raise ValueError(f"{self!r} differentiates through the model's draws, but latent site(s) "
                             f"{', '.join(map(repr, latents))} are drawn without a reparameterised sampler (rsample; "
                             f"discrete), so their parameters would get no gradient: make them continuous and "
                             f"reparameterised, or fit by inference.ELBO()")
        if not structure.trainable_draws:
            raise ValueError(f"{self!r} differentiates through draws of the data site {site!r}, but they depend on "
                             f"no parameter being learnt (no gradient reaches them): compute its distribution from "
                             f"the model's parameters (a network of z)")

    def loss(self, module: nn.Module, structure: Structure, batch: Batch) -> Tensor:
        if len(batch) < 2:
            raise ValueError(f"{self!r}: a batch of {len(batch)} point; the unbiased MMD^2 needs at least 2 in each: "
                             f"choose a batch_size that leaves no batch of 1")
        data = pairs(batch, structure, batch.args[structure.observed_input or 0])
        model = torch.cat([pairs(batch, structure, generated(module, structure, batch))
                           for _ in range(self.num_samples)])
        if self.bandwidths is None:
            bandwidths = median_bandwidths(data, model)
        else:
            bandwidths = torch.tensor(self.bandwidths, dtype=data.dtype, device=data.device)
        return mmd2_unbiased(data, model, bandwidths)


def pairs(batch: Batch, structure: Structure, x: Tensor) -> Tensor:
    """The points (x_i, c_i) as vectors [B, d]: x flattened, followed by the batch's other inputs c (flattened, in
    x's dtype); x alone for a model of x only."""
    observed = structure.observed_input or 0
    conditions = [flat(arg).to(x.dtype) for i, arg in enumerate(batch.args) if i != observed]
    return torch.cat([flat(x), *conditions], 1)


def check_bandwidths(value: object) -> tuple[float, ...] | None:
    """``None``, or the bandwidths as a tuple of floats; a ``TypeError``/``ValueError`` naming ``bandwidths``
    unless they are a non-empty tuple or list of positive finite numbers."""
    if value is None:
        return None
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        raise TypeError(f"bandwidths must be a tuple of positive numbers, such as ({value},), or None, got a number")
    if not isinstance(value, (tuple, list)):
        raise TypeError(f"bandwidths must be a tuple of positive numbers, or None (the median heuristic), "
                        f"got {type(value).__name__}")
    if not value:
        raise ValueError("bandwidths must hold at least one bandwidth, got an empty tuple: pass None for the median "
                         "heuristic")
    return tuple(check_positive_float(h, f"bandwidths[{i}]") for i, h in enumerate(value))
