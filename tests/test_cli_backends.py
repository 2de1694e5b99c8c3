"""``ppgen fit``'s backends and likelihoods: every backend option as a flag and the discretised logistic, each fitted
through the command line and held to the Python API on the same seed (bitwise on CPU), refused by flag where it does
not apply, and kept in step with the classes it spells."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pyro
import pytest
import torch

import ppgen
from ppgen import datasets, inference, models
from ppgen.cli import backends, common, data_sets, main
from ppgen.training import registry

pytestmark = pytest.mark.usefixtures("one_thread")

MOONS = ["--data", "moons", "--epochs", "1", "--batch-size", "500", "--eval-k", "10", "--seed", "0"]


def cli_and_api(tmp_path: Path, argv: list[str], model: torch.nn.Module, train: torch.Tensor,
                backend: inference.Objective, **fit_options) -> tuple[dict, ppgen.Fit, ppgen.Fit]:
    """The run ``ppgen fit argv`` writes (its metrics.json and fit.pt) and ``ppgen.fit`` of ``model`` on ``train``
    with ``backend``, seeded as the command seeds it: the initial weights drawn after ``pyro.set_rng_seed(0)``; the
    command holds no rows out (``--validation-split 0``), so that both train on the same rows."""
    run = tmp_path / "run"
    assert main(["fit", *argv, "--validation-split", "0", "--no-progress", "--out", str(run)]) == 0
    pyro.set_rng_seed(0)
    model = model()  # built here, after the seed, as the command builds it
    api = ppgen.fit(model, train, inference=backend, epochs=fit_options.pop("epochs", 1), seed=0, progress=False,
                    **fit_options)
    return json.loads((run / common.METRICS_FILE).read_text()), ppgen.load(run / "fit.pt"), api


def assert_same_fit(metrics: dict, loaded: ppgen.Fit, api: ppgen.Fit) -> None:
    """The same objective, losses and weights: the command line is the API."""
    assert metrics["objective"] == common.objective_label(api.inference)
    assert metrics["train_loss"] == api.history
    mine, theirs = loaded.model.state_dict(), api.model.state_dict()
    assert mine.keys() == theirs.keys()
    for name in mine:
        assert torch.equal(mine[name], theirs[name]), name


@pytest.mark.parametrize("flags, backend", [
    (["--inference", "renyi", "--alpha", "0.2", "--k", "3"], inference.RenyiVI(alpha=0.2, k=3)),
    (["--inference", "iwae", "--estimator", "dreg", "--k", "3"], inference.IWAE(k=3, estimator="dreg")),
    (["--inference", "elbo", "--kl", "analytic", "--k", "2"], inference.ELBO(kl="analytic", num_particles=2)),
    (["--inference", "elbo", "--latent-mmd", "1.5"], inference.ELBO(latent_mmd=1.5)),
])
def test_a_bound_option_given_as_a_flag_fits_as_the_api_does(flags, backend, tmp_path):
    metrics, loaded, api = cli_and_api(tmp_path, ["--model", "vae", "--z-dim", "2", "--hidden", "16", *MOONS, *flags],
                                       lambda: models.VAE(x_dim=2, z_dim=2, hidden=[16], likelihood="gaussian"),
                                       datasets.moons(n=1000, noise=0.1, seed=0), backend, batch_size=500)
    assert_same_fit(metrics, loaded, api)
    assert loaded.inference == backend
    test = datasets.moons(n=500, noise=0.1, seed=1)
    estimate = common.test_log_likelihood(api, test, k=10, seed=0)
    assert metrics["test_log_likelihood"] == estimate.log_likelihood


@pytest.mark.parametrize("flags, backend", [
    (["--inference", "mmd", "--num-samples", "2", "--bandwidths", "0.5", "1.0"],
     inference.MMD(num_samples=2, bandwidths=(0.5, 1.0))),
    (["--inference", "adversarial", "--divergence", "kl", "--no-nonsaturating", "--critic-steps", "2",
      "--critic-lr", "0.002"], inference.Adversarial(divergence="kl", nonsaturating=False, critic_steps=2,
                                                       critic_lr=0.002)),
    (["--inference", "wasserstein", "--gradient-penalty", "5", "--one-sided", "--critic-steps", "2"],
     inference.Wasserstein(gradient_penalty=5.0, one_sided=True, critic_steps=2)),
])
def test_a_likelihood_free_option_given_as_a_flag_fits_as_the_api_does(flags, backend, tmp_path):
    """The critic the command builds is the zoo's default, as ``ppgen.fit`` builds it from the same seed."""
    metrics, loaded, api = cli_and_api(tmp_path, ["--model", "generator", "--hidden", "16", *MOONS, *flags],
                                       lambda: models.Generator(x_dim=2, hidden=[16]),
                                       datasets.moons(n=1000, noise=0.1, seed=0), backend, batch_size=500)
    assert_same_fit(metrics, loaded, api)
    settings = {f.name: getattr(backend, f.name) for f in dataclasses.fields(backend) if f.name != "critic"}
    assert {name: getattr(loaded.inference, name) for name in settings} == settings


