"""The Gaussian-mixture VAE: c ~ Cat(pi), z | c ~ N(mu_c, diag sigma_c^2), x | z ~ p(x|z), c summed out exactly."""

from __future__ import annotations

from collections.abc import Sequence

import pyro
import pyro.distributions as dist
import torch
from torch import Tensor, nn
from torch.nn.functional import softplus

from ppgen.models.layers import check_widths, mlp
from ppgen.models.likelihoods import build_likelihood
from ppgen.program.protocol import DATA_PLATE, Model
from ppgen.utils.checks import check_positive_int


class GMVAE(Model):
    """A VAE whose prior over z is a learnt mixture of Gaussians, the component c enumerated.

    The story: each data point belongs to one of C clusters, c ~ Cat(pi); its code is drawn around that
    cluster's centre, z | c ~ N(mu_c, diag sigma_c^2); the decoder maps the code to the data, x | z ~ p(x|z).
    The guide draws only z ~ q(z|x): c is marked ``infer={"enumerate": "parallel"}``, so every bound sums it
    out exactly, log p(x, z) = log sum_c pi_c N(z; mu_c, sigma_c^2) + log p(x|z), and
    ``fit.encode(x, site="c")`` returns the cluster posterior p(c | x) = E_q(z|x)[p(c|z)].

    Arguments:
        x_dim: D, the size of a data point.
        z_dim: the size of the code z.
        n_components: C, the number of mixture components of the prior.
        hidden: widths of the hidden layers of the encoder (the decoder mirrors them).
        likelihood: p(x|z), one of :data:`ppgen.models.likelihoods.LIKELIHOODS`.
        scale: the fixed standard deviation of a Gaussian likelihood; ``None`` learns one per dimension.

    References:
        Deep Unsupervised Clustering with Gaussian Mixture Variational Autoencoders (Dilokthanakul, Mediano,
        Garnelo, Lee, Salimbeni, Arulkumaran and Shanahan, 2016). https://arxiv.org/abs/1611.02648

        Variational Deep Embedding: An Unsupervised and Generative Approach to Clustering (Jiang, Zheng,
        Tan, Tang and Zhou, 2017). https://arxiv.org/abs/1611.05148
    """

    def __init__(self, *, x_dim: int, z_dim: int = 8, n_components: int = 10, hidden: Sequence[int] = (400,),
                 likelihood: str = "bernoulli", scale: float | None = None) -> None:
        super().__init__()
        x_dim, z_dim = check_positive_int(x_dim, "x_dim"), check_positive_int(z_dim, "z_dim")
        n_components = check_positive_int(n_components, "n_components")
        hidden = check_widths(hidden, "hidden")
        self.x_dim, self.z_dim, self.n_components, self.likelihood = x_dim, z_dim, n_components, likelihood
        self.observation_model = build_likelihood(likelihood, x_dim, scale)
        self.encoder = mlp((x_dim, *hidden, 2 * z_dim))
        self.decoder = mlp((z_dim, *hidden[::-1], self.observation_model.params_per_dim * x_dim))
        self.logits = nn.Parameter(torch.zeros(n_components))
        self.locs = nn.Parameter(torch.randn(n_components, z_dim))  # spread, so that the components differ
        self.raw_scales = nn.Parameter(torch.zeros(n_components, z_dim))

    def component(self, c: Tensor) -> dist.Distribution:
        """p(z | c) = N(mu_c, diag sigma_c^2) for the components indexed by c."""
        return dist.Normal(self.locs[c], softplus(self.raw_scales[c]) + 1e-4).to_event(1)

    def observation(self, z: Tensor) -> dist.Distribution:
        """p(x|z) for one data point per leading index of z."""
        return self.observation_model(self.decoder(z), (self.x_dim,))

    def model(self, x: Tensor) -> None:
        with pyro.plate(DATA_PLATE, x.shape[0]):
            c = pyro.sample("c", dist.Categorical(logits=self.logits), infer={"enumerate": "parallel"})
            z = pyro.sample("z", self.component(c))
            pyro.sample("x", self.observation(z), obs=x)

    def guide(self, x: Tensor) -> None:
        loc, scale = self.encoder(x).chunk(2, dim=-1)
        with pyro.plate(DATA_PLATE, x.shape[0]):
            pyro.sample("z", dist.Normal(loc, softplus(scale) + 1e-4).to_event(1))
