"""Pictures of a fit, the decoder's means behind them, and the two commands that draw and export posteriors."""

from __future__ import annotations

from pathlib import Path

import arviz as az
import matplotlib.image
import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from matplotlib.figure import Figure

import ppgen
from ppgen import datasets, inference, models, plots
from ppgen.cli import main
from ppgen.program.inputs import as_batch
from ppgen.program.protocol import as_module
from ppgen.program.structure import inspect

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def vae():
    train = datasets.digits(split="train", binarize=True)[:256]
    test, labels = datasets.digits(split="test", binarize=True, return_labels=True)
    return ppgen.fit(models.VAE(x_dim=64, z_dim=3, hidden=(32,)), train, epochs=2, progress=False), test[:40], \
        labels[:40]


def image(path: Path) -> np.ndarray:
    return matplotlib.image.imread(path)


def test_the_mean_of_a_bernoulli_decoder_is_sigmoid_of_its_logits_on_fixed_z():
    """x | z ~ Bernoulli(sigmoid(z A)) with z held at chosen values: E[x | z] = sigmoid(z A), in [0, 1]."""
    a = torch.randn(2, 6)
    z = torch.randn(5, 2)

    def model(x):
        with pyro.plate("data", len(x)):
            code = pyro.sample("z", dist.Normal(torch.zeros(2), 1.0).to_event(1))
            pyro.sample("x", dist.Bernoulli(logits=code @ a).to_event(1), obs=x)

    fixed = pyro.poutine.condition(model, data={"z": z})
    x = torch.zeros(5, 6)
    module = as_module(fixed)
    fit = ppgen.Fit(module, inspect(module, x), inference.MLE(), history=[], example=as_batch(x))
    means = fit.sample(5, mean=True)
    torch.testing.assert_close(means, torch.sigmoid(z @ a))
    draws = fit.sample(5)
    assert set(draws.unique().tolist()) <= {0.0, 1.0}


def test_a_vaes_sample_means_lie_in_the_unit_interval_and_are_not_draws(vae):
    fit, _, _ = vae
    means = fit.sample(64, mean=True)
    assert means.shape == (64, 64)
    assert bool(((means >= 0) & (means <= 1)).all())
    assert bool(((means > 0.01) & (means < 0.99)).any())  # probabilities, not 0/1 draws


def test_a_likelihood_without_a_mean_is_refused_clearly():
    def model(x):
        with pyro.plate("data", len(x)):
            z = pyro.sample("z", dist.Normal(0.0, 1.0))
            pyro.sample("x", dist.TransformedDistribution(dist.Normal(z, 1.0), [dist.transforms.TanhTransform()]),
                        obs=x)

    def guide(x):
        with pyro.plate("data", len(x)):
            pyro.sample("z", dist.Normal(0.0, 1.0))

    x = torch.rand(4) - 0.5
    module = as_module((model, guide))
    fit = ppgen.Fit(module, inspect(module, x), inference.ELBO(), history=[], example=as_batch(x))
    with pytest.raises(ValueError, match=r"data site 'x', TransformedDistribution, has no closed-form mean"):
        fit.sample(3, mean=True)
    with pytest.raises(TypeError, match=r"mean must be True or False"):
        fit.sample(3, mean="yes")


def test_reconstructions_decode_the_posterior_mean(vae, tmp_path):
    """The bottom row is E[x | z = E[z|x]]: for the VAE, the decoder's probabilities at the encoder's mean."""
    fit, test, _ = vae
    figure = plots.reconstructions(fit, test[:6], path=tmp_path / "r.png")
    assert isinstance(figure, Figure) and image(tmp_path / "r.png").ndim == 3
    from ppgen.queries.sampling import decode

    z = fit.encode(test[:6])
    torch.testing.assert_close(decode(fit.model, fit.structure, fit.example, {"z": z}),
                               torch.sigmoid(fit.model.decoder(z)))


