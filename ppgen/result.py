"""The fitted model and the three questions it answers: log p(x), x ~ p(x), and q(z|x)."""

from __future__ import annotations

import math
import os
from typing import Any

import pyro.poutine as poutine
import torch
from torch import Tensor, nn

from ppgen.bounds import draw_particles, enumerated_log_posterior, exact_log_prob, log_weights, trace_particles
from ppgen.budget import BUDGET, check_particle_budget, check_sample_budget
from ppgen.checkpoint import (CHECKPOINT_FORMAT, atomic_save, build_recorded, check_builds, check_fit_checkpoint,
                              class_path, resolve_class)
from ppgen.checks import check_device, check_positive_int
from ppgen.data import as_data
from ppgen.objective import Objective
from ppgen.posterior import Posterior
from ppgen.program import Model, Structure, as_model_input, as_module, inspect, sample_sites

#: particles times data points evaluated in one pass of an importance-sampled query; bounds memory.
PARTICLE_POINTS_PER_PASS = 2**15


class Fit:
    """A fitted generative model.

    Attributes:
        model: the trained program (an ``nn.Module``).
        structure: what ppgen learnt of the program by tracing it.
        inference: the objective it was fitted with.
        history: the mean training loss of each epoch, in nats per data point.
        example: a few training rows, which fix the shape and dtype of x and let a loaded fit trace its program.
    """

    def __init__(self, model: nn.Module, structure: Structure, inference: Objective, *, history: list[float],
                 example: Tensor) -> None:
        self.model = model
        self.structure = structure
        self.inference = inference
        self.history = history
        self.example = example

    def __repr__(self) -> str:
        last = f"{self.history[-1]:.4g}" if self.history else "n/a"
        return (f"Fit(model={type(self.model).__name__}, inference={self.inference!r}, "
                f"epochs={len(self.history)}, final loss={last})")

    @property
    def x_shape(self) -> tuple[int, ...]:
        """The shape of one data point."""
        return tuple(self.example.shape[1:])

    @property
    def device(self) -> torch.device:
        """Where the model's parameters live."""
        return next(self.model.parameters(), self.example).device

    def _data(self, x: Any, name: str = "x") -> Tensor:
        x = as_data(x, name=name)
        if tuple(x.shape[1:]) != self.x_shape:
            raise ValueError(f"{name} must have shape [N, {', '.join(map(str, self.x_shape))}] like the training "
                             f"data, got {list(x.shape)}")
        x = x.to(device=self.device, dtype=self.example.dtype)
        self.structure.check_data(x, name)
        return x

    @torch.no_grad()
    def log_prob(self, x: Any, k: int = 1000) -> Tensor:
        """log p(x) for each row of x, Tensor[N].

        Exact where the model has a closed form (a ``log_prob`` method, or latents summed out by
        enumeration); otherwise the importance-sampled estimate log (1/K) sum_k p(x, z_k) / q(z_k|x) with
        z_k ~ q(z|x), which is :meth:`iwae_bound` with K = ``k``: a lower bound in expectation that
        tightens as K grows.
        """
        k = check_positive_int(k, "k")
        x = self._data(x)
        if self.structure.exact:
            return exact_log_prob(self.model, self.structure, x)
        return self._iwae(x, k)

    @torch.no_grad()
    def iwae_bound(self, x: Any, k: int) -> Tensor:
        """The K-sample importance-weighted bound through the guide, Tensor[N], for any model with a guide."""
        k = check_positive_int(k, "k")
        return self._iwae(self._data(x), k)

    def _iwae(self, x: Tensor, k: int) -> Tensor:
        check_particle_budget(k, len(x))
        if self.structure.unguided:
            raise ValueError(f"importance sampling needs a guide q(z|x) that draws the latent site(s) "
                             f"{self.structure.unguided}; no guide draws them (log_prob(x) is exact for this model)")
        points = max(1, PARTICLE_POINTS_PER_PASS // k)
        particles = min(k, PARTICLE_POINTS_PER_PASS)
        out = []
        for xb in x.split(points):
            sums = [log_weights(self.model, self.structure, xb, min(particles, k - start)).logsumexp(0)
                    for start in range(0, k, particles)]
            out.append(torch.stack(sums).logsumexp(0) - math.log(k))
        return torch.cat(out)

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        """n draws x ~ p(x) from the prior predictive, Tensor[n, *x_shape]."""
        n = check_positive_int(n, "n")
        check_sample_budget(n, self.x_shape)
        if len(self.structure.observed) != 1:
            raise ValueError(f"sample() returns the model's one observed site, but it has "
                             f"{len(self.structure.observed)}: {self.structure.observed}")
        placeholder = self.example[:1].to(self.device).expand(n, *self.x_shape)
        trace = poutine.trace(poutine.uncondition(self.model.model)).get_trace(placeholder)
        return trace.nodes[self.structure.observed[0]]["value"]

    @torch.no_grad()
    def encode(self, x: Any, site: str | None = None, num_samples: int = 100) -> Tensor:
        """The posterior mean of a latent site given x: Tensor[N, d] for a site of d coordinates per data point
        (a site in further plates keeps their dimensions, as the program lays them out).

        For a site the guide draws, E_q[z|x] under q(z|x). For a discrete latent c that the model sums out, the
        posterior p(c|x) over its C values, Tensor[N, C], which is E[onehot(c) | x]: exact when the model has
        no guided latents, otherwise E_q(z|x)[p(c|x, z)], the c-marginal of the posterior that
        :meth:`posterior` draws from. Where a mean has no closed form (that last case, or a guide distribution
        without an analytic mean), it is the average of ``num_samples`` draws.
        """
        name = self._latent_site(site)
        num_samples = check_positive_int(num_samples, "num_samples")
        x = self._data(x)
        if name in self.structure.enumerated:
            _, model_trace = trace_particles(self.model, self.structure, x, self._draws_given_guide(num_samples))
            return enumerated_log_posterior(model_trace, name, self.structure.particle_dim).exp().mean(0)
        q = poutine.trace(self.model.guide).get_trace(x).nodes[name]["fn"]
        try:
            return q.mean
        except NotImplementedError:  # e.g. a transformed distribution: no closed form, so draws
            return draw_particles(self.model, self.structure, x, num_samples).nodes[name]["value"].mean(0)

    @torch.no_grad()
    def posterior(self, x: Any, num_samples: int = 500) -> Posterior:
        """``num_samples`` joint draws of every latent site for every row of x.

        z_s ~ q(z|x) for the sites the guide draws, and for each discrete latent c that the model sums out,
        c_s ~ p(c | x, z_s) exactly given the same draw z_s (each such c from its own marginal given z_s).
        """
        num_samples = check_positive_int(num_samples, "num_samples")
        self._check_latent()
        x = self._data(x)
        check_particle_budget(num_samples, len(x), "num_samples")
        particles = self._draws_given_guide(num_samples)
        if self.structure.enumerated:
            guide_trace, model_trace = trace_particles(self.model, self.structure, x, particles)
        else:  # the guide's draws are the whole answer
            guide_trace = draw_particles(self.model, self.structure, x, particles)
        samples = {site["name"]: site["value"] for site in sample_sites(guide_trace)} if guide_trace else {}
        for name in self.structure.enumerated:
            given = torch.distributions.Categorical(logits=enumerated_log_posterior(model_trace, name,
                                                                                    self.structure.particle_dim))
            if self.structure.guided:  # one draw for each guide particle z_s
                samples[name] = given.sample()
            else:  # one exact posterior, as a single particle: every draw from it
                samples[name] = given.sample((num_samples,))[:, 0]
        return Posterior(samples)

    def _draws_given_guide(self, num_samples: int) -> int:
        """Particles to trace for ``num_samples`` posterior draws: one when no latent comes from the guide."""
        return num_samples if self.structure.guided else 1

    @property
    def latent_sites(self) -> tuple[str, ...]:
        """The latent sites a query can answer about: those the guide draws, then those the model sums out."""
        return self.structure.guided + self.structure.enumerated

    def _check_latent(self) -> None:
        if self.structure.unguided and not self.latent_sites:
            raise ValueError(f"{type(self.model).__name__}'s latent site(s) {self.structure.unguided} have no guide "
                             f"q(z|x) to infer them: give the model a guide(x) that draws them")
        if not self.latent_sites:
            raise ValueError(f"{type(self.model).__name__} has no latent variables to infer")

    def _latent_site(self, site: str | None) -> str:
        """The latent site a query is about: the one there is, or the one named."""
        self._check_latent()
        latent = self.latent_sites
        if site is None:
            if len(latent) > 1:
                raise ValueError(f"the model has several latent sites {latent}: choose one with site=")
            return latent[0]
        if site not in latent:
            raise ValueError(f"site must be one of the model's latent sites {latent}, got {site!r}")
        return site

    def save(self, path: str | os.PathLike) -> None:
        """Write the fit to ``path`` atomically: a crash mid-write leaves any earlier file intact."""
        model_class = type(self.model)
        atomic_save({
            "format": CHECKPOINT_FORMAT,
            "model": {"class": class_path(model_class), "config": getattr(self.model, "config", None)},
            "state_dict": {name: t.detach().cpu() for name, t in self.model.state_dict().items()},
            "inference": {"class": class_path(type(self.inference)), "config": self.inference.config},
            "history": list(self.history),
            "example": self.example.cpu(),
        }, path)


def load(path: str | os.PathLike, model: Any = None, device: str | torch.device = "cpu") -> Fit:
    """Read a fit written by :meth:`Fit.save`; it answers the same queries as the fit that was saved.

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
    """
    device = check_device(device)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no checkpoint at {os.fspath(path)}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - whatever bytes are there, they are not a fit: say so, run nothing
        raise ValueError(f"{os.fspath(path)} is not a readable ppgen fit (torch.load raised "
                         f"{type(error).__name__}); nothing in it was run") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{os.fspath(path)} is not a ppgen fit (no '{CHECKPOINT_FORMAT}' format tag)")
    check_fit_checkpoint(state, os.fspath(path))
    example = state["example"]
    if model is None:
        module = resolve_class(state["model"]["class"], Model, hint="pass the model, built as it was, to "
                               "ppgen.load(path, model=...), or import its module first if it is a ppgen.Model")
        if state["model"]["config"] is None:
            raise ValueError(f"{os.fspath(path)}: field 'model.config' is None: pass the model to ppgen.load(model=)")
        check_builds(module, state["model"]["config"], state["state_dict"], os.fspath(path),
                     BUDGET.checkpoint_parameters)
        module = module(**state["model"]["config"])
    else:
        module = as_module(model)
    # trace first: that creates the parameters of a program that makes them on its first run
    structure = inspect(module, as_model_input(example, module), name=f"the example rows in {os.fspath(path)}")
    module.to(device=device, dtype=example.dtype)
    try:
        module.load_state_dict(state["state_dict"])
    except RuntimeError as error:
        raise ValueError(f"model: its parameters are not those saved in {os.fspath(path)}: {error}") from None
    module.eval()
    backend = resolve_class(state["inference"]["class"], Objective, hint="import the module that defines this "
                            "backend first")
    inference = build_recorded(backend, state["inference"]["config"], os.fspath(path), "inference")
    return Fit(module, structure, inference, history=state["history"], example=example)
