"""FVSBN, NADE and MADE against brute force: at D = 10 every one of the 2^D binary vectors can be scored."""

import itertools

import pytest
import torch
from scipy import stats

import ppgen
from ppgen import inference, models
from ppgen.program.inputs import as_batch
from ppgen.program.structure import inspect

D = 10
#: chi-square tests reject at this level; seeded draws make each outcome fixed, not flaky.
LEVEL = 1e-3

BUILDERS = {
    "fvsbn": lambda: models.FVSBN(x_dim=D),
    "nade": lambda: models.NADE(x_dim=D, hidden=16),
    "made": lambda: models.MADE(x_dim=D, hidden=(32, 32)),
    "made-3-orderings": lambda: models.MADE(x_dim=D, hidden=(32,), orderings=3, seed=1),
}


pytestmark = pytest.mark.usefixtures("one_thread")


def every_binary_vector(dtype):
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=D)), dtype=dtype)


def perturbed(model, dtype):
    """The model in ``dtype`` with its weights moved well away from their start, so p(x) is far from uniform."""
    model = model.to(dtype)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param))
    return model


def training_data(n=600):
    """Binary vectors with strong dependences: a noisy copy chain x_d = x_{d-1} xor noise."""
    first = torch.bernoulli(torch.full((n, 1), 0.3))
    flips = torch.bernoulli(torch.full((n, D - 1), 0.1))
    return torch.cat([first, (first + flips.cumsum(1)) % 2], 1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_probabilities_of_all_binary_vectors_sum_to_one_untrained(name, dtype):
    model = perturbed(BUILDERS[name](), dtype)
    total = model.log_prob(every_binary_vector(dtype)).exp().sum()
    assert total.item() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_probabilities_of_all_binary_vectors_sum_to_one_after_fitting(name, dtype):
    data = training_data().to(dtype)
    fit = ppgen.fit(BUILDERS[name](), data, epochs=15, batch_size=64, lr=1e-2, progress=False)
    assert fit.inference == inference.MLE() and fit.structure.exact
    log_p = fit.log_prob(every_binary_vector(dtype))
    assert log_p.dtype == dtype
    assert log_p.exp().sum().item() == pytest.approx(1.0, abs=1e-5)
    # it learnt: the training data are far more probable than under independent fair coins
    assert fit.log_prob(data).mean().item() > -D * torch.log(torch.tensor(2.0)).item() + 2


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_sampling_frequencies_match_the_exact_probabilities(name):
    """Pearson's chi-square on 2^D cells (pooled where n p < 5), from fit.sample: the model run unconditioned."""
    fit = ppgen.fit(BUILDERS[name](), training_data(), epochs=10, batch_size=64, lr=1e-2, progress=False)
    n = 60_000
    draws = fit.sample(n)
    assert set(draws.unique().tolist()) <= {0.0, 1.0}
    index = (draws.long() * 2 ** torch.arange(D - 1, -1, -1)).sum(1)  # the row of every_binary_vector
    observed = torch.bincount(index, minlength=2**D).double()
    p = fit.log_prob(every_binary_vector(torch.float32)).double().exp()
    p = p / p.sum()  # float32 probabilities sum to 1 within 1e-5; scipy needs the totals to agree exactly
    expected = n * p
    small = expected < 5
    if small.any():
        observed = torch.cat([observed[~small], observed[small].sum().reshape(1)])
        expected = torch.cat([expected[~small], expected[small].sum().reshape(1)])
    result = stats.chisquare(observed.numpy(), expected.numpy())
    assert result.pvalue > LEVEL, result


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_each_conditional_reads_only_the_dimensions_before_it(name):
    """d logit_d / d x_j is zero unless j precedes d in the ordering: the autograd Jacobian of the network."""
    model = perturbed(BUILDERS[name](), torch.float64)
    x = torch.rand(D, dtype=torch.float64)
    jacobian = torch.autograd.functional.jacobian(model.logits, x)  # [M, D, D]
    for m, order in enumerate(model.orders):
        position = torch.empty_like(order)
        position[order] = torch.arange(D)
        allowed = position.unsqueeze(1) > position.unsqueeze(0)
        assert (jacobian[m][~allowed] == 0).all()
        assert (jacobian[m][allowed] != 0).any()


def test_several_orderings_are_an_exact_uniform_mixture():
    """log p(x) of a MADE with M orderings = log (1/M) sum_m p_m(x), each p_m a one-ordering MADE with its masks."""
    made = perturbed(models.MADE(x_dim=D, hidden=(32,), orderings=3, seed=1), torch.float64)
    x = every_binary_vector(torch.float64)
    logits = made.logits(x)  # [N, M, D]
    per_order = torch.distributions.Bernoulli(logits=logits).log_prob(x.unsqueeze(1)).sum(-1)
    torch.testing.assert_close(made.log_prob(x), per_order.exp().mean(1).log())
    assert made.orders.shape == (3, D) and len({tuple(o.tolist()) for o in made.orders}) == 3


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_no_latent_variables_so_encode_is_refused_by_name(name):
    fit = ppgen.fit(BUILDERS[name](), training_data(64), epochs=1, progress=False)
    with pytest.raises(ValueError, match=f"{type(fit.model).__name__} has no latent variables"):
        fit.encode(training_data(4))


def test_the_exact_likelihood_is_what_mle_maximises_and_what_the_program_scores():
    """MLE's loss is -mean log p(x), and the program's trace scores x with the same exact log p(x)."""
    fvsbn = perturbed(models.FVSBN(x_dim=D), torch.float32)
    x = training_data(32)
    structure = inspect(fvsbn, x)
    torch.testing.assert_close(inference.MLE().loss(fvsbn, structure, as_batch(x)), -fvsbn.log_prob(x).mean())
    torch.testing.assert_close(ppgen.objective.bounds.log_weights(fvsbn, structure, as_batch(x), 1)[0],
                               fvsbn.log_prob(x))


def test_data_off_the_binary_support_are_refused():
    with pytest.raises(ValueError, match="outside the support"):
        ppgen.fit(models.NADE(x_dim=3), torch.tensor([[0.0, 0.5, 1.0]]), progress=False)


@pytest.mark.parametrize("build, error, match", [
    (lambda: models.MADE(x_dim=4, hidden=()), TypeError, "hidden must be a non-empty sequence"),
    (lambda: models.MADE(x_dim=4, orderings=0), ValueError, "orderings must be a positive int"),
    (lambda: models.MADE(x_dim=4, seed=-1), ValueError, r"seed must be an int in \[0, 2\*\*32\)"),
    (lambda: models.NADE(x_dim=4, hidden=0), ValueError, "hidden must be a positive int"),
])
def test_bad_options_are_refused(build, error, match):
    with pytest.raises(error, match=match):
        build()


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_a_saved_fit_loads_with_its_masks_and_orderings(name, tmp_path):
    fit = ppgen.fit(BUILDERS[name](), training_data(64), epochs=2, progress=False)
    fit.save(tmp_path / "fit.pt")
    loaded = ppgen.load(tmp_path / "fit.pt")
    x = every_binary_vector(torch.float32)
    torch.testing.assert_close(loaded.log_prob(x), fit.log_prob(x))
    torch.testing.assert_close(loaded.model.orders, fit.model.orders)
