"""``ppgen.fit`` and the ``Fit`` queries: arguments, errors before any work, reproducibility, checkpoints."""

import math
import os
import pickle

import numpy as np

import pyro
import pyro.distributions as dist
import pytest
import torch
from torch import nn

import ppgen
from ppgen import inference, models
from ppgen.run import checkpoint
from ppgen.training import optimizers


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


def test_the_default_adam_is_fused_and_the_same_fit_as_torchs_default_adam(binary):
    fits = {}
    for optim in (None, torch.optim.Adam):  # ppgen's default, and torch's Adam with its own defaults (per tensor)
        torch.manual_seed(0)
        fits[optim] = ppgen.fit(small_vae(), binary.double(), optim=optim, epochs=5, batch_size=16, progress=False)
    assert optimizers.adam([nn.Parameter(torch.zeros(2))], lr=1e-3).defaults["fused"]
    torch.testing.assert_close(torch.tensor(fits[None].history), torch.tensor(fits[torch.optim.Adam].history),
                               rtol=1e-9, atol=0)
    for fused, plain in zip(fits[None].model.parameters(), fits[torch.optim.Adam].model.parameters()):
        torch.testing.assert_close(fused, plain, rtol=1e-9, atol=1e-12)


def test_progress_bar_shows_only_when_asked(binary, capsys):
    ppgen.fit(models.PPCA(x_dim=6, z_dim=2), binary, epochs=2, progress=True)
    assert "epoch" in capsys.readouterr().err
    ppgen.fit(models.PPCA(x_dim=6, z_dim=2), binary, epochs=2)  # stderr is not a terminal under pytest
    assert capsys.readouterr().err == ""


class PlainBackend(inference.Objective):
    def loss(self, module, structure, x):
        return inference.ELBO().loss(module, structure, x)


