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

A program that ppgen does not run yet is marked ``xfail(strict=True)`` with the error it gives today, so that each
fix of the structure learning (issue 21) turns one mark into a failure to be removed.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator

import pyro
import pyro.poutine as poutine
import pytest
import torch
from pyro.infer import Trace_ELBO, TraceEnum_ELBO
from torch import Tensor

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


# What each program gives on today's code, (error type, its words) for test_elbo_equals_pyro ("elbo") and
# test_fit_and_query ("fit"): the xfail marks, strict, so that a fix of the structure learning (issue 21) fails the
# test until its mark is removed, and each mark pinned to its error type.
ROWS_3 = "data: the program fails on rows of shape {}: "
NO_SIZE = ("pyro.plate('data') around site '{}' has no size: give the plate of the data points its size, "
           "pyro.plate('data', x.shape[0])")
TONES = "plates ['sequences', 'tones'] all have the batch's size 3: name the plate of the data points 'data'"
SCHOOLS = (ValueError, ROWS_3.format("[2] torch.float64") + "The size of tensor a (8) must match the size of tensor b "
           "(3) at non-singleton dimension 0")
GAMMA_DEF_AUTO = (ValueError, "Error while computing log_prob at site 'obs': Value is not broadcastable with "
                  "batch_shape+event_shape: torch.Size([5, 6]) vs torch.Size([1, 3, 6]).")
GAMMA_DEF_AUTO_FIT = (RuntimeError, "The size of tensor a (3) must match the size of tensor b (5) at non-singleton "
                      "dimension 1")
TODAY: dict[str, dict[str, tuple[type[Exception], str]]] = {
    "lda": dict.fromkeys(("elbo", "fit"), (ValueError, ROWS_3.format("[6] torch.float64") + "scatter(): Expected "
                                           "dtype int32/int64 for index")),
    "sparse_gamma_def_custom": dict.fromkeys(("elbo", "fit"), (ValueError, "Shape mismatch inside plate('data') at "
                                                               "site z_top dim -1, 5 vs 3")),
    "sparse_gamma_def_autodiagonal": {"elbo": GAMMA_DEF_AUTO, "fit": GAMMA_DEF_AUTO_FIT},
    "sparse_gamma_def_autonormal": {"elbo": GAMMA_DEF_AUTO, "fit": GAMMA_DEF_AUTO_FIT},
    "eight_schools_custom": dict.fromkeys(("elbo", "fit"), SCHOOLS),
    "eight_schools_autonormal": dict.fromkeys(("elbo", "fit"), SCHOOLS),
    "eight_schools_centred_autonormal": dict.fromkeys(("elbo", "fit"), SCHOOLS),
    "ss_vae_m2_supervised": dict.fromkeys(("elbo", "fit"), (ValueError, NO_SIZE.format("y"))),
    "ss_vae_m2_unsupervised": dict.fromkeys(("elbo", "fit"), (ValueError, NO_SIZE.format("x"))),
    "cvae": dict.fromkeys(("elbo", "fit"), (ValueError, NO_SIZE.format("y"))),
    "hmm_model_1": dict.fromkeys(("elbo", "fit"), (ValueError, TONES)),
    "hmm_model_2": dict.fromkeys(("elbo", "fit"), (ValueError, TONES)),
    "svi_part_ii_subsample": dict.fromkeys(("elbo", "fit"), (ValueError, ROWS_3.format("[] torch.float64") +
                                                             "index out of range in self")),
    "dp_mixture": dict.fromkeys(("elbo", "fit"), (ValueError, "no pyro.plate around the observed site(s) 'obs' has "
                                                  "the batch's size 3: observe the data inside pyro.plate('data', "
                                                  "x.shape[0]) (or declare the data set's size with "
                                                  "pyro.plate('data', N, subsample_size=x.shape[0]))")),
    "svi_flow_guide": dict.fromkeys(("elbo", "fit"), (ValueError, ROWS_3.format("[6, 2] torch.float64") +
                                                      "mat1 and mat2 shapes cannot be multiplied (6x9 and 13x8)")),
}


def marked(test: str) -> list:
    """Every program, those that fail today marked xfail(strict) with their error type and words."""
    params = []
    for name in CASES:
        if test in TODAY.get(name, {}):
            error, words = TODAY[name][test]
            params.append(pytest.param(name, marks=pytest.mark.xfail(strict=True, raises=error, reason=words)))
        else:
            params.append(name)
    return params


