"""A VAE whose guide q(z|x) is a conditional normalising flow: an amortised inverse autoregressive flow."""

from __future__ import annotations

from collections.abc import Sequence

import pyro
import torch
import zuko
from torch import Tensor
from torch.nn.functional import softplus
from zuko.distributions import DiagNormal, NormalizingFlow

from ppgen.models.flows import FlowDistribution, check_hidden
from ppgen.models.vae import VAE
from ppgen.program.protocol import DATA_PLATE
from ppgen.utils.checks import check_positive_int

#: the factor on the initial output weights of each IAF layer's network: a small one starts the layer near the
#: identity (shift about 0, scale about 1) and keeps a gradient for every weight.
INITIAL_GAIN = 1e-2


class FlowVAE(VAE):
    """The :class:`~ppgen.models.VAE` generative model with a flow posterior q(z|x) in place of a diagonal Gaussian.

    Generative story (as the VAE): z ~ N(0, I), x | z ~ p_theta(x|z). Guide: the encoder's output
    h = e_phi(x) = (mu, s) gives the VAE's diagonal Gaussian, and is the context of an inverse autoregressive
    flow that moves its draw:

        z_0 = mu + softplus(s) * eps,  eps ~ N(0, I),   z = F_T(... F_1(z_0; h) ...; h),
        F_t(y; h)_d = y_d exp(a_d(y_<d, h)) + m_d(y_<d, h),
        log q(z|x) = log N(z_0; mu, softplus(s)^2) - sum_t log |det dF_t/dy|,

    each F_t one MADE pass given h, so a draw and its density cost T passes (zuko's MAF layers used in the
    inverse direction; the Pyro wrapper keeps log q from the draw, so scoring needs no inversion). The
    layers start near the identity, so q(z|x) starts as the VAE's Gaussian; they let it become skewed,
    correlated and multimodal, which tightens the ELBO towards log p(x) (the gap is KL(q(z|x) || p(z|x))).

    Fitted like the VAE, by ``inference.ELBO()`` or ``inference.IWAE(k)``.

    Arguments:
        x_dim: D, the size of a data point.
        z_dim: the size of the latent code z.
        hidden: widths of the hidden layers of the encoder (the decoder mirrors them).
        likelihood: ``"bernoulli"`` or ``"gaussian"``, as for the VAE.
        transforms: T, the number of inverse autoregressive layers of q(z|x).
        flow_hidden: the widths of the hidden layers of each layer's MADE.

    References:
        Improved Variational Inference with Inverse Autoregressive Flow (Kingma, Salimans, Jozefowicz, Chen,
        Sutskever and Welling, 2016). https://arxiv.org/abs/1606.04934

        Variational Inference with Normalizing Flows (Rezende and Mohamed, 2015). https://arxiv.org/abs/1505.05770
    """

    def __init__(self, *, x_dim: int, z_dim: int = 8, hidden: Sequence[int] = (400,), likelihood: str = "bernoulli",
                 transforms: int = 2, flow_hidden: Sequence[int] = (64, 64)) -> None:
        super().__init__(x_dim=x_dim, z_dim=z_dim, hidden=hidden, likelihood=likelihood)
        maf = zuko.flows.MAF(features=self.z_dim, context=2 * self.z_dim,
                             transforms=check_positive_int(transforms, "transforms"),
                             hidden_features=check_hidden(flow_hidden, "flow_hidden"))
        self.iaf = maf.transform.inv  # MAF layers in the inverse direction: an IAF, one pass per draw
        with torch.no_grad():  # start each layer near the identity, so q(z|x) starts as the VAE's Gaussian
            for layer in maf.transform.transforms:
                last = layer.hyper[-1]
                last.weight.mul_(INITIAL_GAIN)
                last.bias.zero_()

    def guide(self, x: Tensor) -> None:
        context = self.encoder(x)
        loc, scale = context.chunk(2, dim=-1)
        base = DiagNormal(loc, softplus(scale) + 1e-4)  # the VAE's q(z|x), the first step of the flow
        with pyro.plate(DATA_PLATE, x.shape[0]):
            pyro.sample("z", FlowDistribution(NormalizingFlow(self.iaf(context), base)))
