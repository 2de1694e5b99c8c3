"""GenerativeClassifier: Bayes' rule over one density model per class, checked against scikit-learn's QDA."""

import numpy as np
import pytest
import torch
from sklearn.discriminant_analysis import QuadraticDiscriminantAnalysis

import ppgen
from ppgen import models


@pytest.fixture(scope="module")
def blobs():
    rng = np.random.default_rng(0)
    means = np.array([[0.0, 0.0], [2.5, 0.5], [0.5, 2.5]])
    covs = [np.array([[1.0, 0.6], [0.6, 1.0]]), np.array([[0.5, -0.2], [-0.2, 1.5]]), np.eye(2) * 0.7]
    sizes = [150, 100, 60]
    x = np.concatenate([rng.multivariate_normal(m, c, n) for m, c, n in zip(means, covs, sizes)])
    y = np.repeat(np.arange(3), sizes)
    return x, y


def gaussian_classifier():
    return ppgen.GenerativeClassifier(lambda c: models.GMM(x_dim=2, n_components=1, covariance="full"),
                                      epochs=1, lr=1e-5, progress=False)


def test_gaussian_class_densities_give_the_predictions_of_quadratic_discriminant_analysis(blobs):
    x, y = blobs
    clf = gaussian_classifier().fit(torch.tensor(x), torch.tensor(y))
    qda = QuadraticDiscriminantAnalysis(store_covariance=True).fit(x, y)
    grid = np.random.default_rng(1).uniform(-3, 5, (400, 2))
    assert clf.predict(torch.tensor(grid)).tolist() == qda.predict(grid).tolist()
    # QDA's covariances are unbiased (n - 1), the maximum-likelihood ones biased (n): the probabilities differ
    # by that factor only
    np.testing.assert_allclose(clf.predict_proba(torch.tensor(grid)).numpy(), qda.predict_proba(grid), atol=0.02)


def test_probabilities_are_bayes_rule_and_log_prob_the_class_mixture(blobs):
    x, y = blobs
    clf = gaussian_classifier().fit(torch.tensor(x), torch.tensor(y))
    xt = torch.tensor(x[:20])
    log_likelihood = torch.stack([f.log_prob(xt).double() for f in clf.fits], -1)
    prior = torch.tensor(np.bincount(y) / len(y))
    joint = log_likelihood + prior.log()
    torch.testing.assert_close(clf.predict_proba(xt), (joint - joint.logsumexp(-1, keepdim=True)).exp())
    torch.testing.assert_close(clf.log_prob(xt), joint.logsumexp(-1))
    torch.testing.assert_close(clf.predict_proba(xt).sum(-1), torch.ones(20, dtype=torch.float64))


def test_bad_labels_and_an_unfitted_classifier_are_refused(blobs):
    x, y = blobs
    clf = gaussian_classifier()
    with pytest.raises(ValueError, match="not fitted yet"):
        clf.predict(torch.tensor(x))
    with pytest.raises(ValueError, match="one label per row"):
        clf.fit(torch.tensor(x), torch.tensor(y[:-1]))
    with pytest.raises(ValueError, match="integer class labels"):
        clf.fit(torch.tensor(x), torch.tensor(y, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"class\(es\) \[1\] have no points"):
        clf.fit(torch.tensor(x), torch.tensor(np.where(y == 1, 2, y)))
    with pytest.raises(TypeError, match="make_model must be callable"):
        ppgen.GenerativeClassifier("gmm")
