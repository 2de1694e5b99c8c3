"""fit.evaluate against the truth: exact likelihoods, the bound ordering, ArviZ's PSIS and bounded memory."""

import json
import math
import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import load_wine
from sklearn.preprocessing import StandardScaler

import ppgen
import ppgen.queries.density
import ppgen.queries.evaluation
from ppgen import inference, models
from ppgen.program.inputs import as_batch
from ppgen.program.structure import inspect
from ppgen.queries.evaluation import KHAT_THRESHOLD, weight_diagnostics
from test_backends import near_posterior_ppca


@pytest.fixture(scope="module")
def wine() -> torch.Tensor:
    return torch.tensor(StandardScaler().fit_transform(load_wine().data))  # 178 x 13, float64


def near_posterior_fit(x: torch.Tensor, perturbation: float) -> ppgen.Fit:
    """AmortisedPPCA at the Tipping-Bishop maximum, its encoder moved off the exact posterior by ``perturbation``:
    a model with an exact log p(x) and a guide as good as we choose."""
    torch.manual_seed(0)
    ppca = near_posterior_ppca(x, q=3, perturbation=perturbation)
    return ppgen.Fit(ppca, inspect(ppca, x[:2]), inference.ELBO(), history=[], example=x[:2])


@pytest.fixture(scope="module")
def rough_fit(wine) -> ppgen.Fit:
    """The exact posterior's mean with 1.35 times its spread: bounded weights, so IWAE_K converges steadily."""
    fit = near_posterior_fit(wine, 0.0)
    with torch.no_grad():
        fit.model.log_posterior_scale += 0.3
    return fit


def test_iwae_rises_with_k_towards_the_exact_log_likelihood(rough_fit, wine):
    """IWAE_1 = ELBO <= IWAE_10 <= IWAE_100 <= IWAE_2000 <= log p(x), means over 178 points; the gap at K=2000 is a
    small part of the gap at K=1. (k-hat is not this test's question: at small K its estimate is rough.)"""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        reports = {k: rough_fit.evaluate(wine, k=k) for k in (1, 10, 100, 2000)}
    exact = reports[1].exact.mean().item()
    iwae = [reports[k].iwae.mean().item() for k in (1, 10, 100, 2000)]
    assert iwae == sorted(iwae)
    # IWAE_K is below log p(x) in expectation; one estimate may sit above it by its Monte Carlo error, whose
    # delta-method standard error per point is sqrt((K / ESS - 1) / K)
    last = reports[2000]
    standard_error = ((2000 / last.ess - 1) / 2000).mean().sqrt().item() / math.sqrt(len(wine))
    assert iwae[-1] <= exact + 3 * standard_error
    assert exact - iwae[-1] < 0.2 * (exact - iwae[0])
    torch.testing.assert_close(reports[1].elbo, reports[1].iwae)  # one draw: IWAE_1 is the ELBO
    assert (reports[2000].elbo <= reports[2000].iwae + 1e-12).all()  # Jensen
    for report in reports.values():
        torch.testing.assert_close(report.exact, rough_fit.log_prob(wine))


