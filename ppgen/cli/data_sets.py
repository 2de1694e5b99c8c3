"""The data sets of the ``ppgen`` commands: ``--data``'s train and test sets, as a run's settings record them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ppgen.cli.common import data_kind

if TYPE_CHECKING:
    import torch

MOONS_NOISE = 0.1
MOONS_TRAIN, MOONS_TEST = 1000, 500
IDX_TEST_FRACTION = 0.2
#: the levels L of a discretised-logistic likelihood: an image's pixel values in [0, 1] become 0, ..., L - 1.
LEVELS = 256


@dataclass(frozen=True)
class Data:
    """A train/test split, with test labels where the data set has them."""

    train: torch.Tensor
    test: torch.Tensor
    test_labels: torch.Tensor | None
    is_image: bool


def levels_of(likelihood: str | None) -> int | None:
    """The levels an image's pixels are given as for ``likelihood``: :data:`LEVELS` for a discretised logistic,
    which models integer levels (``None``, values in [0, 1], for every other)."""
    return LEVELS if likelihood == "discretised_logistic" else None


def load_data(spec: str, *, binarize: bool | None, seed: int, levels: int | None = None) -> Data:
    """Builds the train and test sets named by ``spec`` (``digits``, ``moons``, ``fashion-mnist`` or ``idx:PATH``).

    Arguments:
        spec: The data set, as given to ``--data`` (an ``idx:`` path should be absolute).
        binarize: Whether to binarize image data; ignored for ``moons``.
        seed: The run's seed; ``moons`` draws its train set with it and its test set with the next seed
            (``seed + 1`` modulo 2**32).
        levels: L, to give image data as integer levels 0, ..., L - 1, round(x (L - 1)) of its values x in [0, 1]
            (after binarizing, where asked); ``None`` keeps them in [0, 1].
    """
    data = _load_data(spec, binarize=binarize, seed=seed)
    if levels is None or not data.is_image:
        return data
    return Data((data.train * (levels - 1)).round(), (data.test * (levels - 1)).round(), data.test_labels, True)


def run_data(config: dict[str, Any]) -> Data:
    """The train and test sets of a run, as its settings (:func:`run_settings`) record them."""
    return load_data(config["data"], binarize=config["binarize"], seed=config["seed"], levels=config.get("levels"))


def _load_data(spec: str, *, binarize: bool | None, seed: int) -> Data:
    """:func:`load_data`'s sets, the images' values in [0, 1]."""
    from ppgen import datasets
    from ppgen.utils.checks import SEED_LIMIT

    kind = data_kind(spec)
    if kind == "digits":
        train = datasets.digits(split="train", binarize=bool(binarize))
        test, labels = datasets.digits(split="test", binarize=bool(binarize), return_labels=True)
        return Data(train, test, labels, is_image=True)
    if kind == "moons":
        train = datasets.moons(n=MOONS_TRAIN, noise=MOONS_NOISE, seed=seed)
        test_seed = (seed + 1) % SEED_LIMIT
        test, labels = datasets.moons(n=MOONS_TEST, noise=MOONS_NOISE, seed=test_seed, return_labels=True)
        return Data(train, test, labels, is_image=False)
    if kind == "fashion-mnist":
        train = datasets.fashion_mnist(split="train", binarize=bool(binarize))
        test, labels = datasets.fashion_mnist(split="test", binarize=bool(binarize), return_labels=True)
        return Data(train, test, labels, is_image=True)
    if kind == "idx":
        path = Path(spec[len("idx:"):]).expanduser()
        if path.is_dir():
            raise IsADirectoryError(f"--data idx:{path} is a folder: give the IDX file of images in it, e.g. "
                                    f"idx:{path / 'train-images-idx3-ubyte.gz'}")
        if not path.is_file():
            raise FileNotFoundError(f"IDX file {path} not found")
        x = datasets.idx_images(path, binarize=bool(binarize))
        n_train = round(len(x) * (1 - IDX_TEST_FRACTION))
        if n_train < 1 or n_train >= len(x):
            raise ValueError(f"{path} holds {len(x)} images: too few to hold out 20% as a test set")
        return Data(x[:n_train], x[n_train:], None, is_image=True)
    raise ValueError(f"unknown data set {spec!r}: use digits, moons, fashion-mnist or idx:PATH")
