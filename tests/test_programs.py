"""Real Pyro programs: masks and scales under enumeration, guide-side enumeration, aligned inputs, global latents,
AutoGuides, data plates of any name, per-data-point parameters, programs that do not broadcast over particles.

The truths: brute-force sums over every discrete value, Pyro's own estimators on the same draws, and closed-form
posteriors of conjugate models.
"""

from __future__ import annotations

import itertools
import math
import warnings

import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import pytest
import torch
from pyro.infer import Trace_ELBO, TraceEnum_ELBO, config_enumerate
from pyro.infer import autoguide
from pyro.nn import PyroModule, PyroSample
from torch.utils.data import TensorDataset

import ppgen
from ppgen import inference
from programs import Rows, conjugate_posterior, regression, regression_data

LOCS = torch.tensor([-1.5, 0.0, 2.0], dtype=torch.float64)


pytestmark = pytest.mark.usefixtures("float64")


@pytest.fixture
def x():
    return torch.randn(7, dtype=torch.float64)


def mixture_log_likelihood(x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """log sum_c w_c N(x; mu_c, 1) per point, by a sum over the three components written out."""
    return torch.stack([weights[c].log() + dist.Normal(LOCS[c], 1.0).log_prob(x) for c in range(3)]).logsumexp(0)


def test_a_masked_point_adds_nothing_to_an_enumerated_sum(x):
    """A masked observation depends on an enumerated c: Pyro masks it inside the sum, so the point adds
    log sum_c p(c) = 0, not log C (the sum of masked, already-zero terms)."""
    mask = torch.tensor([1, 0, 1, 1, 0, 0, 1], dtype=torch.bool)
    weights = torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64)

    def model(x, mask):
        with pyro.plate("data", len(x)):
            c = pyro.sample("c", dist.Categorical(weights), infer={"enumerate": "parallel"})
            with poutine.mask(mask=mask):
                pyro.sample("x", dist.Normal(LOCS[c], 1.0), obs=x)

    ours = ppgen.log_weights(model, (x, mask))[0]
    torch.testing.assert_close(ours, torch.where(mask, mixture_log_likelihood(x, weights), 0.0), rtol=0, atol=1e-12)
    pyro_elbo = -TraceEnum_ELBO(max_plate_nesting=1).loss(model, lambda x, mask: None, x, mask)
    assert ours.sum().item() == pytest.approx(pyro_elbo, abs=1e-10)


def test_a_scale_multiplies_the_sum_after_it_not_inside(x):
    weights = torch.full((3,), 1 / 3, dtype=torch.float64)

    def model(x):
        with pyro.plate("data", len(x)), poutine.scale(scale=0.25):
            c = pyro.sample("c", dist.Categorical(weights), infer={"enumerate": "parallel"})
            pyro.sample("x", dist.Normal(LOCS[c], 1.0), obs=x)

    torch.testing.assert_close(ppgen.log_weights(model, x)[0], 0.25 * mixture_log_likelihood(x, weights),
                               rtol=0, atol=1e-12)


def test_different_scales_inside_one_enumerated_sum_are_refused_as_pyro_refuses(x):
    def model(x):
        with pyro.plate("data", len(x)):
            with poutine.scale(scale=0.5):
                c = pyro.sample("c", dist.Categorical(torch.ones(3) / 3), infer={"enumerate": "parallel"})
            pyro.sample("x", dist.Normal(LOCS[c], 1.0), obs=x)

    with pytest.raises(ValueError, match="common poutine.scale"):
        TraceEnum_ELBO(max_plate_nesting=1).loss(model, lambda x: None, x)
    with pytest.raises(ValueError, match="common poutine.scale"):
        ppgen.log_weights(model, x)


def test_labels_missing_for_some_points_are_summed_out_exactly_through_obs_mask():
    """y observed where the mask says so, enumerated where not: the brute-force truth sums y out of the
    unlabelled points only."""
    x = torch.tensor([0.3, -1.2, 2.2, 0.1, -0.4], dtype=torch.float64)
    y = torch.tensor([0, 2, 2, 1, 0])
    labelled = torch.tensor([True, False, True, False, False])
    prior = torch.tensor([0.3, 0.3, 0.4], dtype=torch.float64)

    @config_enumerate  # marks the part of y that obs_mask leaves unobserved, 'y_unobserved'
    def model(x, y, labelled):
        with pyro.plate("data", len(x)):
            c = pyro.sample("y", dist.Categorical(prior), obs=y, obs_mask=labelled)
            pyro.sample("x", dist.Normal(LOCS[c], 1.0), obs=x)

    joint = prior.log()[:, None] + dist.Normal(LOCS[:, None], 1.0).log_prob(x)   # [C, N]
    truth = torch.where(labelled, joint[y, torch.arange(5)], joint.logsumexp(0))
    torch.testing.assert_close(ppgen.log_weights(model, (x, y, labelled))[0], truth, rtol=0, atol=1e-12)
    pyro_elbo = -TraceEnum_ELBO(max_plate_nesting=1).loss(model, lambda *args: None, x, y, labelled)
    assert truth.sum().item() == pytest.approx(pyro_elbo, abs=1e-10)


