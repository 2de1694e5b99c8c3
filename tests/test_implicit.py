"""Implicit models, x = G(z) with the data site a point mass: detected when a program is traced, sampled, saved and
loaded, and refused by name by every objective and query that needs a density."""

import json

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from torch import nn

import ppgen
from ppgen import inference, models
from ppgen.cli import common, data_sets, main
from ppgen.program.implicit import LIKELIHOOD_FREE
from ppgen.program.protocol import as_module
from ppgen.program.structure import inspect
from ppgen.run.folder import RunFolder
from ppgen.training import registry
from programs import MomentMatching

pytestmark = pytest.mark.usefixtures("one_thread")

#: the words of every refusal: what the model is, and the way out.
IMPLICIT = r"the model is implicit: it observes its data through a point mass, x = G\(z\) \(a Delta\)"
WAY_OUT = "Fit it by a likelihood-free objective, " + LIKELIHOOD_FREE.replace("(", r"\(").replace(")", r"\)")


class Shifted(nn.Module):
    """x = G(z) + b: a generator with a global latent b ~ N(0, I) outside the data plate."""

    def __init__(self):
        super().__init__()
        self.net = nn.Linear(2, 3)

    def model(self, x):
        b = pyro.sample("b", dist.Normal(torch.zeros(3), 1.0).to_event(1))
        with pyro.plate("data", len(x)):
            z = pyro.sample("z", dist.Normal(torch.zeros(2), 1.0).to_event(1))
            pyro.sample("x", dist.Delta(self.net(z) + b, event_dim=1), obs=x)


class Conditional(nn.Module):
    """model(x, y): x = G(z, y) given a one-hot condition y."""

    def __init__(self):
        super().__init__()
        self.net = nn.Linear(2 + 4, 3)

    def model(self, x, y):
        with pyro.plate("data", len(x)):
            z = pyro.sample("z", dist.Normal(torch.zeros(2), 1.0).to_event(1))
            pyro.sample("x", dist.Delta(self.net(torch.cat([z, y.expand(*z.shape[:-1], 4)], -1)), event_dim=1), obs=x)


class Columns(nn.Module):
    """The data plate at dim=-2, a plate of the 3 coordinates at dim=-1, the point mass of event_dim 0 inside both."""

    def __init__(self):
        super().__init__()
        self.net = nn.Linear(2, 3)

    def model(self, x):
        with pyro.plate("data", len(x), dim=-2):
            z = pyro.sample("z", dist.Normal(torch.zeros(1, 2), 1.0).to_event(1))
            with pyro.plate("coordinates", 3, dim=-1):
                pyro.sample("x", dist.Delta(self.net(z).squeeze(-2)), obs=x)


def wrapped(wrap):
    """A function pair whose data site is a Delta under ``wrap`` (to_event, expand, mask)."""
    net = nn.Linear(2, 3)

    def model(x):
        pyro.module("net", net)
        with pyro.plate("data", len(x)):
            z = pyro.sample("z", dist.Normal(torch.zeros(2), 1.0).to_event(1))
            pyro.sample("x", wrap(net(z)), obs=x)

    return model, None


POINT_MASSES = {
    "event_dim": lambda v: dist.Delta(v, event_dim=1),
    "to_event": lambda v: dist.Delta(v).to_event(1),
    "expand": lambda v: dist.Delta(v[..., :1], event_dim=0).expand(v.shape).to_event(1),
    "mask": lambda v: dist.Delta(v, event_dim=1).mask(torch.ones(v.shape[:-1], dtype=torch.bool)),
}


@pytest.fixture
def x():
    return 3.0 + 0.5 * torch.randn(40, 3)


@pytest.mark.parametrize("wrap", POINT_MASSES.values(), ids=POINT_MASSES)
@pytest.mark.parametrize("batch_size", [1, 7, None])
def test_a_point_mass_data_site_is_implicit_at_any_batch_size(wrap, batch_size, x):
    structure = inspect(as_module(wrapped(wrap)), x, batch_size=batch_size)  # warnings are errors: none either
    assert structure.implicit and not structure.exact and structure.data_site == "x"


