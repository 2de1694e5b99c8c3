"""The queries of an energy-based model, p(x) = exp(-E(x)) / Z with Z unknown (a data site ``ppgen.Unnormalized``):
what ``fit.sample``, ``fit.log_prob``, ``fit.log_normalizer`` and ``fit.evaluate`` do for it.

* log p(x) = log p~(x) - log Zhat = -E(x) - log Zhat, an estimate: log Z by annealed importance sampling
  (:mod:`ppgen.queries.annealing`) from the Gaussian of the training data's moments, computed once and kept, so that
  every call answers with the same log Zhat (every row off by the same error, its standard error). It is computed
  again when asked with other settings (``fit.log_normalizer(temperatures=..., chains=...)``) or when the model's
  parameters have changed since (a tensor written in place, or replaced); a saved fit keeps it.
* draws by Markov chains on log p~ (:mod:`ppgen.queries.energy_sampling`).

ppgen records at fit time what these need of the data, the mean and covariance of the points
(:class:`DataMoments`): the fit keeps only a few example rows, too few for a Gaussian of D coordinates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import chain
from typing import Any

import torch
from torch import Tensor, nn
from torch.distributions import MultivariateNormal

from ppgen.program.inputs import Batch
from ppgen.program.structure import Structure
from ppgen.program.unnormalized import energy_site, log_density
from ppgen.queries import energy_sampling
from ppgen.queries.annealing import LogZ, check_temperatures, gaussian_of, log_normalizer
from ppgen.queries.sampling import check_given
from ppgen.utils.budget import check_sample_budget
from ppgen.utils.checks import check_positive_float, check_positive_int

#: what the base's covariance gets on its diagonal, times its mean variance: a Gaussian with a density in float32
#: where some coordinates never vary (pixels always 0).
JITTER = 1e-4
#: the rows of data taken at once for their moments.
CHUNK = 4096
#: the settings of annealed importance sampling where none are given.
AIS_DEFAULTS = {"temperatures": 100, "chains": 1000, "steps": 1, "step_size": None}


@dataclass(frozen=True)
class DataMoments:
    """The mean and covariance (1/N) of the training points x, flattened to D values, in float64 on the CPU: the
    Gaussian from which an energy model's samplers start and its estimate of log Z anneals. ``ppgen.fit`` takes them
    from the data in memory, or from the first batch of a stream.

    Attributes:
        mean: Tensor[D].
        covariance: Tensor[D, D].
        count: N, the points they were computed from.
    """

    mean: Tensor
    covariance: Tensor
    count: int

    @classmethod
    def of(cls, x: Tensor) -> DataMoments:
        """The moments of the rows of x, Tensor[N, ...], taken :data:`CHUNK` rows at a time in float64 (memory
        bounded by the chunk, not N)."""
        flat = x.detach().flatten(1)
        mean = sum(chunk.double().sum(0) for chunk in flat.split(CHUNK)) / len(flat)
        covariance = sum((chunk.double() - mean).T @ (chunk.double() - mean) for chunk in flat.split(CHUNK))
        return cls(mean.cpu(), covariance.cpu() / len(flat), len(flat))

    def gaussian(self, like: Tensor) -> MultivariateNormal:
        """N(mean, covariance + JITTER s I) in the dtype and on the device of ``like``."""
        return gaussian_of(self.mean.to(like), self.covariance.to(like), JITTER)


def data_moments(structure: Structure, data: Batch) -> DataMoments | None:
    """The :class:`DataMoments` of the data's observed input for an energy-based model, ``None`` for any other."""
    if not structure.unnormalized:
        return None
    return DataMoments.of(data.args[structure.observed_input])


def fingerprint(module: nn.Module) -> tuple[Any, ...]:
    """Where each parameter and buffer lives and how often it has been written in place: a change of the model's
    numbers changes it."""
    return tuple((t.data_ptr(), t._version, t.dtype) for t in chain(module.parameters(), module.buffers()))


