"""Pyro is the reference: real Pyro programs evaluated by ppgen and by Pyro's own estimators.

For each model/guide pair of :mod:`pyro_programs` (adapted from Pyro's tests, examples and tutorials):

- ppgen's one-particle ELBO, ``ppgen.log_weights(program, data, k=1).sum()``, equals Pyro's ``-Trace_ELBO().loss``
  or ``-TraceEnum_ELBO(max_plate_nesting=...).loss`` under the same seed (identical draws, float64), or, where the
  draws cannot be made identical, their Monte Carlo means agree within a few standard errors measured here; for a
  guide that enumerates (no importance weights exist) ppgen's ELBO is N times the first loss of ``ppgen.fit``;
- where every latent is local, ppgen's IWAE_K summed over points equals Pyro's
  ``RenyiELBO(alpha=0, num_particles=K)``, which is a per-point bound summed over points;
- a program Pyro refuses, ppgen refuses too, with a ValueError or TypeError naming a site;
- every enumeration with masks, scales or obs_mask is checked per point against a brute-force sum over every
  discrete value, itself checked against Pyro's TraceEnum_ELBO.

The slow tests fit Pyro's M2 semi-supervised VAE, a Bayesian linear regression and the GMM tutorial through
``ppgen.fit`` and compare them with Pyro's own SVI loop and with the exact conjugate posterior.
"""

from __future__ import annotations

import itertools
import math
import re
import warnings

import pyro
import pyro.poutine as poutine
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import RenyiELBO, Trace_ELBO, TraceEnum_ELBO
from pyro.infer.autoguide import AutoDelta, AutoMultivariateNormal, AutoNormal
from torch import Tensor

import ppgen
from ppgen import inference
from pyro_programs import CASES as PROGRAMS
from pyro_programs import common
from pyro_programs import discrete as enum
from pyro_programs import global_latents as glob
from pyro_programs import guide_side as gside

CASES = {case.name: case for case in PROGRAMS}
EVALUATED = [name for name, case in CASES.items() if case.refused is None]
REFUSED = [name for name, case in CASES.items() if case.refused is not None]
IWAE = [name for name in EVALUATED if CASES[name].iwae]
MC_DRAWS = 200


pytestmark = pytest.mark.usefixtures("float64")


def as_data(data: tuple[Tensor, ...]) -> Tensor | tuple[Tensor, ...]:
    """One input of rows [N, D, ...] alone as a tensor (the usual call); several inputs, or one of scalars [N] (the
    GMM tutorial's data), as the tuple that ppgen batches together and passes positionally."""
    return data[0] if len(data) == 1 and data[0].dim() > 1 else data


def pyro_elbo(case: common.Case, seed: int) -> float:
    """Pyro's ELBO of the whole data set, -loss, from a fresh program and param store under ``seed``."""
    pyro.clear_param_store()
    _, model, guide = case.make()
    data = case.data()
    elbo = TraceEnum_ELBO(max_plate_nesting=case.max_plate_nesting) if case.enum else Trace_ELBO()
    set_up(guide, data)
    pyro.set_rng_seed(seed)
    return -elbo.loss(model, guide, *data)


def set_up(guide, data: tuple[Tensor, ...]) -> None:
    """Run the guide once, unseen: an AutoGuide draws from the model on its first call to learn its sites, which
    ppgen's tracing does before the seeded draws (and gives the RNG back), so Pyro's draws must start after it too."""
    with poutine.block():
        guide(*data)


def ppgen_elbo(case: common.Case, seed: int, k: int = 1) -> Tensor:
    """ppgen's [K, N] log weights of a fresh program under ``seed``."""
    pyro.clear_param_store()
    program, _, _ = case.make()
    data = case.data()
    pyro.set_rng_seed(seed)
    with warnings.catch_warnings():
        if not case.broadcasts:  # ppgen may say once that it falls back to sequential particles
            warnings.simplefilter("ignore", UserWarning)
        log_w = ppgen.log_weights(program, as_data(data), k=k)
    assert log_w.shape == (k, data[0].shape[0])
    return log_w