@pytest.mark.parametrize("program, data, where", [
    (Shifted, lambda x: x, {"global_sites": ("b",), "unguided": ("b", "z")}),
    (Conditional, lambda x: (x, torch.eye(4)[torch.arange(len(x)) % 4]), {"num_inputs": 2, "observed_input": 0}),
    (Columns, lambda x: x, {"plan.data_dim": -2, "plan.max_plate_nesting": 2}),
])
def test_generators_of_every_shape_are_implicit(program, data, where, x):
    structure = inspect(program(), data(x))
    assert structure.implicit
    for path, value in where.items():
        got = structure
        for part in path.split("."):
            got = getattr(got, part)
        assert got == value, path


@pytest.mark.parametrize("name", ["generator", "conv-generator"])
def test_the_zoos_generators_are_implicit_and_its_other_models_are_not(name):
    x = torch.rand(10, 64)
    assert inspect(registry.MODELS[name](x_dim=64), x).implicit
    assert inspect(models.ConvGenerator(x_dim=64), x.reshape(10, 1, 8, 8)).implicit  # images [N, C, H, W] too
    assert not inspect(models.VAE(x_dim=64), torch.bernoulli(x)).implicit


def test_a_point_mass_on_latents_the_guide_draws_leaves_a_latent_variable_program(x):
    """DequantizedFlow observes x = floor(v), v drawn by its guide in x's bin: log p(x | v) = 0 on every draw."""
    structure = inspect(models.DequantizedFlow(x_dim=3), torch.bernoulli(x / 6))
    assert not structure.implicit and structure.guided == ("v",)


def test_a_program_without_latents_observed_through_a_point_mass_is_implicit_and_not_exact(x):
    def noise_in_the_network(x):
        loc = pyro.param("loc", torch.zeros(3))
        with pyro.plate("data", len(x)):
            pyro.sample("x", dist.Delta(loc + torch.randn(len(x), 3), event_dim=1), obs=x)

    structure = inspect(as_module((noise_in_the_network, None)), x)
    assert structure.implicit and not structure.exact  # else MLE would take log p(x) = -inf as exact
    with pytest.raises(ValueError, match=rf"^MLE\(\) needs the model's density, but {IMPLICIT}"):
        ppgen.fit(noise_in_the_network, x, inference=inference.MLE(), progress=False)


def test_a_deterministic_site_is_no_data_site():
    net = nn.Linear(2, 3)

    def recorded(x):
        with pyro.plate("data", len(x)):
            z = pyro.sample("z", dist.Normal(torch.zeros(2), 1.0).to_event(1))
            pyro.deterministic("x", net(z), event_dim=1)

    with pytest.raises(ValueError, match=r"the model observes nothing: site\(s\) 'x' are pyro.deterministic sites, "
                                         r"which record a value and observe no data: .* a point mass, "
                                         r"pyro.sample\('x', dist.Delta\(G\(z\), event_dim=1\), obs=x\)"):
        inspect(as_module((recorded, None)), torch.randn(10, 3))


def test_a_deterministic_site_beside_the_data_site_leaves_a_model_with_a_density(x):
    def model(x):
        with pyro.plate("data", len(x)):
            z = pyro.sample("z", dist.Normal(torch.zeros(3), 1.0).to_event(1))
            pyro.deterministic("mean", 2 * z, event_dim=1)
            pyro.sample("x", dist.Normal(2 * z, 1.0).to_event(1), obs=x + 0)  # obs not x itself: no data_site

    structure = inspect(as_module((model, None)), x)
    assert not structure.implicit and structure.observed == ("x",)  # the one sample() draws


#: every backend that evaluates a density, built with its defaults.
LIKELIHOOD_BASED = [inference.MLE(), inference.MAP(), inference.ELBO(), inference.IWAE(), inference.RenyiVI(),
                    inference.RWS(), inference.VIMCO(), inference.NUTS()]


