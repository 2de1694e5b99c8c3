"""``ppgen.fit`` and the ``Fit`` queries: arguments, errors before any work, reproducibility, checkpoints."""

import os
import pickle

import pyro
import pyro.distributions as dist
import pytest
import torch
from torch import nn

import ppgen
from ppgen import checkpoint, inference, models


@pytest.fixture
def binary():
    return torch.bernoulli(torch.full((64, 6), 0.3))


def small_vae():
    return models.VAE(x_dim=6, z_dim=2, hidden=(16,))


def test_default_backend_is_mle_for_exact_models_and_elbo_otherwise(binary):
    assert ppgen.fit(models.PPCA(x_dim=6, z_dim=2), binary, epochs=1, progress=False).inference == inference.MLE()
    assert ppgen.fit(small_vae(), binary, epochs=1, progress=False).inference == inference.ELBO()


def test_history_has_one_finite_loss_per_epoch_and_a_seed_reproduces_it(binary):
    vaes = [small_vae() for _ in range(3)]
    for vae in vaes[1:]:
        vae.load_state_dict(vaes[0].state_dict())  # the same starting point; fit's seed decides the rest
    a = ppgen.fit(vaes[0], binary, epochs=3, batch_size=16, seed=3, progress=False)
    pyro.set_rng_seed(99)
    b = ppgen.fit(vaes[1], binary, epochs=3, batch_size=16, seed=3, progress=False)
    c = ppgen.fit(vaes[2], binary, epochs=3, batch_size=16, seed=4, progress=False)
    assert len(a.history) == 3 and all(map(torch.isfinite, torch.tensor(a.history)))
    assert a.history == b.history and a.history != c.history


@pytest.mark.parametrize("optim", [torch.optim.SGD, pyro.optim.Adam({"lr": 1e-2})])
def test_torch_and_pyro_optimisers_both_drive_the_fit(binary, optim):
    fit = ppgen.fit(models.PPCA(x_dim=6, z_dim=2), binary, optim=optim, lr=1e-2, epochs=20, progress=False)
    assert fit.history[-1] < fit.history[0]


def test_progress_bar_shows_only_when_asked(binary, capsys):
    ppgen.fit(models.PPCA(x_dim=6, z_dim=2), binary, epochs=2, progress=True)
    assert "epoch" in capsys.readouterr().err
    ppgen.fit(models.PPCA(x_dim=6, z_dim=2), binary, epochs=2)  # stderr is not a terminal under pytest
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("kwargs, error, match", [
    ({"data": torch.full((4, 6), float("nan"))}, ValueError, "data has 24 non-finite"),
    ({"data": torch.rand(6)}, ValueError, r"data must have shape \[N, ...\]"),
    ({"data": torch.full((4, 6), 0.5)}, ValueError, "outside the support"),
    ({"data": "digits"}, TypeError, "data must be"),
    ({"epochs": 0}, ValueError, "epochs must be a positive int"),
    ({"batch_size": 2.5}, TypeError, "batch_size must be a positive int"),
    ({"lr": -1.0}, ValueError, "lr must be a positive number"),
    ({"inference": "iwae"}, TypeError, "inference must be a ppgen.inference backend"),
    ({"inference": inference.MLE()}, ValueError, r"MLE\(\) needs the exact log-likelihood"),
    ({"optim": "adam"}, TypeError, "optim must be"),
])
def test_bad_arguments_are_refused_before_any_training(binary, kwargs, error, match):
    vae = small_vae()
    before = {k: v.clone() for k, v in vae.state_dict().items()}
    arguments = {"data": binary, "epochs": 1, "progress": False, **kwargs}
    with pytest.raises(error, match=match):
        ppgen.fit(vae, arguments.pop("data"), **arguments)
    assert all(torch.equal(before[k], v) for k, v in vae.state_dict().items())


def test_backend_arguments_are_checked():
    with pytest.raises(ValueError, match="k must be a positive int"):
        inference.IWAE(k=0)
    with pytest.raises(TypeError, match="num_particles must be a positive int"):
        inference.ELBO(num_particles=1.5)


