"""The contract of the whole zoo, ppgen.training.registry.MODELS and CONDITIONAL_MODELS: built with defaults, fitted one
epoch, every query answered or refused with a clear error, a save/load round trip that answers identically, float64
throughout. An implicit model (a generator, no density) is fitted by a likelihood-free objective, answers sample alone
and refuses every query of a density by name."""

import math
import re

import pyro
import pytest
import torch

import ppgen
from ppgen.program.inputs import as_batch
from ppgen.program.structure import inspect
from ppgen.program.unnormalized import log_density
from ppgen.training import registry
from programs import MomentMatching

MODELS = {**registry.MODELS, **registry.CONDITIONAL_MODELS}
ZOO = sorted(MODELS)


@pytest.fixture(scope="module")
def data():
    pyro.set_rng_seed(1)
    return torch.bernoulli(torch.full((40, 6), 0.4))


#: the further inputs of the models that take more than x, for N points: model(x, *inputs(N)).
FURTHER_INPUTS = {
    "ssvae": lambda n: (torch.arange(n) % 3 - 1,),  # labels 0 and 1, and -1 (unknown) on a third of the points
    "cvae": lambda n: (torch.nn.functional.one_hot(torch.arange(n) % 10, 10).float(),),
}


def further(name, n, dtype=torch.float32):
    """The model's inputs besides x for n points, floating ones in ``dtype``."""
    inputs = FURTHER_INPUTS.get(name, lambda n: ())(n)
    return tuple(v.to(dtype) if v.is_floating_point() else v for v in inputs)


def fitted(name, x):
    data = (x, *further(name, len(x), x.dtype)) if name in FURTHER_INPUTS else x
    model = MODELS[name](x_dim=x.shape[1])
    objective = MomentMatching() if inspect(model, data, placed=True).implicit else None  # None: fit's default
    return ppgen.fit(model, data, inference=objective, epochs=1, batch_size=20, progress=False)


#: the queries of a density, and the words by which an implicit model refuses each.
DENSITY_QUERIES = {"log_prob": "log_prob(x)", "iwae_bound": "iwae_bound(x)", "encode": "inferring p(z|x)",
                   "posterior": "inferring p(z|x)"}


def queries(fit, x, site, name):
    """Every query of the fit but ``evaluate``, by name, as a call without arguments."""
    more, given = further(name, len(x), x.dtype), further(name, 5, x.dtype)
    return {"log_prob": lambda: fit.log_prob(x, *more, k=4), "iwae_bound": lambda: fit.iwae_bound(x, *more, k=3),
            "sample": lambda: fit.sample(5, *given), "encode": lambda: fit.encode(x, *more, site=site),
            "posterior": lambda: fit.posterior(x[:4], *(v[:4] for v in more), num_samples=3).samples[site]}


def answers(fit, x, site, name):
    """Every query the model answers, seeded, so two fits with the same parameters give the same answers."""
    out = {}
    asked = queries(fit, x, site, name)
    if fit.structure.implicit:  # a generator answers sample alone
        asked = {"sample": asked["sample"]}
    elif site is None:  # a model without latents (an autoregressive model, a flow) has no posterior to ask about
        asked = {name: call for name, call in asked.items() if name not in ("encode", "posterior")}
    if fit.structure.reweighted:  # log w is no importance weight (a diffusion model's sampled step): refused, below
        del asked["iwae_bound"]
    for query, call in asked.items():
        pyro.set_rng_seed(7)
        out[query] = call()
    return out


@pytest.mark.parametrize("name", ZOO)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_every_query_is_answered_and_a_saved_fit_answers_the_same(name, dtype, data, tmp_path):
    x = data.to(dtype)
    fit = fitted(name, x)
    assert all(p.dtype == dtype for p in fit.model.parameters())
    for site in fit.latent_sites or (None,):
        got = answers(fit, x, site, name)
        assert got["sample"].shape == (5, 6) and fit.structure.data_support.check(got["sample"]).all()
        if not fit.structure.implicit:
            assert got["log_prob"].shape == (40,) and got["log_prob"].dtype == dtype
            assert torch.isfinite(got["log_prob"]).all() and torch.isfinite(got.get("iwae_bound", torch.zeros(1))).all()
        if site is not None:
            assert got["encode"].shape[0] == 40 and got["posterior"].shape[:2] == (3, 4)
        path = tmp_path / f"{name}.pt"
        fit.save(path)
        again = answers(ppgen.load(path), x, site, name)
        for query, value in got.items():
            torch.testing.assert_close(again[query], value, rtol=0, atol=0, msg=f"{name}: {query} after load")


