"""Property-based tests (hypothesis): batching never changes an answer, and ``as_data`` accepts exactly what its
docstring documents."""

from __future__ import annotations

import math

import hypothesis.extra.numpy as hnp
import numpy as np
import pyro
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ppgen
from ppgen import models
from ppgen.program.inputs import as_data

FEW = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
ZOO = {
    "vae": lambda: models.VAE(x_dim=4, z_dim=2, hidden=(8,)),
    "ppca": lambda: models.PPCA(x_dim=4, z_dim=2),
    "gmm": lambda: models.GMM(x_dim=4, n_components=2),
}
#: importance samples of the VAE's estimate, and how far two independent estimates of one point may differ.
K, MC_TOLERANCE = 1000, 0.4


@pytest.fixture(scope="module", params=sorted(ZOO))
def fitted(request):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(40, 4, generator=generator)
    if request.param == "vae":
        x = (x > 0).to(x.dtype)
    ppgen.seed(0)
    return request.param, x, ppgen.fit(ZOO[request.param](), x, epochs=2, batch_size=20, progress=False)


@FEW
@given(cuts=st.lists(st.integers(1, 39), max_size=4, unique=True))
def test_log_prob_of_a_batch_is_the_concatenation_of_its_parts(fitted, cuts):
    """Exact models: equal to float precision. The VAE's estimate is random: at fixed seeds, two estimates with
    K importance samples agree within Monte Carlo error (the spread per point is measured below)."""
    name, x, fit = fitted
    bounds = [0, *sorted(cuts), len(x)]
    pyro.set_rng_seed(0)
    whole = fit.log_prob(x, k=K)
    parts = []
    for start, stop in zip(bounds, bounds[1:]):
        pyro.set_rng_seed(start + 1)
        parts.append(fit.log_prob(x[start:stop], k=K))
    parts = torch.cat(parts)
    assert parts.shape == whole.shape == (len(x),)
    if name == "vae":
        assert (parts - whole).abs().max() < MC_TOLERANCE
    else:
        torch.testing.assert_close(parts, whole, rtol=1e-5, atol=1e-5)


DTYPES = st.sampled_from([np.bool_, np.int8, np.uint8, np.int32, np.int64, np.float16, np.float32, np.float64,
                          np.complex64])
ARRAYS = DTYPES.flatmap(lambda dtype: hnp.arrays(dtype, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0,
                                                                         max_side=3)))
FORMS = st.sampled_from(["ndarray", "tensor", "list"])


def expected(array: np.ndarray, form: str) -> type[Exception] | None:
    """What the docstring of ``as_data`` promises for this input: the error it raises, or None (accepted)."""
    if form == "list":
        array = np.asarray(array.tolist())
    if array.dtype.kind == "c" or array.dtype == np.float16:
        return TypeError
    if array.ndim < 2 or array.shape[0] == 0:
        return ValueError
    # Python numbers (lists) and integers take torch's default dtype: a float finite in float64 but past
    # float32's range is infinite there, and refused as such.
    kept = array.dtype.kind == "f" and form != "list"
    with np.errstate(over="ignore"):  # the overflow is the point: it makes an infinity
        cast = array.astype(array.dtype if kept else torch.empty(0).numpy().dtype)
    if not np.isfinite(cast).all():
        return ValueError
    return None


def as_form(array: np.ndarray, form: str):
    if form == "tensor":
        return torch.from_numpy(array.copy())
    return array.tolist() if form == "list" else array


@settings(max_examples=300, deadline=None)
@given(array=ARRAYS, form=FORMS)
def test_as_data_accepts_exactly_the_documented_inputs(array, form):
    """Tensors, ndarrays and nested lists of real numbers, of shape [N, ...] with N >= 1, finite, not float16;
    floating dtypes kept (lists: the default dtype), integers and bools as the default dtype, values unchanged."""
    value = as_form(array, form)
    error = expected(array, form)
    if error is not None:
        with pytest.raises(error):
            as_data(value)
        return
    x = as_data(value)
    source = np.asarray(array.tolist()) if form == "list" else array
    keeps = source.dtype.kind == "f" and form != "list"
    assert x.dtype == (torch.from_numpy(source).dtype if keeps else torch.get_default_dtype())
    assert x.shape == source.shape
    np.testing.assert_array_equal(x.numpy(), source.astype(x.numpy().dtype))


@given(value=st.one_of(st.none(), st.text(), st.dictionaries(st.text(), st.integers()), st.builds(object),
                       st.just([[1, 2], [3]]), st.just([["a", "b"]])))
def test_as_data_refuses_what_is_not_numbers(value):
    with pytest.raises(TypeError):
        as_data(value)


def test_the_vae_tolerance_is_a_few_standard_errors():
    """MC_TOLERANCE is measured, not typed in: the spread of the estimate at K draws, over repeated seeds."""
    x = (torch.randn(40, 4, generator=torch.Generator().manual_seed(0)) > 0).float()
    ppgen.seed(0)
    fit = ppgen.fit(ZOO["vae"](), x, epochs=2, batch_size=20, progress=False)  # the fixture's fit
    estimates = []
    for seed in range(8):
        pyro.set_rng_seed(seed)
        estimates.append(fit.log_prob(x, k=K))
    spread = torch.stack(estimates).std(0).max().item()
    assert 5 * math.sqrt(2) * spread < MC_TOLERANCE