def test_a_model_that_is_not_a_pyro_program_is_refused(binary):
    with pytest.raises(TypeError, match="has no model"):
        ppgen.fit(nn.Linear(6, 6), binary)
    with pytest.raises(TypeError, match="model must be"):
        ppgen.fit("vae", binary)


def test_a_guide_must_cover_continuous_latents(binary):
    class NoGuide(nn.Module):
        def __init__(self):
            super().__init__()
            self.logits = nn.Parameter(torch.zeros(6))

        def model(self, x):
            with pyro.plate("data", x.shape[0]):
                z = pyro.sample("z", dist.Normal(0.0, 1.0))
                pyro.sample("x", dist.Bernoulli(logits=self.logits + z[:, None]).to_event(1), obs=x)

    with pytest.raises(ValueError, match=r"ELBO\(\) needs q\(z\|x\) for the model's latent site\(s\) 'z'"):
        ppgen.fit(NoGuide(), binary, inference=inference.ELBO())


def test_sites_outside_the_data_plate_are_refused(binary):
    def model(x):
        pyro.sample("x", dist.Bernoulli(0.5 * torch.ones(x.shape)).to_event(2), obs=x)

    with pytest.raises(ValueError, match="outside pyro.plate\\('data'"):
        ppgen.fit(model, binary)


def test_queries_check_their_arguments(binary):
    fit = ppgen.fit(small_vae(), binary, epochs=1, progress=False)
    with pytest.raises(ValueError, match=r"x must have shape \[N, 6\]"):
        fit.log_prob(torch.rand(3, 5))
    with pytest.raises(ValueError, match="x: 3 data point"):
        fit.log_prob(torch.full((3, 6), 0.5))
    with pytest.raises(ValueError, match="k must be a positive int"):
        fit.log_prob(binary, k=0)
    with pytest.raises(TypeError, match="n must be a positive int"):
        fit.sample(2.0)
    with pytest.raises(ValueError, match="site must be one of"):
        fit.encode(binary, site="w")


def test_query_shapes(binary):
    fit = ppgen.fit(small_vae(), binary, epochs=1, progress=False)
    assert fit.log_prob(binary, k=7).shape == (64,)
    assert fit.iwae_bound(binary[:5], k=3).shape == (5,)
    assert fit.sample(9).shape == (9, 6) and set(fit.sample(9).unique().tolist()) <= {0.0, 1.0}
    assert fit.encode(binary).shape == (64, 2)
    posterior = fit.posterior(binary[:4], num_samples=3000)
    assert posterior.samples["z"].shape == (3000, 4, 2)
    torch.testing.assert_close(posterior.mean()["z"], fit.encode(binary[:4]), atol=0.1, rtol=0)
    idata = posterior.to_arviz()
    assert dict(idata.posterior["z"].sizes) == {"chain": 1, "draw": 3000, "point": 4, "z_dim_0": 2}


def test_two_function_programs_keep_their_own_parameters(binary):
    """Two fits of the same functions (same pyro.param names) live side by side; the global store stays empty."""

    def model(x):
        probs = pyro.param("probs", torch.full((6,), 0.5), constraint=dist.constraints.unit_interval)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", dist.Bernoulli(probs).to_event(1), obs=x)

    ones, zeros = torch.ones(32, 6), torch.zeros(32, 6)
    high = ppgen.fit(model, ones, epochs=200, lr=0.05, progress=False)
    low = ppgen.fit(model, zeros, epochs=200, lr=0.05, progress=False)
    assert high.log_prob(ones).mean() > -0.5 and low.log_prob(zeros).mean() > -0.5  # log 0.5^6 = -4.2 at the start
    assert high.log_prob(zeros).mean() < -5
    assert len(pyro.get_param_store()) == 0