@pytest.mark.parametrize("name", ZOO)
def test_a_query_the_model_cannot_answer_is_refused_clearly(name, data):
    fit = fitted(name, data)
    if fit.structure.implicit:  # every query of a density, by name, with the objectives that fit it
        asked = queries(fit, data, None, name)
        for query, needs in DENSITY_QUERIES.items():
            with pytest.raises(ValueError, match=rf"^{re.escape(needs)}.* needs the model's density, but the model is "
                                                 rf"implicit: .* inference.MMD\(\), inference.Adversarial\(\) or "
                                                 rf"inference.Wasserstein\(\); of the queries it answers "
                                                 rf"sample\(n\), and evaluate\(x\) by its sample metrics alone$"):
                asked[query]()
        report = fit.evaluate(data, k=3, metrics=("mmd",))  # evaluate answers by the sample metrics alone
        assert report.iwae is None and set(report.samples.scores) == {"mmd"}
        return
    with pytest.raises(ValueError, match="several latent sites|must be one of the model's latent sites|"
                                         "has no latent variables to infer|has no latent site 'no-such-site'"):
        fit.encode(data, *further(name, len(data)), site="no-such-site")
    with pytest.raises(ValueError, match="must have shape"):
        fit.log_prob(data[:, :3], *further(name, len(data)))
    if fit.structure.exact:  # log p(x) exact: the bound through the guide with K = 1 is at most log p(x)
        assert bool((fit.iwae_bound(data, k=1) <= fit.log_prob(data) + 1e-4).all())


@pytest.mark.parametrize("name", sorted(registry.ENERGY_MODELS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_an_energy_model_fits_with_defaults_answers_its_queries_and_a_saved_fit_answers_the_same(name, dtype, tmp_path):
    """The zoo's energy-based models (registry.ENERGY_MODELS), exp(-E(x)) without log Z: fitted by their default,
    score matching; log p(x) an estimate through AIS's log Z, draws by Langevin chains; the bound through a guide
    refused by name; no latents to encode; a saved fit answers the same."""
    pyro.set_rng_seed(1)
    x = torch.randn(40, 16, dtype=dtype)
    fit = ppgen.fit(registry.ENERGY_MODELS[name](x_dim=16), x, epochs=1, batch_size=20, progress=False)
    assert type(fit.inference).__name__ == "ScoreMatching" and fit.structure.unnormalized
    assert all(p.dtype == dtype for p in fit.model.parameters())
    log_z = fit.log_normalizer(temperatures=10, chains=50)
    got = fit.log_prob(x)
    assert got.shape == (40,) and got.dtype == dtype and torch.isfinite(got).all() and math.isfinite(log_z.estimate)
    with pytest.raises(ValueError, match=r"without log Z.*no guide whose draws it could weigh"):
        fit.iwae_bound(x, k=2)
    with pytest.raises(ValueError, match="has no latent variables"):
        fit.encode(x)
    path = tmp_path / f"{name}.pt"
    fit.save(path)
    loaded = ppgen.load(path)
    torch.testing.assert_close(loaded.log_prob(x), got, rtol=0, atol=0)
    draws = []
    for answering in (fit, loaded):
        pyro.set_rng_seed(7)
        draws.append(answering.sample(5, steps=6))
    assert draws[0].shape == (5, 16) and draws[0].dtype == dtype and torch.equal(*draws)
    batch = as_batch(x)
    torch.testing.assert_close(log_density(loaded.model, loaded.structure, batch),
                               log_density(fit.model, fit.structure, batch), rtol=0, atol=0)
