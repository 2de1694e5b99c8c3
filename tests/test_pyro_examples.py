"""Pyro's own examples and tutorials run verbatim through ppgen, with Pyro's own estimators as the reference.

For each program of :mod:`pyro_programs.examples` (LDA, sparse gamma DEF, eight schools, the M2 semi-supervised VAE,
the CVAE, the HMMs of examples/hmm.py, svi_part_ii's subsampled plate, the Dirichlet-process mixture, the flow guide),
on the data as Pyro's example passes it:

- ``test_pyro_runs_it``: Pyro's ``Trace_ELBO`` (``TraceEnum_ELBO`` where the program enumerates) evaluates it to a
  finite number, so every comparison below has its reference;
- ``test_elbo_equals_pyro``: ppgen's full-data ELBO, ``ppgen.log_weights(program, data, k=1).sum()`` over the
  program's N data points (for a guide that enumerates, N times the first loss of a full-batch ``ppgen.fit``), equals
  Pyro's ``-loss`` under the same seed (float64); where the draws or the starting values cannot be the same (a
  guide's random initial values, an AutoGuide's ``init_to_median``, a random subsample, an enumerating guide), the
  two Monte Carlo means over independent seeds, a fresh program each, agree within four standard errors;
- ``test_fit_and_query``: a short ``ppgen.fit`` (mini-batches where the program's data plate follows the batch)
  and one query, whose answer is checked for what it must be (shape, support, normalisation).

"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterator

import pyro
import pyro.poutine as poutine
import pytest
import torch
from pyro.infer import Trace_ELBO, TraceEnum_ELBO
from torch import Tensor
from torch.nn.functional import softplus

import ppgen
from ppgen import inference
from pyro_programs.examples import EXAMPLES, Example

CASES = {example.name: example for example in EXAMPLES}
MC_DRAWS = 50

pytestmark = pytest.mark.usefixtures("float64", "one_thread")


def as_data(data: tuple[Tensor, ...]) -> Tensor | tuple[Tensor, ...]:
    """One input of rows alone as a tensor (the usual call), several, or one of scalars, as a tuple."""
    return data[0] if len(data) == 1 and data[0].dim() > 1 else data


def pyro_elbo(example: Example, seed: int) -> float:
    """Pyro's ELBO of the whole data set, -loss, of a fresh program under ``seed``. Its guide runs once before, unseen,
    as ppgen's tracing runs it before the draws: an AutoGuide learns its sites from the model on its first call, and a
    guide's parameters take their starting values (random ones too, drawn under the same seed)."""
    pyro.clear_param_store()
    _, model, guide = example.make()
    data = example.data()
    elbo = TraceEnum_ELBO(max_plate_nesting=example.max_plate_nesting) if example.enum else Trace_ELBO()
    pyro.set_rng_seed(seed)
    with poutine.block():
        guide(*data)
    pyro.set_rng_seed(seed)
    return -elbo.loss(model, guide, *data)


@contextlib.contextmanager
def quietly(example: Example) -> Iterator[None]:
    """ppgen may say once that a program which does not broadcast over particles runs one particle at a time."""
    with warnings.catch_warnings():
        if not example.broadcasts:
            warnings.simplefilter("ignore", UserWarning)
        yield


def ppgen_elbo(example: Example, seed: int) -> float:
    """ppgen's full-data ELBO of a fresh program under ``seed``: the K=1 log weights [1, N] summed over the N points,
    or, for a guide that enumerates, N times the first loss of a full-batch ``ppgen.fit``."""
    pyro.clear_param_store()
    program, _, _ = example.make()
    data = as_data(example.data())
    with quietly(example):
        if example.guide_enumerates:
            fit = ppgen.fit(program, data, inference=inference.ELBO(), epochs=1, batch_size=example.points,
                            seed=seed, progress=False)
            return -fit.history[0] * example.points
        pyro.set_rng_seed(seed)
        log_w = ppgen.log_weights(program, data, k=1)
    assert log_w.shape == (1, example.points)
    return log_w.sum().item()


def agree(exact: bool, ours, theirs, draws: int = MC_DRAWS) -> None:
    """ours(seed) equals theirs(seed) where the draws are identical; otherwise their means over independent seeds
    agree within four standard errors."""
    if exact:
        expected = theirs(0)
        assert math.isfinite(expected)
        assert ours(0) == pytest.approx(expected, rel=1e-6, abs=1e-8)
        return
    mine = torch.tensor([ours(seed) for seed in range(draws)])
    reference = torch.tensor([theirs(seed) for seed in range(draws, 2 * draws)])
    error = math.sqrt(mine.var().item() / draws + reference.var().item() / draws)
    assert abs(mine.mean().item() - reference.mean().item()) < 4 * error, (mine.mean(), reference.mean(), error)