def ppgen_total(case: common.Case, seed: int) -> float:
    """ppgen's full-data ELBO, one draw: the K=1 log weights summed over points, or, for a guide that enumerates
    (importance weights need one draw of every latent), N times the first loss of a full-batch ``ppgen.fit``."""
    if not case.guide_enumerates:
        return ppgen_elbo(case, seed).sum().item()
    pyro.clear_param_store()
    program, _, _ = case.make()
    data = case.data()
    n = data[0].shape[0]
    fit = ppgen.fit(program, as_data(data), inference=inference.ELBO(), epochs=1, batch_size=n, seed=seed,
                    progress=False)
    return -fit.history[0] * n


def pyro_iwae(case: common.Case, seed: int) -> float:
    pyro.clear_param_store()
    _, model, guide = case.make()
    data = case.data()
    elbo = RenyiELBO(alpha=0.0, num_particles=case.iwae, vectorize_particles=case.broadcasts,
                     max_plate_nesting=case.max_plate_nesting)
    set_up(guide, data)
    pyro.set_rng_seed(seed)
    return -elbo.loss(model, guide, *data)


def ppgen_iwae(case: common.Case, seed: int) -> float:
    log_w = ppgen_elbo(case, seed, k=case.iwae)
    return (log_w.logsumexp(0) - math.log(case.iwae)).sum().item()


def monte_carlo(draw, seeds: range) -> tuple[float, float]:
    """The mean of draws under each seed and its standard error."""
    values = torch.tensor([torch.as_tensor(draw(seed)).detach().item() for seed in seeds])
    return values.mean().item(), values.std().item() / math.sqrt(len(values))


def agree(exact: bool, ours, theirs, draws: int = MC_DRAWS) -> None:
    """ours(seed) equals theirs(seed) where the draws are identical (``exact``); otherwise their means over
    independent seeds agree within four standard errors."""
    if exact:
        expected = theirs(0)
        assert math.isfinite(expected)
        assert ours(0) == pytest.approx(expected, rel=1e-5, abs=1e-8)
    else:
        mine, my_se = monte_carlo(ours, range(draws))
        reference, reference_se = monte_carlo(theirs, range(draws, 2 * draws))
        assert abs(mine - reference) < 4 * math.hypot(my_se, reference_se) + 1e-9, (mine, reference, my_se,
                                                                                     reference_se)


def names_a_site(error: Exception, sites: tuple[str, ...]) -> bool:
    return any(re.search(f"['\"]{site}['\"]", str(error)) for site in sites)


@pytest.mark.parametrize("name", EVALUATED)
def test_elbo_equals_pyro(name):
    case = CASES[name]
    draws = MC_DRAWS // 8 if case.guide_enumerates else MC_DRAWS  # a fit per draw
    try:
        agree(case.exact, lambda s: ppgen_total(case, s), lambda s: pyro_elbo(case, s), draws)
    except (ValueError, TypeError) as error:
        if not (case.may_refuse and names_a_site(error, case.sites)):
            raise


@pytest.mark.parametrize("name", [name for name in EVALUATED if CASES[name].guide_enumerates])
def test_log_weights_of_an_enumerating_guide_agree_or_name_its_site(name):
    """Importance weights need one draw of every latent: log_weights may refuse a guide that enumerates, naming the
    site; where it evaluates it, it agrees with Pyro's TraceEnum_ELBO."""
    case = CASES[name]
    try:
        ppgen_elbo(case, 0)
    except (ValueError, TypeError) as error:
        assert names_a_site(error, case.sites), str(error)
        return
    agree(case.exact, lambda s: ppgen_elbo(case, s).sum(), lambda s: pyro_elbo(case, s))


