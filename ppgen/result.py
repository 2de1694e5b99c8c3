"""The fitted model and the three questions it answers: log p(x), x ~ p(x), and q(z|x)."""

from __future__ import annotations

import math
import os
from typing import Any

import pyro.poutine as poutine
import torch
from torch import Tensor, nn

from ppgen.bounds import enumerated_log_posterior, exact_log_prob, log_weights, trace_particles
from ppgen.checkpoint import CHECKPOINT_FORMAT, atomic_save, class_path, resolve_class
from ppgen.checks import check_positive_int
from ppgen.data import as_data
from ppgen.objective import Objective
from ppgen.posterior import Posterior
from ppgen.program import Model, Structure, as_module, has_guide, inspect, sample_sites

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
        check_positive_int(k, "k")
        x = self._data(x)
        if self.structure.exact:
            return exact_log_prob(self.model, self.structure, x)
        return self._iwae(x, k)

    @torch.no_grad()
    def iwae_bound(self, x: Any, k: int) -> Tensor:
        """The K-sample importance-weighted bound through the guide, Tensor[N], for any model with a guide."""
        check_positive_int(k, "k")
        return self._iwae(self._data(x), k)

    def _iwae(self, x: Tensor, k: int) -> Tensor:
        if not has_guide(self.model) and not self.structure.exact:
            raise ValueError("importance sampling log p(x) needs a guide q(z|x); this model has none")
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
        check_positive_int(n, "n")
        if len(self.structure.observed) != 1:
            raise ValueError(f"sample() returns the model's one observed site, but it has "
                             f"{len(self.structure.observed)}: {self.structure.observed}")
        placeholder = self.example[:1].to(self.device).expand(n, *self.x_shape)
        trace = poutine.trace(poutine.uncondition(self.model.model)).get_trace(placeholder)
        return trace.nodes[self.structure.observed[0]]["value"]

    @torch.no_grad()
    def encode(self, x: Any, site: str | None = None, num_samples: int = 100) -> Tensor:
        """The posterior mean of a latent site given x, Tensor[N, d].

        For a site the guide draws, E_q[z|x] under q(z|x). For a discrete latent c that the model sums out, the
        posterior p(c|x) over its C values, Tensor[N, C], which is E[onehot(c) | x]: exact when the model has
        no guided latents, otherwise E_q(z|x)[p(c|x, z)], the c-marginal of the posterior that
        :meth:`posterior` draws from. Where a mean has no closed form (that last case, or a guide distribution
        without an analytic mean), it is the average of ``num_samples`` draws.
        """
        name = self._latent_site(site)
        check_positive_int(num_samples, "num_samples")
        x = self._data(x)
        if name in self.structure.enumerated:
            _, model_trace = trace_particles(self.model, self.structure, x, self._draws_given_guide(num_samples))
            return enumerated_log_posterior(model_trace, name, self._particle_dim).exp().mean(0)
        q = poutine.trace(self.model.guide).get_trace(x).nodes[name]["fn"]
        try:
            return q.mean
        except NotImplementedError:  # e.g. a transformed distribution: no closed form, so draws
            return self.posterior(x, num_samples).samples[name].mean(0)

    @torch.no_grad()
    def posterior(self, x: Any, num_samples: int = 500) -> Posterior:
        """``num_samples`` joint draws of every latent site for every row of x.

        z_s ~ q(z|x) for the sites the guide draws, and for each discrete latent c that the model sums out,
        c_s ~ p(c | x, z_s) exactly given the same draw z_s (each such c from its own marginal given z_s).
        """
        check_positive_int(num_samples, "num_samples")
        self._latent_sites()
        x = self._data(x)
        particles = self._draws_given_guide(num_samples)
        guide_trace, model_trace = trace_particles(self.model, self.structure, x, particles)
        samples = {site["name"]: site["value"] for site in sample_sites(guide_trace)} if guide_trace else {}
        for name in self.structure.enumerated:
            log_posterior = enumerated_log_posterior(model_trace, name, self._particle_dim)
            # one draw per guide particle; with no guided latents, all draws from the one exact posterior
            draws = torch.distributions.Categorical(logits=log_posterior).sample((num_samples // particles,))
            samples[name] = draws.flatten(0, 1)
        return Posterior(samples)

    def _draws_given_guide(self, num_samples: int) -> int:
        """Particles to trace for ``num_samples`` posterior draws: one when no latent comes from the guide."""
        return num_samples if self.structure.guided else 1

    @property
    def _particle_dim(self) -> int:
        return -self.structure.max_plate_nesting - 1

    def _latent_sites(self) -> tuple[str, ...]:
        latent = self.structure.guided + self.structure.enumerated
        if not latent:
            raise ValueError(f"{type(self.model).__name__} has no latent variables to infer")
        return latent

    def _latent_site(self, site: str | None) -> str:
        """The latent site a query is about: the one there is, or the one named."""
        latent = self._latent_sites()
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
    """
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{os.fspath(path)} is not a ppgen fit (no '{CHECKPOINT_FORMAT}' format tag)")
    example = state["example"]
    if model is None:
        module = resolve_class(state["model"]["class"], Model)(**state["model"]["config"])
    else:
        module = as_module(model)
    module.to(device=device, dtype=example.dtype)
    structure = inspect(module, example.to(device))  # also creates the parameters of lazy programs
    module.load_state_dict(state["state_dict"])
    module.eval()
    inference = resolve_class(state["inference"]["class"], Objective)(**state["inference"]["config"])
    return Fit(module, structure, inference, history=state["history"], example=example)
