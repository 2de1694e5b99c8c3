"""Global latents (priors on weights, AutoGuides, the GMM tutorial) and data plates by name and subsample."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import torch
from pyro.infer.autoguide import init_to_mean
from pyro.nn import PyroModule, PyroSample
from pyro.ops.indexing import Vindex
from torch import Tensor, nn
from torch.distributions import constraints

from pyro_programs.common import ENUM, N, positive, randn


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


def conjugate_regression() -> tuple[tuple[Tensor, Tensor], Tensor, Tensor]:
    """y = x w + b + N(0, 0.5^2) with w, b ~ N(0, 1) and the noise known (the slow test's regression): the data and
    the exact posterior's mean and covariance."""
    x = randn(60, 2, seed=21)
    y = x @ torch.tensor([1.5, -0.7]) + 0.3 + 0.5 * randn(60, seed=22)
    design = torch.cat([x, torch.ones(60, 1)], 1)
    precision = torch.eye(3) + design.T @ design / 0.25
    covariance = torch.linalg.inv(precision)
    return (x, y), covariance @ design.T @ y / 0.25, covariance


def conjugate_model(x: Tensor, y: Tensor) -> None:
    w = pyro.sample("w", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
    b = pyro.sample("b", dist.Normal(0.0, 1.0))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("obs", dist.Normal((x * w).sum(-1) + b, 0.5), obs=y)
