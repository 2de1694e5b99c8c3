"""A VAE whose guide q(z|x) is a conditional normalising flow: an amortised inverse autoregressive flow."""

from __future__ import annotations

from collections.abc import Sequence

import pyro
import zuko
from torch import Tensor

from ppgen.checks import check_positive_int
from ppgen.models.flows import FlowDistribution, check_hidden
from ppgen.models.vae import VAE
from ppgen.program import DATA_PLATE


class FlowVAE(VAE):
    """The :class:`~ppgen.models.VAE` generative model with a flow posterior q(z|x) in place of a diagonal Gaussian.

    Generative story (as the VAE): z ~ N(0, I), x | z ~ p_theta(x|z). Guide: the encoder's output
    h = e_phi(x) (the 2 z_dim numbers the VAE reads as a mean and a scale) is the context of an inverse
    autoregressive flow,

        eps ~ N(0, I),   z = F_T(... F_1(eps; h) ...; h),   F_t(y; h)_d = y_d exp(a_d(y_<d, h)) + m_d(y_<d, h),

    each F_t one MADE pass given h, so a draw and its density log q(z|x) = log N(eps; 0, I) - sum_t log |det
    dF_t| cost T passes (zuko's MAF layers used in the inverse direction; the wrapper keeps log q from the
    draw, so scoring needs no inversion). One layer already contains the diagonal Gaussian (shift and scale
    of z_d given h) and adds dependence on eps_<d; more layers let q(z|x) be skewed, correlated and
    multimodal, which can tighten the ELBO towards log p(x) (the gap is KL(q(z|x) || p(z|x))).

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
        self.posterior_flow = zuko.flows.Flow(maf.transform.inv, maf.base)  # MAF inverted: an IAF

    def guide(self, x: Tensor) -> None:
        context = self.encoder(x)
        with pyro.plate(DATA_PLATE, x.shape[0]):
            pyro.sample("z", FlowDistribution(self.posterior_flow(context)))
