"""The model zoo: every family is a Pyro program that follows ppgen's model protocol (:mod:`ppgen.program.protocol`).

| model | family | paper |
|---|---|---|
| :class:`VAE` | variational autoencoder | Kingma and Welling, 2014 |
| :class:`FlowVAE` | VAE with an inverse autoregressive flow as q(z given x) | Kingma et al., 2016 |
| :class:`ConvVAE` | convolutional VAE for images (C, H, W) | Kingma and Welling, 2014; Kulkarni et al., 2015 |
| :class:`HVAE` | VAE with two stochastic layers z2 -> z1 -> x | Burda, Grosse and Salakhutdinov, 2015 |
| :class:`GMVAE` | VAE with a mixture-of-Gaussians prior, component summed out | Dilokthanakul et al., 2016 |
| :class:`SSVAE` | semi-supervised VAE (M2), the label summed out where unknown | Kingma et al., 2014 |
| :class:`CVAE` | conditional VAE p(x given c, z), samples given c | Sohn, Lee and Yan, 2015 |
| :class:`PPCA` | probabilistic PCA, exact log p(x) | Tipping and Bishop, 1999 |
| :class:`FactorAnalysis` | factor analysis, exact log p(x) | Rubin and Thayer, 1982 |
| :class:`GMM` | Gaussian mixture, component summed out | — |
| :class:`FVSBN` | fully visible sigmoid belief network, exact log p(x) | Neal, 1992; Frey, 1998 |
| :class:`NADE` | neural autoregressive distribution estimator, exact log p(x) | Larochelle and Murray, 2011 |
| :class:`MADE` | masked autoencoder, one or several orderings, exact log p(x) | Germain et al., 2015 |
| :class:`RealNVP` | affine coupling flow, exact log p(x) | Dinh et al., 2017 |
| :class:`MAF` | masked autoregressive flow, exact log p(x) | Papamakarios et al., 2017 |
| :class:`NeuralSplineFlow` | rational-quadratic spline flow, exact log p(x) | Durkan et al., 2019 |
| :class:`DequantizedFlow` | a flow on integer data by uniform dequantisation | Theis et al., 2016 |
| :class:`MixtureOfBernoullis` | mixture of Bernoullis, component summed out | Bishop, 2006, section 9.3.3 |
| :class:`DDPM` | diffusion: the reverse process as the model, the forward process as the guide; log p(x) bounded | Ho, Jain and Abbeel, 2020 |
| :class:`EnergyModel` | energy-based model exp(-E(x)), E an MLP, noise-conditional or not | Song and Ermon, 2019 |
| :class:`ConvEnergy` | convolutional energy-based model for images (C, H, W) | Du and Mordatch, 2019 |
| :class:`Generator` | implicit model x = G(z), no density: sample only | Goodfellow et al., 2014 |
| :class:`ConvGenerator` | DCGAN-style implicit model for images (C, H, W) | Radford, Metz and Chintala, 2016 |

The critics of the two-player objectives (``inference.Adversarial``, ``inference.Wasserstein``) are networks, not Pyro
programs: :class:`Critic` (an MLP) and :class:`ConvCritic` (a DCGAN discriminator, Radford et al., 2016).

The observation models of the VAE family are in :mod:`ppgen.models.likelihoods`.
"""

from ppgen.models.conv_vae import ConvVAE
from ppgen.models.critics import ConvCritic, Critic
from ppgen.models.cvae import CVAE
from ppgen.models.ddpm import DDPM
from ppgen.models.dequantized import DequantizedFlow
from ppgen.models.energy import ConvEnergy, EnergyModel
from ppgen.models.factor_analysis import FactorAnalysis
from ppgen.models.flowvae import FlowVAE
from ppgen.models.fvsbn import FVSBN
from ppgen.models.generator import ConvGenerator, Generator
from ppgen.models.gmm import GMM
from ppgen.models.gmvae import GMVAE
from ppgen.models.hvae import HVAE
from ppgen.models.made import MADE
from ppgen.models.maf import MAF
from ppgen.models.mixture_of_bernoullis import MixtureOfBernoullis
from ppgen.models.nade import NADE
from ppgen.models.nsf import NeuralSplineFlow
from ppgen.models.ppca import PPCA
from ppgen.models.realnvp import RealNVP
from ppgen.models.ssvae import SSVAE
from ppgen.models.vae import VAE

__all__ = ["CVAE", "ConvCritic", "ConvEnergy", "ConvGenerator", "ConvVAE", "Critic", "DDPM", "DequantizedFlow",
           "EnergyModel", "FVSBN", "FactorAnalysis", "FlowVAE", "GMM", "GMVAE", "Generator", "HVAE", "MADE", "MAF",
           "MixtureOfBernoullis", "NADE", "NeuralSplineFlow", "PPCA", "RealNVP", "SSVAE", "VAE"]