def test_a_guide_that_enumerates_is_fitted_by_the_elbo_as_pyro_does_and_refused_by_importance_weights(x):
    def model(x):
        with pyro.plate("data", len(x)):
            c = pyro.sample("c", dist.Categorical(torch.ones(3, dtype=torch.float64) / 3))
            pyro.sample("x", dist.Normal(LOCS[c], 1.0), obs=x)

    @config_enumerate
    def guide(x):
        logits = pyro.param("logits", torch.zeros(3, dtype=torch.float64))
        with pyro.plate("data", len(x)):
            pyro.sample("c", dist.Categorical(logits=logits + torch.stack([x, -x, 0 * x], -1)))

    program = ppgen.program.protocol.as_module((model, guide))
    structure = ppgen.program.structure.inspect(program, x)
    assert structure.guide_enumerated == ("c",) and not structure.exact  # exact from the model alone
    loss = inference.ELBO().loss(program, structure, ppgen.program.inputs.as_batch(x))
    assert loss.item() * len(x) == pytest.approx(TraceEnum_ELBO(max_plate_nesting=1).loss(model, guide, x), abs=1e-10)
    with pytest.raises(ValueError, match=r"IWAE\(\) weights one draw of every latent.*enumerates \('c',\)"):
        ppgen.fit((model, guide), x, inference=inference.IWAE(), progress=False)
    fit = ppgen.fit((model, guide), x, epochs=30, batch_size=7, lr=0.1, progress=False)
    assert isinstance(fit.inference, inference.ELBO)  # never MLE: the model's c is not summed out by the model
    q = fit.encode(x, site="c")
    torch.testing.assert_close(q.sum(-1), torch.ones(7, dtype=torch.float64))
    with pytest.raises(ValueError, match="importance weights need one draw of every latent"):
        fit.log_prob(x)


def test_a_too_short_markov_history_raises_pyros_enumeration_error():
    """A chain whose next state depends on the last, with history 0: Pyro's site check refuses it; so does ppgen."""
    sequences = torch.randint(0, 2, (4, 5)).double()
    stay = torch.tensor([0.1, 0.8], dtype=torch.float64)

    def model(x):
        with pyro.plate("sequences", x.shape[0], dim=-1):
            state = torch.tensor(0)
            for t in pyro.markov(range(x.shape[1]), history=0):
                state = pyro.sample(f"s_{t}", dist.Bernoulli(stay[state.long()]), infer={"enumerate": "parallel"})
                pyro.sample(f"x_{t}", dist.Bernoulli(0.2 + 0.6 * state), obs=x[:, t])

    with pytest.raises(ValueError, match="Enumeration dim conflict"):
        TraceEnum_ELBO(max_plate_nesting=1).loss(model, lambda x: None, sequences)
    with pytest.raises(ValueError, match="Enumeration dim conflict"):
        ppgen.log_weights(model, sequences)


def test_an_hmm_on_sequences_of_different_lengths_equals_the_forward_algorithm():
    torch.manual_seed(1)
    lengths = torch.tensor([5, 3, 1, 4])
    x = torch.randint(0, 2, (4, 5)).double()
    transition = torch.tensor([[0.7, 0.3], [0.25, 0.75]], dtype=torch.float64)
    emission = torch.tensor([0.1, 0.85], dtype=torch.float64)

    def model(x, lengths):
        with pyro.plate("sequences", x.shape[0], dim=-1):
            state = torch.tensor(0)
            for t in pyro.markov(range(x.shape[1])):
                with poutine.mask(mask=t < lengths):
                    state = pyro.sample(f"s_{t}", dist.Categorical(transition[state]),
                                        infer={"enumerate": "parallel"})
                    pyro.sample(f"x_{t}", dist.Bernoulli(emission[state]), obs=x[:, t])

    def forward(seq: torch.Tensor, length: int) -> float:  # the forward algorithm, by hand
        alpha = transition[0].log() + dist.Bernoulli(emission).log_prob(seq[0])
        for t in range(1, length):
            alpha = (alpha[:, None] + transition.log()).logsumexp(0) + dist.Bernoulli(emission).log_prob(seq[t])
        return alpha.logsumexp(0).item()

    ours = ppgen.log_weights(model, (x, lengths))[0]
    truth = torch.tensor([forward(x[i], int(lengths[i])) for i in range(4)], dtype=torch.float64)
    torch.testing.assert_close(ours, truth, rtol=0, atol=1e-12)


def test_a_global_latent_counts_once_for_the_data_set_as_in_pyros_elbo():
    x, y = regression_data()
    guide = autoguide.AutoNormal(regression)
    guide(x, y)  # creates its parameters
    pyro.set_rng_seed(5)
    ours = ppgen.log_weights((regression, guide), (x, y))
    pyro.set_rng_seed(5)
    theirs = -Trace_ELBO().loss(regression, guide, x, y)
    assert ours.sum().item() == pytest.approx(theirs, abs=1e-9)


