"""``ppgen.log_weights``: the per-point log importance weights of a program as it is, without fitting it."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ppgen.objective import bounds
from ppgen.program.implicit import check_density
from ppgen.program.inputs import as_batch
from ppgen.program.protocol import as_model_input, as_module
from ppgen.program.structure import inspect
from ppgen.utils.checks import check_positive_int


def log_weights(model: Any, data: Any, k: int = 1) -> Tensor:
    """log w_k(x_n) = log p(x_n, z_k) - log q(z_k | x_n) for K particles z_k ~ q(z|x_n) of a program, Tensor[K, N].

    The tensor every ppgen objective is built on, for a researcher to check a bound or an estimator on their own
    program: discrete latents the model enumerates are summed out exactly (as Pyro's ``TraceEnum_ELBO`` does);
    the terms of global latents theta (sites outside the data plate), log p(theta_k) - log q(theta_k), are divided
    by N and added to every point. So ``log_weights(...).sum(-1)`` is one draw per particle of the full-data ELBO
    that Pyro's ``Trace_ELBO`` estimates, ``.mean()`` the ELBO per point, and, for a program with local latents
    only, ``.logsumexp(0) - log K`` the per-point bound IWAE_K. Differentiable in the program's parameters.

    Arguments:
        model: a Pyro program: an ``nn.Module`` with ``model`` (and ``guide``) methods, or a ``(model_fn,
            guide_fn)`` pair, or a model function alone.
        data: x as a Tensor [N, ...], or a tuple ``(x, y, ...)`` of aligned inputs passed as ``model(x, y, ...)``.
        k: K, the number of particles, drawn in one vectorised pass.

    A program that takes the whole data set and subsamples B points of its data plate itself (``subsample_size=B``)
    is run on B points at a time, each run with its own K particles (of its global latents too): the sum over
    points is then an unbiased estimate of the full-data ELBO, as Pyro's on a random subsample is.

    The inputs are moved to the device and floating-point dtype of the program's parameters (a program without
    parameters runs on them as they are); the program itself is not changed.

    Raises:
        TypeError, ValueError: as :func:`ppgen.fit` does for the program and the data, where the guide
            enumerates a discrete site (then a particle is not one draw of every latent), and for an implicit model
            (no density).

    Example:
        >>> import pyro, pyro.distributions as dist, torch
        >>> def model(x):
        ...     with pyro.plate("data", len(x)):
        ...         z = pyro.sample("z", dist.Normal(0.0, 1.0))
        ...         pyro.sample("x", dist.Normal(z, 1.0), obs=x)
        >>> def guide(x):
        ...     with pyro.plate("data", len(x)):
        ...         pyro.sample("z", dist.Normal(x / 2, 0.5 ** 0.5))
        >>> log_weights((model, guide), (torch.tensor([0.3, -1.2]),), k=4).shape
        torch.Size([4, 2])
    """
    k = check_positive_int(k, "k")
    data = as_batch(data, name="data", keep_integer_x=True)
    module = as_module(model)
    structure = inspect(module, data, name="data", batch_size=len(data), placed=True)
    check_density(structure, "log_weights(model, data)")
    data = structure.program_data(data)
    structure.check_data(data, name="data")
    if structure.unguided:
        raise ValueError(f"latent site(s) {structure.unguided} are neither drawn by a guide nor summed out by the "
                         f"model: give the program a guide that draws them, or mark discrete ones "
                         f"infer={{'enumerate': 'parallel'}} (config_enumerate(model) marks obs_mask's unobserved part)")
    if next(module.parameters(), None) is not None:  # the inputs follow the program's parameters
        data = as_model_input(data, module)
    size = structure.own_batch_size or len(data)
    if size >= len(data):
        return bounds.log_weights(module, structure, data, k)
    chunks = []  # a program whose data plate subsamples B points itself: B at a time, the last B for the remainder
    for rows in torch.arange(len(data)).split(size):
        log_w = bounds.log_weights(module, structure, data.take(torch.arange(rows[-1] + 1 - size, rows[-1] + 1)), k)
        chunks.append(log_w[:, size - len(rows):])
    return torch.cat(chunks, dim=1)