class EnergyQueries:
    """The queries of one fit of an energy-based model: it keeps log Zhat between them.

    Arguments:
        module: the program.
        structure: its structure (``structure.unnormalized``).
        example: its example rows.
        moments: the training data's :class:`DataMoments` (``None`` where a fit does not hold them: it then refuses
            every query).
        levels: the noise levels of the objective it was fitted by (``inference.levels``), or none.
        learns_c: whether that objective learnt the model's ``log_normalizer`` c (``inference.NCE``).
    """

    def __init__(self, module: nn.Module, structure: Structure, example: Batch, moments: DataMoments | None,
                 levels: tuple[float, ...], learns_c: bool) -> None:
        self.module, self.structure, self.example, self.moments = module, structure, example, moments
        self.levels, self.learns_c = tuple(levels), learns_c
        self.kept: tuple[dict[str, Any], tuple[Any, ...], LogZ] | None = None

    @property
    def x_shape(self) -> tuple[int, ...]:
        return tuple(self.example.args[0].shape[1:])

    def check(self, what: str) -> None:
        """A ``ValueError`` naming ``what`` where this fit cannot answer it: a model of further inputs, or no
        moments."""
        if self.structure.num_inputs != 1:
            raise ValueError(f"{what}: an energy model of x given further inputs has a normaliser Z(y) for each y; "
                             f"ppgen samples and estimates log Z of energy models of x alone")
        if self.moments is None:
            raise ValueError(f"{what}: an energy model's chains start from the Gaussian of its training data's mean "
                             f"and covariance, which ppgen.fit records and this fit does not hold: fit the model with "
                             f"ppgen.fit")

    def _like(self) -> Tensor:
        """A tensor in the model's dtype and on its device."""
        return next(self.module.parameters(), self.example.args[0])

    def _base(self) -> MultivariateNormal:
        return self.moments.gaussian(self._like())

    def _site(self) -> Any:
        return energy_site(self.module, self.example.to(self._like().device), self.structure.data_site)

    def log_fs(self) -> tuple[Callable[[Tensor], Tensor], Callable[[Tensor, float], Tensor]]:
        """-E(x) of points x, Tensor[m, *x_shape] or flattened Tensor[m, D], and -E(x, sigma) at one noise level:
        the model's ``Unnormalized`` site, traced once (its density reads the parameters as they are when called)."""
        site = self._site().expand(torch.Size())  # the density of one point, for any number of them

        def log_f(x: Tensor) -> Tensor:
            return site.noisy_log_prob(x.reshape(len(x), *self.x_shape), None)

        def noisy_log_f(x: Tensor, sigma: float) -> Tensor:
            return site.noisy_log_prob(x, x.new_full((len(x),), sigma))
        return log_f, noisy_log_f

    def settings(self, temperatures: Any, chains: Any, steps: Any, step_size: Any) -> dict[str, Any]:
        """The settings of annealed importance sampling, each checked: those given, the kept estimate's for the rest
        (the defaults where none is kept)."""
        given = {"temperatures": temperatures, "chains": chains, "steps": steps, "step_size": step_size}
        settings = {**(AIS_DEFAULTS if self.kept is None else self.kept[0]),
                    **{name: value for name, value in given.items() if value is not None}}
        betas = check_temperatures(settings["temperatures"])
        if not (isinstance(settings["temperatures"], int) and betas == check_temperatures(len(betas) - 1)):
            settings["temperatures"] = betas  # the temperatures themselves, as plain floats
        settings["chains"] = check_positive_int(settings["chains"], "chains")
        settings["steps"] = check_positive_int(settings["steps"], "steps")
        if settings["step_size"] is not None:
            settings["step_size"] = check_positive_float(settings["step_size"], "step_size")
        return settings

    def log_normalizer(self, temperatures: Any = None, chains: Any = None, steps: Any = None,
                       step_size: Any = None) -> LogZ:
        """The kept :class:`~ppgen.queries.annealing.LogZ` where it has these settings and the model has not changed
        since; else estimated now by annealed importance sampling, and kept."""
        self.check("log_normalizer")
        settings = self.settings(temperatures, chains, steps, step_size)
        now = fingerprint(self.module)
        if self.kept is not None and self.kept[0] == settings and self.kept[1] == now:
            return self.kept[2]
        estimate = log_normalizer(self.log_fs()[0], self._base(), **settings)
        self.kept = (settings, now, estimate)
        return estimate

    def log_prob(self, batch: Batch) -> Tensor:
        """log p(x_n) = -E(x_n) - log Zhat, Tensor[N], with the kept estimate of log Z."""
        log_z = self.log_normalizer()
        with torch.no_grad():
            return log_density(self.module, self.structure, batch) - log_z.estimate

    def learnt_log_normalizer(self) -> float | None:
        """c, the log_normalizer of the model that its objective learnt (``inference.NCE``); ``None`` otherwise."""
        if not self.learns_c:
            return None
        c = self._site().log_normalizer
        return None if c is None else float(c.detach())

    def default_method(self) -> str:
        """``"annealed"`` for a noise-conditional energy fitted at noise levels, ``"langevin"`` otherwise."""
        return "annealed" if self._site().noise_conditional and self.levels else "langevin"

    def sample(self, n: int, given: tuple[Any, ...], mean: bool, options: dict[str, Any]) -> Tensor:
        """n draws by ``options["method"]`` (by default :meth:`default_method`) with the other ``options``, all
        checked first: ``fit.sample(n, **options)``, where ``given`` must be empty and ``mean`` false."""
        if mean:
            raise ValueError("mean=True returns E[x | z] of a decoder, but an energy-based model has no latents: "
                             "its draws come from Markov chains; call sample without mean=True")
        n = check_positive_int(n, "n")
        check_sample_budget(n, self.x_shape)
        self.check("sample")
        check_given(self.module, self.structure, given)
        options = dict(options)
        method = options.pop("method", None)
        method = self.default_method() if method is None else method
        settings = energy_sampling.check_options(method, options, self.x_shape, n)
        if method == "annealed" and self.default_method() != "annealed":
            raise ValueError("method='annealed' runs Langevin dynamics down the noise levels of a noise-conditional "
                             "energy E(x, sigma) fitted at them (inference.ScoreMatching(noise=(sigma_1, ..., "
                             "sigma_L))); this fit has none: use method='langevin'")
        return energy_sampling.draw(method, settings, n, self.x_shape, self._base(), *self.log_fs(), self.levels)

    def state(self) -> dict[str, Any]:
        """What a saved fit keeps: the moments, and the estimate of log Z where it is that of the model as it is."""
        out: dict[str, Any] = {"mean": self.moments.mean, "covariance": self.moments.covariance,
                               "count": self.moments.count}
        if self.kept is not None and self.kept[1] == fingerprint(self.module):
            settings, _, log_z = self.kept
            out["log_z"] = {"settings": settings, "estimate": log_z.estimate, "standard_error": log_z.standard_error,
                            "ess": log_z.ess, "acceptance": log_z.acceptance, "log_weights": log_z.log_weights.cpu()}
        return out

    def restore(self, state: dict[str, Any]) -> None:
        """Keep the estimate of log Z that a saved fit held (:meth:`state`), as that of the model now."""
        kept = state.get("log_z")
        if kept is not None:
            log_z = LogZ(**{name: value for name, value in kept.items() if name != "settings"})
            self.kept = (dict(kept["settings"]), fingerprint(self.module), log_z)


def moments_of(state: dict[str, Any]) -> DataMoments:
    """The :class:`DataMoments` of a saved fit's (checked) ``energy`` field."""
    return DataMoments(state["mean"], state["covariance"], state["count"])