@pytest.mark.parametrize("backend", LIKELIHOOD_BASED, ids=lambda b: type(b).__name__)
@pytest.mark.parametrize("program", [models.Generator, Shifted])
def test_every_likelihood_based_backend_refuses_an_implicit_model_before_any_work(backend, program, x):
    module = program(x_dim=3) if program is models.Generator else program()
    before = {name: value.clone() for name, value in module.state_dict().items()}
    with pytest.raises(ValueError, match=rf"^{type(backend).__name__}\(.*\) needs the model's density, but {IMPLICIT}, "
                                         rf"which has no density at the data. {WAY_OUT}; of the queries it answers "
                                         rf"sample\(n\), and evaluate\(x\) by its sample metrics alone$"):
        ppgen.fit(module, x, inference=backend, epochs=1, progress=False)
    assert all(torch.equal(value, before[name]) for name, value in module.state_dict().items())


def test_a_refused_fit_leaves_a_conv_generators_batch_statistics_as_they_were():
    """Tracing the program runs its batch normalisation in training mode: its running statistics are put back."""
    module = models.ConvGenerator(x_dim=64)
    before = {name: value.clone() for name, value in module.state_dict().items()}
    with pytest.raises(ValueError, match=r"^ELBO\(num_particles=1, kl='sampled'\) needs the model's density"):
        ppgen.fit(module, torch.rand(20, 64), inference=inference.ELBO(), progress=False)
    assert all(torch.equal(value, before[name]) for name, value in module.state_dict().items())


def test_the_default_inference_of_an_implicit_model_is_mmd(x):
    fit = ppgen.fit(models.Generator(x_dim=3), x, epochs=1, progress=False)
    assert fit.inference == inference.MMD()


def test_evaluate_scores_a_generators_draws_alone(generator_fit, x):
    report = generator_fit.evaluate(x, k=3, metrics=("mmd",))
    assert report.elbo is None and report.iwae is None and report.exact is None
    assert set(report.samples.scores) == {"mmd"} and report.samples.n == (len(x), len(x))


def test_the_backends_are_likelihood_based_and_a_users_own_objective_says_it_is_not():
    assert not any(backend.likelihood_free for backend in LIKELIHOOD_BASED)
    assert MomentMatching.likelihood_free and "likelihood_free" not in MomentMatching().config  # no field: a flag


@pytest.fixture
def generator_fit(x):
    """A location-scale generator x = a + B z fitted to N(3, 0.5^2 I) data by matching moments."""
    return ppgen.fit(models.Generator(x_dim=3, z_dim=3, hidden=()), x, inference=MomentMatching(), epochs=150,
                     batch_size=40, lr=0.05, progress=False)


def test_a_likelihood_free_objective_of_ones_own_fits_a_generator(generator_fit, x):
    """The fitted generator's moments are the data's: E[x] = a and Cov[x] = B B^T, read off its weights."""
    net = generator_fit.model.net[0]
    torch.testing.assert_close(net.bias, x.mean(0), atol=0.1, rtol=0)
    torch.testing.assert_close((net.weight @ net.weight.T).diagonal().sqrt(), x.std(0), atol=0.1, rtol=0)


@pytest.mark.parametrize("query, needs", [
    (lambda fit, x: fit.log_prob(x), r"log_prob\(x\)"),
    (lambda fit, x: fit.iwae_bound(x, k=3), r"iwae_bound\(x\)"),
    (lambda fit, x: fit.encode(x), r"inferring p\(z\|x\), as encode\(x\) and posterior\(x\) do,"),
    *[(lambda fit, x, method=method: fit.posterior(x, num_samples=3, method=method),
       r"inferring p\(z\|x\), as encode\(x\) and posterior\(x\) do,") for method in ("guide", "importance", "nuts")],
    (lambda fit, x: ppgen.log_weights(fit.model, x), r"log_weights\(model, data\)"),
], ids=["log_prob", "iwae_bound", "encode", "posterior-guide", "posterior-importance", "posterior-nuts",
        "log_weights"])
def test_every_query_that_needs_a_density_refuses_by_name(query, needs, generator_fit, x):
    with pytest.raises(ValueError, match=rf"^{needs} needs the model's density, but {IMPLICIT}.* {WAY_OUT}; of the "
                                         rf"queries it answers sample\(n\), and evaluate\(x\) by its sample metrics "
                                         rf"alone$"):
        query(generator_fit, x)