@pytest.mark.parametrize("name", IWAE)
def test_iwae_equals_pyro_renyi_alpha_zero(name):
    """A program that does not broadcast over particles is evaluated sequentially (Monte Carlo means compared), or
    refused with a message that names the offending site and says to broadcast."""
    case = CASES[name]
    try:
        agree(case.exact and case.broadcasts, lambda s: ppgen_iwae(case, s), lambda s: pyro_iwae(case, s),
              draws=MC_DRAWS if case.broadcasts else MC_DRAWS // 4)  # sequential particles are slow
    except (ValueError, TypeError) as error:
        sequential_refused = not case.broadcasts and names_a_site(error, ("obs",)) and "broadcast" in str(error)
        if not (sequential_refused or (case.may_refuse and names_a_site(error, case.sites))):
            raise


@pytest.mark.parametrize("name", REFUSED)
def test_refused_as_pyro_refuses(name):
    case = CASES[name]
    with pytest.raises(Exception, match=case.refused):
        pyro_elbo(case, seed=0)
    with pytest.raises((ValueError, TypeError)) as error:
        ppgen_elbo(case, seed=0)
    assert names_a_site(error.value, case.sites), str(error.value)


def test_guide_discrete_site_refused_by_iwae():
    """A discrete site the guide draws cannot be reparameterised: IWAE names it and the way out."""
    (x,) = common.reals()
    with pytest.raises((ValueError, TypeError), match="'c'"):
        ppgen.fit((gside.guide_enum_model, gside.guide_enum_guide), (x,), inference=inference.IWAE(k=2), epochs=1,
                  progress=False)


# ------------------------------------------------------------------------------ brute-force sums over discrete values
def normal(loc, scale, x) -> Tensor:
    return dist.Normal(torch.as_tensor(loc), torch.as_tensor(scale)).log_prob(torch.as_tensor(x))


def check_brute_force(model, guide, data, truth: Tensor, max_plate_nesting: int = 1) -> None:
    """The brute-force per-point values are Pyro's (checked on their sum) and ppgen's (point by point)."""
    pyro.set_rng_seed(0)
    expected = -TraceEnum_ELBO(max_plate_nesting=max_plate_nesting).loss(model, guide, *data)
    assert expected == pytest.approx(truth.sum().item(), abs=1e-9)
    pyro.clear_param_store()
    log_w = ppgen.log_weights((model, guide), as_data(data), k=1)
    torch.testing.assert_close(log_w, truth[None], rtol=0, atol=1e-6)


MIX_WEIGHTS = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)
MIX_LOCS = torch.tensor([-2.0, 0.0, 3.0], dtype=torch.float64)


def mixture_log_lik(x: float) -> Tensor:
    return torch.stack([MIX_WEIGHTS[c].log() + normal(MIX_LOCS[c], 1.0, x) for c in range(3)]).logsumexp(0)


def test_brute_force_mask_whole_point():
    """poutine.mask over c and x: a masked point adds nothing (not log 3)."""
    x, mask = common.with_mask(common.reals)()
    truth = torch.stack([mixture_log_lik(x[n]) if mask[n] else torch.tensor(0.0) for n in range(common.N)])
    check_brute_force(enum.masked_model, common.empty_guide, (x, mask), truth)


def test_brute_force_mask_observation_only():
    """poutine.mask on x only: the prior of c still sums to one, the masked point adds nothing."""
    x, mask = common.with_mask(common.reals)()
    truth = torch.stack([mixture_log_lik(x[n]) if mask[n] else torch.tensor(0.0) for n in range(common.N)])
    check_brute_force(enum.masked_obs_model, common.empty_guide, (x, mask), truth)


def test_brute_force_scale_outside_the_sum():
    """poutine.scale(2.5) multiplies log sum_c p(c) p(x|c), not the terms inside the sum."""
    (x,) = common.reals()
    truth = torch.stack([2.5 * mixture_log_lik(x[n]) for n in range(common.N)])
    check_brute_force(enum.scaled_model, common.empty_guide, (x,), truth)


def test_brute_force_obs_mask_label_summed_out():
    """obs_mask: a known label is observed, a missing one summed out exactly (z from a Delta guide at a * x)."""
    x, y, mask = common.labelled()
    a = 0.3
    truth = []
    for n in range(common.N):
        z = a * x[n]
        terms = [MIX_WEIGHTS[c].log() + normal(z + enum.LABEL_LOCS[c], 1.0, x[n]) for c in range(3)]
        labelled = terms[int(y[n])]
        truth.append(normal(0.0, 1.0, z) + (labelled if mask[n] else torch.stack(terms).logsumexp(0)))
    check_brute_force(enum.obs_mask_model, enum.obs_mask_guide, (x, y, mask), torch.stack(truth))


