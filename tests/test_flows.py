"""Normalising flows against the truth: numerical integrals, the change-of-variables formula by autograd,
inverse after forward, a cross-validated kernel density estimate, and brute-force bin integrals."""

import numpy as np
import pytest
import torch
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import KernelDensity

import ppgen
import ppgen.program.traces
from ppgen import datasets, inference, models
from ppgen.objective.bounds import log_weights
from ppgen.program.inputs import as_batch
from ppgen.program.structure import inspect

FLOWS = {"realnvp": models.RealNVP, "maf": models.MAF, "nsf": models.NeuralSplineFlow}


pytestmark = pytest.mark.usefixtures("one_thread")


def perturbed(flow, dtype=torch.float64, size=0.1):
    """The flow in ``dtype`` with every weight moved, and a standardisation that is not the identity."""
    flow = flow.to(dtype)
    with torch.no_grad():
        for param in flow.parameters():
            param.add_(size * torch.randn_like(param))
    flow.standardize(torch.linspace(-0.5, 0.5, flow.x_dim, dtype=dtype), torch.linspace(0.7, 1.3, flow.x_dim,
                                                                                       dtype=dtype))
    return flow


def grid_integral(log_prob, low, high, step):
    """The Riemann sum of exp(log_prob) over a square grid of cell ``step`` on [low, high]^2."""
    axis = torch.arange(low + step / 2, high, step, dtype=torch.float64)
    points = torch.cartesian_prod(axis, axis)
    return log_prob(points).exp().sum().item() * step**2


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_density_integrates_to_one_on_a_grid(name):
    flow = FLOWS[name](x_dim=2).double()  # zuko's random start, behind a standardisation that is not the identity
    flow.standardize(torch.tensor([0.5, -0.3], dtype=torch.float64), torch.tensor([0.8, 1.4], dtype=torch.float64))
    with torch.no_grad():
        total = grid_integral(flow.log_prob, -8.0, 8.0, 0.04)
    assert total == pytest.approx(1.0, abs=5e-3)  # the grid's error and the mass beyond the square


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_density_of_a_fitted_flow_integrates_to_one_on_a_grid(name):
    fit = ppgen.fit(FLOWS[name](x_dim=2), datasets.moons(500).double(), epochs=20, batch_size=100, lr=3e-3,
                    progress=False)
    total = grid_integral(fit.log_prob, -4.0, 5.0, 0.02)
    assert total == pytest.approx(1.0, abs=5e-3)


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_log_prob_is_the_change_of_variables_formula_with_an_autograd_jacobian(name):
    """log p(x) = log N(f(x); 0, I) + log |det df/dx|, f = encode, its Jacobian by torch.autograd."""
    flow = perturbed(FLOWS[name](x_dim=3))
    x = 0.5 * torch.randn(4, 3, dtype=torch.float64)
    for row in x:
        jacobian = torch.autograd.functional.jacobian(lambda v: flow.encode(v.unsqueeze(0))[0], row)
        z = flow.encode(row.unsqueeze(0))[0]
        expected = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum() + torch.linalg.slogdet(jacobian)[1]
        torch.testing.assert_close(flow.log_prob(row.unsqueeze(0))[0], expected)


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-4), (torch.float64, 1e-10)])
@pytest.mark.parametrize("name", sorted(FLOWS))
def test_inverse_after_forward_is_the_identity(name, dtype, tol):
    flow = perturbed(FLOWS[name](x_dim=5), dtype)
    x = torch.randn(16, 5, dtype=dtype)
    with torch.no_grad():
        torch.testing.assert_close(flow.decode(flow.encode(x)), x, atol=tol, rtol=tol)
        z = torch.randn(16, 5, dtype=dtype)
        torch.testing.assert_close(flow.encode(flow.decode(z)), z, atol=tol, rtol=tol)


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_fit_answers_with_the_exact_density_samples_and_the_base_space_code(name):
    x = datasets.moons(256)
    fit = ppgen.fit(FLOWS[name](x_dim=2), x, epochs=2, progress=False)
    assert fit.inference == inference.MLE() and fit.structure.exact
    torch.testing.assert_close(fit.log_prob(x), fit.model.log_prob(x))
    torch.testing.assert_close(fit.encode(x), fit.model.encode(x))
    draws = fit.sample(2000)
    assert draws.shape == (2000, 2) and torch.isfinite(draws).all()
    # the draws are x = f^{-1}(z), z ~ N(0, I): their codes have the base's moments
    codes = fit.encode(draws)
    assert codes.mean(0).abs().max() < 0.1 and (codes.std(0) - 1).abs().max() < 0.1


