"""User data in, one validated tensor out: the single gate every data set passes through."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import TensorDataset

#: NumPy dtype kinds that hold real numbers: bool, signed and unsigned integers, floats.
_NUMERIC_KINDS = "biuf"


def as_data(data: Any, *, name: str = "data", min_dim: int = 2, keep_integers: bool = False) -> Tensor:
    """Turns user data into a tensor of shape [N, ...], one data point per row.

    Floating-point tensors and arrays keep their dtype (float64 stays float64); integer and bool
    ones become ``torch.get_default_dtype()``, and so does anything else NumPy reads as numbers
    (nested lists), since Python numbers carry no chosen precision. A tensor or array that needs
    no conversion is returned without a copy, detached from any autograd graph (data is not a parameter).

    Arguments:
        data: A ``torch.Tensor``, a ``numpy.ndarray`` or nested lists of numbers.
        name: The argument's name, used in error messages.
        min_dim: the fewest dimensions accepted: 2 for points that are vectors, 1 where a point may be a number.
        keep_integers: keep an integer or bool dtype as it is (for a program to decide, see
            :attr:`ppgen.program.structure.Structure.integer_x`).

    Returns:
        A tensor with at least ``min_dim`` dimensions and at least one row, whose entries are all finite.

    Raises:
        TypeError: If ``data`` does not hold real numbers (a string, a dict, None, an object or
            complex array, ragged lists), or holds float16/bfloat16 ones.
        ValueError: If ``data`` has fewer than ``min_dim`` dimensions, no rows, or NaN or infinite entries.

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
    if not x.is_floating_point() and not keep_integers:
        x = x.to(torch.get_default_dtype())
    if x.dim() < min_dim:
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


@dataclass(frozen=True)
class Batch:
    """The inputs of one call of a program, ``model(*args)`` and ``guide(*args)``, and where they sit in the data.

    Attributes:
        args: the inputs (x, y, ...) the program is called with. Each is Tensor[B, ...], row b of every input being
            data point b; or, for a program that takes the whole data set and subsamples it itself (``whole``),
            the whole data set's inputs, as the program takes them.
        rows: LongTensor[B], the indices of these points in the data set, which a data plate that declares the
            data set's full size (``pyro.plate("data", N, subsample_size=B)``) receives as its subsample.
        size: N, the number of points in the whole data set, among which the terms of global latents are shared.
        whole: whether ``args`` hold the whole data set, of which ``rows`` are this batch's points.
    """

    args: tuple[Tensor, ...]
    rows: Tensor
    size: int
    whole: bool = False

    def __len__(self) -> int:
        return len(self.rows) if self.whole else self.args[0].shape[0]

    @property
    def float_dtype(self) -> torch.dtype:
        """The floating-point dtype of the data, which a model fitted to them takes: x's, or torch's default where x
        holds integers."""
        x = self.args[0]
        return x.dtype if x.is_floating_point() else torch.get_default_dtype()

    def take(self, rows: Tensor) -> Batch:
        """The points at ``rows`` (indices into this batch), still part of the same data set."""
        if self.whole:
            return Batch(self.args, self.rows[rows], self.size, whole=True)
        return Batch(tuple(arg[rows] for arg in self.args), self.rows[rows], self.size)

    def head(self, n: int) -> Batch:
        """The first ``n`` points."""
        return self.take(torch.arange(min(n, len(self))))

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Batch:
        """The batch on ``device``, its floating-point inputs in ``dtype`` (labels and masks keep theirs)."""
        args = tuple(arg.to(device=device, dtype=dtype if arg.is_floating_point() else None) for arg in self.args)
        return Batch(args, self.rows.to(device), self.size, self.whole)

    def as_whole(self) -> Batch:
        """The same inputs, for a program that is called with the whole data set at every step."""
        return Batch(self.args, self.rows, self.size, whole=True)


def as_batch(data: Any, *, name: str = "data", keep_integer_x: bool = False) -> Batch:
    """The whole data set as one :class:`Batch`: a single array, or a tuple of aligned inputs.

    A single tensor, array or nested list goes through :func:`as_data` (x, one point per row; a 1-D x is one
    number per point). A ``tuple``
    ``(x, y, ...)`` or a ``torch.utils.data.TensorDataset`` holds aligned inputs (a :class:`Batch` is returned as it
    is), passed positionally to the
    program as ``model(x, y, ...)``: each has one row per data point (a 1-D input, such as labels, is one
    number per point), floating-point inputs keep their dtype, integer and bool inputs (labels, masks) keep
    theirs, and floating-point entries must be finite. ``keep_integer_x``: a single integer x keeps its dtype too
    (else it becomes floating point, as :func:`as_data` makes it), for the program's structure to decide
    (:meth:`ppgen.program.structure.Structure.program_data`).

    Raises:
        TypeError: an input does not hold real numbers, or ``data`` is an empty tuple.
        ValueError: inputs of different lengths, no rows, or non-finite entries.
    """
    if isinstance(data, Batch):
        return data
    if isinstance(data, TensorDataset):
        data = tuple(data.tensors)
    if not isinstance(data, tuple):
        x = as_data(data, name=name, min_dim=1, keep_integers=keep_integer_x)
        return Batch((x,), torch.arange(len(x)), len(x))
    if not data:
        raise TypeError(f"{name} is an empty tuple: pass the data x, or aligned inputs (x, y, ...)")
    args = tuple(_as_input(value, f"{name}[{i}]") for i, value in enumerate(data))
    lengths = [len(arg) for arg in args]
    if len(set(lengths)) > 1:
        raise ValueError(f"{name}: the inputs must have one row per data point each, got lengths {lengths}")
    return Batch(args, torch.arange(lengths[0]), lengths[0])


def _as_input(value: Any, name: str) -> Tensor:
    """One of several aligned inputs: at least one dimension and one row; its dtype kept; finite if floating."""
    x = (value.detach() if value.requires_grad else value) if isinstance(value, Tensor) else _from_array(value, name)
    if x.is_complex():
        raise TypeError(f"{name} must hold real numbers, got a tensor of dtype {x.dtype}")
    if x.dim() < 1 or len(x) == 0:
        raise ValueError(f"{name} must have one row per data point, got shape {list(x.shape)}")
    if x.is_floating_point():
        bad = int((~torch.isfinite(x)).sum())
        if bad:
            raise ValueError(f"{name} has {bad} non-finite entries (NaN or infinity) out of {x.numel()}")
    return x
