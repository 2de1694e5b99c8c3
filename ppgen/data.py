"""User data in, one validated tensor out: the single gate every data set passes through."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

#: NumPy dtype kinds that hold real numbers: bool, signed and unsigned integers, floats.
_NUMERIC_KINDS = "biuf"


def as_data(data: Any, *, name: str = "data") -> Tensor:
    """Turns user data into a tensor of shape [N, ...], one data point per row.

    Floating-point tensors and arrays keep their dtype (float64 stays float64); integer and bool
    ones become ``torch.get_default_dtype()``, and so does anything else NumPy reads as numbers
    (nested lists), since Python numbers carry no chosen precision. A tensor or array that needs
    no conversion is returned without a copy, detached from any autograd graph (data is not a parameter).

    Arguments:
        data: A ``torch.Tensor``, a ``numpy.ndarray`` or nested lists of numbers.
        name: The argument's name, used in error messages.

    Returns:
        A tensor with at least two dimensions and at least one row, whose entries are all finite.

    Raises:
        TypeError: If ``data`` does not hold real numbers (a string, a dict, None, an object or
            complex array, ragged lists), or holds float16/bfloat16 ones.
        ValueError: If ``data`` has fewer than two dimensions, no rows, or NaN or infinite entries.

    Example:
        >>> as_data([[0, 1], [2, 3]]).dtype == torch.get_default_dtype()
        True
    """
    x = (data.detach() if data.requires_grad else data) if isinstance(data, Tensor) else _from_array(data, name)
    if x.is_complex():
        raise TypeError(f"{name} must hold real numbers, got a tensor of dtype {x.dtype}")
    if x.dtype in (torch.float16, torch.bfloat16):  # log-densities summed in float16 overflow past 65504
        raise TypeError(f"{name} has dtype {x.dtype}, too coarse for the log-densities a fit sums: convert it "
                        f"with .float() or .double()")
    if not x.is_floating_point():
        x = x.to(torch.get_default_dtype())
    if x.dim() < 2:
        raise ValueError(f"{name} must have shape [N, ...] with one data point per row, got shape "
                         f"{list(x.shape)}: reshape a single point to x[None] or a column to x[:, None]")
    if len(x) == 0:
        raise ValueError(f"{name} must hold at least one data point, got shape {list(x.shape)}")
    bad = int((~torch.isfinite(x)).sum())
    if bad:
        raise ValueError(f"{name} has {bad} non-finite entries (NaN or infinity) out of {x.numel()}")
    return x


def _from_array(data: Any, name: str) -> Tensor:
    """Converts an ndarray, or anything ``numpy.asarray`` reads as real numbers, to a tensor."""
    expected = f"{name} must be a tensor, an ndarray or nested lists of real numbers"
    try:
        array = np.asarray(data)
    except (TypeError, ValueError) as error:  # ragged lists, objects NumPy cannot read
        raise TypeError(f"{expected}: {error}") from error
    if array.dtype.kind not in _NUMERIC_KINDS:
        raise TypeError(f"{expected}, got {type(data).__name__} (read as NumPy dtype {array.dtype})")
    if not isinstance(data, np.ndarray):
        return torch.tensor(array, dtype=torch.get_default_dtype())
    if not array.dtype.isnative or not array.flags.writeable or min(array.strides, default=0) < 0:
        array = array.astype(array.dtype.newbyteorder("="))  # buffers torch cannot share: copy
    return torch.as_tensor(array)
