"""Discrete latents in the guide (sampled or enumerated), and ss_vae_M2.py's semi-supervised VAE."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import config_enumerate
from torch import Tensor, nn

import ppgen
from pyro_programs.common import ENUM, N, bits


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
        self.x_dim, self.y_dim, self.z_dim = x_dim, y_dim, z_dim
        with torch.random.fork_rng():  # starting weights fixed by seed, the global RNG left alone
            torch.manual_seed(seed)
            self.encoder_y = nn.Sequential(nn.Linear(x_dim, hidden), nn.Softplus(), nn.Linear(hidden, y_dim),
                                           nn.Softmax(-1))
            self.encoder_z = nn.Sequential(nn.Linear(x_dim + y_dim, hidden), nn.Softplus(),
                                           nn.Linear(hidden, 2 * z_dim))
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


def m2_digits() -> tuple[tuple[Tensor, Tensor, Tensor], tuple[Tensor, Tensor, Tensor], Tensor]:
    """The binarised digits with one-hot labels, 10% of the training labels kept (a seeded draw), the test set
    unlabelled, and the test labels for the accuracy."""
    x, y = ppgen.datasets.digits(split="train", binarize=True, return_labels=True)
    x_test, y_test = ppgen.datasets.digits(split="test", binarize=True, return_labels=True)
    mask = torch.zeros(x.shape[0], dtype=torch.bool)
    mask[torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(0))[: x.shape[0] // 10]] = True
    one_hot = nn.functional.one_hot(y, 10).to(torch.float64)
    train = (x.double(), one_hot, mask)
    placeholder = nn.functional.one_hot(torch.zeros_like(y_test), 10).to(torch.float64)  # masked out
    test = (x_test.double(), placeholder, torch.zeros(x_test.shape[0], dtype=torch.bool))
    return train, test, y_test