@pytest.mark.parametrize("flags, backend, conditional", [
    ([], inference.ScoreMatching(), False),
    (["--inference", "score-matching", "--method", "sliced", "--projection", "gaussian"],
     inference.ScoreMatching(method="sliced", projection="gaussian"), False),
    (["--inference", "score-matching", "--noise", "0.5", "0.2", "0.05"],
     inference.ScoreMatching(noise=(0.5, 0.2, 0.05)), True),
    (["--inference", "nce", "--ratio", "2"], inference.NCE(ratio=2), False),
    (["--inference", "contrastive-divergence", "--buffer", "500", "--restart", "0.1", "--alpha", "0.1"],
     inference.ContrastiveDivergence(buffer=500, restart=0.1, alpha=0.1), False),
])
def test_an_energy_model_is_fitted_by_each_of_its_backends_as_the_api_does(flags, backend, conditional, tmp_path):
    """``--model energy`` by score matching (its default), NCE or contrastive divergence, with their options as flags
    (several noise levels make the energy noise-conditional, E(x, sigma)): the API's fit, and its test figure the
    estimate -E(x) - log Zhat with log Z by annealed importance sampling, labelled so."""
    metrics, loaded, api = cli_and_api(tmp_path, ["--model", "energy", "--hidden", "16", *MOONS, *flags],
                                       lambda: models.EnergyModel(x_dim=2, hidden=[16], noise_conditional=conditional),
                                       datasets.moons(n=1000, noise=0.1, seed=0), backend, batch_size=500)
    assert_same_fit(metrics, loaded, api)
    assert loaded.inference == api.inference
    assert metrics["annealed"] is True and metrics["exact"] is False and metrics["eval_k"] is None
    estimate = common.test_log_likelihood(api, datasets.moons(n=500, noise=0.1, seed=1), k=10, seed=0)
    assert metrics["test_log_likelihood"] == estimate.log_likelihood and estimate.annealed
    assert "log Z by annealed importance sampling" in str(estimate)


def test_the_discretised_logistic_fits_8_bit_levels_as_the_api_does(tmp_path):
    """``--likelihood discretised_logistic`` gives the images as levels round(255 x), the data of the likelihood's
    support, and its run is ``ppgen.fit`` on those levels; its figure is a log-probability (comparable), and its
    samples and their means lie in [0, 255]."""
    levels = (datasets.digits(split="train") * 255).round()
    metrics, loaded, api = cli_and_api(
        tmp_path, ["--model", "vae", "--data", "digits", "--likelihood", "discretised_logistic", "--z-dim", "2",
                   "--hidden", "16", "--epochs", "2", "--batch-size", "512", "--eval-k", "10", "--seed", "0"],
        lambda: models.VAE(x_dim=64, z_dim=2, hidden=[16], likelihood="discretised_logistic"), levels,
        inference.ELBO(), epochs=2, batch_size=512)
    assert_same_fit(metrics, loaded, api)
    assert metrics["config"]["levels"] == 256 and metrics["config"]["binarize"] is False
    assert metrics["comparable"] is True
    test = (datasets.digits(split="test") * 255).round()
    assert metrics["test_log_likelihood"] == common.test_log_likelihood(api, test, k=10, seed=0).log_likelihood
    data = data_sets.run_data(metrics["config"])  # as eval, encode and posterior rebuild it
    assert torch.equal(data.train, levels) and torch.equal(data.test, test)
    x, means = loaded.sample(50), loaded.sample(50, mean=True)
    assert bool(((x >= 0) & (x <= 255) & (x == x.round())).all()) and bool(((means >= 0) & (means <= 255)).all())