def kde_test_log_likelihood(train, test):
    """Mean test log-density of scikit-learn's Gaussian KDE, its bandwidth chosen by 5-fold cross-validation."""
    search = GridSearchCV(KernelDensity(), {"bandwidth": np.logspace(-2, 0, 30)}, cv=5).fit(train.numpy())
    return search.best_estimator_.score_samples(test.numpy()).mean()


#: how far below the KDE's test log-likelihood (nats per point) a flow may land after 100 epochs.
KDE_MARGIN = 0.15


@pytest.mark.parametrize("name", ["realnvp", pytest.param("maf", marks=pytest.mark.slow),
                                  pytest.param("nsf", marks=pytest.mark.slow)])
def test_a_flow_on_two_moons_comes_within_a_margin_of_a_cross_validated_kde(name):
    train, test = datasets.moons(1000, seed=0), datasets.moons(1000, seed=1)
    fit = ppgen.fit(FLOWS[name](x_dim=2), train, epochs=100, batch_size=100, lr=3e-3, progress=False)
    assert fit.log_prob(test).mean().item() > kde_test_log_likelihood(train, test) - KDE_MARGIN


def test_dequantized_elbo_weight_is_the_flow_density_at_the_dequantized_point():
    """log w = log p_flow(x + u) - log q(u) with q = 1 on the bin: the weights are the flow's log-density at v."""
    model = models.DequantizedFlow(x_dim=3, levels=5)
    x = torch.randint(0, 5, (8, 3)).double()
    model.double().initialize(x)
    structure = inspect(model, x)
    torch.manual_seed(1)
    log_w = log_weights(model, structure, as_batch(x), 4)
    torch.manual_seed(1)
    v = x + torch.rand(4, 8, 3, dtype=torch.float64)  # the guide's draws, same seed
    assert (v.floor() == x).all()
    torch.testing.assert_close(log_w, model.flow.log_prob(v))


def test_dequantized_likelihood_estimate_rises_to_the_exact_bin_integrals():
    """P(x) = integral of p_flow over x's unit bin, by a fine grid; IWAE-K estimates sit below it and reach it."""
    model = models.DequantizedFlow(x_dim=2, levels=3, flow="realnvp")
    data = torch.randint(0, 3, (64, 2)).double()
    fit = ppgen.fit(model, data, epochs=5, progress=False)
    cells = torch.cartesian_prod(torch.arange(3.0), torch.arange(3.0)).double()
    step = 1 / 200
    offsets = torch.cartesian_prod(*[torch.arange(step / 2, 1, step, dtype=torch.float64)] * 2)
    with torch.no_grad():
        exact = torch.stack([fit.model.flow.log_prob(cell + offsets).exp().mean().log() for cell in cells])
    assert exact.exp().sum() <= 1  # the grid holds at most all of the flow's mass
    elbo = log_weights(fit.model, fit.structure, as_batch(cells), 2000).mean(0)
    iwae = fit.log_prob(cells, k=20000)
    assert (elbo < exact).all()  # Jensen: E_u log p(x + u) < log integral p(x + u) du
    torch.testing.assert_close(iwae, exact, atol=2e-2, rtol=0)  # about 3 sd of a 20000-draw average
    assert ((iwae - exact).abs() < exact - elbo).all()


def test_dequantized_flow_samples_integers_on_the_grid_and_refuses_other_data():
    model = models.DequantizedFlow(x_dim=4, levels=17)
    fit = ppgen.fit(model, torch.randint(0, 17, (64, 4)).float(), epochs=2, progress=False)
    draws = fit.sample(500)
    assert (draws == draws.round()).all() and draws.min() >= 0 and draws.max() <= 16
    with pytest.raises(ValueError, match=r"DequantizedFlow\(levels=17\) takes integer values 0..16"):
        ppgen.fit(models.DequantizedFlow(x_dim=4, levels=17), torch.rand(8, 4), progress=False)


@pytest.mark.parametrize("build, error, match", [
    (lambda: models.MAF(x_dim=3, hidden=()), TypeError, "hidden must be a non-empty sequence"),
    (lambda: models.RealNVP(x_dim=3, transforms=0), ValueError, "transforms must be a positive int"),
    (lambda: models.NeuralSplineFlow(x_dim=3, bins=0), ValueError, "bins must be a positive int"),
    (lambda: models.DequantizedFlow(x_dim=3, flow="glow"), ValueError, "flow must be one of"),
    (lambda: models.DequantizedFlow(x_dim=3, levels=1), ValueError, "levels must be at least 2"),
    (lambda: models.FlowVAE(x_dim=3, flow_hidden=(0,)), ValueError, r"flow_hidden\[0\] must be a positive int"),
])
def test_bad_options_are_refused(build, error, match):
    with pytest.raises(error, match=match):
        build()


