"""Discrete latents summed out in the model: enumeration with masks, scales, obs_mask and pyro.markov."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import torch
from pyro.infer import config_enumerate
from pyro.infer.autoguide import AutoDelta, init_to_mean
from pyro.ops.indexing import Vindex
from torch import Tensor
from torch.distributions import constraints

from pyro_programs.common import ENUM, N, bits, positive


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
def autoguide_hmm() -> tuple[Any, Callable, Callable]:
    guide = AutoDelta(poutine.block(hmm_global_model, expose_fn=lambda msg: msg["name"].startswith("probs_")),
                      init_loc_fn=init_to_mean)
    return (hmm_global_model, guide), hmm_global_model, guide