@pytest.mark.parametrize("name", list(CASES))
def test_pyro_runs_it(name):
    """The reference exists: Pyro evaluates every program on its data, twice alike under one seed."""
    example = CASES[name]
    first = pyro_elbo(example, seed=0)
    assert math.isfinite(first)
    assert pyro_elbo(example, seed=0) == first


@pytest.mark.parametrize("name", list(CASES))
def test_elbo_equals_pyro(name):
    example = CASES[name]
    draws = MC_DRAWS // 5 if example.guide_enumerates else MC_DRAWS  # a fit per draw
    agree(example.exact, lambda seed: ppgen_elbo(example, seed), lambda seed: pyro_elbo(example, seed), draws)


# ------------------------------------------------------------------------------------------ a short fit, one query
# Each query gets the fit, the data and the program as made ((program, model, guide)); fit trains the program's own
# networks and parameters in place, so a posterior mean with a closed form is checked against them.
def on_simplex(probs: Tensor) -> bool:
    return bool((probs >= 0).all()) and torch.allclose(probs.sum(-1), torch.ones(()), atol=1e-6)


def query_lda(fit, data: tuple[Tensor, ...], made) -> None:
    """E[doc_topics | words] under the guide's Delta: the predictor on each document's word histogram, as the
    guide computes it, one row per document on the simplex."""
    (words,) = data
    predictor = made[2].args[0]
    counts = torch.zeros(8, 6).scatter_add(0, words, torch.ones(words.shape))
    proportions = fit.encode(*data, site="doc_topics")
    torch.testing.assert_close(proportions, predictor(counts.transpose(0, 1)).detach())
    assert on_simplex(proportions)


def query_param(site: str, points: int, expected: Callable, atol: float = 1e-6) -> Callable:
    """E_q[z | x] of a local site whose guide has a closed-form mean, ``expected(fit, made, data)``; where the guide's
    distribution may have no analytic mean in ppgen's eyes (an AutoNormal's), within ``atol`` of an average of
    20000 draws (a standard error near 0.001 at the scales a short fit leaves, about 0.1)."""
    def query(fit, data: tuple[Tensor, ...], made) -> None:
        mean = fit.encode(*data, site=site, num_samples=20000)
        assert mean.shape[0] == points
        torch.testing.assert_close(mean.reshape(-1), expected(fit, made, data).reshape(-1), rtol=0, atol=atol)
    return query


def query_positive(site: str, shape: tuple[int, ...]) -> Callable:
    """E_q[z | x] of a Gamma-distributed local site (its mean under an AutoGuide has no closed form): one row per
    data point, positive."""
    def query(fit, data: tuple[Tensor, ...], made) -> None:
        mean = fit.encode(*data, site=site)
        assert mean.shape == shape and bool((mean > 0).all())
    return query


def gamma_def_mean(fit, made, data: tuple[Tensor, ...]) -> Tensor:
    """The custom guide's Gamma(alpha, alpha / mean) has mean softplus(mean_z_q_top)."""
    return softplus(fit.params["mean_z_q_top"])


def m2_z_mean(fit, made, data: tuple[Tensor, ...]) -> Tensor:
    """M2's q(z | x, y) = Normal(encoder_z([x, y])): its loc."""
    return made[1].__self__.encoder_z(list(data))[0]


def cvae_z_mean(fit, made, data: tuple[Tensor, ...]) -> Tensor:
    """The CVAE's q(z | x, y) = Normal(recognition_net(x, y)) in training: its loc."""
    return made[0].recognition_net(*data)[0]


def query_m2_unsupervised(fit, data: tuple[Tensor, ...], made) -> None:
    """q(y | x) over the 3 classes, enumerated by the guide: the program's own classifier network encoder_y."""
    probs = fit.encode(*data, site="y")
    assert probs.shape == (6, 3) and on_simplex(probs)
    torch.testing.assert_close(probs, made[1].__self__.encoder_y(data[0]).detach())


def query_hmm(fit, data: tuple[Tensor, ...], made) -> None:
    """log p(sequence): every hidden path summed out, so exact; a probability mass of binary tones, so <= 0."""
    log_p = fit.log_prob(*data)
    assert log_p.shape == (6,) and bool(log_p.isfinite().all()) and bool((log_p <= 0).all())


def query_global(site: str, low: float, high: float) -> Callable:
    """Posterior draws of a global latent: S draws without a data dimension, inside its support."""
    def query(fit, data: tuple[Tensor, ...], made) -> None:
        posterior = fit.posterior(*data, num_samples=20)
        assert site in posterior.global_sites
        draws = posterior.samples[site]
        assert draws.shape[0] == 20 and bool(((draws > low) & (draws < high)).all())
    return query


