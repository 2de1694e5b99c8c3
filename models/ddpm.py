"""Denoising diffusion probabilistic models as a latent-variable program: the reverse process p_theta(x_{0:T}) as the
model, the fixed forward process q(x_{1:T} | x_0) as the guide, fitted by the ELBO at a cost per step independent
of T."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.distributions import TorchDistribution
from torch import Tensor
from torch.distributions import constraints, kl_divergence, register_kl

from ppgen.models.layers import check_widths, mlp
from ppgen.models.noise_schedule import NoiseSchedule
from ppgen.program.protocol import DATA_PLATE, Model
from ppgen.utils.checks import check_choice, check_non_negative_float, check_positive_int

VARIANCES = ("beta", "posterior")
LOSSES = ("elbo", "simple")
TERMS = ("sampled", "all")
SAMPLERS = ("ancestral", "ddim")
#: (t, point) pairs whose reverse step one pass of :meth:`DDPM.log_prob` evaluates; bounds its memory.
PAIRS_PER_PASS = 2**16


class DDPM(Model):
    """A denoising diffusion probabilistic model of continuous x in R^D, written as a Pyro program.

    The model is the reverse process, x_T ~ N(0, I) and for t = T..1

        p_theta(x_{t-1} | x_t) = N(mu_theta(x_t, t), sigma_t^2 I),
        mu_theta(x_t, t) = (x_t - beta_t / sqrt(1 - abar_t) eps_theta(x_t, t)) / sqrt(alpha_t),

    with eps_theta an MLP of x_t and a sinusoidal embedding of t, and x_0 the data site ``"x"``. The variances are
    fixed as in Ho et al.: sigma_t^2 = beta_t (``variance="beta"``, exact where x_0 ~ N(0, I)) or beta~_t
    (``"posterior"``, exact where x_0 is one point); the data's step t = 1 takes beta_1 under both, as beta~_1 = 0.
    The guide is the forward process of :class:`~ppgen.models.noise_schedule.NoiseSchedule`; it has no parameters.

    With ``terms="all"`` the program is the chain itself: the guide draws x_T ~ q(x_T | x_0) and x_{t-1} ~
    q(x_{t-1} | x_t, x_0) for t = T..2 (sites ``"x_{t}"`` for t = T..1: ``"x_4"`` to ``"x_1"`` at T = 4), the model
    scores them, and its ELBO is

        L(x_0) = E_q[log p(x_T) - log q(x_T | x_0)] + E_q[log p_theta(x_0 | x_1)]
                 + sum_{t=2}^T E_q[log p_theta(x_{t-1} | x_t) - log q(x_{t-1} | x_t, x_0)]      (Ho et al., eq. 5)

    at a cost of T network passes per point. With ``terms="sampled"`` (the default) the trace has O(1) sites per
    point: the guide draws t ~ U{2..T} (site ``"t"``, the step number less 2), x_T ~ q(x_T | x_0), x_1 ~ q(x_1 | x_0),
    x_t ~ q(x_t | x_0) and x_{t-1} ~ q(x_{t-1} | x_t, x_0) (sites ``"x_T"``, ``"x_1"``, ``"x_t"``, ``"x_prev"``), and
    the model draws t from the same uniform, scores x_T under N(0, I), x_0 under p_theta(x_0 | x_1) and, under
    ``poutine.scale(T - 1)``, x_{t-1} under p_theta(x_{t-1} | x_t); x_1 and x_t are masked
    (``poutine.mask(mask=False)``) in both, contributing no term. Proof that its ELBO is an unbiased estimate of L:
    the sum of the program's log-densities, log p - log q, is

        [log p(x_T) - log q(x_T | x_0)] + log p_theta(x_0 | x_1)
        + (T - 1) [log p_theta(x_{t-1} | x_t) - log q(x_{t-1} | x_t, x_0)] + [log U(t) - log U(t)],

    the last bracket 0, as model and guide give t the same distribution. Each bracket depends on the draws of one
    term of L only, drawn from that term's own marginal of q(x_{1:T} | x_0) (q(x_T | x_0); q(x_1 | x_0);
    q(x_t | x_0) q(x_{t-1} | x_t, x_0), the pair marginal), so its expectation is that term's; and
    E_t[(T - 1) f(t)] = sum_{t=2}^T f(t) for t uniform on T - 1 values. Independent draws of x_T, x_1 and x_t change
    the variance, not the expectation. ``inference.ELBO(kl="analytic")`` replaces each sampled log-ratio by
    -KL in closed form, the Rao-Blackwellised terms Ho et al. use: the same expectation with less variance.
    At T = 1 the program has no sites t, x_t, x_prev.

    ``loss="simple"`` fits Ho et al.'s L_simple = E_{t, x_0, eps} ||eps - eps_theta(x_t, t)||^2 instead, t ~ U{1..T}:
    the model scores x_0 under N(xhat_0, (1 - abar_t) / abar_t I), xhat_0 = (x_t - sqrt(1 - abar_t) eps_theta) /
    sqrt(abar_t), which is what x_0 = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t) is when eps ~ N(eps_theta, I), so that
    -log p(x_0) = ||eps - eps_theta||^2 / 2 plus a constant of t. It weighs the terms of L afresh and is no longer a
    bound on log p(x); :meth:`log_prob` still answers with L.

    Arguments:
        x_dim: D.
        steps: T, the number of diffusion steps.
        schedule: the forward variances beta_t, ``"linear"`` or ``"cosine"`` (see
            :class:`~ppgen.models.noise_schedule.NoiseSchedule`).
        hidden: widths of eps_theta's hidden layers.
        embedding: the (even) size of the sinusoidal embedding of t.
        variance: sigma_t^2, ``"beta"`` or ``"posterior"`` (beta~_t).
        loss: ``"elbo"`` or ``"simple"`` (with ``terms="sampled"`` only).
        terms: ``"sampled"`` (one t per point) or ``"all"`` (the chain of T steps).

    References:
        Deep Unsupervised Learning using Nonequilibrium Thermodynamics (Sohl-Dickstein et al., 2015).
        https://arxiv.org/abs/1503.03585
        Denoising Diffusion Probabilistic Models (Ho, Jain and Abbeel, 2020). https://arxiv.org/abs/2006.11239
        Denoising Diffusion Implicit Models (Song, Meng and Ermon, 2021). https://arxiv.org/abs/2010.02502
    """

    #: :meth:`log_prob` is the variational bound L(x), not log p(x): ppgen answers ``fit.log_prob`` with it but
    #: does not treat it as exact (maximum likelihood refuses the model).
    log_prob_is_bound = True

    def __init__(self, *, x_dim: int, steps: int = 1000, schedule: str = "linear", hidden: Sequence[int] = (128, 128),
                 embedding: int = 32, variance: str = "beta", loss: str = "elbo", terms: str = "sampled") -> None:
        super().__init__()
        self.x_dim = check_positive_int(x_dim, "x_dim")
        self.noise = NoiseSchedule(steps, schedule)
        hidden = check_widths(hidden, "hidden")
        self.embedding = check_positive_int(embedding, "embedding")
        if self.embedding % 2:
            raise ValueError(f"embedding must be even (a sine and a cosine per frequency), got {embedding}")
        self.variance = check_choice(variance, VARIANCES, "variance")
        self.loss = check_choice(loss, LOSSES, "loss")
        self.terms = check_choice(terms, TERMS, "terms")
        if loss == "simple" and terms == "all":
            raise ValueError("loss='simple' reweighs the sampled terms of the bound: use it with terms='sampled'")
        self.epsilon = mlp((self.x_dim + self.embedding, *hidden, self.x_dim))

    @property
    def steps(self) -> int:
        """T."""
        return self.noise.steps

    def predicted_noise(self, xt: Tensor, t: Tensor) -> Tensor:
        """eps_theta(x_t, t) for x_t Tensor[..., D] and integer t Tensor[...]."""
        half = self.embedding // 2
        frequency = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=xt.dtype, device=xt.device) / half)
        phase = t.to(xt.dtype).unsqueeze(-1) * frequency
        features = torch.cat([xt, phase.sin(), phase.cos()], -1)
        return self.epsilon(features)

    def reverse(self, xt: Tensor, t: Tensor) -> dist.Distribution:
        """p_theta(x_{t-1} | x_t), a Normal with event shape [D]."""
        table = self.noise.at(xt)
        beta, abar = table["beta"][t].unsqueeze(-1), table["abar"][t].unsqueeze(-1)
        loc = (xt - beta / (1 - abar).sqrt() * self.predicted_noise(xt, t)) / (1 - beta).sqrt()
        variance = beta
        if self.variance == "posterior":
            variance = torch.where(t.unsqueeze(-1) == 1, beta, table["posterior_variance"][t].unsqueeze(-1))
        return dist.Normal(loc, variance.sqrt().expand_as(loc)).to_event(1)

    def model(self, x: Tensor) -> None:
        """The reverse process as ppgen fits it: the sampled-t program, its L_simple form, or the chain."""
        if self.terms == "all":
            return self.chain_model(x)
        standard = dist.Normal(x.new_zeros(self.x_dim), x.new_ones(self.x_dim)).to_event(1)
        with pyro.plate(DATA_PLATE, x.shape[0]):
            if self.loss == "simple":
                t = pyro.sample("t", self._uniform(x, self.steps)) + 1
                with poutine.mask(mask=False):
                    xt = pyro.sample("x_t", standard)
                abar = self.noise.at(xt)["abar"][t].unsqueeze(-1)
                denoised = (xt - (1 - abar).sqrt() * self.predicted_noise(xt, t)) / abar.sqrt()
                pyro.sample("x", dist.Normal(denoised, ((1 - abar) / abar).sqrt()).to_event(1), obs=x)
                return None
            pyro.sample("x_T", standard)
            with poutine.mask(mask=False):
                x1 = pyro.sample("x_1", standard)
            pyro.sample("x", self.reverse(x1, _step(x1, 1)), obs=x)
            if self.steps > 1:
                t = pyro.sample("t", self._uniform(x, self.steps - 1)) + 2
                with poutine.mask(mask=False):
                    xt = pyro.sample("x_t", standard)
                with poutine.scale(scale=float(self.steps - 1)):
                    pyro.sample("x_prev", self.reverse(xt, t))
        return None

    def guide(self, x: Tensor) -> None:
        """The forward process, drawn at the sites of :meth:`model`."""
        if self.terms == "all":
            return self.chain_guide(x)
        with pyro.plate(DATA_PLATE, x.shape[0]):
            if self.loss == "simple":
                t = pyro.sample("t", self._uniform(x, self.steps)) + 1
                with poutine.mask(mask=False):
                    pyro.sample("x_t", dist.Normal(*self.noise.marginal(x, t)).to_event(1))
                return None
            pyro.sample("x_T", dist.Normal(*self.noise.marginal(x, _step(x, self.steps))).to_event(1))
            with poutine.mask(mask=False):
                pyro.sample("x_1", dist.Normal(*self.noise.marginal(x, _step(x, 1))).to_event(1))
            if self.steps > 1:
                t = pyro.sample("t", self._uniform(x, self.steps - 1)) + 2
                with poutine.mask(mask=False):
                    xt = pyro.sample("x_t", dist.Normal(*self.noise.marginal(x, t)).to_event(1))
                with poutine.scale(scale=float(self.steps - 1)):
                    pyro.sample("x_prev", dist.Normal(*self.noise.posterior(x, xt, t)).to_event(1))
        return None

    def chain_model(self, x: Tensor) -> None:
        """The reverse process as written, T sites per point: x_T ~ N(0, I), x_{t-1} ~ p_theta(x_{t-1} | x_t) for
        t = T..2 (sites ``"x_{t-1}"``), and x ~ p_theta(x_0 | x_1) observed."""
        with pyro.plate(DATA_PLATE, x.shape[0]):
            xt = pyro.sample(f"x_{self.steps}", dist.Normal(x.new_zeros(self.x_dim), 1.0).to_event(1))
            for t in range(self.steps, 1, -1):
                xt = pyro.sample(f"x_{t - 1}", self.reverse(xt, _step(xt, t)))
            pyro.sample("x", self.reverse(xt, _step(xt, 1)), obs=x)

    def chain_guide(self, x: Tensor) -> None:
        """The forward process q(x_{1:T} | x_0) = q(x_T | x_0) prod_{t=2}^T q(x_{t-1} | x_t, x_0), drawn from t = T
        down, under the sites of :meth:`chain_model`."""
        with pyro.plate(DATA_PLATE, x.shape[0]):
            xt = pyro.sample(f"x_{self.steps}", dist.Normal(*self.noise.marginal(x, _step(x, self.steps))).to_event(1))
            for t in range(self.steps, 1, -1):
                xt = pyro.sample(f"x_{t - 1}", dist.Normal(*self.noise.posterior(x, xt, _step(xt, t))).to_event(1))

    def log_prob(self, x: Tensor) -> Tensor:
        """The variational bound L(x_0) <= log p_theta(x_0), Tensor[N], a lower bound and not log p(x_0):

            L = -KL(q(x_T | x_0) || N(0, I)) + E_q[log p_theta(x_0 | x_1)]
                - sum_{t=2}^T E_q(x_t | x_0)[KL(q(x_{t-1} | x_t, x_0) || p_theta(x_{t-1} | x_t))],

        every t in the sum (T network passes per point), each KL in closed form and each expectation over x_t
        (and x_1) estimated with one draw: an unbiased estimate of L whatever T. On data dequantised on a grid of
        spacing delta (:func:`ppgen.datasets.dequantize.dequantize`, ``ppgen fit --dequantize``), L + D log delta
        (:func:`~ppgen.datasets.dequantize.discrete_log_likelihood`) is a lower bound on the discrete log P(x), and
        -(L + D log delta) / (D log 2) an upper bound on its bits per dimension.
        """
        n, steps = x.shape[0], self.steps
        bound = -kl_divergence(dist.Normal(*self.noise.marginal(x, _step(x, steps))),
                               dist.Normal(torch.zeros_like(x), 1.0)).sum(-1)
        x1 = torch.normal(*self.noise.marginal(x, _step(x, 1)))
        bound = bound + self.reverse(x1, _step(x1, 1)).log_prob(x)
        later = torch.arange(2, steps + 1, device=x.device)
        for ts in later.split(max(1, PAIRS_PER_PASS // max(n, 1))):
            t = ts.unsqueeze(-1).expand(len(ts), n)
            xt = torch.normal(*self.noise.marginal(x, t))
            q = dist.Normal(*self.noise.posterior(x, xt, t)).to_event(1)
            bound = bound - kl_divergence(q, self.reverse(xt, t)).sum(0)
        return bound

    def sample(self, n: int, method: str = "ancestral", steps: int | None = None, eta: float = 0.0) -> Tensor:
        """n draws x_0, Tensor[n, D]: ``fit.sample(n, method=..., steps=..., eta=...)`` calls this sampler.

        ``method="ancestral"`` runs :meth:`chain_model` forward with x released, T reverse steps through the model
        as written; ``method="ddim"`` draws x_T ~ N(0, I) and maps it by :meth:`ddim` in ``steps`` steps (default T),
        deterministically where ``eta=0``.

        Raises:
            ValueError: an unknown ``method``, ``steps`` or ``eta`` given to the ancestral sampler, ``steps`` not in
                1..T, or ``eta`` negative.
        """
        n = check_positive_int(n, "n")
        method = check_choice(method, SAMPLERS, "method")
        like = next(self.parameters())
        if method == "ancestral":
            if steps is not None or eta != 0.0:
                raise ValueError("steps and eta choose the DDIM sampler's path: pass them with method='ddim'; the "
                                 "ancestral sampler takes all T steps of the model")
            placeholder = like.new_zeros(n, self.x_dim)
            return poutine.trace(poutine.uncondition(self.chain_model)).get_trace(placeholder).nodes["x"]["value"]
        steps, eta = self._ddim_path(steps, eta)
        return self.ddim(torch.randn(n, self.x_dim, dtype=like.dtype, device=like.device), steps=steps, eta=eta)

    def ddim(self, x_T: Tensor, steps: int | None = None, eta: float = 0.0) -> Tensor:
        """x_0 from x_T by the DDIM update on the steps tau_S > ... > tau_1 spread evenly over T..1 (S = ``steps``,
        default T), tau_0 = 0:

            xhat_0 = (x_tau - sqrt(1 - abar_tau) eps_theta) / sqrt(abar_tau),
            x_tau' = sqrt(abar_tau') xhat_0 + sqrt(1 - abar_tau' - s^2) eps_theta + s z,
            s = eta sqrt((1 - abar_tau') / (1 - abar_tau)) sqrt(1 - abar_tau / abar_tau'),

        for each step tau to the next tau' with z ~ N(0, I): a deterministic map of x_T at ``eta=0``; at ``eta=1``
        with S = T each step but the last draws from N(mu~_t(xhat_0, x_t), beta~_t I), the reverse step of
        ``variance="posterior"`` (Song et al., eq. 16). The last step returns xhat_0, without noise.
        """
        steps, eta = self._ddim_path(steps, eta)
        abar = self.noise.at(x_T)["abar"]
        path = torch.linspace(self.steps, 1, steps, dtype=torch.float64).round().long().tolist() + [0]
        x = x_T
        for t, before in zip(path[:-1], path[1:]):
            eps = self.predicted_noise(x, _step(x, t))
            denoised = (x - (1 - abar[t]).sqrt() * eps) / abar[t].sqrt()
            s = eta * ((1 - abar[before]) / (1 - abar[t]) * (1 - abar[t] / abar[before])).sqrt()
            x = abar[before].sqrt() * denoised + (1 - abar[before] - s**2).clamp(min=0).sqrt() * eps
            if eta > 0 and before > 0:
                x = x + s * torch.randn_like(x)
        return x

    def _ddim_path(self, steps: int | None, eta: float) -> tuple[int, float]:
        steps = self.steps if steps is None else check_positive_int(steps, "steps")
        if steps > self.steps:
            raise ValueError(f"steps: DDIM takes at most the model's T = {self.steps} steps, got {steps}")
        return steps, check_non_negative_float(eta, "eta")

    def _uniform(self, x: Tensor, count: int) -> UniformStep:
        """The uniform distribution on ``count`` values 0..count-1, which model and guide both give t."""
        return UniformStep(count, x)


class UniformStep(TorchDistribution):
    """The uniform distribution of the step t on C values 0..C-1, drawn and scored at a cost independent of C (a
    ``Categorical``'s sampler and log-density would each pass over the C values for every point).

    Its draws count as reparameterised: the law of t has no parameters, so that a draw's pathwise gradient, zero, is
    the exact one, and a score-function term E[f grad log q(t)] would be zero too; the backends that differentiate
    through draws (``ELBO(kl="analytic")``) take it as they take a Normal's. KL(U || U) = 0 is registered.

    Arguments:
        count: C.
        like: a tensor whose dtype and device the log-densities take.
    """

    arg_constraints: dict = {}
    has_rsample = True

    def __init__(self, count: int, like: Tensor, batch_shape: torch.Size = torch.Size(),
                 validate_args: bool | None = None) -> None:
        self.count, self.like = count, like.new_zeros(())
        super().__init__(torch.Size(batch_shape), torch.Size(), validate_args=validate_args)

    @constraints.dependent_property(is_discrete=True, event_dim=0)
    def support(self) -> constraints.Constraint:
        return constraints.integer_interval(0, self.count - 1)

    def expand(self, batch_shape: torch.Size, _instance: UniformStep | None = None) -> UniformStep:
        return UniformStep(self.count, self.like, torch.Size(batch_shape))

    def sample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        return torch.randint(self.count, self._extended_shape(sample_shape), device=self.like.device)

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        return self.sample(sample_shape)

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return self.like.new_full(torch.broadcast_shapes(value.shape, self.batch_shape), -math.log(self.count))

    @property
    def mean(self) -> Tensor:
        """(C - 1) / 2."""
        return self.like.new_full(self.batch_shape, (self.count - 1) / 2)

    @property
    def variance(self) -> Tensor:
        """(C^2 - 1) / 12."""
        return self.like.new_full(self.batch_shape, (self.count**2 - 1) / 12)


@register_kl(UniformStep, UniformStep)
def _same_uniform(p: UniformStep, q: UniformStep) -> Tensor:
    """KL(U_C || U_C') = log(C' / C) where C <= C' (p's support inside q's), else infinite."""
    shape = torch.broadcast_shapes(p.batch_shape, q.batch_shape)
    return p.like.new_full(shape, math.log(q.count / p.count) if p.count <= q.count else math.inf)


def _step(like: Tensor, t: int) -> Tensor:
    """The integer step t for every point of ``like``, Tensor[...] of like's batch shape."""
    return torch.full(like.shape[:-1], t, dtype=torch.long, device=like.device)