def test_the_discretised_logistic_is_refused_on_real_points(tmp_path, capsys):
    assert main(["fit", "--model", "vae", "--data", "moons", "--likelihood", "discretised_logistic", "--out",
                 str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "ppgen fit: error: --likelihood discretised_logistic models the 8-bit levels of image data (digits, "
        "fashion-mnist, idx:PATH), not the real points of moons: use --likelihood gaussian")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("argv, message", [
    (["--inference", "elbo", "--alpha", "0.3"], "--alpha does not apply to --inference elbo: it is an option of "
                                                "--inference renyi and --inference contrastive-divergence"),
    (["--ratio", "2"], "--ratio does not apply to the default --inference: it is an option of --inference nce"),
    (["--inference", "iwae", "--critic-steps", "2"], "--critic-steps does not apply to --inference iwae: it is an "
                                                     "option of --inference adversarial and --inference wasserstein"),
    (["--inference", "vimco", "--k", "1"], "--k must be at least 2 for VIMCO, whose baseline for each particle "
                                           "averages the others, got 1"),
    (["--inference", "renyi", "--alpha", "inf"], "argument --alpha: value must be a finite number, got inf"),
    (["--inference", "mmd", "--bandwidths", "0"],
     "argument --bandwidths: value must be a positive finite number, got 0.0"),
])
def test_an_option_is_refused_by_its_flag_before_any_work(argv, message, tmp_path, capsys):
    assert main(["fit", "--model", "vae", *argv, "--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"ppgen fit: error: {message}"
    assert not (tmp_path / "run").exists()


def test_resume_names_the_backend_option_that_differs(tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["fit", "--model", "vae", "--hidden", "8", *MOONS, "--inference", "renyi", "--k", "2", "--out", str(run)]
    assert main([*argv, "--alpha", "0.2"]) == 0
    capsys.readouterr()
    assert main([*argv, "--alpha", "0.7", "--resume"]) == 1
    assert "(--alpha 0.7 here, 0.2 in the run)" in capsys.readouterr().err
    assert main([*argv, "--resume"]) == 1
    assert "(--alpha not given here, 0.2 in the run)" in capsys.readouterr().err


def test_the_flags_are_the_backends_own_options_with_their_defaults():
    """Every option names a field of each backend it lists, with the choices the backend accepts (and refuses any
    other) and the default ``--help`` shows; every field of an offered backend has its flag but those that take a
    Python object; the likelihoods are the zoo's."""
    from ppgen.models.likelihoods import LIKELIHOODS

    assert common.LIKELIHOOD_NAMES == LIKELIHOODS
    flagged = {("elbo", "num_particles")} | {(name, "k") for name in common.INFERENCE_NAMES}
    for option in backends.OPTIONS:
        for name in option.backends:
            default = option.default[name] if isinstance(option.default, dict) else option.default
            if default is not None:
                assert getattr(registry.build_inference(name), option.field) == default, (option.flag, name)
            for choice in option.choices or ():
                assert getattr(registry.build_inference(name, **{option.field: choice}), option.field) == choice
            if option.choices:
                with pytest.raises(ValueError, match=option.field):
                    registry.build_inference(name, **{option.field: "no-such-choice"})
            flagged.add((name, option.field))
    assert set(backends.OPTIONS[6].choices) == set(inference.adversarial.DIVERGENCES)  # every divergence offered
    fields = {(name, f.name) for name in common.INFERENCE_NAMES
              for f in dataclasses.fields(type(registry.build_inference(name)))}
    # a network, a distribution or a sampler's settings object has no flag; "rbf" is MMD's one kernel
    assert fields - flagged == {("adversarial", "critic"), ("wasserstein", "critic"), ("mmd", "kernel"),
                                ("nce", "noise"), ("contrastive-divergence", "sampler")}


def test_the_help_says_why_the_other_backends_are_not_offered(capsys):
    """The API's backends that --inference lacks are named in its help, with the reason."""
    assert main(["fit", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    offered = {type(registry.build_inference(name)).__name__ for name in common.INFERENCE_NAMES}
    absent = set(inference.__all__) - {"Objective", "Langevin"} - offered
    assert absent == {"MAP", "NUTS"}
    for name in absent:
        assert f"{name}()" in text
    assert "map, nuts: not offered, as" in text and "no model of --model has one" in text