def test_evaluate_scores_a_generators_samples_alone_and_asks_for_a_metric_without_them(generator_fit, x):
    """What the refusals above say: evaluate(x) answers by the sample metrics, and has nothing to give without them."""
    report = generator_fit.evaluate(x, k=3, metrics=("mmd",))
    assert report.exact is None and report.iwae is None and set(report.samples.scores) == {"mmd"}
    with pytest.raises(ValueError, match=r"^metrics: none asked for, or none that .* allow, but this model has no "
                                         r"density to bound"):
        generator_fit.evaluate(x, k=3, metrics=())


def test_a_sample_is_the_network_applied_to_the_drawn_noise(generator_fit):
    with poutine.trace() as traced:
        samples = generator_fit.sample(6)
    z = traced.trace.nodes["z"]["value"]
    assert samples.shape == (6, 3) and z.shape == (6, 3)
    torch.testing.assert_close(samples, generator_fit.model.net(z), rtol=0, atol=0)
    pyro.set_rng_seed(4)
    drawn = generator_fit.sample(6)
    pyro.set_rng_seed(4)
    torch.testing.assert_close(generator_fit.sample(6, mean=True), drawn, rtol=0, atol=0)  # a point mass's mean


def test_a_conditional_generator_samples_given_its_condition():
    x, y = torch.randn(12, 3), torch.eye(4)[torch.arange(12) % 4]
    module = Conditional()
    fit = ppgen.Fit(module, inspect(module, (x, y)), MomentMatching(), history=[], example=(x, y))
    given = torch.eye(4)[[3, 0, 1]]
    with poutine.trace() as traced:
        samples = fit.sample(3, given)
    z = traced.trace.nodes["z"]["value"]
    torch.testing.assert_close(samples, module.net(torch.cat([z, given], -1)), rtol=0, atol=0)


def test_a_generator_with_a_global_latent_and_one_with_the_data_plate_at_dim_minus_2_sample_their_rows(x):
    for module in (Shifted(), Columns()):
        fit = ppgen.Fit(module, inspect(module, x), MomentMatching(), history=[], example=x)
        with poutine.trace() as traced:
            samples = fit.sample(5)
        nodes = traced.trace.nodes
        expected = module.net(nodes["z"]["value"])
        expected = expected + nodes["b"]["value"] if "b" in nodes else expected.squeeze(-2)
        assert samples.shape == (5, 3)
        torch.testing.assert_close(samples, expected, rtol=0, atol=0)


def test_a_saved_generator_fit_loads_and_samples_the_same(generator_fit, x, tmp_path):
    generator_fit.save(tmp_path / "fit.pt")
    loaded = ppgen.load(tmp_path / "fit.pt")
    assert loaded.structure.implicit and loaded.inference == MomentMatching()
    for fit in (generator_fit, loaded):
        pyro.set_rng_seed(5)
        fit.drawn = fit.sample(8)
    torch.testing.assert_close(loaded.drawn, generator_fit.drawn, rtol=0, atol=0)
    with pytest.raises(ValueError, match=rf"^log_prob\(x\) needs the model's density, but {IMPLICIT}"):
        loaded.log_prob(x)


def test_a_conv_generator_draws_images_in_the_unit_interval_the_same_alone_as_in_a_batch():
    images = torch.rand(20, 1, 8, 8)
    fit = ppgen.fit(models.ConvGenerator(x_dim=64), images, inference=MomentMatching(), epochs=1, batch_size=10,
                    progress=False)
    assert not fit.model.training  # a fit ends in eval mode: batch normalisation by its running statistics
    samples = fit.sample(5)
    assert samples.shape == (5, 1, 8, 8) and bool(((samples > 0) & (samples < 1)).all())
    z = torch.randn(4, fit.model.z_dim)
    net = fit.model.net
    torch.testing.assert_close(net(z[:1]), net(z)[:1])
    net.train()  # in training mode a point is normalised with the others of its batch
    assert not torch.allclose(net(z[:1]), net(z)[:1])
    assert net(z[:1]).shape == (1, 1, 8, 8)  # and a batch of one point runs: its maps are 2 x 2 at the smallest


@pytest.mark.parametrize("x_dim, given, image_shape", [(64, None, (1, 8, 8)), (784, None, (1, 28, 28)),
                                                       (6, None, (1, 2, 3)), (210, (3, 10, 7), (3, 10, 7))])