def test_a_pyro_param_may_share_its_name_with_a_module_method(binary):
    """``pyro.param("half")`` is a parameter, not torch's ``Module.half``; it trains and is saved like any other."""

    def model(x):
        half = pyro.param("half", torch.zeros(6))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", dist.Bernoulli(logits=half).to_event(1), obs=x)

    fit = ppgen.fit(model, binary, epochs=50, lr=0.1, progress=False)
    (param,) = fit.model.parameters()
    p = binary.mean(0)  # the maximum-likelihood Bernoulli probabilities
    assert (torch.sigmoid(param.detach()) - p).abs().max() < 0.05


@pytest.mark.parametrize("make", [small_vae, lambda: models.PPCA(x_dim=6, z_dim=2),
                                  lambda: models.GMM(x_dim=6, n_components=2, covariance="diag")])
def test_a_loaded_fit_answers_every_query_identically(tmp_path, binary, make):
    fit = ppgen.fit(make(), binary, epochs=2, progress=False)
    fit.save(tmp_path / "run" / "fit.pt")
    loaded = ppgen.load(tmp_path / "run" / "fit.pt")
    assert type(loaded.model) is type(fit.model) and loaded.inference == fit.inference
    assert loaded.history == fit.history
    for query in (lambda f: f.log_prob(binary, k=11), lambda f: f.sample(5)):
        pyro.set_rng_seed(7)
        expected = query(fit)
        pyro.set_rng_seed(7)
        torch.testing.assert_close(query(loaded), expected, rtol=0, atol=0)
    if fit.structure.guided:
        torch.testing.assert_close(loaded.encode(binary), fit.encode(binary), rtol=0, atol=0)


def test_a_users_own_module_is_loaded_into_a_model_passed_in(tmp_path, binary):
    class Coin(nn.Module):
        def __init__(self):
            super().__init__()
            self.logits = nn.Parameter(torch.zeros(6))

        def model(self, x):
            with pyro.plate("data", x.shape[0]):
                pyro.sample("x", dist.Bernoulli(logits=self.logits).to_event(1), obs=x)

    fit = ppgen.fit(Coin(), binary, epochs=5, lr=0.1, progress=False)
    fit.save(tmp_path / "fit.pt")
    with pytest.raises(ValueError, match="pass the model to ppgen.load"):
        ppgen.load(tmp_path / "fit.pt")
    loaded = ppgen.load(tmp_path / "fit.pt", model=Coin())
    torch.testing.assert_close(loaded.log_prob(binary), fit.log_prob(binary), rtol=0, atol=0)


def test_an_interrupted_save_leaves_the_earlier_checkpoint_intact(tmp_path, binary, monkeypatch):
    fit = ppgen.fit(small_vae(), binary, epochs=1, progress=False)
    path = tmp_path / "fit.pt"
    fit.save(path)
    before = path.read_bytes()

    def torn_save(obj, f):
        f.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint.torch, "save", torn_save)
    with pytest.raises(KeyboardInterrupt):
        fit.save(path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["fit.pt"]


def test_a_checkpoint_gets_the_permissions_of_any_new_file(tmp_path, binary):
    fit = ppgen.fit(small_vae(), binary, epochs=1, progress=False)
    fit.save(tmp_path / "fit.pt")
    (tmp_path / "plain").write_bytes(b"")
    assert (tmp_path / "fit.pt").stat().st_mode == (tmp_path / "plain").stat().st_mode


def test_loading_never_executes_code_from_the_file(tmp_path):
    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps({"format": checkpoint.CHECKPOINT_FORMAT, "model": Payload()}, protocol=2))
    with pytest.raises(pickle.UnpicklingError):
        ppgen.load(path)
    assert not (tmp_path / "pwned").exists()


def test_a_file_that_is_not_a_fit_is_refused(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="is not a ppgen fit"):
        ppgen.load(tmp_path / "other.pt")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_same_code_runs_on_cuda(binary):
    fit = ppgen.fit(small_vae(), binary, epochs=2, device="cuda", progress=False)
    assert fit.device.type == "cuda"
    assert fit.log_prob(binary, k=10).device.type == "cuda" and fit.sample(3).device.type == "cuda"
