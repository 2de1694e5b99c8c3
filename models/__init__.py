"""The model zoo: every family is a Pyro program that follows ppgen's model protocol (:mod:`ppgen.program`).

| model | family | paper |
|---|---|---|
| :class:`VAE` | variational autoencoder | Kingma and Welling, 2014 |
| :class:`PPCA` | probabilistic PCA, exact log p(x) | Tipping and Bishop, 1999 |
| :class:`GMM` | Gaussian mixture, component summed out | — |
"""

from ppgen.models.gmm import GMM
from ppgen.models.ppca import PPCA
from ppgen.models.vae import VAE

__all__ = ["GMM", "PPCA", "VAE"]