def test_the_mini_batch_loss_is_unbiased_for_the_full_data_elbo_per_point():
    """With the global latent fixed (a Delta guide), the batch losses of one epoch average to the full-data
    ELBO / N exactly: local terms count once, the global term 1/N per point."""
    x, y = regression_data(60)
    guide = autoguide.AutoDelta(regression)
    program = ppgen.program.protocol.as_module((regression, guide))
    structure = ppgen.program.structure.inspect(program, (x, y))
    data = ppgen.program.inputs.as_batch((x, y))
    full = inference.ELBO().loss(program, structure, data)
    batches = [inference.ELBO().loss(program, structure, data.take(rows)) for rows in torch.arange(60).split(15)]
    torch.testing.assert_close(torch.stack(batches).mean(), full, rtol=0, atol=1e-12)
    b = ppgen.program.protocol.constrained_params(program)["AutoDelta.b"]
    log_joint = (dist.Normal(0.0, 3.0).log_prob(b).sum()
                 + dist.Normal(x @ b, 0.5).log_prob(y).sum())
    torch.testing.assert_close(full, -log_joint / 60, rtol=0, atol=1e-10)


@pytest.mark.parametrize("make_guide", [autoguide.AutoMultivariateNormal, autoguide.AutoNormal,
                                        autoguide.AutoDiagonalNormal, autoguide.AutoDelta])
def test_autoguides_fit_a_bayesian_linear_regression_to_its_conjugate_posterior(make_guide):
    x, y = regression_data()
    mean, covariance = conjugate_posterior(x, y)
    fit = ppgen.fit((regression, make_guide(regression)), (x, y), inference=inference.ELBO(num_particles=16),
                    epochs=800, batch_size=60, lr=0.02, seed=1, progress=False)
    draws = fit.posterior(x[:3], y[:3], num_samples=4000).samples["b"]
    assert draws.shape == (4000, 2)  # a global latent: no data dimension
    torch.testing.assert_close(draws.mean(0), mean, rtol=0, atol=0.02)
    if make_guide is autoguide.AutoDelta:  # MAP: the posterior mode, which is its mean here
        return
    std = covariance.diag().sqrt()
    if make_guide is autoguide.AutoMultivariateNormal:  # the family holds the posterior
        torch.testing.assert_close(draws.std(0), std, rtol=0.15, atol=0)
    else:  # mean-field: no wider than the marginal, at least the conditional
        conditional = torch.linalg.inv(covariance).diag().rsqrt()
        assert bool((draws.std(0) < 1.15 * std).all() and (draws.std(0) > 0.85 * conditional).all())


