"""The mixture of Bernoullis: c ~ Cat(pi), x_d | c ~ Bernoulli(p_cd), with c summed out exactly."""

from __future__ import annotations

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from sklearn.cluster import KMeans
from torch import Tensor, nn

from ppgen.program.protocol import DATA_PLATE, Model
from ppgen.utils.checks import check_positive_int


class MixtureOfBernoullis(Model):
    """A latent-class model for binary vectors, its class c enumerated: log p(x) is exact, no guide is needed.

    Each data point belongs to one of C classes, c ~ Cat(pi); given its class, its D binary coordinates are
    independent, x_d | c ~ Bernoulli(p_cd). Every backend sums c out, log p(x) = log sum_c pi_c prod_d
    p_cd^x_d (1 - p_cd)^(1 - x_d); ``MLE()`` fits it by default, and ``fit.encode(x)`` is p(c|x), exact.
    Before training the classes start from k-means, as EM usually does.

    Arguments:
        x_dim: D, the size of a data point.
        n_components: C, the number of classes.

    References:
        Pattern Recognition and Machine Learning (Bishop, 2006), section 9.3.3.
        https://www.microsoft.com/en-us/research/publication/pattern-recognition-machine-learning/
    """

    def __init__(self, *, x_dim: int, n_components: int = 10) -> None:
        super().__init__()
        x_dim, n_components = check_positive_int(x_dim, "x_dim"), check_positive_int(n_components, "n_components")
        self.x_dim, self.n_components = x_dim, n_components
        self.logits = nn.Parameter(torch.zeros(n_components))  # of pi
        self.probs_logits = nn.Parameter(0.5 * torch.randn(n_components, x_dim))  # of p_cd

    def component(self, c: Tensor) -> dist.Distribution:
        """p(x | c), the independent Bernoullis of the classes indexed by c."""
        return dist.Bernoulli(logits=self.probs_logits[c]).to_event(1)

    def model(self, x: Tensor) -> None:
        with pyro.plate(DATA_PLATE, x.shape[0]):
            c = pyro.sample("c", dist.Categorical(logits=self.logits), infer={"enumerate": "parallel"})
            pyro.sample("x", self.component(c), obs=x)

    @torch.no_grad()
    def initialize(self, x: Tensor) -> None:
        """pi and p from the k-means clusters of x (scikit-learn's KMeans), each p_cd smoothed as (n_cd + 1) /
        (n_c + 2), so that no probability starts at 0 or 1.

        Raises:
            ValueError: x has fewer points than the mixture has components.
        """
        if len(x) < self.n_components:
            raise ValueError(f"data: {len(x)} point(s) cannot start {self.n_components} components (n_components)")
        data = x.detach().cpu().double().reshape(len(x), -1).numpy()
        seed = int(torch.randint(2**31 - 1, ()).item())
        labels = KMeans(self.n_components, n_init=1, random_state=seed).fit(data).labels_
        resp = np.eye(self.n_components)[labels]
        counts = resp.sum(0)
        probs = (resp.T @ data + 1) / (counts[:, None] + 2)
        as_param = lambda a: torch.as_tensor(a, dtype=self.logits.dtype, device=self.logits.device)  # noqa: E731
        self.logits.copy_(as_param(np.log(counts + 1)))
        self.probs_logits.copy_(as_param(np.log(probs) - np.log1p(-probs)))