@pytest.mark.parametrize("make", [small_vae, lambda: models.PPCA(x_dim=6, z_dim=2)], ids=["VAE", "PPCA"])
@pytest.mark.parametrize("kwargs, error, match", [
    ({"data": torch.full((4, 6), float("nan"))}, ValueError, "data has 24 non-finite"),
    ({"data": torch.rand(5)}, ValueError, r"data: the program fails on rows of shape \[\]"),
    ({"data": torch.rand(4, 5).double()}, ValueError, r"data: the program fails on rows of shape \[5\]"),
    ({"data": "digits"}, TypeError, "data must be"),
    ({"epochs": 0}, ValueError, "epochs must be a positive int"),
    ({"batch_size": 2.5}, TypeError, "batch_size must be a positive int"),
    ({"lr": -1.0}, ValueError, "lr must be a positive finite number"),
    ({"lr": float("inf")}, ValueError, "lr must be a positive finite number"),
    ({"lr": "0.01"}, TypeError, "lr must be a positive number"),
    ({"seed": -1}, ValueError, r"seed must be an int in \[0, 2\*\*32\)"),
    ({"seed": 1.5}, TypeError, "seed must be an int"),
    ({"device": "nope"}, ValueError, "device must name a torch device"),
    ({"device": None}, TypeError, "device must be a str or torch.device"),
    ({"inference": "iwae"}, TypeError, "inference must be a ppgen.inference backend"),
    ({"inference": PlainBackend()}, TypeError, "inference: PlainBackend must be a dataclass"),
    ({"optim": "adam"}, TypeError, "optim must be"),
    ({"optim": pyro.optim.Adam(lambda module, name: {"lr": 0.1})}, TypeError, "per-parameter arguments"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_bad_arguments_are_refused_before_the_model_changes(binary, make, kwargs, error, match):
    model = make()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    arguments = {"data": binary.double(), "epochs": 1, "progress": False, **kwargs}
    with pytest.raises(error, match=match):
        ppgen.fit(model, arguments.pop("data"), **arguments)
    for name, value in model.state_dict().items():  # float64 data and the model is still float32, untouched
        assert value.dtype == before[name].dtype and torch.equal(value, before[name]), name


@pytest.mark.parametrize("data, backend, match", [
    (torch.full((4, 6), 0.5, dtype=torch.float64), None, "outside the support"),
    (torch.ones(4, 6, dtype=torch.float64), inference.MLE(), r"MLE\(\) needs the exact log-likelihood"),
])
def test_a_model_that_cannot_fit_the_data_is_refused_before_it_changes(data, backend, match):
    vae = small_vae()
    with pytest.raises(ValueError, match=match):
        ppgen.fit(vae, data, inference=backend, progress=False)
    assert all(p.dtype == torch.float32 for p in vae.parameters())


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error where CUDA is missing")
def test_a_cuda_device_where_there_is_none_is_refused(binary):
    with pytest.raises(ValueError, match=r"device='cuda', but CUDA is not available"):
        ppgen.fit(small_vae(), binary, device="cuda")


def test_numpy_numbers_are_numbers(binary):
    fit = ppgen.fit(small_vae(), binary, epochs=np.int64(1), batch_size=np.int32(16), lr=np.float32(1e-3),
                    inference=inference.IWAE(k=np.int64(3)), progress=False)
    assert fit.inference == inference.IWAE(k=3) and type(fit.inference.k) is int
    assert fit.log_prob(binary, k=np.int64(4)).shape == (64,)


class Overshoot(torch.optim.SGD):
    """An optimiser whose every step leaves a NaN in the first parameter: a divergence no loss has seen yet."""

    def step(self, closure=None):
        super().step(closure)
        with torch.no_grad():
            self.param_groups[0]["params"][0].view(-1)[0] = float("nan")


def test_a_fit_that_diverges_says_so(binary):
    """Any step can blow up, the last one too, which no loss sees: fit checks the parameters at the end."""
    model = small_vae()
    with pytest.raises(FloatingPointError, match=r"diverged at step 1 \(epoch 1\): a parameter became non-finite"):
        ppgen.fit(model, binary, epochs=1, optim=Overshoot, batch_size=64, progress=False)
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters()) and not model.training
    with pytest.raises(FloatingPointError, match="lower lr"):  # PPCA's Cholesky factor fails first
        ppgen.fit(models.PPCA(x_dim=6, z_dim=2), binary, epochs=5, lr=1e6, inference=inference.ELBO(),
                  progress=False)


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
    with pytest.raises(TypeError, match="model_fn must be callable, got NoneType"):
        ppgen.fit((None, None), binary)


def test_data_outside_the_support_is_named_with_the_support(binary):
    def counts(x):
        rate = pyro.param("rate", torch.ones(6), constraint=dist.constraints.positive)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", dist.Poisson(rate).to_event(1), obs=x)

    with pytest.raises(ValueError, match=r"data: 1 data point\(s\) .*IntegerGreaterThan\(lower_bound=0\).*row 3") as error:
        ppgen.fit(counts, torch.cat([binary[:3], -binary[3:4] - 1, binary[4:]]))
    assert "Bernoulli" not in str(error.value)
    with pytest.raises(ValueError, match=r"values in \{0, 1\}, as a Bernoulli likelihood needs"):
        ppgen.fit(small_vae(), torch.full((4, 6), 0.5))


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


def test_observations_outside_any_plate_of_the_data_are_refused(binary):
    def model(x):
        pyro.sample("x", dist.Bernoulli(0.5 * torch.ones(x.shape)).to_event(2), obs=x)

    with pytest.raises(ValueError, match=r"the observed site\(s\) 'x' sit in no pyro.plate: observe the data inside "
                                         r"pyro.plate\('data', len\(x\)\)"):
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
    with pytest.raises(ValueError, match=r"ppgen.load\(path, model=...\)"):
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
    with pytest.raises(ValueError, match="is not a readable ppgen fit"):
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


def test_a_guide_site_the_model_does_not_have_is_refused(binary):
    def model(x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(torch.zeros(x.shape[0], 1), 1.0).to_event(1))
            pyro.sample("x", dist.Bernoulli(logits=z.expand(-1, 6)).to_event(1), obs=x)

    def guide(x):
        scale = pyro.param("scale", torch.ones(1), constraint=dist.constraints.positive)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(torch.zeros(x.shape[0], 1), scale).to_event(1))
            pyro.sample("w", dist.Normal(torch.zeros(x.shape[0], 1), scale).to_event(1))  # a typo, say

    with pytest.raises(ValueError, match="guide site\\(s\\) 'w' are not latent sites of the model"):
        ppgen.fit((model, guide), binary)


class LinearGaussian(nn.Module):
    """z ~ N(m, 1), x | z ~ N(z, 1): an exact log p(x) = log N(x; m, 2), and no guide for z."""

    def __init__(self):
        super().__init__()
        self.m = nn.Parameter(torch.zeros(1))

    def model(self, x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(self.m, 1.0).to_event(1))
            pyro.sample("x", dist.Normal(z, 1.0).to_event(1), obs=x)

    def log_prob(self, x):
        return dist.Normal(self.m, 2**0.5).log_prob(x).sum(-1)


def test_an_exact_model_without_a_guide_answers_log_p_and_says_what_it_cannot():
    x = torch.randn(50, 1) + 3
    fit = ppgen.fit(LinearGaussian(), x, epochs=300, lr=0.05, progress=False)
    assert fit.inference == inference.MLE() and abs(fit.model.m.item() - x.mean().item()) < 0.05
    with pytest.raises(ValueError, match="needs a guide q\\(z\\|x\\) that draws the latent site\\(s\\) \\('z',\\)"):
        fit.iwae_bound(x, k=10)
    with pytest.raises(ValueError, match="latent site\\(s\\) \\('z',\\) have no guide"):
        fit.encode(x)


def test_a_plain_function_program_takes_the_datas_dtype():
    """Parameters that pyro.param and pyro.module make on the first run follow float64 data like any other."""
    net = nn.Linear(3, 3)

    def model(x):
        pyro.module("net", net)
        scale = pyro.param("scale", torch.ones(3), constraint=dist.constraints.positive)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", dist.Normal(net(torch.ones_like(x)), scale).to_event(1), obs=x)

    x = torch.randn(40, 3, dtype=torch.float64)
    fit = ppgen.fit((model, None), x, epochs=2, progress=False)
    assert {p.dtype for p in fit.model.parameters()} == {torch.float64} and net.weight.dtype == torch.float64
    assert fit.log_prob(x).dtype == torch.float64


@pytest.mark.parametrize("content, match", [
    (b"not a checkpoint", "is not a readable ppgen fit"),
    (b"", "is not a readable ppgen fit"),
    (b"hello", "is not a readable ppgen fit"),
    ({"format": checkpoint.CHECKPOINT_FORMAT, "model": {}},
     r"field 'keys' is damaged: .*missing \['data_size', 'example', 'history', 'inference', 'state_dict'\]"),
])
def test_a_damaged_file_is_refused_with_its_name(tmp_path, content, match):
    path = tmp_path / "fit.pt"
    path.write_bytes(content) if isinstance(content, bytes) else torch.save(content, path)
    with pytest.raises(ValueError, match=match):
        ppgen.load(path)


def test_a_model_of_another_shape_is_refused_on_load(tmp_path, binary):
    ppgen.fit(small_vae(), binary, epochs=1, progress=False).save(tmp_path / "fit.pt")
    with pytest.raises(ValueError, match="model: its parameters are not those saved in"):
        ppgen.load(tmp_path / "fit.pt", model=models.VAE(x_dim=6, z_dim=3, hidden=(16,)))


def test_numpy_numbers_in_a_models_arguments_are_saved_as_numbers(tmp_path, binary):
    vae = models.VAE(x_dim=np.int64(6), z_dim=np.int32(2), hidden=[np.int64(16)])
    assert vae.config == {"x_dim": 6, "z_dim": 2, "hidden": [16]} and type(vae.config["x_dim"]) is int
    ppgen.fit(vae, binary, epochs=1, progress=False).save(tmp_path / "fit.pt")
    assert ppgen.load(tmp_path / "fit.pt").model.config == vae.config


def test_saving_onto_a_folder_names_it(tmp_path, binary):
    fit = ppgen.fit(small_vae(), binary, epochs=1, progress=False)
    with pytest.raises(IsADirectoryError, match="is a folder: give the file.s name"):
        fit.save(tmp_path)
    assert os.listdir(tmp_path) == []


def test_data_that_requires_grad_is_left_alone(binary):
    data = binary.clone().requires_grad_()
    ppgen.fit(small_vae(), data, epochs=1, progress=False)
    assert data.grad is None


def test_the_posterior_mean_of_a_discrete_site_is_its_average_value(binary):
    """For two components, the mean of c's draws is p(c = 1 | x) = softmax_c(log pi_c + log N(x; mu_c, Sigma_c))."""
    x = binary + 0.3 * torch.randn(64, 6)
    gmm = ppgen.fit(models.GMM(x_dim=6, n_components=2, covariance="diag"), x, epochs=1, progress=False)
    locs, scales = (t.detach() for t in gmm.model.components())
    log_joint = gmm.model.logits.detach().log_softmax(0) + dist.Normal(locs, scales).log_prob(x[:8, None]).sum(-1)
    draws = gmm.posterior(x[:8], num_samples=4000)
    torch.testing.assert_close(draws.mean()["c"], log_joint.softmax(-1)[:, 1], atol=0.05, rtol=0)


def test_backends_take_keyword_arguments_only():
    with pytest.raises(TypeError):
        inference.ELBO(3)
    with pytest.raises(TypeError):
        inference.IWAE(5)


def test_encode_averages_draws_where_the_guide_has_no_closed_form_mean(binary):
    """q(z|x) = exp of N(mu, s^2), as a bare TransformedDistribution: its mean is exp(mu + s^2 / 2)."""

    def model(x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.LogNormal(torch.zeros(x.shape[0], 1), 1.0).to_event(1))
            pyro.sample("x", dist.Bernoulli(probs=z.clamp(max=1).expand(*z.shape[:-1], 6) / 2).to_event(1), obs=x)

    def guide(x):
        loc = pyro.param("loc", torch.tensor([0.3]))
        with pyro.plate("data", x.shape[0]):
            base = dist.Normal(loc.expand(x.shape[0], 1), 0.5)
            pyro.sample("z", dist.TransformedDistribution(base, [dist.transforms.ExpTransform()]).to_event(1))

    program = ppgen.program.protocol.as_module((model, guide))
    fit = ppgen.Fit(program, ppgen.program.structure.inspect(program, binary), inference.ELBO(), history=[],
                    example=binary[:2])
    expected = torch.full((4, 1), math.exp(0.3 + 0.5**2 / 2))
    torch.testing.assert_close(fit.encode(binary[:4], num_samples=200000), expected, atol=0.02, rtol=0)