def test_a_pyro_module_with_sample_weights_is_a_model_with_global_latents():
    x, y = regression_data()
    mean, _ = conjugate_posterior(x, y)

    class Regression(PyroModule):
        def __init__(self):
            super().__init__()
            self.linear = PyroModule[torch.nn.Linear](2, 1, bias=False)
            self.linear.weight = PyroSample(dist.Normal(0.0, 3.0).expand([1, 2]).to_event(2))

        def model(self, x, y):
            mean = self.linear(x).squeeze(-1)  # the weights are drawn here, outside the data plate
            with pyro.plate("data", x.shape[0]):
                pyro.sample("y", dist.Normal(mean, 0.5), obs=y)

    class Program(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = Regression().double()
            self.approximation = autoguide.AutoMultivariateNormal(self.net.model)

        def model(self, x, y):
            self.net.model(x, y)

        def guide(self, x, y):
            self.approximation(x, y)

    with warnings.catch_warnings(record=True) as caught:  # the weights drawn per particle, [K, 1, 1, 2], do not
        warnings.simplefilter("always")                   # broadcast through nn.Linear: mapped over the particles
        fit = ppgen.fit(Program(), (x, y), epochs=600, batch_size=60, lr=0.03, seed=1, progress=False)
    assert not [w for w in caught if "broadcast" in str(w.message)]
    assert fit.structure.plan.mapped and not fit.structure.plan.vectorized
    assert fit.structure.global_sites == ("linear.weight",)
    draws = fit.posterior(x[:2], y[:2], num_samples=1000).samples["linear.weight"]
    # 0.05 is about 0.7 posterior standard deviations: the wander of Adam's last step at lr=0.03 on one particle
    torch.testing.assert_close(draws.mean(0).reshape(2), mean, rtol=0, atol=0.05)


def test_a_program_that_does_not_broadcast_over_particles_is_mapped_over_them():
    """z_n ~ N(0, 1), x_n | z_n ~ N(z_n 1, I_3), written with a reshape to the batch as tutorials do: its one-particle
    pass is mapped over the K particles by vmap. With the exact posterior N(sum(x_n) / 4, 1/4) as the guide every
    weight is log p(x_n) = log N(x_n; 0, I + 11^T), whichever way the particles are drawn; with one particle the draws
    are Pyro's own."""
    x = torch.randn(5, 3)

    def model(x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(0.0, 1.0))
            pyro.sample("x", dist.Normal(z.view(-1, 1).expand(x.shape), 1.0).to_event(1), obs=x)

    def guide(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(x.sum(-1) / 4, 0.5))

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        log_w = ppgen.log_weights((model, guide), x, k=4)
    marginal = dist.MultivariateNormal(torch.zeros(3), torch.eye(3) + torch.ones(3, 3))
    torch.testing.assert_close(log_w, marginal.log_prob(x).expand(4, 5), rtol=0, atol=1e-12)

    def noisy_guide(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(0.0, 1.0))

    pyro.set_rng_seed(4)
    ours = ppgen.log_weights((model, noisy_guide), x, k=1).sum()
    pyro.set_rng_seed(4)
    assert ours.item() == pytest.approx(-Trace_ELBO().loss(model, noisy_guide, x), abs=1e-10)


def test_a_program_that_neither_broadcasts_nor_maps_is_run_one_particle_at_a_time_with_advice():
    """The same program, asserting on a particle's values (a Python bool of a tensor, which vmap cannot take): run
    one particle at a time, exactly, with a warning that names both lines and the rewrite of the reshape."""
    x = torch.randn(5, 3)

    def model(x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(0.0, 1.0))
            assert torch.isfinite(z).all()
            pyro.sample("x", dist.Normal(z.view(-1, 1).expand(x.shape), 1.0).to_event(1), obs=x)

    def guide(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(x.sum(-1) / 4, 0.5))

    with pytest.warns(UserWarning, match="does not broadcast over a plate of particles") as caught:
        log_w = ppgen.log_weights((model, guide), x, k=4)
    message = str(caught[0].message)
    assert "`pyro.sample(\"x\", dist.Normal(z.view(-1, 1).expand(x.shape), 1.0).to_event(1), obs=x)`" in message
    assert "`assert torch.isfinite(z).all()`" in message and "torch.where" in message
    assert "z.shape[:-1] rather than z.view(-1, d)" in message
    marginal = dist.MultivariateNormal(torch.zeros(3), torch.eye(3) + torch.ones(3, 3))
    torch.testing.assert_close(log_w, marginal.log_prob(x).expand(4, 5), rtol=0, atol=1e-12)


def test_the_data_plate_may_have_any_name_and_inputs_come_as_a_tensor_dataset():
    x, y = regression_data(40)

    def model(covariates, targets):
        slope = pyro.param("slope", torch.zeros(2, dtype=covariates.dtype))
        scale = pyro.param("scale", torch.tensor(1.0, dtype=covariates.dtype), constraint=dist.constraints.positive)
        with pyro.plate("observations", len(covariates)):
            pyro.sample("y", dist.Normal(covariates @ slope, scale), obs=targets)

    fit = ppgen.fit(model, TensorDataset(x, y), epochs=400, batch_size=40, lr=0.05, progress=False)
    assert fit.structure.plan.data_plate == "observations" and fit.structure.exact
    least_squares = torch.linalg.lstsq(x, y[:, None]).solution[:, 0]
    torch.testing.assert_close(fit.params["slope"], least_squares, rtol=0, atol=0.01)
    residual = (y - x @ least_squares).pow(2).mean().sqrt()
    assert fit.params["scale"].item() == pytest.approx(residual.item(), rel=0.02)  # constrained: the scale itself
    torch.testing.assert_close(fit.log_prob(x, y), dist.Normal(x @ fit.params["slope"], fit.params["scale"])
                               .log_prob(y))
    with pytest.raises(TypeError, match=r"the model takes 2 input\(s\)"):
        fit.log_prob(x)


def test_per_data_point_guide_parameters_are_indexed_by_the_batch_through_the_plates_subsample():
    """Pyro's SVI tutorial style: a guide parameter per data point, sized by N; mini-batches of 4 of 12 points.
    z_n ~ N(0, 1), x_n | z_n ~ N(z_n, 1): the exact posterior mean of z_n is x_n / 2."""
    x = torch.randn(12, dtype=torch.float64)

    def model(x):
        with pyro.plate("data", 12, subsample_size=len(x)):
            z = pyro.sample("z", dist.Normal(0.0, 1.0))
            pyro.sample("x", dist.Normal(z, 1.0), obs=x)

    def guide(x):
        loc = pyro.param("loc", torch.zeros(12, dtype=x.dtype))
        with pyro.plate("data", 12, subsample_size=len(x)) as rows:
            pyro.sample("z", dist.Normal(loc[rows], 0.5 ** 0.5))

    fit = ppgen.fit((model, guide), x, inference=inference.ELBO(num_particles=64), epochs=500, batch_size=4, lr=0.01,
                    progress=False)
    torch.testing.assert_close(fit.params["loc"], x / 2, rtol=0, atol=0.05)


def test_conditional_sampling_draws_x_given_each_row_of_the_other_inputs():
    def model(x, c):
        shift = pyro.param("shift", torch.tensor(0.0))
        with pyro.plate("data", len(x)):
            pyro.sample("x", dist.Normal(3.0 * c + shift, 0.1).to_event(1), obs=x)

    c = torch.tensor([[0.0], [1.0], [-1.0]]).repeat(20, 1)
    fit = ppgen.fit(model, (3.0 * c + 0.1 * torch.randn(60, 1), c), epochs=1, progress=False)
    given = torch.tensor([[2.0], [-2.0]])
    draws = fit.sample(2, given)
    assert draws.shape == (2, 1)
    torch.testing.assert_close(draws, 3.0 * given, rtol=0, atol=1.0)
    with pytest.raises(ValueError, match=r"given\[0\] must have shape \[3, 1\]"):
        fit.sample(3, given)
    with pytest.raises(TypeError, match=r"draws x of model\(x, c\) and takes its other input\(s\) c, one row per draw"):
        fit.sample(3)


def test_a_fit_of_several_inputs_is_saved_and_answers_the_same(tmp_path):
    x, y = regression_data(30)
    fit = ppgen.fit((regression, autoguide.AutoDelta(regression)), (x, y), epochs=20, progress=False)
    fit.save(tmp_path / "fit.pt")
    again = ppgen.load(tmp_path / "fit.pt", model=fit.model)  # a function pair is passed back in
    assert again.example.size == 30 and again.structure.num_inputs == 2
    torch.testing.assert_close(again.log_prob(x, y, k=3), fit.log_prob(x, y, k=3))


@pytest.mark.parametrize("program, match", [
    ("global_enumerated", "enumerated latent 'c' sits outside pyro.plate"),
    ("sequential", "sequential enumeration"),
])
def test_enumerations_whose_sums_are_not_per_point_are_refused(x, program, match):
    def global_enumerated(x):
        c = pyro.sample("c", dist.Bernoulli(0.5), infer={"enumerate": "parallel"})
        with pyro.plate("data", len(x)):
            pyro.sample("x", dist.Normal(c, 1.0), obs=x)

    def sequential(x):
        with pyro.plate("data", len(x)):
            c = pyro.sample("c", dist.Bernoulli(0.5), infer={"enumerate": "sequential"})
            pyro.sample("x", dist.Normal(c, 1.0), obs=x)

    pair = {"global_enumerated": (global_enumerated, None), "sequential": (sequential, None)}[program]
    with pytest.raises(ValueError, match=match):
        ppgen.fit(pair, x, progress=False)


def test_importance_weighted_objectives_refuse_global_latents():
    x, y = regression_data(20)
    with pytest.raises(ValueError, match=r"IWAE\(\) is a bound per data point.*\('b',\)"):
        ppgen.fit((regression, autoguide.AutoNormal(regression)), (x, y), inference=inference.IWAE(), progress=False)


def test_log_prob_with_a_global_latent_is_the_posterior_predictive_density():
    """With theta drawn from q(theta) for the whole data set, log_prob estimates log E_q(theta)[p(x_n | theta)]:
    for a Delta guide at b, exactly log p(y_n | x_n, b)."""
    x, y = regression_data(20)
    fit = ppgen.fit((regression, autoguide.AutoDelta(regression)), (x, y), epochs=50, progress=False)
    b = fit.params["AutoDelta.b"]
    torch.testing.assert_close(fit.log_prob(x, y, k=4), dist.Normal(x @ b, 0.5).log_prob(y))


def test_every_discrete_value_summed_by_brute_force_for_two_enumerated_latents_and_a_mask():
    """c and d enumerated, x | c, d masked for some points; truth: the sum over all 2 x 3 pairs."""
    x = torch.randn(6, dtype=torch.float64)
    mask = torch.tensor([1, 1, 0, 1, 0, 1], dtype=torch.bool)
    pc, pd = torch.tensor([0.3, 0.7], dtype=torch.float64), torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64)

    def model(x, mask):
        with pyro.plate("data", len(x)):
            c = pyro.sample("c", dist.Categorical(pc), infer={"enumerate": "parallel"})
            d = pyro.sample("d", dist.Categorical(pd), infer={"enumerate": "parallel"})
            with poutine.mask(mask=mask):
                pyro.sample("x", dist.Normal(c.double() - LOCS[d], 1.0), obs=x)

    terms = [pc[c].log() + pd[d].log() + dist.Normal(c - LOCS[d], 1.0).log_prob(x)
             for c, d in itertools.product(range(2), range(3))]
    truth = torch.where(mask, torch.stack(terms).logsumexp(0), 0.0)
    torch.testing.assert_close(ppgen.log_weights(model, (x, mask))[0], truth, rtol=0, atol=1e-12)
    assert math.isclose(ppgen.log_weights(model, (x, mask)).sum().item(),
                        -TraceEnum_ELBO(max_plate_nesting=1).loss(model, lambda *a: None, x, mask), abs_tol=1e-10)


