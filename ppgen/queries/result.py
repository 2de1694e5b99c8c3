"""The fitted model and the three questions it answers: log p(x), x ~ p(x), and q(z|x)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ppgen.objective.base import Objective
from ppgen.objective.sampler import Draws, Sampler
from ppgen.program.fastpath import check_compile
from ppgen.program.implicit import check_density
from ppgen.program.inputs import Batch, as_batch
from ppgen.program.protocol import constrained_params
from ppgen.program.structure import Structure
from ppgen.program.unnormalized import refuse_unnormalized
from ppgen.queries import density, importance, mcmc, representation, sampling
from ppgen.queries.annealing import LogZ
from ppgen.queries.energy import DataMoments, EnergyQueries
from ppgen.queries.evaluation import Evaluation, evaluate, has_density
from ppgen.queries.fit_file import fit_state, read_fit
from ppgen.queries.posterior import METHODS, Posterior
from ppgen.queries.query_inputs import given_inputs, query_batch
from ppgen.queries.sample_quality import SampleMetrics
from ppgen.run.checkpoint import atomic_save
from ppgen.utils.budget import check_particle_budget, check_sample_budget
from ppgen.utils.checks import check_choice, check_positive_int
from ppgen.utils.paths import check_output_file, naming_path


#: K, the importance samples of :meth:`Fit.log_prob`'s estimate where none is given.
DEFAULT_K = 1000


class Fit:
    """A fitted generative model.

    Attributes:
        model: the trained program (an ``nn.Module``).
        structure: what ppgen learnt of the program by tracing it.
        inference: the objective it was fitted with.
        history: the mean training loss of each epoch, in the objective's units (``inference.units``): nats per data
            point for the likelihood-based objectives, MMD^2 for ``inference.MMD``.
        example: a few training rows of every input (a :class:`~ppgen.program.inputs.Batch`, or anything ``fit`` takes
            as data), which fix their shapes and dtypes, let a loaded fit trace its program, and record N, the size of
            the training set (``example.size``).
        skipped: the batches that ``fit(on_nan="skip")`` left out because their loss or gradient diverged.
        validation_history: the loss on ``fit(validation=...)``'s held-out rows at each epoch (empty without them).
        best_epoch: the epoch (from 1) whose parameters the model holds, for ``fit(keep="best")``; else ``None``.
        stopped: why the fit stopped before its epochs (early stopping, a callback), or ``None``.
        draws: the draws of the global latents (:class:`~ppgen.objective.sampler.Draws`) of a fit by a sampler such as
            ``inference.NUTS``, whose posterior predictive the queries answer with; ``None`` for a fit by an objective.
        moments: an energy-based model's training-data mean and covariance (:class:`~ppgen.queries.energy.DataMoments`,
            recorded by ``ppgen.fit``): the Gaussian its samplers and its estimate of log Z start from; else ``None``.
        energy: an energy-based model's queries (:class:`~ppgen.queries.energy.EnergyQueries`), which keep its
            estimate of log Z; ``None`` for any other model.
    """

    def __init__(self, model: nn.Module, structure: Structure, inference: Objective | Sampler, *,
                 history: list[float], example: Batch | Any, skipped: int = 0, draws: Draws | None = None,
                 moments: DataMoments | None = None, validation_history: list[float] | None = None,
                 best_epoch: int | None = None, stopped: str | None = None) -> None:
        self.model = model
        self.structure = structure
        self.inference = inference
        self.history = history
        self.example = as_batch(example, name="example")
        self.skipped = skipped
        self.validation_history, self.best_epoch, self.stopped = list(validation_history or []), best_epoch, stopped
        self.draws = draws
        if draws is not None:  # whether the model broadcasts over the draws, learnt once for every query of them
            self.structure = mcmc.with_draws_checked(model, structure, self.example.to(self.device), draws)
        self._passes = density.Passes(model, structure)
        self.moments = moments
        self.energy = None if not structure.unnormalized else EnergyQueries(
            model, self.structure, self.example, moments, tuple(getattr(inference, "levels", ())),
            bool(getattr(inference, "learns_log_normalizer", False)))

    def __repr__(self) -> str:
        last = f"{self.history[-1]:.4g}" if self.history else "n/a"
        return (f"Fit(model={type(self.model).__name__}, inference={self.inference!r}, "
                f"epochs={len(self.history)}, final loss={last})")

    @property
    def x_shape(self) -> tuple[int, ...]:
        """The shape of one data point x, the first input."""
        return tuple(self.example.args[0].shape[1:])

    @property
    def device(self) -> torch.device:
        """Where the model's parameters live."""
        return next(self.model.parameters(), self.example.args[0]).device

    @property
    def params(self) -> dict[str, Tensor]:
        """Every learnt parameter under the name the program gave it, constrained: ``fit.params["scale"] > 0`` for
        a ``pyro.param("scale", ..., constraint=positive)``; an ``nn.Module``'s parameters by their own names."""
        return constrained_params(self.model)

    def __getstate__(self) -> dict[str, Any]:
        """A copy or a pickle of a fit leaves out the graphs its queries keep (a compiled one does not pickle)."""
        state = dict(self.__dict__)
        del state["_passes"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._passes = density.Passes(self.model, self.structure)

    def _kept_passes(self) -> density.Passes:
        """The passes of the importance-sampled queries, whose captured (and compiled) graphs later queries reuse:
        those of the model and structure this fit holds now."""
        self._passes = density.Passes.of_program(self.model, self.structure, self._passes)
        return self._passes

    def _batch(self, inputs: tuple[Any, ...], name: str = "x") -> Batch:
        """Query inputs checked against the training inputs: as many, each of the same shape per point."""
        return query_batch(self.structure, self.example, self.device, inputs, name)

    @torch.no_grad()
    def log_prob(self, *inputs: Any, k: int | None = None, compile: bool | str = "auto") -> Tensor:
        """log p(x) for each row of x, Tensor[N] (given the model's further inputs, ``log_prob(x, y)``).

        Exact where the model has a closed form (a ``log_prob`` method, or latents summed out by enumeration); the
        model's own lower bound where its ``log_prob`` is marked one (``log_prob_is_bound = True``, a diffusion
        model's); otherwise the importance-sampled estimate log (1/K) sum_k p(x, z_k) / q(z_k|x) with z_k ~ q(z|x),
        :meth:`iwae_bound` with K = ``k`` (default :data:`DEFAULT_K`): a lower bound in expectation that tightens as K
        grows. With global latents, the posterior predictive log E_q(theta)[p(x|theta)]; for a fit by a sampler,
        log (1/S) sum_s p(x|theta_s) over its S draws, each p(x|theta_s) exact (a sampler's model has no latent local
        to a point, or sums it out): there is nothing for importance samples to draw, and ``k`` is refused. For an
        energy-based model (``ppgen.Unnormalized``), -E(x) - log Zhat, log Z estimated once by annealed importance
        sampling and kept (:meth:`log_normalizer` gives its standard error, the error of every row alike). ``k`` is
        unused but for the importance-sampled estimate.

        ``compile``: as ``fit``'s (default ``"auto"``, :mod:`ppgen.program.automatic`), for the importance-sampled
        estimate's passes over chunks of points, each checked against the plain pass on the same draws
        (:class:`ppgen.queries.density.Estimates`); a query of fewer passes of a chunk shape than a capture repays,
        which is most, runs the plain passes.

        Raises:
            ValueError: an implicit model (a generator, x = G(z)), which has no density: it answers :meth:`sample`;
                a ``k`` given to a fit by a sampler.
        """
        mcmc.check_no_k(k, self.inference, self.draws)
        k = check_positive_int(DEFAULT_K if k is None else k, "k")
        compile = check_compile(compile)
        check_density(self.structure, "log_prob(x)")
        if self.draws is not None:
            return mcmc.predictive_log_prob(self.model, self.structure, self._batch(inputs), self.draws)
        if self.energy is not None:
            self.energy.check("log_prob(x)")
            return self.energy.log_prob(self._batch(inputs))
        return density.log_prob(self.model, self.structure, self._batch(inputs), k, compile, self._kept_passes())

    @torch.no_grad()
    def iwae_bound(self, *inputs: Any, k: int, compile: bool | str = "auto") -> Tensor:
        """The K-sample importance-weighted bound through the guide, Tensor[N], for any model with a guide
        (``compile``: see :meth:`log_prob`)."""
        k = check_positive_int(k, "k")
        compile = check_compile(compile)
        check_density(self.structure, "iwae_bound(x)")
        refuse_unnormalized(self.structure, "iwae_bound", density.NEEDS_LOG_Z)
        return density.importance_log_prob(self.model, self.structure, self._batch(inputs), k, compile,
                                           self._kept_passes())

    def log_normalizer(self, *, temperatures: int | Sequence[float] | None = None, chains: int | None = None,
                       steps: int | None = None, step_size: float | None = None) -> LogZ:
        """An energy-based model's log Z = log int exp(-E(x)) dx, estimated by annealed importance sampling from the
        Gaussian of the training data's moments (:func:`ppgen.queries.annealing.log_normalizer`, whose arguments
        these are): the :class:`~ppgen.queries.annealing.LogZ` with ``.estimate``, ``.standard_error`` and ``.ess``.

        The fit keeps the estimate and :meth:`log_prob` uses it: a call without arguments returns the kept one (made
        with 100 temperatures, 1000 chains and one MALA step each where none is kept); one with other settings, or
        after the model's parameters changed, estimates log Z again and keeps that. After ``inference.NCE``, the
        model's learnt ``log_normalizer`` c is another estimate, which :meth:`evaluate` reports beside this one.

        Raises:
            ValueError: the model is not energy-based (its log p(x) needs no log Z), or a setting is bad.
        """
        if self.energy is None:
            raise ValueError("log_normalizer: the model's data site is not ppgen.Unnormalized; its log p(x) needs no "
                             "log Z: ask fit.log_prob(x)")
        return self.energy.log_normalizer(temperatures, chains, steps, step_size)

    def evaluate(self, *inputs: Any, k: int = 5000, metrics: str | Sequence[str] | None = None,
                 num_samples: int | None = None, features: Any = None, modes: Any = None, permutations: int = 200,
                 seed: int = 0, compile: bool | str = "auto") -> Evaluation:
        """How good the fit is on held-out data x: its density, and its samples.

        Where the model has a density, the mean and per-point ELBO, IWAE_K and exact log p(x) where the model has it,
        with the effective sample size and PSIS k-hat of the importance weights (a warning where k-hat > 0.7): see
        :mod:`ppgen.queries.evaluation` (``compile``: see :meth:`log_prob`). For every model that samples, a generator
        without a density included, ``num_samples`` draws (default: as many as x has rows; for a model of further
        inputs, x ~ p(x | y) for the rows of y in turn; from torch's RNG, as :meth:`sample`'s) scored against x by
        ``metrics`` (default ``("mmd", "c2st", "frechet")``, those the points allow, with ``"modes"`` where
        ``modes=datasets.ring_modes()`` or another ``(centres, std)`` is given), ``features`` (a feature classifier for
        the Fréchet distance, default: x itself), ``permutations`` and ``seed``: see
        :meth:`ppgen.queries.sample_quality.SampleMetrics.checked`. Every argument is checked before any work.

        For an energy-based model, in place of the bounds: the estimate log p(x) = -E(x) - log Zhat of each point
        (``estimated``), with the estimate of log Z by annealed importance sampling and its standard error
        (``log_z``, :meth:`log_normalizer`'s, kept by the fit; ``k`` is unused), and after ``inference.NCE`` the
        model's learnt c beside it (``learnt_log_z``); its samples are drawn by :meth:`sample`'s default method.
        """
        k = check_positive_int(k, "k")
        compile = check_compile(compile)
        if self.draws is not None:
            raise ValueError(f"evaluate() reports the bounds of a guide q(z|x), which a fit by {self.inference!r} does "
                             f"not have: ask log_prob(x) (the posterior predictive over its draws), or "
                             f"arviz.loo(fit.posterior(x).to_arviz())")
        if self.energy is not None:
            self.energy.check("evaluate")
        batch = self._batch(inputs)
        bounded = has_density(self.structure) or self.energy is not None
        num_samples = len(batch) if num_samples is None else check_positive_int(num_samples, "num_samples")
        check_sample_budget(num_samples, self.x_shape)
        drawable = not (self.structure.plan.whole_data and self.structure.data_site is None)  # as sample() refuses
        quality = SampleMetrics.checked(metrics, x_shape=self.x_shape, n_data=len(batch), n_draws=num_samples,
                                        bounded=bounded, drawable=drawable, features=features, modes=modes,
                                        permutations=permutations, seed=seed)
        if self.energy is not None:
            report = Evaluation(k, None, None, None, None, None, estimated=self.energy.log_prob(batch),
                                log_z=self.energy.log_normalizer(), learnt_log_z=self.energy.learnt_log_normalizer())
        elif bounded:
            check_particle_budget(k, len(batch))  # as log_prob's: past it, hours of work
            report = evaluate(self.model, self.structure, batch, k, particle_points=density.PARTICLE_POINTS_PER_PASS,
                              compile=compile, passes=self._kept_passes())
        else:
            report = Evaluation(k, None, None, None, None, None)
        if quality.metrics:
            data = self.structure.observed_input or 0
            rows = torch.arange(num_samples, device=batch.args[data].device) % len(batch)  # other inputs' rows in turn
            given = [arg[rows] for i, arg in enumerate(batch.args) if i != data]
            report = dataclasses.replace(report, samples=quality(self.sample(num_samples, *given), batch.args[data]))
        return report

    @torch.no_grad()
    def sample(self, n: int, *given: Any, mean: bool = False, **options: Any) -> Tensor:
        """n draws x ~ p(x) from the prior predictive, Tensor[n, *x_shape]; for a model of further inputs,
        ``sample(n, y)`` draws x ~ p(x | y) with one row of y per draw. For a fit by a sampler, the posterior
        predictive: each row takes its global latents from one of the sampler's draws.

        With ``mean=True``, the decoder's mean E[x | z] of the data site's distribution for each prior draw of the
        latents z, as the VAE literature pictures samples (a Bernoulli decoder's probabilities rather than its
        speckled 0/1 draws); a ``ValueError`` where that distribution has no closed-form mean. For an implicit model (a
        generator) each row is x = G(z), z ~ p(z), with ``mean=True`` too (a point mass's mean is its value).

        A model with a ``sample(n, *given, **options)`` method of its own draws with it, given ``options``
        (``fit.sample(16, method="ddim", steps=50)`` for a :class:`~ppgen.models.DDPM`); ``options`` given to a
        model without one are a ``TypeError``.

        An energy-based model (``ppgen.Unnormalized``) draws by Markov chains on its log-density -E(x), with the
        options ``method="langevin"`` (Metropolis-adjusted Langevin, exact invariance; the default),
        ``"annealed"`` (annealed Langevin down the noise levels of a noise-conditional energy fitted by
        ``inference.ScoreMatching(noise=(sigma_1, ..., sigma_L))``; the default for one) or ``"nuts"`` (Pyro's NUTS,
        for few coordinates), and theirs (``steps``, ``step_size``, ``init``, ...): see
        :mod:`ppgen.queries.energy_sampling`. Each chain starts from ``init`` or from the Gaussian of the training
        data's mean and covariance; an option the method does not take is a ``TypeError`` naming it."""
        if not isinstance(mean, bool):
            raise TypeError(f"mean must be True or False, got {mean!r}")
        if self.energy is not None and not callable(getattr(self.model, "sample", None)):
            return self.energy.sample(n, given, mean, options)
        own = sampling.own_sampler(self.model, options, mean)
        n = check_positive_int(n, "n")
        check_sample_budget(n, self.x_shape)
        if self.structure.plan.whole_data and self.structure.data_site is None:  # it observes x indexed, x[ind]
            raise ValueError(f"sample: the program takes the whole data set at every step (its data plate "
                             f"pyro.plate('{self.structure.plan.data_plate}', ...) indexes it), so it has no x of one "
                             f"point to draw; run its model with the data released instead")
        sampling.check_given(self.model, self.structure, given)
        checked = given_inputs(self.structure, self.example, self.device, n, given)
        if own is not None:
            return own(n, *checked, **options)
        return sampling.sample(self.model, self.structure, self.example.to(self.device), n, tuple(checked), mean=mean,
                               draws=self.draws)

    @torch.no_grad()
    def encode(self, *inputs: Any, site: str | None = None, num_samples: int = 100) -> Tensor:
        """The posterior mean of a latent site given x: Tensor[N, d] for a site of d coordinates per data point
        (a site in further plates keeps their dimensions, as the program lays them out).

        For a site the guide draws, E_q[z|x] under q(z|x): the mean of q(z|x) where the guide draws z first, and
        where it draws z given earlier draws z' (a hierarchy x -> z1 -> z2), E_q(z'|x)[E_q[z|x, z']], the
        conditional means averaged over ``num_samples`` draws of z'; for a discrete site the guide enumerates, q(c|x)
        over its C values, Tensor[N, C]. For a discrete latent c that the model sums out, the posterior p(c|x),
        Tensor[N, C], which is E[onehot(c) | x]: exact when the model has no guided latents, otherwise
        E_q(z|x)[p(c|x, z)], the c-marginal of the posterior that :meth:`posterior` draws from. Where a mean has
        no closed form (that last case, or a guide distribution without an analytic mean), it is the average of
        ``num_samples`` draws.

        A model with an ``encode(x)`` method of its own (a flow: x mapped to its base space) answers with it.
        """
        if callable(getattr(self.model, "encode", None)):
            if site is not None:
                raise ValueError(f"{type(self.model).__name__} encodes x by its own map (a flow's, to its base space): "
                                 f"it has no latent site {site!r} to choose; call encode(x) without site=")
            return self.model.encode(*self._batch(inputs).args)
        name = representation.latent_site(self.model, self.structure, site)
        num_samples = check_positive_int(num_samples, "num_samples")
        return representation.encode(self.model, self.structure, self._batch(inputs), name, num_samples)

    @torch.no_grad()
    def posterior(self, *inputs: Any, num_samples: int = 1000, method: str | None = None, k: int | None = None,
                  num_chains: int = 4, warmup_steps: int | None = None, progress: bool = False) -> Posterior:
        """Posterior draws of every latent site for every row of x, with their diagnostics.

        * ``method="guide"`` (the default for a fit by an objective): z_s ~ q(z|x) for the sites the guide draws,
          and for each discrete latent c that the model sums out, c_s ~ p(c | x, z_s) exactly given the same draw
          z_s. Global latents come with their draws too, without a data dimension.
        * ``method="importance"``: sampling-importance-resampling, ``num_samples`` draws among ``k`` proposals of
          the guide (default ``10 * num_samples``) weighted by p(x, z) / q(z|x), which corrects a poor guide; the
          ESS and PSIS k-hat of each point's weights come with them, with a warning where k-hat > 0.7
          (:mod:`ppgen.queries.importance`).
        * ``method="nuts"``: Pyro's NUTS over the latents of the given points with the fitted parameters fixed,
          ``num_chains`` chains of ``warmup_steps`` (default ``num_samples``) adaptation steps and
          ``num_samples`` draws each, for programs of at most ``ppgen.utils.budget.BUDGET.nuts_coordinates`` latent
          coordinates (:mod:`ppgen.queries.mcmc`).

        A fit by a sampler (``inference.NUTS``) answers with its own draws of the global latents, whatever the
        inputs (``method`` may then be left out or ``"nuts"``, and ``num_samples`` is the sampler's); the inputs
        give the log-likelihood group.

        Returns:
            A :class:`~ppgen.queries.posterior.Posterior`: ``mean()``, ``std()``, ``quantile(q)``, ``samples`` by site
            name, and ``to_arviz()``.
        """
        num_samples = check_positive_int(num_samples, "num_samples")
        if self.draws is not None:
            if method not in (None, "nuts"):
                raise ValueError(f"method: this fit holds the draws of {self.inference!r}, its posterior; "
                                 f"method={method!r} applies to fits by an objective")
            batch = self._batch(inputs)
            return mcmc.to_posterior(self.model, self.structure, batch, self.draws,
                                     representation.observed_data(self.structure, batch))
        method = check_choice("guide" if method is None else method, METHODS, "method")
        representation.check_latent(self.model, self.structure)
        batch = self._batch(inputs)
        if method == "guide":
            check_particle_budget(num_samples, len(batch), "num_samples")
            return representation.posterior(self.model, self.structure, batch, num_samples)
        if method == "importance":
            k = 10 * num_samples if k is None else check_positive_int(k, "k")
            importance.check_importance(self.model, self.structure)
            check_particle_budget(k, len(batch), "k")
            return importance.posterior(self.model, self.structure, batch, num_samples, k,
                                        density.PARTICLE_POINTS_PER_PASS)
        num_chains = check_positive_int(num_chains, "num_chains")
        warmup_steps = num_samples if warmup_steps is None else check_positive_int(warmup_steps, "warmup_steps")
        return mcmc.local_posterior(self.model, self.structure, batch, num_samples, warmup_steps=warmup_steps,
                                    num_chains=num_chains, observed=representation.observed_data(self.structure, batch),
                                    progress=bool(progress))

    @property
    def latent_sites(self) -> tuple[str, ...]:
        """The latent sites a query can answer about: those the guide draws, then those the model sums out."""
        return representation.latent_sites(self.structure)

    def save(self, path: str | os.PathLike) -> None:
        """Write the fit to ``path`` atomically: a crash mid-write leaves any earlier file intact.

        Raises:
            ValueError, TypeError, OSError: ``path`` is empty, not a path, a folder, under a file, in a folder that
                takes no new file, or could not be written (a full disk): checked before the fit is serialised, and
                each error names ``path``, never the temporary file the write goes through.
        """
        path = check_output_file(path, "path")
        state = fit_state(self)
        with naming_path(path, "path"):
            atomic_save(state, path)


def load(path: str | os.PathLike, model: Any = None, device: str | torch.device = "cpu") -> Fit:
    """Read a fit written by :meth:`Fit.save`; it answers the same queries as the fit that was saved (an energy-based
    model's with the same estimate of log Z, where the saved fit held one).

    The file is read with ``torch.load(weights_only=True)``, so loading never runs code from it. A zoo
    model, or a subclass of :class:`ppgen.Model` whose module is already imported, is rebuilt from its
    recorded class and keyword arguments; any other model is passed in as ``model`` (built as it was
    when saved), and its parameters are loaded into it.

    Arguments:
        path: the checkpoint file.
        model: the program to load the parameters into, when the checkpoint cannot rebuild it.
        device: where to put the parameters.

    Raises:
        ValueError: the file is not a ppgen fit, is damaged, names a class that is not imported, or holds
            parameters that ``model`` does not have.
        IsADirectoryError: ``path`` is a folder (a run folder's fit is its ``fit.pt``).
    """
    parts = read_fit(path, model, device)
    energy = parts.pop("energy")
    fit = Fit(parts.pop("model"), parts.pop("structure"), parts.pop("inference"), **parts)
    if energy is not None:
        fit.energy.restore(energy)
    return fit
