"""Programs that Pyro refuses, each adapted from test_valid_models.py into a data plate."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from pyro.ops.indexing import Vindex
from torch import Tensor

from pyro_programs.common import ENUM


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