def query_subsampled(fit, data: tuple[Tensor, ...], made) -> None:
    """A program that subsamples 5 of its 10 points itself cannot be run on all of them for a query: refused, naming
    its plate; the guide's Beta(alpha_q, beta_q) over the fairness was learnt."""
    with pytest.raises(ValueError, match=r"pyro.plate\('observe_data', 10, subsample_size=5\) subsamples 5 of its 10 "
                                         r"points itself"):
        fit.posterior(*data, num_samples=20)
    assert fit.params["alpha_q"] > 0 and fit.params["beta_q"] > 0


def query_flow(fit, data: tuple[Tensor, ...], made) -> None:
    """E_q[z | x] of the flow guide (no closed form: an average of draws), one 3-vector per data point."""
    mean = fit.encode(*data, site="z")
    assert mean.shape == (6, 3) and bool(mean.isfinite().all())


QUERIES = {
    "lda": query_lda,
    "sparse_gamma_def_custom": query_param("z_top", 5, gamma_def_mean),
    "sparse_gamma_def_autodiagonal": query_positive("z_top", (5, 3)),
    "sparse_gamma_def_autonormal": query_positive("z_top", (5, 3)),
    "eight_schools_custom": query_param("eta", 8, lambda fit, made, data: fit.params["loc_eta"]),
    "eight_schools_autonormal": query_param("eta", 8, lambda fit, made, data: fit.params["AutoNormal.locs.eta"],
                                            atol=0.01),
    "eight_schools_centred_autonormal": query_global("tau", 0.0, math.inf),
    "ss_vae_m2_supervised": query_param("z", 6, m2_z_mean),
    "ss_vae_m2_unsupervised": query_m2_unsupervised,
    "cvae": query_param("z", 4, cvae_z_mean),
    "hmm_model_1": query_hmm,
    "hmm_model_2": query_hmm,
    "svi_part_ii_subsample": query_subsampled,
    "dp_mixture": query_global("beta", 0.0, 1.0),
    "svi_flow_guide": query_flow,
}


@pytest.mark.parametrize("name", list(CASES))
def test_fit_and_query(name):
    """Three epochs of ``ppgen.fit`` (mini-batches where the program's data plate follows the batch, the whole data
    where its size is fixed), a finite loss each epoch, and the program's query."""
    example = CASES[name]
    made = example.make()
    data = example.data()
    with quietly(example):
        fit = ppgen.fit(made[0], as_data(data), epochs=3, batch_size=example.batch_size, lr=1e-2, seed=0,
                        progress=False)
        assert len(fit.history) == 3 and all(math.isfinite(loss) for loss in fit.history)
        with torch.no_grad():
            QUERIES[name](fit, data, made)


@pytest.mark.parametrize("name", ["lda", "sparse_gamma_def_autonormal", "svi_flow_guide"])
def test_a_fit_of_a_whole_data_program_saves_and_loads(name, tmp_path):
    """A program that takes the whole data set (LDA's [words, documents] int64 ids; per-point AutoNormal parameters;
    the flow's points along dim 1) is saved with all of its inputs and loaded into the same program built again: the
    loaded fit has the same structure and answers log_weights-based queries with the same parameters."""
    example = CASES[name]
    made = example.make()
    data = example.data()
    with quietly(example):
        fit = ppgen.fit(made[0], as_data(data), epochs=1, batch_size=example.batch_size, seed=0, progress=False)
        fit.save(tmp_path / "fit.pt")
        loaded = ppgen.load(tmp_path / "fit.pt", model=example.make()[0])
    assert loaded.structure.plan == fit.structure.plan and loaded.structure.data_size == fit.structure.data_size
    assert loaded.structure.integer_x == fit.structure.integer_x == (name == "lda")
    for key, value in fit.params.items():
        torch.testing.assert_close(loaded.params[key], value)


def test_a_whole_data_program_draws_no_point_and_is_queried_whole():
    """LDA takes the whole data set at every step: sample() has no point of x to draw and says so; a query on part
    of the documents is refused, naming the shape the program was fitted to."""
    example = CASES["lda"]
    made = example.make()
    (words,) = example.data()
    with quietly(example):
        fit = ppgen.fit(made[0], words, epochs=1, batch_size=3, progress=False)
    with pytest.raises(ValueError, match=r"sample: the program takes the whole data set at every step"):
        fit.sample(2)
    with pytest.raises(ValueError, match=r"x: the program takes the whole data set at every step; query it with the "
                                         r"whole data set it was fitted to, of shape \[5, 6\], got \[5, 3\]"):
        fit.encode(words[:, :3], site="doc_topics")
