"""datasets.fashion_mnist reads the four gzipped IDX files from root, $PPGEN_FASHION_MNIST or the Debian folder."""

import gzip
import json
import struct

import numpy as np
import pytest
import torch

from ppgen import datasets
from ppgen.cli import main

FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
         "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


def write_idx(path, array):
    """The IDX format written by hand: zero bytes, type code 0x08 (uint8), dims, big-endian sizes, then bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", n) for n in array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 30), ("test", 10)):
        images, labels = rng.integers(0, 256, (n, 28, 28)), rng.integers(0, 10, n)
        write_idx(tmp_path / FILES[split][0], images)
        write_idx(tmp_path / FILES[split][1], labels)
        arrays[split] = images, labels
    return tmp_path, arrays


@pytest.mark.parametrize("split", ["train", "test"])
def test_reads_images_scaled_and_labels(folder, split):
    root, arrays = folder
    x, y = datasets.fashion_mnist(split, root=root, return_labels=True)
    images, labels = arrays[split]
    assert x.shape == (len(images), 784) and x.dtype == torch.float32 and y.dtype == torch.int64
    torch.testing.assert_close(x, torch.tensor(images.reshape(len(images), -1) / 255, dtype=torch.float32))
    assert y.tolist() == labels.tolist()
    binary = datasets.fashion_mnist(split, root=root, binarize=True)
    assert torch.equal(binary, (x >= 0.5).float())


def test_the_environment_variable_names_the_folder(folder, monkeypatch):
    root, arrays = folder
    monkeypatch.setenv("PPGEN_FASHION_MNIST", str(root))
    assert datasets.fashion_mnist("test").shape == (10, 784)


def test_missing_files_say_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("PPGEN_FASHION_MNIST", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist.*make data"):
        datasets.fashion_mnist()
    with pytest.raises(ValueError, match="split must be"):
        datasets.fashion_mnist("valid")


def test_a_label_file_that_does_not_match_the_images_is_refused(folder):
    root, _ = folder
    write_idx(root / FILES["test"][1], np.zeros(9))
    with pytest.raises(ValueError, match="expected one label per image"):
        datasets.fashion_mnist("test", root=root)


def test_the_cli_fits_on_fashion_mnist(folder, monkeypatch, tmp_path):
    root, _ = folder
    monkeypatch.setenv("PPGEN_FASHION_MNIST", str(root))
    run = tmp_path / "run"
    assert main(["fit", "--data", "fashion-mnist", "--epochs", "1", "--eval-k", "2", "--z-dim", "2",
                 "--hidden", "8", "--out", str(run), "--no-progress"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["n_train"] == 30 and metrics["n_test"] == 10 and metrics["comparable"] is True
