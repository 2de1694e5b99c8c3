"""Programs with continuous local latents, from Pyro's tests, vae.py and the SVI tutorials."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from torch import Tensor, nn
from torch.distributions import constraints

from pyro_programs.common import D, positive


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
with torch.random.fork_rng():  # the same starting weights in every process, the global RNG left alone
    torch.manual_seed(0)
    ENCODER = nn.Linear(D, 4).double()


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
        self.x_dim, self.z_dim, self.view = x_dim, z_dim, view
        with torch.random.fork_rng():
            torch.manual_seed(0)
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
