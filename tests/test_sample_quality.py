"""Sample-quality metrics against the truth: the permutation p-value's calibration, the classifier two-sample test at
chance, the Fréchet distance's closed form between Gaussians, VEEGAN's mode counts on the ring, and fit.evaluate on
models with and without a density."""

import json
import math
from unittest import mock

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import scipy.linalg
import scipy.stats
import torch
from torch import nn

import ppgen
import ppgen.queries.result
from ppgen import datasets, models
from ppgen.objective.kernels import median_bandwidths, mmd2_unbiased
from ppgen.program.structure import inspect
from ppgen.queries.c2st import c2st
from ppgen.queries.features import FeatureClassifier, feature_classifier, load_feature_classifier
from ppgen.queries.frechet import frechet_distance, gaussian_frechet
from ppgen.queries.mmd_test import mmd2_of_labellings, mmd_test, pooled_kernel
from ppgen.queries.modes import mode_coverage
from ppgen.queries.sample_quality import sample_quality
from programs import MomentMatching

pytestmark = pytest.mark.usefixtures("one_thread")


# -------------------------------------------------------------------------------------------------
# MMD and its permutation test


def test_the_statistic_is_the_unbiased_mmd_of_each_labelling():
    """Scored through the pooled kernel matrix, the observed labelling and a random one give kernels.mmd2_unbiased of
    the two samples they define, with the bandwidths fixed from the pooled sample."""
    x, y = torch.randn(30, 3, dtype=torch.float64), torch.randn(20, 3, dtype=torch.float64) + 0.3
    bandwidths = median_bandwidths(x, y)
    assert mmd_test(x, y).value == pytest.approx(mmd2_unbiased(x, y, bandwidths).item(), rel=1e-12)
    pooled, order = torch.cat([x, y]), torch.randperm(50)
    labels = torch.zeros(50, 1, dtype=torch.float64)
    labels[order[:30]] = 1
    permuted = mmd2_of_labellings(pooled_kernel(pooled, bandwidths), labels, 30)
    expected = mmd2_unbiased(pooled[order[:30]], pooled[order[30:]], bandwidths)
    assert permuted.item() == pytest.approx(expected.item(), rel=1e-12)


def test_the_permutation_p_value_is_uniform_under_the_null():
    """400 replicates of two samples of one distribution (20 points each, 99 permutations, seeded): the p-values pass a
    Kolmogorov-Smirnov test of uniformity at the 1% level, and P(p <= alpha) is alpha within 3 binomial standard errors
    for alpha in 0.05, 0.1, 0.5 (p is a multiple of 1/100, so that P(p <= alpha) = alpha exactly at these levels)."""
    generator = torch.Generator().manual_seed(1)
    p_values = np.array([mmd_test(torch.randn(20, 2, generator=generator), torch.randn(20, 2, generator=generator),
                                  permutations=99, seed=i).p_value for i in range(400)])
    assert scipy.stats.kstest(p_values, "uniform").pvalue > 0.01
    for alpha in (0.05, 0.1, 0.5):
        assert abs((p_values <= alpha + 1e-9).mean() - alpha) < 3 * math.sqrt(alpha * (1 - alpha) / 400)


def test_the_permutation_p_value_is_small_under_a_clear_alternative():
    x, y = torch.randn(50, 2), torch.randn(50, 2) + 1.0
    score = mmd_test(x, y, permutations=199)
    assert score.p_value == pytest.approx(1 / 200)
    assert score.value > 10 * score.std_error


def test_the_permutation_test_is_seeded():
    x, y = torch.randn(30, 2), torch.randn(30, 2) + 0.2
    assert mmd_test(x, y, seed=3) == mmd_test(x, y, seed=3)


# -------------------------------------------------------------------------------------------------
# classifier two-sample test