def test_no_warning_for_a_program_that_broadcasts(x):
    def model(x):
        with pyro.plate("data", len(x)):
            z = pyro.sample("z", dist.Normal(0.0, 1.0))
            pyro.sample("x", dist.Normal(z, 1.0), obs=x)

    def guide(x):
        with pyro.plate("data", len(x)):
            pyro.sample("z", dist.Normal(x / 2, 0.5 ** 0.5))

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        log_w = ppgen.log_weights((model, guide), x, k=6)
    # the guide is the exact posterior N(x/2, 1/2): every weight is log p(x) = log N(x; 0, 2)
    torch.testing.assert_close(log_w, dist.Normal(0.0, 2 ** 0.5).log_prob(x).expand(6, 7), rtol=0, atol=1e-12)


@pytest.mark.parametrize("plate, match", [
    (lambda x: pyro.plate("data", 50, subsample_size=len(x)),
     r"pyro.plate\('data', 50, subsample_size=7\) declares 50 data points, but site 'x' observes the data it is "
     r"given whole \(7 rows\): declare the data set's size, pyro.plate\('data', 7, subsample_size=len\(x\)\)"),
    (lambda x: pyro.plate("points", len(x) + 1), r"pyro.plate\('points', 8\)\); the data set has 7 points"),
])
def test_a_data_plate_that_does_not_match_the_data_is_refused_clearly(x, plate, match):
    def model(x):
        scale = pyro.param("scale", torch.tensor(1.0), constraint=dist.constraints.positive)
        with plate(x):
            pyro.sample("x", dist.Normal(0.0, scale), obs=x)

    with pytest.raises(ValueError, match=match):
        ppgen.fit(model, x, progress=False)


