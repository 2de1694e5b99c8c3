"""Model/guide pairs adapted from Pyro's own test suite, examples and tutorials, for tests/test_pyro_programs.py.

Each :class:`Case` is a program written the way Pyro's sources write it, made small (a handful of points, a few
dimensions) and evaluated in float64. The comment above each program says where it comes from and what changed;
the change common to all is that every local site sits in a data plate, the outermost plate, so that a data point is
a row. Sources (pyro-ppl/pyro): ``tests/infer/test_valid_models.py``, ``tests/infer/test_enum.py``,
``examples/vae/vae.py``, ``examples/vae/ss_vae_M2.py``, ``examples/hmm.py``,
``examples/toy_mixture_model_discrete_enumeration.py`` and the tutorials ``svi_part_i``, ``svi_part_ii``, ``gmm`` and
``bayesian_regression``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import torch
from pyro.infer import config_enumerate
from pyro.infer.autoguide import AutoDelta, AutoDiagonalNormal, AutoMultivariateNormal, AutoNormal, init_to_mean
from pyro.nn import PyroModule, PyroSample
from pyro.ops.indexing import Vindex
from torch import Tensor, nn
from torch.distributions import constraints

N, D = 5, 3
ENUM = {"enumerate": "parallel"}


@dataclass(frozen=True)
class Case:
    """One program and how Pyro evaluates it.

    Attributes:
        name: the test id.
        make: builds the program afresh: ``(what ppgen gets, model_fn, guide_fn)``.
        data: builds the data, a tuple of aligned tensors passed positionally.
        enum: whether Pyro's reference is ``TraceEnum_ELBO`` (else ``Trace_ELBO``).
        max_plate_nesting: what Pyro is told.
        iwae: K for ``RenyiELBO(alpha=0)``, where Pyro's IWAE is per point (no global latents); ``None`` otherwise.
        exact: whether the draws are identical under one seed (else the test compares Monte Carlo means).
        broadcasts: whether the program broadcasts over a particle dimension (Pyro's particles vectorised).
        refused: the regex of the error Pyro raises, for a program Pyro refuses.
        sites: names, one of which ppgen's refusal must mention.
    """

    name: str
    make: Callable[[], tuple[Any, Callable, Callable]]
    data: Callable[[], tuple[Tensor, ...]]
    enum: bool = False
    max_plate_nesting: int = 1
    iwae: int | None = None
    exact: bool = True
    broadcasts: bool = True
    refused: str | None = None
    sites: tuple[str, ...] = ()


def pair(model: Callable, guide: Callable) -> Callable[[], tuple[Any, Callable, Callable]]:
    return lambda: ((model, guide), model, guide)


def module(build: Callable[[], nn.Module]) -> Callable[[], tuple[Any, Callable, Callable]]:
    def make() -> tuple[Any, Callable, Callable]:
        program = build()
        return program, program.model, program.guide
    return make


def autoguide(model: Callable, guide_class: type, **kwargs: Any) -> Callable[[], tuple[Any, Callable, Callable]]:
    """A fresh AutoGuide per call, started deterministically (``init_to_mean`` draws nothing)."""
    def make() -> tuple[Any, Callable, Callable]:
        guide = guide_class(model, init_loc_fn=init_to_mean, **kwargs)
        return (model, guide), model, guide
    return make


def empty_guide(*args: Tensor) -> None:
    """The guide of a program whose latents are all summed out in the model."""


def randn(*shape: int, seed: int) -> Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def bits(*shape: int, seed: int) -> Tensor:
    return torch.bernoulli(torch.full(shape, 0.4, dtype=torch.float64), generator=torch.Generator().manual_seed(seed))


def positive(name: str, value: float) -> Tensor:
    return pyro.param(name, torch.tensor(value), constraint=constraints.positive)


# ----------------------------------------------------------------------------------------------- continuous latents
# test_valid_models.py test_plate_ok: a Normal latent per point in a plate; its Bernoulli swapped for a Gaussian
# likelihood so that z is reparameterised, the data are 1-D ([N]) and observed with obs=x.
def normal_model(x: Tensor) -> None:
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Normal(0.0, 1.0))
        pyro.sample("x", dist.Normal(z, 1.0), obs=x)


def normal_guide(x: Tensor) -> None:
    loc, scale = pyro.param("loc", torch.tensor(0.3)), positive("scale", 0.8)
    with pyro.plate("data", x.shape[0]):
        pyro.sample("z", dist.Normal(loc + 0.5 * x, scale))


# The same model with a LogNormal latent (svi_part_i's positive latents): q(z|x) LogNormal too.
def lognormal_model(x: Tensor) -> None:
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.LogNormal(0.0, 0.5))
        pyro.sample("x", dist.Normal(z, 0.3), obs=x)


def lognormal_guide(x: Tensor) -> None:
    with pyro.plate("data", x.shape[0]):
        pyro.sample("z", dist.LogNormal(pyro.param("loc", torch.tensor(0.1)) + 0.1 * x, positive("scale", 0.4)))


# A Gamma-Poisson pair (test_valid_models' plate tests with a conjugate likelihood): counts, q(z|x) a Gamma whose
# shape grows with x (torch's Gamma draws are reparameterised implicitly).
def gamma_model(x: Tensor) -> None:
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Gamma(2.0, 1.0))
        pyro.sample("x", dist.Poisson(z), obs=x)


def gamma_guide(x: Tensor) -> None:
    with pyro.plate("data", x.shape[0]):
        pyro.sample("z", dist.Gamma(positive("a", 2.0) + x, positive("b", 1.5)))


# Beta-Bernoulli per pixel (svi_part_i's coin, one coin per point, D tosses in a per-pixel plate); the data plate
# is dim=-2, outside the pixel plate.
def beta_model(x: Tensor) -> None:
    with pyro.plate("data", x.shape[0], dim=-2):
        z = pyro.sample("z", dist.Beta(2.0, 2.0))
        with pyro.plate("pixels", x.shape[1], dim=-1):
            pyro.sample("x", dist.Bernoulli(z), obs=x)


def beta_guide(x: Tensor) -> None:
    heads = x.sum(-1, keepdim=True)
    with pyro.plate("data", x.shape[0], dim=-2):
        pyro.sample("z", dist.Beta(positive("a", 1.0) + heads, positive("b", 1.0) + x.shape[1] - heads))


# Dirichlet-Categorical per pixel (test_enum.py's Dirichlet priors, one per point); categories are integers.
def dirichlet_model(x: Tensor) -> None:
    with pyro.plate("data", x.shape[0], dim=-2):
        z = pyro.sample("z", dist.Dirichlet(torch.ones(3)))
        with pyro.plate("pixels", x.shape[1], dim=-1):
            pyro.sample("x", dist.Categorical(z), obs=x)


def dirichlet_guide(x: Tensor) -> None:
    counts = nn.functional.one_hot(x.long(), 3).sum(-2).unsqueeze(-2).to(torch.get_default_dtype())
    with pyro.plate("data", x.shape[0], dim=-2):
        pyro.sample("z", dist.Dirichlet(positive("c", 1.0) + counts))


# A MultivariateNormal latent per point (test_valid_models' to_event shapes) and a linear-Gaussian likelihood over
# D coordinates as one event; q(z|x) a full-covariance Gaussian with a lower-Cholesky parameter.
W = torch.tensor([[1.0, -0.5, 0.3], [0.2, 0.8, -1.0]], dtype=torch.float64)


def mvn_model(x: Tensor) -> None:
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.MultivariateNormal(torch.zeros(2), torch.eye(2)))
        pyro.sample("x", dist.Normal(z @ W.to(z), 0.5).to_event(1), obs=x)


def mvn_guide(x: Tensor) -> None:
    tril = pyro.param("tril", 0.7 * torch.eye(2), constraint=constraints.lower_cholesky)
    with pyro.plate("data", x.shape[0]):
        pyro.sample("z", dist.MultivariateNormal(0.3 * x[..., :2], scale_tril=tril))


# vae.py's amortised guide as a function pair: pyro.module("encoder", ...) registers a Linear encoder, z a
# to_event(1) Normal; the decoder is a fixed linear map.
ENCODER: nn.Module = nn.Linear(D, 4, dtype=torch.float64)


def amortised_model(x: Tensor) -> None:
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Normal(torch.zeros(2), 1.0).to_event(1))
        pyro.sample("x", dist.Normal(z @ W.to(z), 0.5).to_event(1), obs=x)


def amortised_guide(x: Tensor) -> None:
    encoder = pyro.module("encoder", ENCODER)
    loc, log_scale = encoder(x).chunk(2, -1)
    with pyro.plate("data", x.shape[0]):
        pyro.sample("z", dist.Normal(loc, log_scale.exp()).to_event(1))


# test_valid_models.py test_nested_plate_plate_ok: a latent per point (data plate, dim=-2) and a latent per pixel
# (both plates), each with its own guide term.
def nested_model(x: Tensor) -> None:
    with pyro.plate("data", x.shape[0], dim=-2):
        z = pyro.sample("z", dist.Normal(0.0, 1.0))
        with pyro.plate("pixels", x.shape[1], dim=-1):
            w = pyro.sample("w", dist.Normal(z, 1.0))
            pyro.sample("x", dist.Normal(w, 0.5), obs=x)


def nested_guide(x: Tensor) -> None:
    with pyro.plate("data", x.shape[0], dim=-2):
        pyro.sample("z", dist.Normal(pyro.param("a", torch.tensor(0.4)) * x.mean(-1, keepdim=True), 0.7))
        with pyro.plate("pixels", x.shape[1], dim=-1):
            pyro.sample("w", dist.Normal(0.6 * x + pyro.param("b", torch.tensor(0.1)), positive("s", 0.5)))


# examples/vae/vae.py: the Encoder (fc1, softplus, fc21 / fc22 with exp) and Decoder (fc1, softplus, fc21, sigmoid),
# pyro.module inside model and guide, Bernoulli(validate_args=False).to_event(1) likelihood; 8 pixels, z_dim 2,
# hidden 6 instead of 784 / 50 / 400. ``view=True`` writes the decoder the usual tutorial way, z.view(-1, z_dim)
# and a reshape to the batch: it does not broadcast over a particle dimension.
class VAE(nn.Module):
    def __init__(self, x_dim: int = 8, z_dim: int = 2, hidden: int = 6, view: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.x_dim, self.z_dim, self.view = x_dim, z_dim, view
        self.enc_fc1, self.enc_fc21, self.enc_fc22 = nn.Linear(x_dim, hidden), nn.Linear(hidden, z_dim), \
            nn.Linear(hidden, z_dim)
        self.dec_fc1, self.dec_fc21 = nn.Linear(z_dim, hidden), nn.Linear(hidden, x_dim)
        self.double()

    def decode(self, z: Tensor) -> Tensor:
        if self.view:
            z = z.view(-1, self.z_dim)
        loc = torch.sigmoid(self.dec_fc21(nn.functional.softplus(self.dec_fc1(z))))
        return loc.view(-1, self.x_dim) if self.view else loc

    def model(self, x: Tensor) -> None:
        pyro.module("decoder", self)
        with pyro.plate("data", x.shape[0]):
            z_loc, z_scale = x.new_zeros(x.shape[0], self.z_dim), x.new_ones(x.shape[0], self.z_dim)
            z = pyro.sample("latent", dist.Normal(z_loc, z_scale).to_event(1))
            pyro.sample("obs", dist.Bernoulli(self.decode(z), validate_args=False).to_event(1), obs=x)

    def guide(self, x: Tensor) -> None:
        pyro.module("encoder", self)
        with pyro.plate("data", x.shape[0]):
            hidden = nn.functional.softplus(self.enc_fc1(x))
            pyro.sample("latent", dist.Normal(self.enc_fc21(hidden), self.enc_fc22(hidden).exp()).to_event(1))


# vae.py's model with a per-pixel plate instead of to_event(1): z in the data plate (dim=-2), pixels at dim=-1.
class PixelVAE(VAE):
    def model(self, x: Tensor) -> None:
        pyro.module("decoder", self)
        with pyro.plate("data", x.shape[0], dim=-2):
            z = pyro.sample("latent", dist.Normal(x.new_zeros(self.z_dim), 1.0).to_event(1))
            with pyro.plate("pixels", self.x_dim, dim=-1):
                pyro.sample("obs", dist.Bernoulli(self.decode(z).squeeze(-2)), obs=x)

    def guide(self, x: Tensor) -> None:
        pyro.module("encoder", self)
        with pyro.plate("data", x.shape[0], dim=-2):
            hidden = nn.functional.softplus(self.enc_fc1(x)).unsqueeze(-2)
            pyro.sample("latent", dist.Normal(self.enc_fc21(hidden), self.enc_fc22(hidden).exp()).to_event(1))


# A conditional model model(x, y) (bayesian_regression's model(x, y) with a local random effect z per point):
# x is an input, y is observed, q(z|x, y) sees both.
def regression_model(x: Tensor, y: Tensor) -> None:
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Normal(0.0, 1.0))
        pyro.sample("y", dist.Normal(x @ W[0, :2].to(x) + z, 0.5), obs=y)


def regression_guide(x: Tensor, y: Tensor) -> None:
    with pyro.plate("data", x.shape[0]):
        residual = y - x @ W[0, :2].to(x)
        pyro.sample("z", dist.Normal(pyro.param("a", torch.tensor(0.5)) * residual, positive("s", 0.6)))


# ------------------------------------------------------------------------------ discrete latents summed out in model
# The GMM of test_enum.py (test_elbo_enumerate_plate_*) / the gmm tutorial without its global latents: a Categorical
# assignment per point, enumerated, fixed weights and means as pyro.param; no guide.
def categorical_model(x: Tensor) -> None:
    weights = pyro.param("weights", torch.tensor([0.2, 0.3, 0.5]), constraint=constraints.simplex)
    locs = pyro.param("locs", torch.tensor([-2.0, 0.0, 3.0]))
    with pyro.plate("data", x.shape[0]):
        c = pyro.sample("c", dist.Categorical(weights), infer=ENUM)
        pyro.sample("x", dist.Normal(locs[c], 1.0), obs=x)


# A Bernoulli assignment per point (data plate dim=-2) with D pixels that depend on it (test_enum.py's
# test_elbo_enumerate_plate_1 shape: the enumerated site outside the pixel plate).
def bernoulli_model(x: Tensor) -> None:
    with pyro.plate("data", x.shape[0], dim=-2):
        c = pyro.sample("c", dist.Bernoulli(0.3), infer=ENUM)
        with pyro.plate("pixels", x.shape[1], dim=-1):
            pyro.sample("x", dist.Normal(2.0 * c - 1.0, 1.0), obs=x)


# Two independent enumerated latents per point (test_enum.py test_elbo_enumerate_plates_*: several enum sites).
def two_model(x: Tensor) -> None:
    locs = torch.tensor([-1.0, 0.5, 2.0])
    with pyro.plate("data", x.shape[0]):
        a = pyro.sample("a", dist.Bernoulli(0.4), infer=ENUM)
        b = pyro.sample("b", dist.Categorical(torch.tensor([0.5, 0.3, 0.2])), infer=ENUM)
        pyro.sample("x", dist.Normal(a + locs[b], 1.0), obs=x)


# test_valid_models.py test_enum_in_model_plate_ok, its model-side part: a chain a -> b -> x of enumerated latents
# in the data plate (b depends on a).
def chain_model(x: Tensor) -> None:
    p = pyro.param("p", torch.tensor(0.25))
    with pyro.plate("data", x.shape[0]):
        a = pyro.sample("a", dist.Bernoulli(p), infer=ENUM)
        b = pyro.sample("b", dist.Bernoulli(p + a / 2), infer=ENUM)
        pyro.sample("x", dist.Normal(a + 2 * b, 1.0), obs=x)


# An enumerated latent per pixel (nested plates, test_enum.py test_elbo_enumerate_plate_*: the enumerated site
# inside the inner plate).
def pixel_enum_model(x: Tensor) -> None:
    with pyro.plate("data", x.shape[0], dim=-2):
        with pyro.plate("pixels", x.shape[1], dim=-1):
            c = pyro.sample("c", dist.Bernoulli(0.3), infer=ENUM)
            pyro.sample("x", dist.Normal(3.0 * c, 1.0), obs=x)


# A per-point latent and per-pixel latents that depend on it (test_enum.py test_elbo_enumerate_plates_6 shape,
# tree-structured): c per point, d per pixel given c, x per pixel given d.
def point_pixel_model(x: Tensor) -> None:
    q = torch.tensor([0.2, 0.7])
    with pyro.plate("data", x.shape[0], dim=-2):
        c = pyro.sample("c", dist.Categorical(torch.tensor([0.6, 0.4])), infer=ENUM)
        with pyro.plate("pixels", x.shape[1], dim=-1):
            d = pyro.sample("d", dist.Bernoulli(q[c]), infer=ENUM)
            pyro.sample("x", dist.Normal(2.0 * d, 1.0), obs=x)


# An enumerated assignment beside a guided continuous latent (test_enum.py test_elbo_enumerate_plate_7 style,
# guide-drawn z and model-enumerated c in one plate).
def mixed_model(x: Tensor) -> None:
    locs = torch.tensor([-2.0, 2.0])
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Normal(0.0, 1.0))
        c = pyro.sample("c", dist.Bernoulli(0.5), infer=ENUM)
        pyro.sample("x", dist.Normal(z + locs[c.long()], 1.0), obs=x)


def mixed_guide(x: Tensor) -> None:
    with pyro.plate("data", x.shape[0]):
        pyro.sample("z", dist.Normal(0.2 * x, positive("s", 0.9)))


# poutine.mask around the whole point (hmm.py's padded steps; test_enum.py test_elbo_enumerate_plate_mask style):
# mask[n] False removes point n from the ELBO; the mask is an input, model(x, mask).
def masked_model(x: Tensor, mask: Tensor) -> None:
    with pyro.plate("data", x.shape[0]), poutine.mask(mask=mask):
        c = pyro.sample("c", dist.Categorical(torch.tensor([0.2, 0.3, 0.5])), infer=ENUM)
        pyro.sample("x", dist.Normal(torch.tensor([-2.0, 0.0, 3.0])[c], 1.0), obs=x)


# poutine.mask on the observation only: the assignment's prior is left unmasked (it sums to one over c).
def masked_obs_model(x: Tensor, mask: Tensor) -> None:
    with pyro.plate("data", x.shape[0]):
        c = pyro.sample("c", dist.Categorical(torch.tensor([0.2, 0.3, 0.5])), infer=ENUM)
        with poutine.mask(mask=mask):
            pyro.sample("x", dist.Normal(torch.tensor([-2.0, 0.0, 3.0])[c], 1.0), obs=x)


# poutine.scale around all of a point (test_enum.py test_elbo_enumerate_plate_scale-like, ss_vae_M2's scaled aux
# loss): the scale multiplies log sum_c, not the terms inside it.
def scaled_model(x: Tensor) -> None:
    with pyro.plate("data", x.shape[0]), poutine.scale(scale=2.5):
        c = pyro.sample("c", dist.Categorical(torch.tensor([0.2, 0.3, 0.5])), infer=ENUM)
        pyro.sample("x", dist.Normal(torch.tensor([-2.0, 0.0, 3.0])[c], 1.0), obs=x)


# test_valid_models.py test_enum_in_model_multi_scale_error, in a data plate: a scale on the observation only;
# Pyro refuses ("Expected all enumerated sample sites to share a common poutine.scale").
def multiscale_model(x: Tensor) -> None:
    with pyro.plate("data", x.shape[0]):
        c = pyro.sample("c", dist.Bernoulli(0.3), infer=ENUM)
        with poutine.scale(scale=2.0):
            pyro.sample("x", dist.Normal(c, 1.0), obs=x)


# ss_vae_M2.py with labels observed through obs_mask: y ~ Categorical, observed where mask, summed out elsewhere
# ("y_unobserved" is enumerated), z local with a Delta guide (so the truth is a finite sum), x | y, z Gaussian.
LABEL_LOCS = torch.tensor([-2.0, 0.0, 3.0], dtype=torch.float64)


@config_enumerate  # pyro.sample drops infer= where obs_mask is given: config_enumerate marks "y_unobserved"
def obs_mask_model(x: Tensor, y: Tensor, mask: Tensor) -> None:
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Normal(0.0, 1.0))
        label = pyro.sample("y", dist.Categorical(torch.tensor([0.2, 0.3, 0.5])), obs=y, obs_mask=mask)
        pyro.sample("x", dist.Normal(z + LABEL_LOCS.to(x)[label], 1.0), obs=x)


def obs_mask_guide(x: Tensor, y: Tensor, mask: Tensor) -> None:
    with pyro.plate("data", x.shape[0]):
        pyro.sample("z", dist.Delta(pyro.param("a", torch.tensor(0.3)) * x))


# ss_vae_M2.py's guide q(y|x) with the labels seen through obs_mask: the guide enumerates "y_unobserved" (masked where
# the label is known), z | x, y from a Delta (a finite sum is the truth); config_enumerate(guide) as in M2.
def guide_mask_model(x: Tensor, y: Tensor, mask: Tensor) -> None:
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Normal(0.0, 1.0))
        label = pyro.sample("y", dist.Categorical(torch.tensor([0.2, 0.3, 0.5])), obs=y, obs_mask=mask)
        pyro.sample("x", dist.Normal(z + LABEL_LOCS.to(x)[label], 1.0), obs=x)


@config_enumerate
def guide_mask_guide(x: Tensor, y: Tensor, mask: Tensor) -> None:
    logits = pyro.param("logits", torch.tensor([0.1, -0.2, 0.3]))
    with pyro.plate("data", x.shape[0]):
        alpha = torch.softmax(logits + 0.5 * x.unsqueeze(-1), -1)
        unobserved = pyro.sample("y_unobserved", dist.Categorical(alpha).mask(~mask))
        label = torch.where(mask, y, unobserved)
        pyro.sample("z", dist.Delta(0.1 * label.to(x.dtype)))


# examples/hmm.py model_1: sequences of different lengths, padded steps masked with poutine.mask, pyro.markov over
# time, tones in a per-pixel plate (dim=-1) and the sequences plate (dim=-2) as the data plate, named "sequences".
# Adapted: 2 hidden states, 2 tones, 3 steps; probs_x and probs_y fixed pyro.params (hmm_global below draws them).
HMM_LENGTHS = torch.tensor([3, 1, 2, 3, 2])


def hmm_model(sequences: Tensor, lengths: Tensor) -> None:
    probs_x = pyro.param("probs_x", torch.tensor([[0.8, 0.2], [0.3, 0.7]]), constraint=constraints.simplex)
    probs_y = pyro.param("probs_y", torch.tensor([[0.1, 0.6], [0.7, 0.3]]), constraint=constraints.unit_interval)
    hmm_body(sequences, lengths, probs_x, probs_y)


def hmm_body(sequences: Tensor, lengths: Tensor, probs_x: Tensor, probs_y: Tensor) -> None:
    tones_plate = pyro.plate("tones", sequences.shape[-1], dim=-1)
    with pyro.plate("sequences", sequences.shape[0], dim=-2):
        x = 0
        for t in pyro.markov(range(int(lengths.max()))):
            with poutine.mask(mask=(t < lengths).unsqueeze(-1)):
                x = pyro.sample(f"x_{t}", dist.Categorical(probs_x[x]), infer=ENUM)
                with tones_plate:
                    pyro.sample(f"y_{t}", dist.Bernoulli(probs_y[x.squeeze(-1)]), obs=sequences[:, t])


# hmm.py model_1 as published: probs_x ~ Dirichlet and probs_y ~ Beta are global latents, the guide hmm.py builds,
# AutoDelta(poutine.block(model, expose_fn=probs_*)).
def hmm_global_model(sequences: Tensor, lengths: Tensor) -> None:
    probs_x = pyro.sample("probs_x", dist.Dirichlet(0.9 * torch.eye(2) + 0.1).to_event(1))
    probs_y = pyro.sample("probs_y", dist.Beta(0.1, 0.9).expand([2, sequences.shape[-1]]).to_event(2))
    hmm_body(sequences, lengths, probs_x, probs_y)


def hmm_data() -> tuple[Tensor, Tensor]:
    return bits(N, 3, 2, seed=7), HMM_LENGTHS.clone()


# A second-order chain under a first-order pyro.markov (history=1): x_t depends on x_{t-2}, whose enumeration dim
# has been recycled; Pyro refuses. Adapted from test_valid_models.py's test_enum_recycling_* in a data plate.
def short_history_model(x: Tensor) -> None:
    p = torch.tensor([[0.9, 0.4], [0.3, 0.2]])
    with pyro.plate("data", x.shape[0], dim=-1):
        states = [torch.tensor(0), torch.tensor(0)]
        for t in pyro.markov(range(4)):
            probs = Vindex(p)[states[-1].long(), states[-2].long()]
            states.append(pyro.sample(f"s_{t}", dist.Bernoulli(probs), infer=ENUM))
        pyro.sample("x", dist.Normal(states[-1], 1.0), obs=x)


# --------------------------------------------------------------------------------------- discrete latents in guide
# test_enum.py's GMM with guide-side enumeration (test_elbo_enumerate_plate_* with config_enumerate(guide)): q(c|x)
# a softmax of x, enumerated; the model leaves c unmarked.
def guide_enum_model(x: Tensor) -> None:
    with pyro.plate("data", x.shape[0]):
        c = pyro.sample("c", dist.Categorical(torch.tensor([0.2, 0.3, 0.5])))
        pyro.sample("x", dist.Normal(torch.tensor([-2.0, 0.0, 3.0])[c], 1.0), obs=x)


def guide_enum_guide(x: Tensor) -> None:
    weight = pyro.param("weight", torch.tensor([-1.0, 0.0, 1.0]))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("c", dist.Categorical(logits=weight * x.unsqueeze(-1)))


# test_valid_models.py test_enum_in_model_plate_ok: a drawn by the guide, b enumerated by the guide, c enumerated in
# the model, all in the data plate; the observation moved from c's child g to a Gaussian x.
def enum_both_model(x: Tensor) -> None:
    p = pyro.param("p", torch.tensor(0.25))
    with pyro.plate("data", x.shape[0]):
        a = pyro.sample("a", dist.Bernoulli(p))
        b = pyro.sample("b", dist.Bernoulli(p + a / 2))
        c = pyro.sample("c", dist.Bernoulli(p + b / 2), infer=ENUM)
        pyro.sample("x", dist.Normal(a + b + 2 * c, 1.0), obs=x)


def enum_both_guide(x: Tensor) -> None:
    p = pyro.param("p", torch.tensor(0.25))
    with pyro.plate("data", x.shape[0]):
        a = pyro.sample("a", dist.Bernoulli(p))
        pyro.sample("b", dist.Bernoulli(p + a / 2), infer=ENUM)


# examples/vae/ss_vae_M2.py: model(xs, ys=None) with OneHotCategorical labels and the decoder on [z, y]; guide q(y|x)
# (an encoder_y softmax) and q(z|x, y) (encoder_z); pyro.module("ss_vae", self). Sizes: 8 pixels, 3 classes, z_dim 2,
# one hidden layer of 6 (published: 784, 10, 50, 500). The guide is enumerated by config_enumerate, as in M2's main.
class SSVAE(nn.Module):
    def __init__(self, x_dim: int = 8, y_dim: int = 3, z_dim: int = 2, hidden: int = 6, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.x_dim, self.y_dim, self.z_dim = x_dim, y_dim, z_dim
        self.encoder_y = nn.Sequential(nn.Linear(x_dim, hidden), nn.Softplus(), nn.Linear(hidden, y_dim),
                                       nn.Softmax(-1))
        self.encoder_z = nn.Sequential(nn.Linear(x_dim + y_dim, hidden), nn.Softplus(), nn.Linear(hidden, 2 * z_dim))
        self.decoder = nn.Sequential(nn.Linear(z_dim + y_dim, hidden), nn.Softplus(), nn.Linear(hidden, x_dim),
                                     nn.Sigmoid())
        self.guide = config_enumerate(self.guide_, "parallel", expand=True)
        self.double()

    def decode(self, z: Tensor, y: Tensor) -> Tensor:
        shape = torch.broadcast_shapes(z.shape[:-1], y.shape[:-1])
        return self.decoder(torch.cat([z.expand(*shape, -1), y.expand(*shape, -1)], -1))

    def encode_z(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        shape = torch.broadcast_shapes(x.shape[:-1], y.shape[:-1])
        loc, log_scale = self.encoder_z(torch.cat([x.expand(*shape, -1), y.expand(*shape, -1)], -1)).chunk(2, -1)
        return loc, log_scale.exp()

    def model(self, xs: Tensor, ys: Tensor | None = None) -> None:
        pyro.module("ss_vae", self)
        with pyro.plate("data"):
            zs = pyro.sample("z", dist.Normal(xs.new_zeros(xs.shape[0], self.z_dim), 1.0).to_event(1))
            alpha_prior = xs.new_ones(xs.shape[0], self.y_dim) / self.y_dim
            ys = pyro.sample("y", dist.OneHotCategorical(alpha_prior), obs=ys)
            pyro.sample("x", dist.Bernoulli(self.decode(zs, ys), validate_args=False).to_event(1), obs=xs)

    def guide_(self, xs: Tensor, ys: Tensor | None = None) -> None:
        with pyro.plate("data"):
            if ys is None:
                ys = pyro.sample("y", dist.OneHotCategorical(self.encoder_y(xs)))
            loc, scale = self.encode_z(xs, ys)
            pyro.sample("z", dist.Normal(loc, scale).to_event(1))


# The M2 model of ss_vae_M2.py with 10%-style partial labels in one batch: model(xs, ys, mask) observes y through
# obs_mask; the guide enumerates "y_unobserved" (masked where the label is known) and draws z | x, y. This is the
# form tests/test_pyro_programs.py fits on the digits.
class MaskedSSVAE(SSVAE):
    def model(self, xs: Tensor, ys: Tensor, mask: Tensor) -> None:  # type: ignore[override]
        pyro.module("ss_vae", self)
        with pyro.plate("data", xs.shape[0]):
            zs = pyro.sample("z", dist.Normal(xs.new_zeros(xs.shape[0], self.z_dim), 1.0).to_event(1))
            alpha_prior = xs.new_ones(xs.shape[0], self.y_dim) / self.y_dim
            ys = pyro.sample("y", dist.OneHotCategorical(alpha_prior), obs=ys, obs_mask=mask)
            pyro.sample("x", dist.Bernoulli(self.decode(zs, ys), validate_args=False).to_event(1), obs=xs)

    def guide_(self, xs: Tensor, ys: Tensor, mask: Tensor) -> None:  # type: ignore[override]
        pyro.module("ss_vae", self)
        with pyro.plate("data", xs.shape[0]):
            unobserved = pyro.sample("y_unobserved", dist.OneHotCategorical(self.encoder_y(xs)).mask(~mask))
            ys = torch.where(mask.unsqueeze(-1), ys, unobserved)
            loc, scale = self.encode_z(xs, ys)
            pyro.sample("z", dist.Normal(loc, scale).to_event(1))


def m2_data(labelled: bool = True) -> tuple[Tensor, ...]:
    x = bits(N, 8, seed=3)
    y = nn.functional.one_hot(torch.tensor([0, 2, 1, 1, 0]), 3).to(torch.float64)
    return (x, y) if labelled else (x,)


def m2_masked_data() -> tuple[Tensor, Tensor, Tensor]:
    x, y = m2_data()
    return x, y, torch.tensor([True, False, False, True, False])


# --------------------------------------------------------------------------------------------------- global latents
# tutorial svi_part_i: the fairness of a coin, f ~ Beta(10, 10), shared by all tosses; q(f) = Beta(alpha_q, beta_q)
# with the tutorial's starting values. The tosses are in a data plate (the tutorial loops over them).
def coin_model(x: Tensor) -> None:
    f = pyro.sample("latent_fairness", dist.Beta(10.0, 10.0))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("obs", dist.Bernoulli(f), obs=x)


def coin_guide(x: Tensor) -> None:
    pyro.sample("latent_fairness", dist.Beta(positive("alpha_q", 15.0), positive("beta_q", 15.0)))


# A prior on weights shared by all points beside a local latent (vae.py's decoder made Bayesian: w global, z local).
def weight_prior_model(x: Tensor) -> None:
    w = pyro.sample("w", dist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Normal(0.0, 1.0))
        pyro.sample("x", dist.Normal(z.unsqueeze(-1) * w, 0.5).to_event(1), obs=x)


def weight_prior_guide(x: Tensor) -> None:
    pyro.sample("w", dist.Normal(pyro.param("w_loc", torch.full((x.shape[1],), 0.5)), positive("w_scale", 0.3))
                .to_event(1))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("z", dist.Normal(0.4 * x.mean(-1), positive("z_scale", 0.7)))


# tutorial bayesian_regression_ii: Bayesian linear regression model(x, y) written with pyro.sample (weights, bias,
# noise scale global); the noise's Uniform(0, 10) prior replaced by a LogNormal so a LogNormal guide has its support.
def linreg_model(x: Tensor, y: Tensor) -> None:
    w = pyro.sample("w", dist.Normal(0.0, 10.0).expand([x.shape[1]]).to_event(1))
    b = pyro.sample("b", dist.Normal(0.0, 10.0))
    sigma = pyro.sample("sigma", dist.LogNormal(0.0, 1.0))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("obs", dist.Normal((x * w).sum(-1) + b, sigma), obs=y)


def linreg_guide(x: Tensor, y: Tensor) -> None:
    pyro.sample("w", dist.Normal(pyro.param("w_loc", torch.zeros(x.shape[1])), positive("w_scale", 0.5)).to_event(1))
    pyro.sample("b", dist.Normal(pyro.param("b_loc", torch.tensor(0.1)), positive("b_scale", 0.5)))
    pyro.sample("sigma", dist.LogNormal(pyro.param("s_loc", torch.tensor(0.0)), positive("s_scale", 0.2)))


# tutorial bayesian_regression: a PyroModule[nn.Linear] whose weight and bias are PyroSample priors, sigma ~
# Uniform(0, 10), model(x, y) with pyro.plate("data"); the tutorial fits it with AutoDiagonalNormal. In features 2.
class BayesianRegression(PyroModule):
    def __init__(self, in_features: int = 2) -> None:
        super().__init__()
        self.linear = PyroModule[nn.Linear](in_features, 1)
        self.linear.weight = PyroSample(dist.Normal(0.0, 1.0).expand([1, in_features]).to_event(2))
        self.linear.bias = PyroSample(dist.Normal(0.0, 10.0).expand([1]).to_event(1))

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        sigma = pyro.sample("sigma", dist.Uniform(0.0, 10.0))
        mean = self.linear(x).squeeze(-1)
        with pyro.plate("data", x.shape[0]):
            return pyro.sample("obs", dist.Normal(mean, sigma), obs=y)


def bayes_module(guide_class: type) -> Callable[[], tuple[Any, Callable, Callable]]:
    def make() -> tuple[Any, Callable, Callable]:
        model = BayesianRegression()
        guide = guide_class(model, init_loc_fn=init_to_mean)
        return (model, guide), model, guide
    return make


def regression_data() -> tuple[Tensor, Tensor]:
    x = randn(N, 2, seed=11)
    return x, x @ torch.tensor([1.5, -0.7]) + 0.3 + 0.4 * randn(N, seed=12)


# tutorial gmm: weights ~ Dirichlet, scale ~ LogNormal, locs ~ Normal in a "components" plate, the assignment
# enumerated per point; the guide AutoDelta(poutine.block(model, expose=[...])) (AutoNormal in gmm_autonormal). The
# tutorial's data [0, 1, 10, 11, 12]; its random init_loc_fn replaced by a fixed one (locs at data[0] and data[2]).
GMM_DATA = torch.tensor([0.0, 1.0, 10.0, 11.0, 12.0], dtype=torch.float64)


def gmm_model(x: Tensor) -> None:
    weights = pyro.sample("weights", dist.Dirichlet(0.5 * torch.ones(2)))
    scale = pyro.sample("scale", dist.LogNormal(0.0, 2.0))
    with pyro.plate("components", 2):
        locs = pyro.sample("locs", dist.Normal(0.0, 10.0))
    with pyro.plate("data", x.shape[0]):
        assignment = pyro.sample("assignment", dist.Categorical(weights), infer=ENUM)
        pyro.sample("obs", dist.Normal(locs[assignment], scale), obs=x)


def gmm_init(site: dict) -> Tensor:
    if site["name"] == "weights":
        return torch.full((2,), 0.5)
    if site["name"] == "scale":
        return (GMM_DATA.var() / 2).sqrt().to(torch.get_default_dtype())
    return GMM_DATA[[0, 2]].to(torch.get_default_dtype())


def gmm_guide(guide_class: type) -> Callable[[], tuple[Any, Callable, Callable]]:
    def make() -> tuple[Any, Callable, Callable]:
        guide = guide_class(poutine.block(gmm_model, expose=["weights", "locs", "scale"]), init_loc_fn=gmm_init)
        return (gmm_model, guide), gmm_model, guide
    return make


# examples/toy_mixture_model_discrete_enumeration.py: p_A, p_B, p_C global Beta latents, A and C observed, B
# enumerated with Vindex, the plate named "data_plate"; model(A, C) instead of model(prior, obs, num_obs); Beta guides
# with the example's prior pseudo-counts as starting values.
def toy_mixture_model(a: Tensor, c: Tensor) -> None:
    p_a = pyro.sample("p_A", dist.Beta(1.0, 1.0))
    p_b = pyro.sample("p_B", dist.Beta(torch.ones(2), torch.ones(2)).to_event(1))
    p_c = pyro.sample("p_C", dist.Beta(torch.ones(2), torch.ones(2)).to_event(1))
    with pyro.plate("data_plate", a.shape[0]):
        a = pyro.sample("A", dist.Bernoulli(p_a.expand(a.shape[0])), obs=a)
        b = pyro.sample("B", dist.Bernoulli(Vindex(p_b)[a.long()]), infer=ENUM)
        pyro.sample("C", dist.Bernoulli(Vindex(p_c)[b.long()]), obs=c)


def toy_mixture_guide(a: Tensor, c: Tensor) -> None:
    pa = pyro.param("a", torch.tensor([1.0, 10.0]), constraint=constraints.positive)
    pyro.sample("p_A", dist.Beta(pa[0], pa[1]))
    pb = pyro.param("b", torch.tensor([[10.0, 1.0], [1.0, 10.0]]), constraint=constraints.positive)
    pyro.sample("p_B", dist.Beta(pb[:, 0], pb[:, 1]).to_event(1))
    pc = pyro.param("c", torch.tensor([[10.0, 1.0], [1.0, 10.0]]), constraint=constraints.positive)
    pyro.sample("p_C", dist.Beta(pc[:, 0], pc[:, 1]).to_event(1))


# -------------------------------------------------------------------------------------------- plates and subsampling
# The normal pair with its data plate named "batch".
def batch_model(x: Tensor) -> None:
    with pyro.plate("batch", x.shape[0]):
        z = pyro.sample("z", dist.Normal(0.0, 1.0))
        pyro.sample("x", dist.Normal(z, 1.0), obs=x)


def batch_guide(x: Tensor) -> None:
    with pyro.plate("batch", x.shape[0]):
        pyro.sample("z", dist.Normal(0.5 * x, positive("scale", 0.8)))


# test_valid_models.py test_plate_subsample_param_ok / tutorial svi_part_ii: the plate declares the full size N and
# subsample_size; the guide holds one parameter per data point (svi_part_ii's per-data-point style), indexed by the
# plate's subsample. Evaluated on all N points, the subsample is every index.
def subsample_model(x: Tensor) -> None:
    with pyro.plate("data", N, subsample_size=x.shape[0]):
        z = pyro.sample("z", dist.Normal(0.0, 1.0))
        pyro.sample("x", dist.Normal(z, 1.0), obs=x)


def subsample_guide(x: Tensor) -> None:
    loc = pyro.param("loc", torch.linspace(-1.0, 1.0, N))
    scale = pyro.param("scale", torch.full((N,), 0.7), constraint=constraints.positive)
    with pyro.plate("data", N, subsample_size=x.shape[0]) as ind:
        pyro.sample("z", dist.Normal(loc[ind], scale[ind]))


# svi_part_ii's per-data-point parameters without a subsample: pyro.param sized by the data, pyro.plate("data", N).
def per_point_model(x: Tensor) -> None:
    with pyro.plate("data", N):
        z = pyro.sample("z", dist.Normal(0.0, 1.0))
        pyro.sample("x", dist.Normal(z, 1.0), obs=x)


def per_point_guide(x: Tensor) -> None:
    loc = pyro.param("loc", torch.linspace(-1.0, 1.0, N))
    with pyro.plate("data", N):
        pyro.sample("z", dist.Normal(loc, 0.6))


# ------------------------------------------------------------------------------------------ programs Pyro refuses
# test_valid_models.py test_model_guide_shape_mismatch_error, in a data plate: z has 2 coordinates in the model and
# 3 in the guide.
def shape_mismatch_model(x: Tensor) -> None:
    with pyro.plate("data", x.shape[0]):
        pyro.sample("z", dist.Normal(torch.zeros(2), 1.0).to_event(1))
        pyro.sample("x", dist.Normal(0.0, 1.0), obs=x)


def shape_mismatch_guide(x: Tensor) -> None:
    with pyro.plate("data", x.shape[0]):
        pyro.sample("z", dist.Normal(torch.zeros(3), 1.0).to_event(1))


# test_valid_models.py test_enum_sequential_in_model_error, in a data plate.
def sequential_model(x: Tensor) -> None:
    with pyro.plate("data", x.shape[0]):
        c = pyro.sample("c", dist.Bernoulli(0.3), infer={"enumerate": "sequential"})
        pyro.sample("x", dist.Normal(c, 1.0), obs=x)


# test_valid_models.py test_enum_in_model_diamond_error, under a data plate (dim=-3): a enumerated per point, b and c
# in two crossed plates, d in both depends on b and c: not tree-structured.
def diamond_model(x: Tensor) -> None:
    probs_b, probs_c = torch.tensor([[0.6, 0.4], [0.4, 0.6]]), torch.tensor([[0.75, 0.25], [0.55, 0.45]])
    probs_d = torch.tensor([[[0.4, 0.6], [0.3, 0.7]], [[0.3, 0.7], [0.2, 0.8]]])
    b_axis, c_axis = pyro.plate("b_axis", 2, dim=-1), pyro.plate("c_axis", 2, dim=-2)
    with pyro.plate("data", x.shape[0], dim=-3):
        a = pyro.sample("a", dist.Categorical(torch.tensor([0.45, 0.55])), infer=ENUM)
        with b_axis:
            b = pyro.sample("b", dist.Categorical(probs_b[a]), infer=ENUM)
        with c_axis:
            c = pyro.sample("c", dist.Categorical(probs_c[a]), infer=ENUM)
        with b_axis, c_axis:
            pyro.sample("d", dist.Categorical(Vindex(probs_d)[b, c]), obs=x)


# test_valid_models.py test_dim_allocation_error, under the data plate: plate_inner_2 asks for dim=-1, which
# plate_inner_1 already holds.
def collide_model(x: Tensor) -> None:
    with pyro.plate("data", x.shape[0], dim=-3):
        z = pyro.sample("z", dist.Normal(0.0, 1.0))
        with pyro.plate("plate_inner_1", 2):
            with pyro.plate("plate_inner_2", 2, dim=-1):
                pyro.sample("x", dist.Normal(z, 1.0), obs=x)


def collide_guide(x: Tensor) -> None:
    with pyro.plate("data", x.shape[0], dim=-3):
        pyro.sample("z", dist.Normal(0.0, 1.0))


# ------------------------------------------------------------------------------------------------------- the cases
def reals() -> tuple[Tensor]:
    return (randn(N, seed=1),)


def matrix() -> tuple[Tensor]:
    return (randn(N, D, seed=2),)


def binary() -> tuple[Tensor]:
    return (bits(N, 8, seed=3),)


def with_mask(data: Callable[[], tuple[Tensor, ...]]) -> Callable[[], tuple[Tensor, ...]]:
    return lambda: (*data(), torch.tensor([True, False, True, True, False]))


def labelled() -> tuple[Tensor, Tensor, Tensor]:
    x = 2.0 * randn(N, seed=4)
    return x, torch.tensor([2, 0, 1, 0, 2]), torch.tensor([True, False, False, True, False])


CASES = [
    Case("normal", pair(normal_model, normal_guide), reals, iwae=4),
    Case("lognormal", pair(lognormal_model, lognormal_guide), reals, iwae=4),
    Case("gamma_poisson", pair(gamma_model, gamma_guide), lambda: (torch.tensor([0.0, 3.0, 1.0, 5.0, 2.0]),), iwae=4),
    Case("beta_bernoulli_pixels", pair(beta_model, beta_guide), lambda: (bits(N, D, seed=5),), max_plate_nesting=2,
         iwae=4),
    Case("dirichlet_categorical_pixels", pair(dirichlet_model, dirichlet_guide),
         lambda: (torch.tensor([[0, 1, 2], [2, 2, 1], [0, 0, 0], [1, 2, 1], [0, 2, 2]]),), max_plate_nesting=2, iwae=4),
    Case("mvn", pair(mvn_model, mvn_guide), matrix, iwae=4),
    Case("amortised_to_event", pair(amortised_model, amortised_guide), matrix, iwae=4),
    Case("nested_plates", pair(nested_model, nested_guide), matrix, max_plate_nesting=2, iwae=4),
    Case("vae", module(VAE), binary, iwae=4),
    Case("vae_pixel_plate", module(PixelVAE), binary, max_plate_nesting=2, iwae=4),
    Case("vae_view", module(lambda: VAE(view=True)), binary, iwae=4, broadcasts=False),
    Case("conditional_input", pair(regression_model, regression_guide), lambda: (randn(N, 2, seed=6), randn(N, seed=8)),
         iwae=4),
    Case("enum_categorical", pair(categorical_model, empty_guide), reals, enum=True),
    Case("enum_bernoulli_pixels", pair(bernoulli_model, empty_guide), matrix, enum=True, max_plate_nesting=2),
    Case("enum_two", pair(two_model, empty_guide), reals, enum=True),
    Case("enum_chain", pair(chain_model, empty_guide), reals, enum=True),
    Case("enum_per_pixel", pair(pixel_enum_model, empty_guide), matrix, enum=True, max_plate_nesting=2),
    Case("enum_point_and_pixel", pair(point_pixel_model, empty_guide), matrix, enum=True, max_plate_nesting=2),
    Case("enum_beside_guided", pair(mixed_model, mixed_guide), reals, enum=True),
    Case("enum_mask", pair(masked_model, empty_guide), with_mask(reals), enum=True),
    Case("enum_mask_obs_only", pair(masked_obs_model, empty_guide), with_mask(reals), enum=True),
    Case("enum_scale", pair(scaled_model, empty_guide), reals, enum=True),
    Case("enum_obs_mask", pair(obs_mask_model, obs_mask_guide), labelled, enum=True),
    Case("guide_enum_obs_mask", pair(guide_mask_model, guide_mask_guide), labelled, enum=True),
    Case("hmm_lengths", pair(hmm_model, empty_guide), hmm_data, enum=True, max_plate_nesting=2),
    Case("hmm_global_autodelta", lambda: autoguide_hmm(), hmm_data, enum=True, max_plate_nesting=2),
    Case("guide_enum", pair(guide_enum_model, config_enumerate(guide_enum_guide)), reals, enum=True),
    Case("guide_samples_discrete", pair(guide_enum_model, guide_enum_guide), reals),
    Case("guide_and_model_enum", pair(enum_both_model, enum_both_guide), reals, enum=True),
    Case("m2_supervised", module(SSVAE), m2_data, iwae=4),
    Case("m2_unsupervised", module(SSVAE), lambda: m2_data(labelled=False), enum=True, exact=False),
    Case("m2_obs_mask", module(MaskedSSVAE), m2_masked_data, enum=True, exact=False),
    Case("coin_global", pair(coin_model, coin_guide), lambda: (bits(N, seed=9),)),
    Case("weight_prior_global", pair(weight_prior_model, weight_prior_guide), matrix),
    Case("linreg_global", pair(linreg_model, linreg_guide), regression_data),
    Case("linreg_pyromodule_autodiagonal", bayes_module(AutoDiagonalNormal), regression_data),
    Case("linreg_pyromodule_autonormal", bayes_module(AutoNormal), regression_data),
    Case("linreg_pyromodule_automvn", bayes_module(AutoMultivariateNormal), regression_data),
    Case("linreg_pyromodule_autodelta", bayes_module(AutoDelta), regression_data),
    Case("linreg_autonormal", autoguide(linreg_model, AutoNormal), regression_data),
    Case("gmm_tutorial_autodelta", gmm_guide(AutoDelta), lambda: (GMM_DATA.clone(),), enum=True),
    Case("gmm_tutorial_autonormal", gmm_guide(AutoNormal), lambda: (GMM_DATA.clone(),), enum=True),
    Case("toy_mixture_global", pair(toy_mixture_model, toy_mixture_guide),
         lambda: (bits(N, seed=10), bits(N, seed=13)), enum=True),
    Case("plate_named_batch", pair(batch_model, batch_guide), reals, iwae=4),
    Case("subsample_per_point_params", pair(subsample_model, subsample_guide), reals, iwae=4),
    Case("per_point_params", pair(per_point_model, per_point_guide), reals, iwae=4),
    Case("refused_shape_mismatch", pair(shape_mismatch_model, shape_mismatch_guide), reals,
         refused="Model and guide shapes disagree", sites=("z",)),
    Case("refused_multi_scale", pair(multiscale_model, empty_guide), reals, enum=True,
         refused="share a common poutine.scale", sites=("c", "x")),
    Case("refused_sequential_enum", pair(sequential_model, empty_guide), reals, enum=True,
         refused="sequential enumeration", sites=("c",)),
    Case("refused_markov_history", pair(short_history_model, empty_guide), reals, enum=True,
         refused="Enumeration dim conflict", sites=("s_2", "s_3")),
    Case("refused_diamond", pair(diamond_model, empty_guide), lambda: (torch.zeros(N, 2, 2, dtype=torch.long),),
         enum=True, max_plate_nesting=3, refused="tree-structured plate nesting", sites=("d", "b", "c")),
    Case("refused_dim_collision", pair(collide_model, collide_guide), lambda: (torch.zeros(N, 2, 2),),
         max_plate_nesting=3, refused="collide at dim", sites=("plate_inner_2", "x")),
]


def autoguide_hmm() -> tuple[Any, Callable, Callable]:
    guide = AutoDelta(poutine.block(hmm_global_model, expose_fn=lambda msg: msg["name"].startswith("probs_")),
                      init_loc_fn=init_to_mean)
    return (hmm_global_model, guide), hmm_global_model, guide