def test_a_conv_generator_draws_images_of_the_shape_it_is_given(x_dim, given, image_shape):
    model = models.ConvGenerator(x_dim=x_dim, image_shape=given).eval()  # by default as square as x_dim allows
    assert model.image_shape == image_shape
    assert model.net(torch.randn(2, 5, model.z_dim)).shape == (2, 5, *image_shape)  # leading dimensions kept


def test_the_cli_refuses_a_generator_with_a_likelihood_based_inference(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["fit", "--model", "generator", "--data", "moons", "--epochs", "1", "--inference", "elbo", "--out",
                 str(run)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ppgen: error: ") and err.count("\n") == 1, err
    assert "--inference elbo needs the model's density, but the model is implicit" in err  # in the CLI's terms
    assert "--inference mmd, --inference adversarial or --inference wasserstein" in err
    assert LIKELIHOOD_FREE not in err
    assert not run.exists()  # refused before the run folder was made


def test_the_cli_fits_a_generator_by_mmd_by_default_and_records_its_sample_metrics(tmp_path, capsys):
    """No density, so no test log-likelihood: metrics.json records the scores of as many draws as the test set has
    points, against it (fit.evaluate's, at the run's seed), and says so; the picture of latents is skipped."""
    run = tmp_path / "run"
    argv = ["fit", "--model", "generator", "--data", "moons", "--epochs", "1", "--batch-size", "500", "--out", str(run)]
    assert main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("generator on moons, 1 epochs in ")
    assert out[0].endswith(" s: the model has no density (it is implicit, x = G(z)), so no test log-likelihood: its "
                           "draws are scored against the test set instead")
    assert out[1] == ("sample quality, 500 model draws against 500 data points (value +- standard error, MMD^2's "
                      "under p = p_data):")
    assert [line.split()[0] for line in out[2:5]] == ["MMD^2", "C2ST", "Frechet"]
    assert out[-1].startswith("latent.png skipped: inferring p(z|x), as encode(x) and posterior(x) do, needs the "
                              "model's density, but the model is implicit")
    metrics = json.loads((run / common.METRICS_FILE).read_text())
    assert metrics["objective"] == repr(inference.MMD()) and metrics["config"]["inference"] is None
    assert metrics["test_log_likelihood"] is None and metrics["eval_k"] is None
    assert metrics["exact"] is False and metrics["bound"] is False and metrics["comparable"] is True
    assert metrics["test_figure"] == common.NO_DENSITY
    quality = metrics["test_sample_quality"]
    assert set(quality) == {"n", "mmd", "c2st", "frechet", "frechet_features"} and quality["n"] == [500, 500]
    fit = ppgen.load(run / "fit.pt")
    pyro.set_rng_seed(0)
    assert fit.evaluate(data_sets.load_data("moons", binarize=None, seed=0).test, seed=0).samples.to_dict() == quality
    assert sorted(p.name for p in run.glob("*.png")) == ["loss.png", "samples.png"]
    assert main(argv + ["--resume"]) == 0  # finished: its scores are said again, nothing is rewritten
    said = capsys.readouterr().out
    assert said.startswith(f"generator on moons: the run in {run} was finished already (1 epochs in ")
    assert said.endswith(f"no test log-likelihood (the model has no density); its draws scored mmd "
                         f"{quality['mmd']['value']:.4g}, c2st {quality['c2st']['value']:.4g}, frechet "
                         f"{quality['frechet']['value']:.4g}; nothing was rewritten\n")
    assert main(["eval", str(run)]) == 0  # the default metrics at the run's seed: fit's scores again
    assert json.loads((run / common.METRICS_FILE).read_text())["eval"]["report"]["samples"] == quality


def test_the_cli_refuses_dequantizing_a_generators_data_and_a_test_set_too_small_to_score(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["fit", "--model", "generator", "--data", "digits", "--dequantize", "--out", str(run)]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "ppgen fit: error: --dequantize applies to a continuous density on discrete data, but for generator on digits "
        "it has no density (it is implicit, x = G(z))")
    path = tmp_path / "images.idx"  # 5 images of 2 x 2: 4 to train on, 1 to test
    path.write_bytes(bytes([0, 0, 0x08, 3]) + b"".join(d.to_bytes(4, "big") for d in (5, 2, 2)) + bytes(range(20)))
    assert main(["fit", "--model", "generator", "--data", f"idx:{path}", "--out", str(run)]) == 1
    assert capsys.readouterr().err == (f"ppgen: error: --data idx:{path}: its test set of 1 point(s) is too few to "
                                       f"score the draws of generator, which has no density, by any sample metric "
                                       f"(they take 2 or more): give more data\n")
    assert not run.exists()  # both before any work


def test_the_cli_refuses_a_generators_run_for_encode_and_posterior_and_evaluates_and_samples_it(x, tmp_path, capsys):
    run = tmp_path / "run"
    settings = {"data": "moons", "binarize": None, "seed": 0, "eval_k": 10, "dequantize": None}
    ppgen.fit(models.Generator(x_dim=2), x[:, :2], inference=MomentMatching(), epochs=1, progress=False, out=run,
              run_config=settings)
    RunFolder(run).write(common.METRICS_FILE, common.json_bytes({}))
    assert main(["eval", str(run), "--metrics", "mmd"]) == 0  # its draws alone are scored
    out = capsys.readouterr().out
    assert out.startswith("evaluation of a model without a density: its samples alone\n"), out
    record = json.loads((run / common.METRICS_FILE).read_text())["eval"]
    assert record["test_log_likelihood"] is None and record["k"] is None and record["seed"] == 0
    assert record["test_figure"] == common.NO_DENSITY and record["n_test"] == 500
    assert set(record["report"]["samples"]) == {"n", "mmd"} and record["report"]["mean"]["iwae"] is None
    before = (run / common.METRICS_FILE).read_bytes()
    no_density = "the run's model has no density (it is implicit, x = G(z)), so"
    refusals = {"--k 5": f"{no_density} there is no log-likelihood to estimate with importance samples: leave --k out "
                         f"(--metrics names what scores its draws)",
                "--metrics none": f"{no_density} its draws are all there is to evaluate: name metrics among mmd, c2st, "
                                  f"frechet, or leave --metrics out"}
    for given, words in refusals.items():
        assert main(["eval", str(run), *given.split()]) == 1
        err = capsys.readouterr().err
        assert err == f"ppgen: error: {given}: {words}\n", err
    assert (run / common.METRICS_FILE).read_bytes() == before  # nothing recorded
    for command in (["encode", str(run)], ["posterior", str(run)]):
        assert main(command) == 1
        err = capsys.readouterr().err
        assert err.startswith("ppgen: error: inferring p(z|x), as encode(x) and posterior(x) do, needs the model's "
                              "density, but the model is implicit") and err.count("\n") == 1, err
        assert not list(run.glob("encoded.png")) and not list(run.glob("posterior-*.nc"))
    assert main(["sample", str(run), "-n", "4", "--out", str(tmp_path / "samples.png")]) == 0  # what it answers


@pytest.mark.parametrize("build, error, words", [
    (lambda: models.Generator(x_dim=3, hidden=5), TypeError, "hidden must be a sequence of layer widths"),
    (lambda: models.Generator(x_dim=3, z_dim=0), ValueError, "z_dim must be a positive int, got 0"),
    (lambda: models.ConvGenerator(x_dim=64, channels=()), ValueError, r"channels must name at least one convolution"),
    (lambda: models.ConvGenerator(x_dim=64, channels=(8, 0)), ValueError, r"channels\[1\] must be a positive int"),
    (lambda: models.ConvGenerator(x_dim=64, image_shape=(1, 8, 7)), ValueError,
     r"image_shape must be \(C, H, W\) with C H W = x_dim \(64\), got \(1, 8, 7\)"),
])
def test_bad_generator_options_are_refused(build, error, words):
    with pytest.raises(error, match=words):
        build()


def test_rows_of_another_size_than_a_conv_generators_are_refused_by_name():
    with pytest.raises(ValueError, match=r"data: the program fails on rows of shape \[63\] torch.float32: "
                                         r"ConvGenerator raised ValueError: x: rows of shape \[63\] do not hold "
                                         r"x_dim = 64 values"):
        ppgen.fit(models.ConvGenerator(x_dim=64), torch.rand(10, 63), inference=MomentMatching(), progress=False)