def test_a_data_plate_without_a_size_is_the_plate_of_the_data_points(x):
    """pyro.plate("data") (Pyro's ss_vae and CVAE examples): Pyro infers its size from the observed tensor; ppgen's
    per-point log weights are those of pyro.plate("data", len(x)), and the loss of a mini-batch fit is theirs. As in
    those examples, the prior's parameters have the batch's shape (Pyro cannot broadcast a site to a plate that has
    no size)."""
    def model(plate):
        def program(x):
            with plate(x):
                z = pyro.sample("z", dist.Normal(torch.zeros_like(x), 1.0))
                pyro.sample("x", dist.Normal(z, 1.0), obs=x)
        return program

    def guide(plate):
        def program(x):
            with plate(x):
                pyro.sample("z", dist.Normal(x / 2, pyro.param("scale", torch.tensor(0.7),
                                                         constraint=dist.constraints.positive)))
        return program

    sized, sizeless = (lambda x: pyro.plate("data", len(x))), (lambda x: pyro.plate("data"))
    pyro.set_rng_seed(0)
    expected = ppgen.log_weights((model(sized), guide(sized)), x, k=3)
    pyro.set_rng_seed(0)
    torch.testing.assert_close(ppgen.log_weights((model(sizeless), guide(sizeless)), x, k=3), expected, rtol=0, atol=0)
    losses = [ppgen.fit((model(plate), guide(plate)), x, epochs=2, batch_size=3, progress=False).history
              for plate in (sized, sizeless)]
    assert losses[0] == losses[1]


def test_a_global_factor_beside_the_plated_data_is_a_global_term(x):
    """pyro.factor on a global latent, outside every plate, beside the observation in its data plate: the data plate
    is found from the plated site, the factor is a global term (1/N of it per point), and the sum over points is
    Pyro's Trace_ELBO on the same draws."""
    def model(x):
        mu = pyro.sample("mu", dist.Normal(0.0, 3.0))
        pyro.factor("f", -0.5 * mu ** 2)
        with pyro.plate("data", len(x)):
            pyro.sample("y", dist.Normal(mu, 1.0), obs=x)

    def guide(x):
        pyro.sample("mu", dist.Normal(pyro.param("loc", torch.tensor(0.2)), 0.5))

    pyro.set_rng_seed(3)
    expected = -Trace_ELBO().loss(model, guide, x)
    pyro.clear_param_store()
    pyro.set_rng_seed(3)
    assert ppgen.log_weights((model, guide), x).sum().item() == pytest.approx(expected, rel=1e-6)


def test_per_point_parameters_made_for_one_batch_size_refuse_other_batches_and_fit_whole(x):
    """An AutoNormal on a local latent in pyro.plate("data", len(x)) makes one parameter per point of the batch it
    first sees: mini-batches of another size are refused before any work, naming batch_size and the two fixes; left
    to choose, ppgen fits it on the whole data set at every step, as Pyro's full-batch SVI does."""
    def model(x):
        with pyro.plate("data", len(x)):
            z = pyro.sample("z", dist.Normal(0.0, 1.0))
            pyro.sample("x", dist.Normal(z, 1.0), obs=x)

    with pytest.raises(ValueError, match=r"batch_size: the program runs on a batch of 3 points but fails on one of 2 "
                                         r".*Leave batch_size out .*pyro.plate\('data', 7, subsample_size=len\(x\)\)"):
        ppgen.fit((model, autoguide.AutoNormal(model)), x, batch_size=3, progress=False)
    guide = autoguide.AutoNormal(model)
    fit = ppgen.fit((model, guide), x, epochs=3, progress=False)
    assert fit.structure.own_batch_size == 7 and fit.params["AutoNormal.locs.z"].shape == (7,)


def test_an_autoguide_on_a_subsampled_plate_learns_each_points_posterior_in_mini_batches():
    """pyro.plate("data", N, subsample_size=len(x)) around a local z, and an AutoNormal: ppgen gives model and guide
    the batch's rows, so each of the N points has its own parameters, indexed by the rows (the AutoGuide's plate keeps
    the subsample size of its first call, so batches keep that size). The posterior of z_n given x_n is N(x_n / 2,
    1/2) in closed form; 300 epochs of mini-batches of 4 reach it within Adam's noise at lr 0.05 (0.08 and 0.04
    measured)."""
    n = 12
    x = torch.randn(n, generator=torch.Generator().manual_seed(2))

    def model(x):
        with pyro.plate("data", n, subsample_size=len(x)):
            z = pyro.sample("z", dist.Normal(0.0, 1.0))
            pyro.sample("x", dist.Normal(z, 1.0), obs=x)

    guide = autoguide.AutoNormal(model, init_loc_fn=autoguide.init_to_mean)
    fit = ppgen.fit((model, guide), x, batch_size=4, epochs=300, lr=0.05, inference=inference.ELBO(num_particles=64),
                    progress=False)
    assert fit.structure.own_batch_size == 4
    torch.testing.assert_close(fit.params["AutoNormal.locs.z"], x / 2, rtol=0, atol=0.15)
    torch.testing.assert_close(fit.params["AutoNormal.scales.z"], torch.full((n,), 0.5 ** 0.5), rtol=0, atol=0.1)


