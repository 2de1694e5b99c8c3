"""The model zoo: every family is a Pyro program that follows ppgen's model protocol (:mod:`ppgen.program`).

| model | family | paper |
|---|---|---|
| :class:`VAE` | variational autoencoder | Kingma and Welling, 2014 |
| :class:`ConvVAE` | convolutional VAE for images (C, H, W) | Kingma and Welling, 2014; Kulkarni et al., 2015 |
| :class:`HVAE` | VAE with two stochastic layers z2 -> z1 -> x | Burda, Grosse and Salakhutdinov, 2015 |
| :class:`GMVAE` | VAE with a mixture-of-Gaussians prior, component summed out | Dilokthanakul et al., 2016 |
| :class:`PPCA` | probabilistic PCA, exact log p(x) | Tipping and Bishop, 1999 |
| :class:`FactorAnalysis` | factor analysis, exact log p(x) | Rubin and Thayer, 1982 |
| :class:`GMM` | Gaussian mixture, component summed out | — |
| :class:`MixtureOfBernoullis` | mixture of Bernoullis, component summed out | Bishop, 2006, section 9.3.3 |

The observation models of the VAE family are in :mod:`ppgen.models.likelihoods`.
"""

from ppgen.models.conv_vae import ConvVAE
from ppgen.models.factor_analysis import FactorAnalysis
from ppgen.models.gmm import GMM
from ppgen.models.gmvae import GMVAE
from ppgen.models.hvae import HVAE
from ppgen.models.mixture_of_bernoullis import MixtureOfBernoullis
from ppgen.models.ppca import PPCA
from ppgen.models.vae import VAE

__all__ = ["GMM", "GMVAE", "HVAE", "PPCA", "VAE", "ConvVAE", "FactorAnalysis", "MixtureOfBernoullis"]
