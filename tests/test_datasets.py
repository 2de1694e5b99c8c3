"""ppgen.datasets against independent truth: scikit-learn's own data and IDX files written here by hand."""

from __future__ import annotations

import gzip
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits, make_moons

from ppgen import datasets

#: IDX type code -> (NumPy dtype, torch dtype), written out here from the format's specification.
IDX_TYPES = {
    0x08: (np.uint8, torch.uint8), 0x09: (np.int8, torch.int8), 0x0B: (np.int16, torch.int16),
    0x0C: (np.int32, torch.int32), 0x0D: (np.float32, torch.float32), 0x0E: (np.float64, torch.float64),
}


def idx_bytes(array: np.ndarray, code: int) -> bytes:
    """The IDX encoding of ``array``: magic, type code, rank, big-endian sizes, big-endian values."""
    header = bytes([0, 0, code, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    return header + array.astype(np.dtype(array.dtype).newbyteorder(">")).tobytes()


def write_idx(path: Path, array: np.ndarray, code: int, gz: bool = False) -> Path:
    data = idx_bytes(array, code)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def rows_with_labels(x: np.ndarray, y: np.ndarray) -> Counter:
    """The multiset of (image in 0..16 pixel units, label) pairs."""
    pixels = np.rint(np.asarray(x, dtype=np.float64) * 16).astype(np.uint8)
    return Counter(zip(map(bytes, pixels), np.asarray(y).tolist()))


# --- digits -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("split, n", [("train", 1437), ("test", 360)])
def test_digits_shapes_types_and_range(split, n):
    x, y = datasets.digits(split=split, return_labels=True)
    assert x.shape == (n, 64) and x.dtype == torch.float32
    assert y.shape == (n,) and y.dtype == torch.int64
    assert x.min() == 0 and x.max() == 1
    assert torch.equal(x * 16, (x * 16).round())  # pixel values k/16 exactly
    assert set(y.tolist()) == set(range(10))
    assert torch.equal(datasets.digits(split=split), x)


def test_digits_split_partitions_sklearn_data_with_its_labels():
    full = load_digits()
    train, test = (datasets.digits(split=s, return_labels=True) for s in ("train", "test"))
    pairs = rows_with_labels(train[0].numpy(), train[1].numpy()) + rows_with_labels(test[0].numpy(), test[1].numpy())
    assert pairs == rows_with_labels(full.data / 16, full.target)


def test_digits_split_is_stratified():
    full_counts = np.bincount(load_digits().target, minlength=10)
    test_counts = np.bincount(datasets.digits(split="test", return_labels=True)[1].numpy(), minlength=10)
    assert np.all(test_counts > 0)
    assert np.all(np.abs(test_counts - 0.2 * full_counts) <= 1)


def test_digits_deterministic_and_fresh_each_call():
    x, y = datasets.digits(return_labels=True)
    x[:] = -1
    y[:] = -1
    again, labels = datasets.digits(return_labels=True)
    assert again.min() == 0 and labels.min() == 0
    assert torch.equal(again, datasets.digits()) and torch.equal(labels, datasets.digits(return_labels=True)[1])


@pytest.mark.parametrize("split", ["train", "test"])
def test_digits_binarize_thresholds_at_half(split):
    x = datasets.digits(split=split)
    b = datasets.digits(split=split, binarize=True)
    assert b.dtype == torch.float32 and set(b.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(b, (x >= 0.5).float())


@pytest.mark.parametrize("split", ["valid", "Train", ""])
def test_digits_bad_split_raises(split):
    with pytest.raises(ValueError, match="split"):
        datasets.digits(split=split)


# --- moons ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n, noise, seed", [(1000, 0.1, 0), (7, 0.0, 3), (1, 0.5, 11)])
def test_moons_matches_make_moons(n, noise, seed):
    x, y = datasets.moons(n=n, noise=noise, seed=seed, return_labels=True)
    ref_x, ref_y = make_moons(n_samples=n, noise=noise, random_state=seed)
    assert x.shape == (n, 2) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert torch.equal(x, torch.from_numpy(ref_x.astype(np.float32)))
    assert torch.equal(y, torch.from_numpy(ref_y))
    assert torch.equal(datasets.moons(n=n, noise=noise, seed=seed), x)


def test_moons_seed_changes_draw():
    assert not torch.equal(datasets.moons(n=50, seed=0), datasets.moons(n=50, seed=1))


@pytest.mark.parametrize("kwargs, error, name", [
    ({"n": 0}, ValueError, "n"), ({"n": -5}, ValueError, "n"), ({"n": 2.0}, TypeError, "n"),
    ({"n": True}, TypeError, "n"), ({"noise": -0.1}, ValueError, "noise"),
    ({"noise": float("nan")}, ValueError, "noise"), ({"noise": "0.1"}, TypeError, "noise"),
    ({"seed": 1.5}, TypeError, "seed"), ({"seed": -1}, ValueError, "seed"), ({"seed": 2**32}, ValueError, "seed"),
])
def test_moons_bad_arguments_raise(kwargs, error, name):
    with pytest.raises(error, match=rf"^{name} "):
        datasets.moons(**kwargs)


# --- IDX ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("code", sorted(IDX_TYPES))
@pytest.mark.parametrize("shape", [(5,), (3, 4, 2)])
def test_load_idx_round_trip_every_type(tmp_path, code, shape):
    np_dtype, torch_dtype = IDX_TYPES[code]
    rng = np.random.default_rng(code)
    if np.issubdtype(np_dtype, np.integer):
        info = np.iinfo(np_dtype)
        array = rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=np_dtype)
    else:
        array = (rng.standard_normal(shape) * 1e3).astype(np_dtype)
    x = datasets.load_idx(write_idx(tmp_path / "data.idx", array, code))
    assert x.dtype == torch_dtype and x.shape == shape
    np.testing.assert_array_equal(x.numpy(), array)


def test_load_idx_mnist_like_images_and_labels(tmp_path):
    images = np.arange(2 * 28 * 28).reshape(2, 28, 28).astype(np.uint8)
    labels = np.array([7, -2, 100000], dtype=np.int32)
    x = datasets.load_idx(write_idx(tmp_path / "images-idx3-ubyte", images, 0x08))
    y = datasets.load_idx(str(write_idx(tmp_path / "labels-idx1-ubyte", labels, 0x0C)))
    assert x.shape == (2, 28, 28) and x.dtype == torch.uint8 and np.array_equal(x.numpy(), images)
    assert y.tolist() == [7, -2, 100000] and y.dtype == torch.int32
    assert x.numpy().flags.writeable  # a tensor of its own, not a view of the read-only file buffer


@pytest.mark.parametrize("name", ["data.idx.gz", "data.idx"])
def test_load_idx_reads_gzip_by_content(tmp_path, name):
    array = np.linspace(-1, 1, 24).reshape(2, 3, 4)
    x = datasets.load_idx(write_idx(tmp_path / name, array, 0x0E, gz=True))
    assert x.dtype == torch.float64 and np.array_equal(x.numpy(), array)


GOOD = idx_bytes(np.arange(6, dtype=np.uint8).reshape(2, 3), 0x08)


@pytest.mark.parametrize("data, message", [
    (b"\x01" + GOOD[1:], "not an IDX file"),
    (b"PK\x03\x04" + GOOD[4:], "not an IDX file"),
    (b"\x00", "not an IDX file"),
    (b"", "not an IDX file"),
    (GOOD[:2] + b"\x0a" + GOOD[3:], "unknown IDX type code 0x0a"),
    (GOOD[:-1], "holds 17 bytes but its header .* needs 18"),
    (GOOD + b"\x00", "holds 19 bytes but its header .* needs 18"),
    (GOOD[:4] + b"\x00\x00", "truncated"),
    (gzip.compress(GOOD)[:-6], "gzip"),
], ids=["bad-magic", "zip", "one-byte", "empty", "type-code", "short", "long", "header", "gzip"])
def test_load_idx_invalid_file_raises_naming_path(tmp_path, data, message):
    path = tmp_path / "bad.idx"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*" + message):
        datasets.load_idx(path)


def test_load_idx_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        datasets.load_idx(tmp_path / "missing.idx")


@pytest.mark.parametrize("gz", [False, True])
def test_idx_images_flattens_and_scales_uint8(tmp_path, gz):
    images = np.random.default_rng(0).integers(0, 256, size=(4, 5, 3), dtype=np.uint8)
    images[0, 0, :3] = [0, 127, 128]
    path = write_idx(tmp_path / "images", images, 0x08, gz=gz)
    x = datasets.idx_images(path)
    assert x.shape == (4, 15) and x.dtype == torch.float32
    assert torch.equal(x, torch.from_numpy(images.reshape(4, 15)).float() / 255)
    b = datasets.idx_images(path, binarize=True)
    assert b[0, :3].tolist() == [0.0, 0.0, 1.0]
    assert torch.equal(b, torch.from_numpy(images.reshape(4, 15) >= 128).float())


def test_idx_images_keeps_float_values(tmp_path):
    images = np.array([[[0.25, 2.0]], [[-1.0, 0.5]]])
    x = datasets.idx_images(write_idx(tmp_path / "images", images, 0x0E))
    assert x.dtype == torch.float32 and x.tolist() == [[0.25, 2.0], [-1.0, 0.5]]


def test_idx_images_rejects_label_file(tmp_path):
    path = write_idx(tmp_path / "labels", np.arange(10, dtype=np.uint8), 0x08)
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*load_idx"):
        datasets.idx_images(path)