def test_the_pictures_of_a_fit_are_drawn_and_written(vae, tmp_path):
    fit, test, labels = vae
    figures = {
        "latent": plots.latent(fit, test, labels, path=tmp_path / "latent.png"),
        "samples": plots.samples(fit, 16, path=tmp_path / "samples.png"),
        "draws": plots.samples(fit, 16, mean=False, path=tmp_path / "draws.png"),
        "interpolation": plots.interpolation(fit, test[0], test[1], steps=6, path=tmp_path / "interpolation.png"),
        "posterior": plots.posterior(fit.posterior(test[:2], num_samples=100), point=1, path=tmp_path / "post.png"),
    }
    for name, figure in figures.items():
        assert isinstance(figure, Figure), name
        assert image(tmp_path / f"{'post' if name == 'posterior' else name}.png").shape[0] > 100
    # PCA of the 3-D codes, with a legend of the ten digits
    axes = figures["latent"].axes[0]
    assert "PCA of 3-D z" in axes.get_title() and axes.get_legend() is not None
    assert len(figures["posterior"].axes) == 3  # the three coordinates of point 1's z
    with pytest.raises(ValueError, match=r"point must index the 2 data points, got 5"):
        plots.posterior(fit.posterior(test[:2], num_samples=10), point=5)
    with pytest.raises(ValueError, match=r"steps must be an int of at least 2"):
        plots.interpolation(fit, test[0], test[1], steps=1)


def test_the_interpolation_starts_and_ends_at_the_reconstructions(vae):
    fit, test, _ = vae
    from ppgen.queries.sampling import decode

    ends = decode(fit.model, fit.structure, fit.example, {"z": fit.encode(test[:2])})
    figure = plots.interpolation(fit, test[0], test[1], steps=3)
    picture = figure.axes[0].images[0].get_array()
    first, last = picture[1:9, 1:9], picture[1:9, 1 + 2 * 9:2 * 9 + 9]
    np.testing.assert_allclose(np.asarray(first), ends[0].detach().reshape(8, 8).numpy(), atol=1e-6)
    np.testing.assert_allclose(np.asarray(last), ends[1].detach().reshape(8, 8).numpy(), atol=1e-6)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("posterior-cli") / "run"
    code = main(["fit", "--model", "vae", "--data", "digits", "--z-dim", "2", "--hidden", "32", "--epochs", "1",
                 "--eval-k", "5", "--batch-size", "256", "--out", str(folder)])
    assert code == 0
    return folder


def test_ppgen_encode_draws_the_test_set(run, tmp_path, capsys):
    out = tmp_path / "latent.png"
    assert main(["encode", str(run), "--out", str(out)]) == 0
    assert "wrote the codes of 360 test points" in capsys.readouterr().out
    assert image(out).ndim == 3


def test_ppgen_posterior_writes_netcdf_that_arviz_reads(run, tmp_path, capsys):
    out = tmp_path / "post.nc"
    with pytest.warns(UserWarning, match=r"Pareto k-hat above 0.7"):  # a guide after one epoch: far from p(z|x)
        assert main(["posterior", str(run), "--index", "3", "7", "--method", "importance", "--num-samples", "50",
                     "--k", "200", "--out", str(out)]) == 0
    idata = az.from_netcdf(str(out))
    assert idata.posterior["z"].shape == (1, 50, 2, 2)
    assert idata.posterior["point"].values.tolist() == [3, 7]  # labelled by their rows in the test set
    assert set(idata.groups()) == {"posterior", "sample_stats", "log_likelihood", "observed_data"}
    test = datasets.digits(split="test", binarize=True)
    np.testing.assert_array_equal(idata.observed_data["x"].values, test[[3, 7]].numpy())


def test_the_commands_refuse_bad_outputs_and_indices_before_work(run, tmp_path, capsys):
    link = tmp_path / "link.nc"
    link.symlink_to(tmp_path / "elsewhere.nc")
    assert main(["posterior", str(run), "--out", str(link)]) == 1
    assert "symbolic link" in capsys.readouterr().err
    assert not (tmp_path / "elsewhere.nc").exists()
    assert main(["posterior", str(run), "--index", "360", "--out", str(tmp_path / "p.nc")]) == 1
    assert "--index 360 is outside the run's test set of 360 points" in capsys.readouterr().err
    assert main(["encode", str(run), "--out", str(tmp_path)]) == 1
    assert "is a folder" in capsys.readouterr().err
    assert main(["encode", str(tmp_path / "missing")]) == 1
    assert "not found" in capsys.readouterr().err
