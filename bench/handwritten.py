"""The reference: the VAE's bounds, training loop and log p(x) estimate written by hand in PyTorch.

The network is the encoder and decoder of a ``ppgen.models.VAE``, used directly as ``nn.Module`` parts;
nothing here goes through Pyro. The mixture of Bernoullis, a model whose discrete class is enumerated, has
its log-likelihood written out too (:func:`mixture_loss`). For K particles z_k = loc + scale * eps_k, eps_k ~ N(0, I),

    log w_k = log p(x | z_k) + log N(z_k; 0, I) - log N(z_k; loc, scale),

with the Bernoulli log-likelihood from ``binary_cross_entropy_with_logits``. The draws are
``torch.randn(K, N, z_dim)``, the same call (and so, after the same seed, the same numbers) as Pyro's
reparameterised sampler in ppgen's vectorised particle plate.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ppgen.models import VAE, MixtureOfBernoullis


def log_weights(vae: VAE, x: Tensor, k: int) -> Tensor:
    """log w_k(x_n) for k = 1..K reparameterised particles, Tensor[K, N]."""
    loc, raw_scale = vae.encoder(x).chunk(2, dim=-1)
    scale = F.softplus(raw_scale) + 1e-4
    eps = torch.randn((k, *loc.shape), dtype=loc.dtype, device=loc.device)
    z = loc + eps * scale
    logits = vae.decoder(z)
    log_px = -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").sum(-1)
    # log N(z; 0, I) - log N(z; loc, scale): the -log(2 pi) / 2 terms cancel, and (z - loc) / scale = eps
    log_pz_minus_log_qz = (0.5 * (eps.square() - z.square()) + scale.log()).sum(-1)
    return log_px + log_pz_minus_log_qz


def elbo_loss(vae: VAE, x: Tensor, k: int = 1) -> Tensor:
    """The negative ELBO per data point, averaged over K particles and the batch."""
    return -log_weights(vae, x, k).mean()


def iwae_loss(vae: VAE, x: Tensor, k: int) -> Tensor:
    """The negative K-sample importance-weighted bound per data point, averaged over the batch."""
    return -(log_weights(vae, x, k).logsumexp(0) - math.log(k)).mean()


def mixture_loss(mixture: MixtureOfBernoullis, x: Tensor) -> Tensor:
    """The negative log-likelihood per point of a mixture of Bernoullis, its class c summed out by hand:
    -log sum_c pi_c prod_d p_cd^x_d (1 - p_cd)^(1 - x_d), averaged over the batch."""
    log_pi = mixture.logits.log_softmax(-1)
    log_px_given_c = x @ F.logsigmoid(mixture.probs_logits).T + (1 - x) @ F.logsigmoid(-mixture.probs_logits).T
    return -(log_pi + log_px_given_c).logsumexp(-1).mean()


def train(loss_fn: Callable[[Tensor], Tensor], optimizer: torch.optim.Optimizer, x: Tensor, epochs: int,
          batch_size: int, generator: torch.Generator) -> list[float]:
    """Plain mini-batch gradient steps on ``loss_fn``; return the mean loss of each epoch.

    The same work per step as any training loop that logs its loss: a shuffled order per epoch,
    zero_grad, backward, step, and a running sum read back once per epoch.
    """
    n = x.shape[0]
    history = []
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator).to(x.device)
        total = x.new_zeros(())
        for batch in order.split(batch_size):
            xb = x[batch]
            loss = loss_fn(xb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach() * xb.shape[0]
        history.append(total.item() / n)
    return history


@torch.no_grad()
def log_prob(vae: VAE, x: Tensor, k: int, particle_points: int) -> Tensor:
    """The importance-sampled log p(x) with K particles, Tensor[N], ``particle_points`` particles x points a pass."""
    points = max(1, particle_points // k)
    particles = min(k, particle_points)
    out = []
    for xb in x.split(points):
        sums = [log_weights(vae, xb, min(particles, k - start)).logsumexp(0) for start in range(0, k, particles)]
        out.append(torch.stack(sums).logsumexp(0) - math.log(k))
    return torch.cat(out)