def test_flow_vae_guide_scores_its_draws_with_the_inverse_flow_density():
    """The guide's cached log q(z|x) from sampling equals zuko's log_prob, which inverts the flow afresh."""
    vae = perturbed_vae()
    x = torch.bernoulli(torch.full((5, 6), 0.5)).double()
    structure = inspect(vae, x)
    trace = ppgen.program.traces.draw_particles(vae, structure, as_batch(x), 3)
    site = trace.nodes["z"]
    torch.testing.assert_close(site["fn"].log_prob(site["value"]), site["fn"].dist.log_prob(site["value"]))


def perturbed_vae():
    vae = models.FlowVAE(x_dim=6, z_dim=3, hidden=(16,)).double()
    with torch.no_grad():
        for param in vae.iaf.parameters():
            param.add_(0.3 * torch.randn_like(param))
    return vae


def elbo_gap(fit, test):
    """IWAE-5000 minus the ELBO (200 particles per point), nats per point: how loose the ELBO is; and IWAE-5000."""
    with torch.no_grad():
        elbo = log_weights(fit.model, fit.structure, as_batch(test), 200).mean().item()
    iwae = fit.iwae_bound(test, k=5000).mean().item()
    return iwae - elbo, iwae


def test_flow_vae_fits_by_iwae_and_its_bounds_are_ordered():
    """Fitted by IWAE(k=5): on held-out digits ELBO = IWAE_1 <= IWAE_10 <= IWAE_1000 (in expectation; 360 points)."""
    train, test = datasets.digits(binarize=True)[:300], datasets.digits(binarize=True, split="test")
    fit = ppgen.fit(models.FlowVAE(x_dim=64, z_dim=4, hidden=(64,)), train, inference=inference.IWAE(k=5),
                    epochs=3, progress=False)
    bounds = [fit.iwae_bound(test, k=k).mean().item() for k in (1, 10, 1000)]
    assert bounds[0] < bounds[1] < bounds[2], bounds


@pytest.mark.slow
def test_a_flow_guide_gives_a_tighter_elbo_than_a_diagonal_gaussian_on_held_out_digits():
    """The same decoder p(x|z) (a VAE's, then frozen) and two guides trained the same way from the VAE's encoder:
    log p(x) is the same for both (their IWAE-5000 agree), so the smaller gap IWAE-5000 - ELBO on held-out
    digits is the smaller KL(q(z|x) || p(z|x)): the flow's."""
    train = datasets.digits(binarize=True)
    test = datasets.digits(binarize=True, split="test")
    torch.manual_seed(0)
    vae = ppgen.fit(models.VAE(x_dim=64, z_dim=4, hidden=(200,)), train, epochs=20, progress=False).model
    gaps, log_p = {}, {}
    for cls in (models.VAE, models.FlowVAE):
        model = cls(x_dim=64, z_dim=4, hidden=(200,))
        model.load_state_dict(vae.state_dict(), strict=False)  # the IAF layers are the FlowVAE's own
        model.decoder.requires_grad_(False)
        fit = ppgen.fit(model, train, inference=inference.ELBO(), epochs=20, progress=False)
        gaps[cls.__name__], log_p[cls.__name__] = elbo_gap(fit, test)
    assert log_p["FlowVAE"] == pytest.approx(log_p["VAE"], abs=0.02)
    assert 0 < gaps["FlowVAE"] < gaps["VAE"], gaps


@pytest.mark.parametrize("build", [lambda: models.MAF(x_dim=3), lambda: models.NeuralSplineFlow(x_dim=3),
                                   lambda: models.RealNVP(x_dim=3), lambda: models.FlowVAE(x_dim=3, z_dim=2),
                                   lambda: models.DequantizedFlow(x_dim=3, levels=2)])
def test_a_saved_fit_loads_and_answers_the_same(build, tmp_path):
    x = torch.bernoulli(torch.full((64, 3), 0.4))
    fit = ppgen.fit(build(), x, epochs=2, progress=False)
    fit.save(tmp_path / "fit.pt")
    loaded = ppgen.load(tmp_path / "fit.pt")
    torch.manual_seed(0)
    expected = fit.log_prob(x, k=10)
    torch.manual_seed(0)
    torch.testing.assert_close(loaded.log_prob(x, k=10), expected)