@pytest.mark.parametrize("name", list(CASES))
def test_pyro_runs_it(name):
    """The reference exists: Pyro evaluates every program on its data, twice alike under one seed."""
    example = CASES[name]
    first = pyro_elbo(example, seed=0)
    assert math.isfinite(first)
    assert pyro_elbo(example, seed=0) == first


@pytest.mark.parametrize("name", marked("elbo"))
def test_elbo_equals_pyro(name):
    example = CASES[name]
    draws = MC_DRAWS // 5 if example.guide_enumerates else MC_DRAWS  # a fit per draw
    agree(example.exact, lambda seed: ppgen_elbo(example, seed), lambda seed: pyro_elbo(example, seed), draws)


# ------------------------------------------------------------------------------------------ a short fit, one query
def on_simplex(probs: Tensor) -> bool:
    return bool((probs >= 0).all()) and torch.allclose(probs.sum(-1), torch.ones(()), atol=1e-6)


def query_lda(fit, data: tuple[Tensor, ...]) -> None:
    """Each document's topic proportions, E[doc_topics | words]: one row per document, on the simplex."""
    proportions = fit.encode(*data, site="doc_topics")
    assert proportions.shape == (6, 3) and on_simplex(proportions)


def query_local(site: str, shape: tuple[int, ...], positive: bool = False):
    """E_q[z | x] of a local site: one row per data point (positive where the prior is a Gamma)."""
    def query(fit, data: tuple[Tensor, ...]) -> None:
        mean = fit.encode(*data, site=site)
        assert mean.shape == shape and bool(mean.isfinite().all())
        assert not positive or bool((mean > 0).all())
    return query


def query_m2_unsupervised(fit, data: tuple[Tensor, ...]) -> None:
    """q(y | x), the classifier of M2: a distribution over the 3 classes for each image."""
    probs = fit.encode(*data, site="y")
    assert probs.shape == (6, 3) and on_simplex(probs)


def query_hmm(fit, data: tuple[Tensor, ...]) -> None:
    """log p(sequence): every hidden path summed out, so exact; a probability mass of binary tones, so <= 0."""
    log_p = fit.log_prob(*data)
    assert log_p.shape == (6,) and bool((log_p <= 0).all()) and bool(log_p.isfinite().all())


def query_global(site: str, low: float, high: float):
    """Posterior draws of a global latent: S draws without a data dimension, inside its support."""
    def query(fit, data: tuple[Tensor, ...]) -> None:
        posterior = fit.posterior(*data, num_samples=20)
        assert site in posterior.global_sites
        draws = posterior.samples[site]
        assert draws.shape[0] == 20 and bool(((draws > low) & (draws < high)).all())
    return query


QUERIES = {
    "lda": query_lda,
    "sparse_gamma_def_custom": query_local("z_top", (5, 3), positive=True),
    "sparse_gamma_def_autodiagonal": query_local("z_top", (5, 3), positive=True),
    "sparse_gamma_def_autonormal": query_local("z_top", (5, 3), positive=True),
    "eight_schools_custom": query_local("eta", (8,)),
    "eight_schools_autonormal": query_local("eta", (8,)),
    "eight_schools_centred_autonormal": query_global("tau", 0.0, math.inf),
    "ss_vae_m2_supervised": query_local("z", (6, 2)),
    "ss_vae_m2_unsupervised": query_m2_unsupervised,
    "cvae": query_local("z", (4, 2)),
    "hmm_model_1": query_hmm,
    "hmm_model_2": query_hmm,
    "svi_part_ii_subsample": query_global("latent_fairness", 0.0, 1.0),
    "dp_mixture": query_global("beta", 0.0, 1.0),
    "svi_flow_guide": query_local("z", (6, 3)),
}


@pytest.mark.parametrize("name", marked("fit"))
def test_fit_and_query(name):
    """Three epochs of ``ppgen.fit`` (mini-batches where the program's data plate follows the batch, the whole data
    where its size is fixed), a finite loss each epoch, and the program's query."""
    example = CASES[name]
    program, _, _ = example.make()
    data = example.data()
    with quietly(example):
        fit = ppgen.fit(program, as_data(data), epochs=3, batch_size=example.batch_size or example.points, lr=1e-2,
                        seed=0, progress=False)
        assert len(fit.history) == 3 and all(math.isfinite(loss) for loss in fit.history)
        QUERIES[name](fit, data)
