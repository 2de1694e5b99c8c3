"""NUTS: Hamiltonian Monte Carlo with adaptive path lengths over the global latents of a model, as a backend."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ppgen.objective.sampler import Draws, Sampler, check_size, conditioned, latent_names, nuts
from ppgen.program.inputs import Batch
from ppgen.program.structure import Structure
from ppgen.utils.checks import check_positive_float, check_positive_int


@dataclass(frozen=True, kw_only=True)
class NUTS(Sampler):
    """Pyro's No-U-Turn sampler over the posterior p(theta | x) of a model whose parameters are random variables
    (global latents: sites outside the data plate), given the whole data set, for models of at most
    ``ppgen.utils.budget.BUDGET.nuts_coordinates`` latent coordinates.

    ``ppgen.fit(model, data, inference=inference.NUTS())`` runs the chains one after another (a seed fixes every
    draw) and returns a :class:`~ppgen.Fit` that keeps them: ``fit.posterior(x)`` and its ``to_arviz()`` hold the
    draws with the sampler's statistics (``diverging``, ``step_size``, ``tree_depth``, ``lp``), ``fit.log_prob(x)``
    is the posterior predictive log (1/S) sum_s p(x | theta_s), ``fit.sample(n)`` draws from it, and
    ``fit.save`` writes the draws into the checkpoint. Discrete latents the model marks for enumeration are summed
    out.

    Arguments:
        num_samples: draws kept per chain.
        warmup_steps: adaptation steps per chain (step size and diagonal mass matrix), discarded; ``None`` (the
            default) takes as many as ``num_samples``, the proportion NumPyro's and Stan's users expect (Stan's
            1000 and 1000), so that ``NUTS(num_samples=200)`` warms up 200 steps, not 1000.
        num_chains: independent chains, for R-hat.
        target_accept_prob: the acceptance rate the step size adapts to; raise it towards 0.95 where there are
            divergences.
        max_tree_depth: the most doublings of one trajectory.

    References:
        The No-U-Turn Sampler: Adaptively Setting Path Lengths in Hamiltonian Monte Carlo (Hoffman and Gelman,
        2014). https://jmlr.org/papers/v15/hoffman14a.html

    Example:
        >>> fit = ppgen.fit(regression, (x, y), inference=inference.NUTS(num_chains=4))  # doctest: +SKIP
        >>> arviz.summary(fit.posterior(x, y).to_arviz())  # doctest: +SKIP
    """

    num_samples: int = 1000
    warmup_steps: int | None = None
    num_chains: int = 4
    target_accept_prob: float = 0.8
    max_tree_depth: int = 10

    def __post_init__(self) -> None:
        if self.warmup_steps is None:
            object.__setattr__(self, "warmup_steps", self.num_samples)
        for name in ("num_samples", "warmup_steps", "num_chains", "max_tree_depth"):
            check_positive_int(getattr(self, name), name)
        if not check_positive_float(self.target_accept_prob, "target_accept_prob") < 1:
            raise ValueError(f"target_accept_prob must be in (0, 1), got {self.target_accept_prob!r}")

    def draw(self, module: nn.Module, structure: Structure, batch: Batch, progress: bool) -> Draws:
        check_size(module, structure, batch, latent_names(structure))
        return nuts(conditioned(module, structure, batch), num_samples=self.num_samples,
                    warmup_steps=self.warmup_steps, num_chains=self.num_chains,
                    max_plate_nesting=structure.plan.max_plate_nesting, target_accept_prob=self.target_accept_prob,
                    max_tree_depth=self.max_tree_depth, progress=progress)