def test_brute_force_guide_enumerates_masked_label():
    """M2's guide q(y|x) enumerated with the known labels masked out: E_q(y|x)[log p - log q] where y is missing,
    log p(x, y, z) - log q(z|x, y) where it is known (z from a Delta at 0.1 y)."""
    x, y, mask = common.labelled()
    logits = torch.tensor([0.1, -0.2, 0.3])
    truth = []
    for n in range(common.N):
        def joint(c: int) -> Tensor:
            z = 0.1 * c
            return normal(0.0, 1.0, z) + MIX_WEIGHTS[c].log() + normal(z + enum.LABEL_LOCS[c], 1.0, x[n])
        if mask[n]:
            truth.append(joint(int(y[n])))
        else:
            q = torch.softmax(logits + 0.5 * x[n], -1)
            truth.append(sum(q[c] * (joint(c) - q[c].log()) for c in range(3)))
    truth = torch.stack(truth).sum()
    case = CASES["guide_enum_obs_mask"]  # these programs and data: no importance weights, the ELBO of a fit's loss
    assert pyro_elbo(case, seed=0) == pytest.approx(truth.item(), abs=1e-9)
    assert ppgen_total(case, seed=0) == pytest.approx(truth.item(), abs=1e-6)


def test_brute_force_guide_and_model_both_enumerate():
    """b enumerated by the guide, c by the model: E_q(b|x)[log p(b) + log sum_c p(c|b) p(x|b, c) - log q(b|x)] per
    point, summed, is Pyro's TraceEnum_ELBO and ppgen's (the model's sum taken left of the guide's dimension, then
    weighed by q), as a full-batch fit's first loss gives it."""
    def model(x):
        p = pyro.param("p", torch.tensor(0.25))
        with pyro.plate("data", x.shape[0]):
            b = pyro.sample("b", dist.Bernoulli(p))
            c = pyro.sample("c", dist.Bernoulli(p + b / 2), infer=common.ENUM)
            pyro.sample("x", dist.Normal(b + 2 * c, 1.0), obs=x)

    def guide(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("b", dist.Bernoulli(torch.sigmoid(x)), infer=common.ENUM)

    (x,) = common.reals()
    truth = torch.tensor(0.0)
    for n in range(common.N):
        for b in (0, 1):
            q = torch.sigmoid(x[n]) if b else 1 - torch.sigmoid(x[n])
            inner = torch.stack([dist.Bernoulli(0.25 + b / 2).log_prob(torch.tensor(float(c))) + normal(b + 2 * c, 1.0,
                                                                                                      x[n])
                                 for c in (0, 1)]).logsumexp(0)
            truth = truth + q * (math.log(0.25 if b else 0.75) + inner - q.log())
    pyro.clear_param_store()
    assert -TraceEnum_ELBO(max_plate_nesting=1).loss(model, guide, x) == pytest.approx(truth.item(), abs=1e-9)
    pyro.clear_param_store()
    fit = ppgen.fit((model, guide), x, inference=inference.ELBO(), epochs=1, batch_size=common.N, lr=1e-12,
                    progress=False)
    assert -fit.history[0] * common.N == pytest.approx(truth.item(), abs=1e-9)


def test_brute_force_hmm_sequences_of_different_lengths():
    """hmm.py: log p(y_1..y_L) by summing over every hidden path of each sequence's own length."""
    sequences, lengths = enum.hmm_data()
    probs_x = torch.tensor([[0.8, 0.2], [0.3, 0.7]])
    probs_y = torch.tensor([[0.1, 0.6], [0.7, 0.3]])
    truth = []
    for n in range(common.N):
        paths = []
        for path in itertools.product(range(2), repeat=int(lengths[n])):
            log_p, previous = torch.tensor(0.0), 0
            for t, state in enumerate(path):
                log_p = log_p + probs_x[previous, state].log()
                log_p = log_p + dist.Bernoulli(probs_y[state]).log_prob(sequences[n, t]).sum()
                previous = state
            paths.append(log_p)
        truth.append(torch.stack(paths).logsumexp(0))
    check_brute_force(enum.hmm_model, common.empty_guide, (sequences, lengths), torch.stack(truth), max_plate_nesting=2)


def test_brute_force_per_pixel_enumeration_under_a_point_latent():
    """c per point, d per pixel given c: log sum_c p(c) prod_pixels sum_d p(d|c) p(x|d)."""
    (x,) = common.matrix()
    q = torch.tensor([0.2, 0.7])
    truth = []
    for n in range(common.N):
        per_c = []
        for c in range(2):
            pixels = [torch.stack([dist.Bernoulli(q[c]).log_prob(torch.tensor(float(d))) + normal(2.0 * d, 1.0, x[n, i])
                                   for d in range(2)]).logsumexp(0) for i in range(common.D)]
            per_c.append(torch.tensor([0.6, 0.4])[c].log() + sum(pixels))
        truth.append(torch.stack(per_c).logsumexp(0))
    check_brute_force(enum.point_pixel_model, common.empty_guide, (x,), torch.stack(truth), max_plate_nesting=2)


# --------------------------------------------------------------------------------- fits: ppgen.fit against Pyro's SVI
def learnt(fit, suffix: str) -> Tensor:
    """The one learnt parameter whose name (the program's own, e.g. ``AutoNormal.locs.w``) ends with ``suffix``."""
    found = [value for name, value in fit.params.items() if name.endswith(suffix)]
    assert len(found) == 1, (suffix, sorted(fit.params))
    return found[0].detach()


def pyro_svi(model, guide, data, steps: int, optim, elbo, batch_size: int | None = None, seed: int = 0) -> None:
    """Pyro's own loop: SVI steps over shuffled mini-batches (every point once per epoch), the global param store."""
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    svi = pyro.infer.SVI(model, guide, optim, loss=elbo)
    n = data[0].shape[0]
    batch_size = batch_size or n
    for _ in range(steps):
        for rows in torch.randperm(n).split(batch_size):
            svi.step(*(tensor[rows] for tensor in data))


@pytest.mark.slow
@pytest.mark.parametrize("guide_class", [AutoNormal, AutoMultivariateNormal], ids=["AutoNormal", "AutoMVN"])
def test_bayesian_regression_autoguide_matches_conjugate_posterior(guide_class):
    """Mean-field VI on a Gaussian posterior finds its mean and the conditional spreads 1/sqrt(Lambda_ii);
    a full-covariance guide finds the posterior itself."""
    data, mean, covariance = glob.conjugate_regression()
    guide = guide_class(glob.conjugate_model)
    fit = ppgen.fit((glob.conjugate_model, guide), data, inference=inference.ELBO(num_particles=32), epochs=1500,
                    batch_size=60, lr=0.01, seed=0, progress=False)
    if guide_class is AutoNormal:
        loc = torch.cat([learnt(fit, "locs.w"), learnt(fit, "locs.b").reshape(1)])
        std = torch.cat([learnt(fit, "scales.w"), learnt(fit, "scales.b").reshape(1)])
        expected_std = torch.linalg.inv(covariance).diagonal().rsqrt()
    else:
        loc = learnt(fit, ".loc")
        scale_tril = learnt(fit, ".scale")[:, None] * learnt(fit, ".scale_tril")
        std = (scale_tril @ scale_tril.T).diagonal().sqrt()
        expected_std = covariance.diagonal().sqrt()
    torch.testing.assert_close(loc, mean, rtol=0, atol=0.2 * expected_std.min().item())
    torch.testing.assert_close(std, expected_std, rtol=0.1, atol=0)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:the program does not broadcast:UserWarning")
def test_gmm_tutorial_autodelta_follows_pyro_svi():
    """The gmm tutorial's MAP fit: the loss is deterministic (AutoDelta, assignments summed out), so ppgen's Adam
    steps on the mean ELBO per point retrace Pyro's steps on the summed ELBO."""
    data = glob.GMM_DATA.clone()
    optim = {"lr": 0.1, "betas": [0.8, 0.99]}
    (program, model, guide) = glob.gmm_guide(AutoDelta)()
    pyro_svi(model, guide, (data,), 200, pyro.optim.Adam(optim), TraceEnum_ELBO(max_plate_nesting=1))
    store = pyro.get_param_store()
    expected = {name: store[f"AutoDelta.{name}"].detach().clone() for name in ("weights", "scale", "locs")}
    fit = ppgen.fit(glob.gmm_guide(AutoDelta)()[0], (data,), inference=inference.ELBO(), epochs=200, batch_size=5,
                    optim=pyro.optim.Adam(optim), seed=0, progress=False)
    for name, value in expected.items():
        torch.testing.assert_close(learnt(fit, f"AutoDelta.{name}"), value, rtol=1e-3, atol=1e-3)
    assert expected["locs"].sort().values[0] < 1.5 < 10 < expected["locs"].sort().values[1]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:the program does not broadcast:UserWarning")
def test_gmm_tutorial_autonormal_agrees_with_pyro_svi():
    """The gmm tutorial with AutoNormal: on five points one-particle SVI ends where its last draws leave it (the
    log-scale's location spreads by about 0.2 between seeds, in Pyro's loop and in ppgen's alike), so the two loops
    are compared by their means over five seeds each, within three standard errors of the difference."""
    data = glob.GMM_DATA.clone()
    names = ("locs.scale", "scales.locs", "scales.scale")
    ours, theirs = {name: [] for name in names}, {name: [] for name in names}
    for seed in range(5):
        _, model, guide = glob.gmm_guide(AutoNormal)()
        pyro_svi(model, guide, (data,), 1000, pyro.optim.Adam({"lr": 0.05}), TraceEnum_ELBO(max_plate_nesting=1),
                 seed=seed)
        store = pyro.get_param_store()
        for name in names:
            theirs[name].append(store[f"AutoNormal.{name}"].detach().reshape(-1))
        fit = ppgen.fit(glob.gmm_guide(AutoNormal)()[0], (data,), inference=inference.ELBO(), epochs=1000,
                        batch_size=5, lr=0.05, seed=seed, progress=False)
        for name in names:
            ours[name].append(learnt(fit, f"AutoNormal.{name}").reshape(-1))
    for name in names:
        a, b = torch.stack(ours[name]), torch.stack(theirs[name])
        error = (a.var(0) / len(a) + b.var(0) / len(b)).sqrt()
        assert bool(((a.mean(0) - b.mean(0)).abs() <= 3 * error + 0.02).all()), (name, a.mean(0), b.mean(0), error)


def m2_test_elbo(module, test: tuple[Tensor, Tensor, Tensor]) -> float:
    """The test ELBO per point of a fitted M2, by Pyro's TraceEnum_ELBO (q(y|x) enumerated), 20 particles."""
    elbo = TraceEnum_ELBO(max_plate_nesting=1, num_particles=20, vectorize_particles=True)
    pyro.set_rng_seed(1)
    with torch.no_grad():
        return -elbo.loss(module.model, module.guide, *test) / test[0].shape[0]


@pytest.mark.slow
def test_m2_semi_supervised_vae_on_digits_matches_pyro_svi():
    """ss_vae_M2.py on the digits with 10% of the labels: the same network, settings and seed fitted by ppgen.fit
    and by Pyro's SVI loop with TraceEnum_ELBO; test ELBO within 0.5 nats, q(y|x) classifies above chance."""
    train, test, y_test = gside.m2_digits()
    settings = dict(epochs=30, batch_size=100, lr=1e-3)
    reference = gside.MaskedSSVAE(x_dim=64, y_dim=10, z_dim=8, hidden=64)
    pyro_svi(reference.model, reference.guide, train, settings["epochs"], pyro.optim.Adam({"lr": settings["lr"]}),
             TraceEnum_ELBO(max_plate_nesting=1), batch_size=settings["batch_size"])
    pyro_accuracy = (reference.encoder_y(test[0]).argmax(-1) == y_test).double().mean().item()

    program = gside.MaskedSSVAE(x_dim=64, y_dim=10, z_dim=8, hidden=64)
    fit = ppgen.fit(program, train, inference=inference.ELBO(), seed=0, progress=False, **settings)
    posterior = fit.encode(*test, site="y_unobserved")
    assert posterior.shape == (test[0].shape[0], 10)
    accuracy = (posterior.argmax(-1) == y_test).double().mean().item()

    ours, theirs = m2_test_elbo(fit.model, test), m2_test_elbo(reference, test)
    print(f"M2 on digits, test ELBO per point: ppgen {ours:.3f}, Pyro {theirs:.3f}; "
          f"accuracy: ppgen {accuracy:.3f}, Pyro {pyro_accuracy:.3f}")
    assert abs(ours - theirs) < 0.5
    assert accuracy > 0.1 + 0.2