def test_a_plate_of_time_steps_as_long_as_the_data_set_is_not_the_data_plate():
    """x [N, T] with T == N: sequences at dim -2 follow the batch, time steps at dim -1 do not, though they number N:
    the per-point log-density of a mini-batch fit is each sequence's, -log p(x_n) exactly at the learnt loc."""
    x = torch.randn(12, 12, generator=torch.Generator().manual_seed(3))

    def model(x):
        loc = pyro.param("loc", torch.tensor(0.5))
        with pyro.plate("sequences", len(x), dim=-2), pyro.plate("time", x.shape[1], dim=-1):
            pyro.sample("x", dist.Normal(loc, 1.3), obs=x)

    fit = ppgen.fit(model, x, batch_size=5, epochs=1, lr=1e-12, progress=False)
    assert fit.structure.plan.data_plate == "sequences"
    assert fit.history[0] == pytest.approx(-dist.Normal(0.5, 1.3).log_prob(x).sum(-1).mean().item(), rel=1e-5)


def test_a_model_without_a_guide_finds_its_plate_and_keeps_integer_ids():
    """An HMM-like model with no guide, as MLE fits it: 5 tones and batches of 5 sequences, and integer ids used as
    indices. The data plate is the sequences', the ids stay integers, and the loss is -log p(x) exactly."""
    ids = torch.randint(0, 4, (12, 5), generator=torch.Generator().manual_seed(4))

    def model(ids):
        logits = pyro.param("logits", torch.zeros(4))
        with pyro.plate("sequences", len(ids), dim=-2), pyro.plate("tones", ids.shape[1], dim=-1):
            pyro.sample("ids", dist.Categorical(logits=logits[ids].unsqueeze(-1) * 0 + logits), obs=ids)

    fit = ppgen.fit(model, ids, batch_size=5, epochs=1, lr=1e-12, progress=False)
    assert fit.structure.plan.data_plate == "sequences" and fit.structure.integer_x
    assert fit.history[0] == pytest.approx(5 * math.log(4), rel=1e-6)


def test_a_plate_of_n_with_its_own_subsample_size_observing_its_batch_takes_batches_of_that_size():
    """pyro.plate("data", N, subsample_size=4) with obs=x: ppgen's batches have the plate's size 4, given as the
    plate's rows; left to choose, fit takes them so, and the loss of an epoch is -mean log p(x) of its points."""
    x = torch.randn(12, generator=torch.Generator().manual_seed(5))

    def model(x):
        loc = pyro.param("loc", torch.tensor(0.5))
        with pyro.plate("data", 12, subsample_size=4):
            pyro.sample("x", dist.Normal(loc, 1.3), obs=x)

    fit = ppgen.fit(model, x, epochs=1, lr=1e-12, progress=False)
    assert fit.structure.own_batch_size == 4 and not fit.structure.plan.whole_data
    assert fit.history[0] == pytest.approx(-dist.Normal(0.5, 1.3).log_prob(x).mean().item(), rel=1e-5)


def test_an_autoguide_set_up_on_a_batch_of_a_whole_data_program_is_refused_naming_the_fix():
    """A program that subsamples its data itself, pyro.plate("data", len(x), subsample_size=4) and obs=x[ind], with
    an AutoNormal: ppgen first runs it on a batch of 128 rows of 200, where the AutoGuide sets its plate up at 128;
    that guide would draw its own subsample among the first 128 points only, so it is refused, naming the fix, which
    works."""
    x = torch.randn(200, generator=torch.Generator().manual_seed(6))

    def model(x):
        with pyro.plate("data", len(x), subsample_size=4) as ind:
            z = pyro.sample("z", dist.Normal(0.0, 1.0))
            pyro.sample("x", dist.Normal(z, 1.0), obs=x[ind])

    with pytest.raises(ValueError, match=r"the guide's pyro.plate\('data'\) has 128 points where the program's has "
                                         r"200: .*Call the guide once on the whole data set before ppgen.fit"):
        ppgen.fit((model, autoguide.AutoNormal(model)), x, epochs=1, progress=False)
    guide = autoguide.AutoNormal(model)
    guide(x)
    fit = ppgen.fit((model, guide), x, epochs=1, progress=False)
    assert fit.structure.plan.whole_data and fit.params["AutoNormal.locs.z"].shape == (200,)


