"""ppgen.program.inputs.as_data: what it accepts, what it converts, and what it rejects with which message."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ppgen.program.inputs import as_data


def test_tensor_passes_through_without_copy():
    x = torch.randn(5, 3, dtype=torch.float64)
    assert as_data(x) is x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ndarray_keeps_float_dtype_and_shares_memory(dtype):
    array = np.arange(12, dtype=dtype).reshape(4, 3)
    x = as_data(array)
    assert x.dtype == torch.from_numpy(array).dtype
    assert np.shares_memory(x.numpy(), array)
    np.testing.assert_array_equal(x.numpy(), array)


@pytest.mark.parametrize("array", [
    np.arange(6, dtype=">f8").reshape(3, 2),                    # big-endian
    np.frombuffer(np.arange(6.0).tobytes()).reshape(3, 2),       # read-only
    np.arange(6.0).reshape(3, 2)[::-1],                          # negative strides
], ids=["big-endian", "read-only", "reversed"])
def test_ndarray_torch_cannot_share_is_copied_exactly(array):
    x = as_data(array)
    assert x.dtype == torch.float64
    np.testing.assert_array_equal(x.numpy(), array)


@pytest.mark.parametrize("data", [
    torch.tensor([[0, 1], [2, 3]]),
    torch.tensor([[True, False]]),
    np.array([[0, 255]], dtype=np.uint8),
    np.array([[1, -2]], dtype=np.int32),
    [[0, 1], [2, 3]],
    [[0.5, 1.5]],
], ids=["int-tensor", "bool-tensor", "uint8-array", "int32-array", "int-list", "float-list"])
def test_integers_bools_and_lists_become_default_dtype(data):
    x = as_data(data)
    assert x.dtype == torch.get_default_dtype()
    np.testing.assert_array_equal(x.numpy(), np.asarray(data, dtype=np.float64))


def test_keeps_extra_dimensions():
    assert as_data(np.zeros((2, 3, 4), dtype=np.float32)).shape == (2, 3, 4)


@pytest.mark.parametrize("data", [
    "abc", {"x": [1.0]}, None, np.array([[object()]], dtype=object), [[1.0, 2.0], [3.0]],
    np.array([["a", "b"]]), np.ones((2, 2), dtype=np.complex64), torch.ones(2, 2, dtype=torch.complex64),
], ids=["str", "dict", "None", "object-array", "ragged", "str-array", "complex-array", "complex-tensor"])
def test_non_numeric_raises_type_error_naming_argument(data):
    with pytest.raises(TypeError, match="points"):
        as_data(data, name="points")


@pytest.mark.parametrize("data, shape", [
    (3.0, r"\[\]"), (torch.tensor(3.0), r"\[\]"), (np.zeros(4), r"\[4\]"), ([1.0, 2.0], r"\[2\]"),
])
def test_fewer_than_two_dimensions_raises_naming_argument_shape_and_fix(data, shape):
    with pytest.raises(ValueError, match=rf"points .*got shape {shape}.*x\[None\].*x\[:, None\]"):
        as_data(data, name="points")


@pytest.mark.parametrize("data", [np.zeros((0, 3)), torch.zeros(0, 2, 2)])
def test_no_rows_raises(data):
    with pytest.raises(ValueError, match=r"points must hold at least one data point.*\[0, "):
        as_data(data, name="points")


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_raises_with_count(value):
    array = np.zeros((4, 3))
    array[0, 1] = array[2, 2] = value
    with pytest.raises(ValueError, match="points has 2 non-finite entries"):
        as_data(array, name="points")
    with pytest.raises(ValueError, match="x has 2 non-finite entries"):
        as_data(torch.from_numpy(array).float(), name="x")


def test_default_name_is_data():
    with pytest.raises(ValueError, match="^data "):
        as_data(np.zeros(3))