def test_weight_diagnostics_are_the_textbook_formulas():
    """ESS = (sum w)^2 / sum w^2 and the bounds from the weights directly; k-hat is ArviZ's own psislw."""
    import arviz as az

    log_w = torch.randn(500, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 1.5
    out = weight_diagnostics(log_w)
    w = log_w.exp().numpy()
    np.testing.assert_allclose(out["ess"].numpy(), w.sum(0) ** 2 / (w ** 2).sum(0), rtol=1e-12)
    np.testing.assert_allclose(out["iwae"].numpy(), np.log(w.mean(0)), rtol=1e-12)
    np.testing.assert_allclose(out["elbo"].numpy(), log_w.numpy().mean(0), rtol=1e-12)
    np.testing.assert_allclose(out["khat"].numpy(), az.psislw(log_w.T.numpy())[1], rtol=1e-12)


def test_khat_is_low_for_a_good_guide_and_above_0_7_for_a_poor_one(wine):
    """A guide near the posterior gives light-tailed weights (k-hat < 0.5 everywhere at K=2000, no warning; measured
    max 0.20); the same guide with its encoder moved 30 times further misses the posterior's mass, and its weights
    get a heavy tail (measured max k-hat 6.0)."""
    good = near_posterior_fit(wine, 0.01).evaluate(wine, k=2000)
    assert good.khat.max() < 0.5 and good.unreliable == 0
    assert good.ess.min() > 500
    with pytest.warns(UserWarning, match=r"points have a Pareto k-hat above 0.7.*to be trusted"):
        poor = near_posterior_fit(wine, 0.3).evaluate(wine, k=2000)
    assert (poor.khat > KHAT_THRESHOLD).float().mean() > 0.5
    assert poor.unreliable == int((poor.khat > KHAT_THRESHOLD).sum())
    assert poor.ess.median() < 50


def test_exact_guide_has_equal_weights_full_ess_and_no_tail_to_fit(wine):
    """PPCA's guide is its exact posterior: every weight is p(x), so ESS = K, the bounds are log p(x), and k-hat has
    nothing to fit (NaN, not ArviZ's 'inf', which would raise a false alarm)."""
    fit = ppgen.fit(models.PPCA(x_dim=13, z_dim=3), wine, inference=inference.MLE(), epochs=50,
                    batch_size=len(wine), lr=0.02, progress=False)
    report = fit.evaluate(wine[:20], k=100)
    torch.testing.assert_close(report.ess, torch.full((20,), 100.0, dtype=torch.float64))
    torch.testing.assert_close(report.iwae, report.exact)
    torch.testing.assert_close(report.elbo, report.exact)
    assert report.khat.isnan().all() and report.means()["khat"] is None
    assert "not estimable" in str(report)


def test_memory_stays_bounded_whatever_n_and_k(rough_fit, wine, monkeypatch):
    """No pass draws more than ``particle_points`` particles x points, even when K alone exceeds it; the result
    keeps one value per point."""
    passes = []
    log_weights = ppgen.queries.density.log_weights  # each pass's log weights, through ppgen.queries.density.Estimates

    def recording(module, structure, batch, k, *args, **kwargs):
        passes.append(k * len(batch))
        return log_weights(module, structure, batch, k, *args, **kwargs)

    monkeypatch.setattr(ppgen.queries.density, "log_weights", recording)
    report = ppgen.queries.evaluation.evaluate(rough_fit.model, rough_fit.structure, as_batch(wine[:30]), k=300,
                                               particle_points=128)
    assert max(passes) <= 128 and sum(passes) == 300 * 30
    assert report.iwae.shape == report.khat.shape == (30,)
    exact_rows = ppgen.queries.evaluation.evaluate(rough_fit.model, rough_fit.structure, as_batch(wine[:30]), k=10,
                                                   particle_points=128)
    assert max(passes) <= 128
    torch.testing.assert_close(exact_rows.exact, rough_fit.log_prob(wine[:30]))


def test_report_prints_and_serialises(rough_fit, wine):
    report = rough_fit.evaluate(wine, k=50)
    text = str(report)
    assert "IWAE_50 " in text and "ELBO" in text and "exact log p(x)" in text and "PSIS k-hat" in text
    as_dict = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert as_dict["n"] == len(wine) and as_dict["k"] == 50
    assert as_dict["mean"]["iwae"] == pytest.approx(report.iwae.mean().item())
    assert len(as_dict["per_point"]["khat"]) == len(wine)


def test_a_model_without_a_guide_reports_its_exact_likelihood_only():
    x = torch.randn(40, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    fit = ppgen.fit(models.GMM(x_dim=2, n_components=2), x, epochs=2, progress=False)
    report = fit.evaluate(x, k=10)
    assert report.iwae is None and report.khat is None and report.ess is None
    torch.testing.assert_close(report.exact, fit.log_prob(x))
    assert math.isfinite(report.to_dict()["mean"]["exact"]) and "IWAE" not in str(report)


def test_evaluate_refuses_bad_k_and_data(rough_fit, wine):
    with pytest.raises(ValueError, match="k must be a positive int, got 0"):
        rough_fit.evaluate(wine, k=0)
    with pytest.raises(ValueError, match=r"x must have shape \[N, 13\]"):
        rough_fit.evaluate(wine[:, :5])