def test_parameters_made_one_per_point_of_the_first_batch_take_the_whole_data_set():
    """pyro.param("loc", torch.zeros(len(x))) indexed by the plate's indices: made with the size of the batch the
    program first sees, it holds one parameter per point by position. Left to choose, ppgen makes them again for all N
    points and fits them on the whole data set, in order, at every step: the first step's loss is Pyro's Trace_ELBO on
    the same draws; a mini-batch size is refused, naming the parameters and the ways out."""
    n = 150
    x = torch.randn(n, generator=torch.Generator().manual_seed(7))

    def model(x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(0.0, 1.0))
            pyro.sample("x", dist.Normal(z, 1.0), obs=x)

    def guide(x):
        loc = pyro.param("loc", torch.zeros(len(x)))
        with pyro.plate("data", x.shape[0]) as ind:
            pyro.sample("z", dist.Normal(loc[ind], 0.8))

    with pytest.raises(ValueError, match=r"batch_size: parameter\(s\) 'loc' of the program are made with the first "
                                         r"batch's size 64, one per point of a batch by its position"):
        ppgen.fit((model, guide), x, batch_size=64, epochs=1, progress=False)
    fit = ppgen.fit((model, guide), x, epochs=1, lr=1e-12, seed=3, progress=False)
    assert fit.structure.own_batch_size == n and fit.params["loc"].shape == (n,)
    pyro.clear_param_store()
    pyro.set_rng_seed(3)
    assert fit.history[0] * n == pytest.approx(Trace_ELBO().loss(model, guide, x), rel=1e-5)


def test_a_program_that_takes_the_whole_data_set_is_not_streamed():
    """A stream's first batch may hold every point, but its batches come in their own order: a program that takes the
    whole data set at every step is refused on a stream, naming the way out."""
    x = torch.randn(12, generator=torch.Generator().manual_seed(8))

    def model(x):
        loc = pyro.param("loc", torch.tensor(0.0))
        with pyro.plate("data", len(x), subsample_size=4) as ind:
            pyro.sample("x", dist.Normal(loc, 1.0), obs=x[ind])

    with pytest.raises(ValueError, match=r"the program takes the whole data set at every step .*pass the data in "
                                         r"memory"):
        ppgen.fit(model, Rows(x), epochs=1, progress=False)


def test_sample_lays_the_points_in_rows_or_says_why_it_cannot():
    """x drawn with the data plate at dim=-1 inside a plate at dim=-2 (observed as x.T) comes back one point per
    row, [n, 3]; a sizeless data plate around a draw of a global latent alone cannot broadcast it to n points, and
    sample says so rather than return one value."""
    x = torch.randn(20, 3, generator=torch.Generator().manual_seed(9))

    def transposed(x):
        loc = pyro.param("loc", torch.tensor([[5.0], [0.0], [-5.0]]))
        with pyro.plate("feat", x.shape[1], dim=-2), pyro.plate("data", x.shape[0], dim=-1):
            pyro.sample("x", dist.Normal(loc, 0.1), obs=x.T)

    drawn = ppgen.fit(transposed, x, epochs=1, lr=1e-12, progress=False).sample(5)
    assert drawn.shape == (5, 3) and bool((drawn[:, 0] > 4).all() and (drawn[:, 2] < -4).all())

    def sizeless(x):
        loc = pyro.param("loc", torch.tensor(0.0))
        with pyro.plate("data"):
            pyro.sample("x", dist.Normal(loc, 1.0), obs=x)

    fit = ppgen.fit(sizeless, x[:, 0], epochs=1, progress=False)
    with pytest.raises(ValueError, match=r"sample: the model draws its data site 'x' with shape \[\], not \[6\], one "
                                         r"point per row: .*give it the size, pyro.plate\('data', len\(x\)\)"):
        fit.sample(6)


def test_a_poutine_scale_beyond_a_subsampled_plates_marks_the_site_reweighted():
    """A subsampled plate's N / B is no reweighting; a poutine.scale inside it is, and so is a latent's mask of False
    (its terms left out); importance weights refuse them."""
    def program(weight, kept=True):
        def model(x):
            with pyro.plate("data", 100, subsample_size=len(x)), poutine.scale(scale=weight):
                with poutine.mask(mask=kept):
                    z = pyro.sample("z", dist.Normal(x.new_zeros(()), 1.0))
                pyro.sample("x", dist.Normal(z, 1.0), obs=x)

        def guide(x):
            with pyro.plate("data", 100, subsample_size=len(x)), poutine.scale(scale=weight), poutine.mask(mask=kept):
                pyro.sample("z", dist.Normal(x / 2, 0.8))
        return ppgen.program.protocol.as_module((model, guide))

    batch = ppgen.program.inputs.Batch((torch.randn(10),), torch.arange(10), 100)  # 10 rows of 100: scaled 10
    assert ppgen.program.structure.inspect(program(1.0), batch).reweighted == ()
    assert ppgen.program.structure.inspect(program(1.0, kept=False), batch).reweighted == ("z",)
    structure = ppgen.program.structure.inspect(program(3.0), batch)
    assert structure.reweighted == ("z", "x")
    with pytest.raises(ValueError, match=r"IWAE\(k=5.*a mask of False weighs the site\(s\) 'z', 'x' of the program"):
        inference.IWAE().check(structure)
