"""MAP: the posterior mode of the global latents, against a closed form; refused where it does not apply."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer.autoguide import AutoDelta, AutoNormal

import ppgen
from ppgen import inference


def gaussian_mean(x):
    """mu ~ N(0, 2^2), x_n | mu ~ N(mu, 1): the posterior mode is sum(x) / (N + 1/4)."""
    mu = pyro.sample("mu", dist.Normal(torch.tensor(0.0, dtype=x.dtype), 2.0))
    with pyro.plate("data", len(x)):
        pyro.sample("x", dist.Normal(mu, 1.0), obs=x)


def test_map_reaches_the_posterior_mode_in_closed_form():
    x = 3.0 + torch.randn(40, dtype=torch.float64)
    fit = ppgen.fit((gaussian_mean, AutoDelta(gaussian_mean)), x, inference=inference.MAP(), epochs=1500,
                    batch_size=40, lr=0.05, progress=False)
    mode = x.sum() / (len(x) + 0.25)
    assert fit.params["AutoDelta.mu"].item() == pytest.approx(mode.item(), abs=1e-4)
    assert mode.item() != pytest.approx(x.mean().item(), abs=1e-3)  # the prior moved it off the MLE


def test_map_refuses_a_model_without_a_prior_and_a_guide_with_spread():
    x = torch.randn(10)

    def no_prior(x):
        loc = pyro.param("loc", torch.tensor(0.0))
        with pyro.plate("data", len(x)):
            pyro.sample("x", dist.Normal(loc, 1.0), obs=x)

    with pytest.raises(ValueError, match=r"no latent with a prior outside the data plate: .*inference.MLE\(\)"):
        ppgen.fit(no_prior, x, inference=inference.MAP(), progress=False)
    with pytest.raises(ValueError, match=r"point estimate of every latent.*\('mu',\).*AutoDelta"):
        ppgen.fit((gaussian_mean, AutoNormal(gaussian_mean)), x, inference=inference.MAP(), progress=False)
