"""The contract of the whole zoo, ppgen.training.registry.MODELS and CONDITIONAL_MODELS: built with defaults, fitted one
epoch, every query answered or refused with a clear error, a save/load round trip that answers identically, float64
throughout."""

import pyro
import pytest
import torch

import ppgen
from ppgen.training import registry

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
    return ppgen.fit(MODELS[name](x_dim=x.shape[1]), data, epochs=1, batch_size=20, progress=False)


def answers(fit, x, site, name):
    """Every query, seeded, so two fits with the same parameters give the same answers."""
    out = {}
    more, given = further(name, len(x), x.dtype), further(name, 5, x.dtype)
    queries = {"log_prob": lambda: fit.log_prob(x, *more, k=4), "iwae_bound": lambda: fit.iwae_bound(x, *more, k=3),
               "sample": lambda: fit.sample(5, *given), "encode": lambda: fit.encode(x, *more, site=site),
               "posterior": lambda: fit.posterior(x[:4], *(v[:4] for v in more), num_samples=3).samples[site]}
    if site is None:  # a model without latents (an autoregressive model, a flow) has no posterior to ask about
        queries = {name: call for name, call in queries.items() if name not in ("encode", "posterior")}
    if fit.structure.reweighted:  # log w is no importance weight (a diffusion model's sampled step): refused, below
        del queries["iwae_bound"]
    for query, call in queries.items():
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
        assert got["log_prob"].shape == (40,) and got["log_prob"].dtype == dtype
        assert torch.isfinite(got["log_prob"]).all() and torch.isfinite(got.get("iwae_bound", torch.zeros(1))).all()
        assert got["sample"].shape == (5, 6) and fit.structure.data_support.check(got["sample"]).all()
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
    with pytest.raises(ValueError, match="several latent sites|must be one of the model's latent sites|"
                                         "has no latent variables to infer|has no latent site 'no-such-site'"):
        fit.encode(data, *further(name, len(data)), site="no-such-site")
    with pytest.raises(ValueError, match="must have shape"):
        fit.log_prob(data[:, :3], *further(name, len(data)))
    if fit.structure.exact:  # log p(x) exact: the bound through the guide with K = 1 is at most log p(x)
        assert bool((fit.iwae_bound(data, k=1) <= fit.log_prob(data) + 1e-4).all())
    if fit.structure.reweighted:  # a poutine.scale weighs sites: log w estimates the ELBO's terms, no importance weight
        for query in (lambda: fit.iwae_bound(data, k=3), lambda: fit.evaluate(data, k=3)):
            with pytest.raises(ValueError, match="so that log w is an estimate of the ELBO's terms and no "
                                                 "importance weight"):
                query()