def test_c2st_is_at_chance_for_two_samples_of_one_distribution():
    """Held-out accuracy 0.5 within 3 standard errors, over five seeds as well as each."""
    accuracies = []
    for seed in range(5):
        score = c2st(torch.randn(400, 4), torch.randn(400, 4), seed=seed)
        assert abs(score.value - 0.5) < 3 * math.sqrt(0.25 / 400)
        accuracies.append(score.value)
    assert abs(np.mean(accuracies) - 0.5) < 3 * math.sqrt(0.25 / 2000)


def test_c2st_tells_separated_samples_apart():
    score = c2st(torch.randn(300, 4), torch.randn(300, 4) + 3.0)
    assert score.value > 0.95 and score.p_value < 1e-30


def test_c2st_sees_a_difference_of_spread_that_a_linear_classifier_would_not():
    """N(0, I) against N(0, 4 I): one mean, so the MLP's accuracy above chance is the covariance it sees."""
    score = c2st(torch.randn(500, 2), 2 * torch.randn(500, 2))
    assert score.value > 0.6 and score.p_value < 1e-3
    assert score.std_error == pytest.approx(math.sqrt(score.value * (1 - score.value) / 500))


# -------------------------------------------------------------------------------------------------
# Fréchet distance


def random_covariance(d: int, rng: np.random.Generator) -> np.ndarray:
    a = rng.standard_normal((d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def test_gaussian_frechet_against_the_closed_forms():
    """Commuting (diagonal) covariances: ||mu_1 - mu_2||^2 + sum_i (sqrt(a_i) - sqrt(b_i))^2; any two: the trace of
    scipy.linalg.sqrtm(S_1 S_2), FID's reference computation; one Gaussian: 0."""
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.standard_normal(5), rng.standard_normal(5)
    a, b = rng.uniform(0.1, 3, 5), rng.uniform(0.1, 3, 5)
    closed = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert gaussian_frechet(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(closed, rel=1e-12)
    s1, s2 = random_covariance(6, rng), random_covariance(6, rng)
    mu1, mu2 = rng.standard_normal(6), rng.standard_normal(6)
    reference = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real)
    assert gaussian_frechet(mu1, s1, mu2, s2) == pytest.approx(reference, rel=1e-9)
    assert abs(gaussian_frechet(mu1, s1, mu1, s1)) < 1e-10


def test_the_frechet_distance_of_samples_nears_the_gaussians_closed_form():
    """20,000 draws of each of two 3-d Gaussians: within 2% of the closed form (the covariances' sampling error is
    O(d / n)); two samples of one Gaussian: below 0.005; a sample against itself: 0."""
    rng = np.random.default_rng(1)
    s1, s2 = random_covariance(3, rng), random_covariance(3, rng)
    mu1, mu2 = np.zeros(3), np.array([1.0, -0.5, 0.2])
    def draw(mu, s):
        return torch.from_numpy(rng.multivariate_normal(mu, s, 20_000))

    x, y = draw(mu1, s1), draw(mu2, s2)
    assert frechet_distance(x, y).value == pytest.approx(gaussian_frechet(mu1, s1, mu2, s2), rel=0.02)
    assert 0 <= frechet_distance(x, draw(mu1, s1)).value < 0.005
    assert abs(frechet_distance(x, x).value) < 1e-9


@pytest.fixture(scope="module")
def digits_classifier():
    return feature_classifier(*datasets.digits(return_labels=True))


def test_the_feature_classifier_of_digits_classifies_the_test_split(digits_classifier):
    """Its own labels, on images it never saw: above 93% right (it reaches about 97%)."""
    assert digits_classifier.accuracy(*datasets.digits(split="test", return_labels=True)) > 0.93


@pytest.mark.slow
@pytest.mark.skipif(not (datasets.FASHION_MNIST_DIR / "t10k-labels-idx1-ubyte.gz").is_file(),
                    reason="Fashion-MNIST is not installed (make data)")
def test_the_feature_classifier_of_fashion_mnist_classifies_the_test_split():
    """Its 10 classes of clothes on the 10,000 test images: above 87% right (about 89%; about two minutes on a CPU)."""
    classifier = feature_classifier(*datasets.fashion_mnist(return_labels=True))
    assert classifier.accuracy(*datasets.fashion_mnist(split="test", return_labels=True)) > 0.87


def test_the_feature_classifier_is_kept_saved_and_loaded(digits_classifier, tmp_path):
    x, labels = datasets.digits(return_labels=True)
    state = torch.get_rng_state()
    assert feature_classifier(x, labels) is digits_classifier  # trained once a process
    assert torch.equal(torch.get_rng_state(), state)
    digits_classifier.save(tmp_path / "features.pt")
    loaded = load_feature_classifier(tmp_path / "features.pt")
    test = datasets.digits(split="test")
    torch.testing.assert_close(loaded.features(test), digits_classifier.features(test), rtol=0, atol=0)


DAMAGED_CLASSIFIER = {  # the change to a saved classifier of 4 numbers and 3 classes, the field named, what is expected
    "sizes missing": (lambda s: s.pop("in_features"), "keys", "exactly ['classes', 'format', 'in_features'"),
    "in_features not an int": (lambda s: s.update(in_features="4"), "in_features", "a positive int"),
    "sizes past the tensors": (lambda s: s.update(in_features=10**7, classes=10**5), "state_dict.shift",
                               "a floating-point tensor of shape [10000000]"),
    "weight of another shape": (lambda s: s["state_dict"].update({"head.weight": torch.zeros(2, 2)}),
                                "state_dict.head.weight", "a floating-point tensor of shape [3, 64]"),
    "weight missing": (lambda s: s["state_dict"].pop("head.bias"), "state_dict", "the tensors"),
    "non-finite weight": (lambda s: s["state_dict"]["body.0.bias"].fill_(math.nan), "state_dict.body.0.bias",
                          "finite values"),
    "zero scale": (lambda s: s["state_dict"]["scale"].zero_(), "state_dict.scale", "finite values, all positive"),
}


@pytest.mark.parametrize("case", sorted(DAMAGED_CLASSIFIER))
def test_a_damaged_feature_classifier_file_is_refused_naming_the_field(tmp_path, case):
    """Refused by a ValueError before a classifier of its sizes is built, not loaded to give NaN features (a zero
    scale, a NaN weight) or a torch error (a KeyError, a RuntimeError of load_state_dict)."""
    change, field, expected = DAMAGED_CLASSIFIER[case]
    FeatureClassifier(4, 3).save(tmp_path / "features.pt")
    state = torch.load(tmp_path / "features.pt", weights_only=True)
    change(state)
    torch.save(state, tmp_path / "features.pt")
    with pytest.raises(ValueError) as error:
        load_feature_classifier(tmp_path / "features.pt")
    message = str(error.value)
    assert message.startswith(f"{tmp_path / 'features.pt'}: field '{field}' of the feature classifier is damaged: "
                              f"expected {expected}"), message


def test_the_frechet_distance_in_feature_space_ranks_noise_far_from_digits(digits_classifier):
    test, train = datasets.digits(split="test"), datasets.digits()
    close = frechet_distance(train[:360], test, features=digits_classifier).value
    far = frechet_distance(torch.rand(360, 64), test, features=digits_classifier).value
    assert 0 < close < far / 100


def test_a_feature_classifier_of_another_shape_is_refused(digits_classifier):
    with pytest.raises(ValueError, match="takes points of 64 numbers, but these have 2"):
        frechet_distance(torch.randn(10, 2), torch.randn(10, 2), features=digits_classifier)


# -------------------------------------------------------------------------------------------------
# modes on the ring


def test_the_ring_and_its_modes():
    x, labels = datasets.ring(n=4000, seed=3, return_labels=True)
    centres, std = datasets.ring_modes()
    assert x.shape == (4000, 2) and x.dtype == torch.float32 and std == 0.02
    torch.testing.assert_close(centres.norm(dim=1), torch.full((8,), 2.0, dtype=torch.float64))
    torch.testing.assert_close(centres[2], torch.tensor([0.0, 2.0], dtype=torch.float64))
    offsets = x.double() - centres[labels]
    assert offsets.std().item() == pytest.approx(0.02, rel=0.05)
    assert torch.equal(x, datasets.ring(n=4000, seed=3))
    assert torch.bincount(labels).min() > 400


def test_exact_ring_draws_capture_all_modes_and_are_of_high_quality():
    """The fraction within 3 sigma of a 2-d Gaussian is P(chi^2_2 <= 9) = 1 - exp(-4.5) = 0.9889."""
    modes, quality = mode_coverage(datasets.ring(n=4000, seed=1), *datasets.ring_modes())
    assert modes.value == 8
    expected = 1 - math.exp(-4.5)
    assert abs(quality.value - expected) < 3 * math.sqrt(expected * (1 - expected) / 4000)


def test_draws_from_four_modes_capture_four():
    x, labels = datasets.ring(n=4000, seed=2, return_labels=True)
    modes, quality = mode_coverage(x[labels % 2 == 0], *datasets.ring_modes())
    assert modes.value == 4 and quality.value > 0.97


def test_broad_noise_is_of_low_quality():
    """Uniform on [-3, 3]^2: the 8 discs of radius 3 sigma cover 8 pi 0.06^2 / 36 = 0.25% of the square."""
    x = torch.rand(20_000, 2) * 6 - 3
    _, quality = mode_coverage(x, *datasets.ring_modes())
    expected = 8 * math.pi * 0.06**2 / 36
    assert abs(quality.value - expected) < 4 * math.sqrt(expected / 20_000)


def test_a_mode_needs_its_share_of_draws():
    """Of 800 draws, 1 stray one near a mode does not capture it (default: ceil(800 / 40) = 20); min_count=1 does."""
    centres, std = datasets.ring_modes()
    x = torch.cat([centres[0].float() + 0.01 * torch.randn(799, 2), centres[1:2].float()])
    assert mode_coverage(x, centres, std)[0].value == 1
    assert mode_coverage(x, centres, std, min_count=1)[0].value == 2


# -------------------------------------------------------------------------------------------------
# fit.evaluate


class Gaussian(nn.Module):
    """x ~ N(loc, diag(scale^2)): a density, no latents, no parameters learnt."""

    def __init__(self, loc: torch.Tensor, scale: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("loc", loc)
        self.register_buffer("scale", scale)

    def model(self, x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", dist.Normal(self.loc, self.scale).to_event(1), obs=x)


def test_a_model_of_the_data_distribution_passes_its_sample_tests():
    """The true distribution as the model: exact log p(x) as scipy gives it, MMD's p-value above 1%, C2ST at chance."""
    loc, scale = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 2.0])
    test = loc + scale * torch.randn(500, 2)
    module = Gaussian(loc, scale)
    fit = ppgen.Fit(module, inspect(module, test[:2]), ppgen.inference.MLE(), history=[], example=test[:2])
    report = fit.evaluate(test, k=10)
    truth = scipy.stats.norm(loc.numpy(), scale.numpy()).logpdf(test.numpy()).sum(1)
    np.testing.assert_allclose(report.exact.numpy(), truth, rtol=1e-5)
    scores = report.samples.scores
    assert set(scores) == {"mmd", "c2st", "frechet"}
    assert scores["mmd"].p_value > 0.01 and scores["mmd"].n == (500, 500)
    assert abs(scores["c2st"].value - 0.5) < 3 * scores["c2st"].std_error + 1e-9
    assert scores["frechet"].value < 0.1


@pytest.fixture(scope="module")
def ring_gmm():
    pyro.set_rng_seed(0)
    return ppgen.fit(models.GMM(x_dim=2, n_components=8), datasets.ring(n=800, seed=0), epochs=2, progress=False)


def test_a_zoo_model_gets_its_bounds_and_its_sample_metrics(ring_gmm):
    test = datasets.ring(n=200, seed=1)
    report = ring_gmm.evaluate(test, k=10, modes=datasets.ring_modes())
    assert report.exact is not None and report.n == 200
    assert list(report.samples.scores) == ["mmd", "c2st", "frechet", "modes", "high_quality"]
    as_dict = json.loads(json.dumps(report.to_dict()))
    assert as_dict["samples"]["mmd"]["n"] == [200, 200] and as_dict["samples"]["frechet_features"] == "x"
    assert as_dict["samples"]["n"] == [200, 200] and as_dict["samples"]["modes"]["n"] == [200, 8]
    text = str(report)
    assert "exact log p(x)" in text and "C2ST accuracy" in text and "modes captured" in text


def test_the_draws_are_as_many_as_the_test_points_and_scored_as_on_their_own(ring_gmm):
    """The report's MMD is mmd_test's of fit.sample(len(test)) drawn from the same RNG state."""
    test = datasets.ring(n=100, seed=1)
    pyro.set_rng_seed(5)
    report = ring_gmm.evaluate(test, metrics=("mmd",), seed=2)
    pyro.set_rng_seed(5)
    draws = ring_gmm.sample(100)
    assert report.samples.scores["mmd"] == mmd_test(draws, test, seed=2)
    assert ring_gmm.evaluate(test, metrics="frechet", num_samples=300).samples.scores["frechet"].n == (300, 100)


class Generator(nn.Module):
    """x = loc + scale z, z ~ N(0, I): a point mass at the data site, so no density to bound."""

    def __init__(self) -> None:
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(2))
        self.log_scale = nn.Parameter(torch.zeros(2))

    def model(self, x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(torch.zeros(2), 1.0).to_event(1))
            pyro.sample("x", dist.Delta(self.loc + self.log_scale.exp() * z, event_dim=1), obs=x)


def test_a_model_that_only_samples_gets_its_sample_metrics_alone():
    loc, scale = torch.tensor([1.0, -1.0]), torch.tensor([0.5, 2.0])
    fit = ppgen.fit(Generator(), loc + scale * torch.randn(1000, 2), inference=MomentMatching(), epochs=30, lr=0.05,
                    progress=False)
    report = fit.evaluate(loc + scale * torch.randn(400, 2))
    assert report.exact is None and report.iwae is None and report.n == 400
    assert report.samples.scores["c2st"].value < 0.6  # moments matched: a Gaussian like the data's
    assert str(report).startswith("evaluation of a model without a density: its samples alone")
    with pytest.raises(ValueError, match="metrics: none asked for, or none that 40 point.s. allow, but this model has "
                                         "no density to bound"):
        fit.evaluate(torch.randn(40, 2), metrics=())


# -------------------------------------------------------------------------------------------------
# bad arguments, refused before any work


@pytest.mark.parametrize("kwargs, error, words", [
    ({"metrics": ("mmd", "fid")}, ValueError,
     "metrics: unknown 'fid'; the choices are 'mmd', 'c2st', 'frechet', 'modes'"),
    ({"metrics": 3}, TypeError, "metrics must be a sequence of names"),
    ({"metrics": ("modes",)}, ValueError, "'modes' needs the data's modes, modes=(centres, std)"),
    ({"modes": torch.zeros(8, 2)}, TypeError, "modes must be a pair (centres, std)"),
    ({"modes": (torch.zeros(8, 3), 0.02)}, ValueError, "centres must be [M, ...] points of 2 numbers"),
    ({"modes": (torch.zeros(8, 2), -1.0)}, ValueError, "modes: std must be a positive finite number"),
    ({"features": "inception"}, TypeError, "features must be a FeatureClassifier"),
    ({"permutations": 0}, ValueError, "permutations must be a positive int"),
    ({"num_samples": 1.5}, TypeError, "num_samples must be a positive int"),
    ({"num_samples": 3, "metrics": ("mmd",)}, ValueError, "num_samples: 3 draw(s) are too few for the metric(s) mmd"),
    ({"num_samples": 2**40}, ValueError, "over the budget of"),
    ({"seed": -1}, ValueError, "seed must be an int in [0, 2**32)"),
])
def test_bad_arguments_are_refused_before_any_work(ring_gmm, kwargs, error, words):
    with mock.patch.object(ppgen.queries.result, "evaluate", side_effect=AssertionError("work began")), \
            mock.patch.object(ppgen.Fit, "sample", side_effect=AssertionError("work began")), \
            pytest.raises(error) as caught:
        ring_gmm.evaluate(datasets.ring(n=50), **kwargs)
    assert words in str(caught.value)


def test_too_few_test_points_for_a_permutation_test_are_refused(ring_gmm):
    with pytest.raises(ValueError, match=r"x: 4 data point\(s\) are too few for the metric\(s\) mmd, c2st"):
        ring_gmm.evaluate(datasets.ring(n=4), metrics=("mmd", "c2st", "frechet"))
    # by default, the metrics that the test points allow: C2ST needs 10, the MMD test 5, the Fréchet distance 2
    assert list(ring_gmm.evaluate(datasets.ring(n=6), k=5).samples.scores) == ["mmd", "frechet"]
    with pytest.raises(ValueError, match="data must hold at least 5 points"):
        mmd_test(torch.randn(10, 2), torch.randn(4, 2))


def test_a_feature_classifier_of_another_shape_is_refused_by_evaluate(ring_gmm, digits_classifier):
    with pytest.raises(ValueError, match="features: the feature classifier takes points of 64 numbers, but these "
                                         "have 2"):
        ring_gmm.evaluate(datasets.ring(n=50), features=digits_classifier)


@pytest.mark.parametrize("call, error, words", [
    (lambda: sample_quality(torch.randn(10, 2), [[0.0, 1.0]] * 10), TypeError, "data must be a Tensor or array"),
    (lambda: sample_quality(torch.randn(10, 3), torch.randn(10, 2)), ValueError,
     "samples and data must have points of one shape, got [3] and [2]"),
    (lambda: mmd_test(torch.full((10, 2), math.nan), torch.randn(10, 2)), ValueError, "samples holds NaN"),
    (lambda: c2st(torch.randn(20, 2), torch.randn(20, 2), max_points=5), ValueError,
     "max_points must be at least 10"),
    (lambda: mode_coverage(torch.randn(10, 2), torch.zeros(8, 3), 0.02), ValueError,
     "samples and centres must have points of one shape"),
    (lambda: feature_classifier(torch.randn(10, 4), torch.rand(10)), ValueError,
     "labels must be one integer class per point"),
    (lambda: datasets.ring(modes=0), ValueError, "modes must be a positive int"),
    (lambda: datasets.ring(std=0.0), ValueError, "std must be a positive finite number"),
])
def test_bad_inputs_to_the_metrics_on_their_own(call, error, words):
    with pytest.raises(error) as caught:
        call()
    assert words in str(caught.value)


def test_c2st_has_power_on_a_few_hundred_points():
    """A VAE's binary draws against the digits, 360 a side: told apart (without early stopping on a validation split
    of 36 points, which left a classifier of one class and an accuracy of exactly 0.5); the training digits against
    the test digits: at chance."""
    train, test = datasets.digits(binarize=True, split="train"), datasets.digits(binarize=True, split="test")
    torch.manual_seed(0)
    fit = ppgen.fit(models.VAE(x_dim=64, z_dim=8), train, epochs=50, progress=False)
    told = c2st(fit.sample(len(test)), test)
    same = c2st(train[:len(test)], test)
    assert told.value > 0.55 and told.p_value < 0.01
    assert abs(same.value - 0.5) < 3 * same.std_error
