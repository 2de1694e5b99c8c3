"""The data sets ppgen ships or generates; nothing is ever downloaded.

- :func:`digits`: scikit-learn's handwritten digits, 1,797 images of 8x8 pixels shipped inside the
  scikit-learn wheel, split once into 1,437 training and 360 test images.
- :func:`moons`: two interleaving half circles in the plane, generated with a seed.
- :func:`ring`: the ring of 8 Gaussians of the mode-collapse benchmarks, generated with a seed; :func:`ring_modes`
  gives its centres and spread, which the sample metric of modes captured needs.
- :func:`fashion_mnist`: Zalando's Fashion-MNIST, 70,000 images of 28x28 pixels, read from the four
  gzipped IDX files that Debian's ``dataset-fashion-mnist`` package installs (never downloaded).
- :func:`load_idx` and :func:`idx_images`: the user's own MNIST-style IDX files (plain or gzipped),
  read from a local path.
"""

from __future__ import annotations

import functools
import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ppgen.utils.budget import check_sample_budget
from ppgen.utils.checks import check_non_negative_float, check_positive_float, check_positive_int, check_seed

#: IDX type code -> big-endian NumPy dtype of the stored values.
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

_GZIP_MAGIC = b"\x1f\x8b"
_SPLITS = ("train", "test")

#: Where Debian's ``dataset-fashion-mnist`` package puts the files, and the variable that overrides it.
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_ENV = "PPGEN_FASHION_MNIST"
_FASHION_MNIST_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                        "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


def digits(split: str = "train", binarize: bool = False,
           return_labels: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """scikit-learn's 8x8 handwritten digits, scaled to [0, 1].

    The split is fixed: ``train_test_split(test_size=0.2, random_state=0, stratify=labels)``, so
    every call on every machine gives the same 1,437 training and 360 test images.

    Arguments:
        split: ``"train"`` or ``"test"``.
        binarize: Whether to set pixels >= 0.5 to 1.0 and the others to 0.0.
        return_labels: Whether to return the digit of each image as well.

    Returns:
        The images as a float32 ``Tensor[N, 64]`` (pixel values divided by 16), and with
        ``return_labels`` also the digits as a ``LongTensor[N]``. The tensors are new on every call.

    Raises:
        ValueError: If ``split`` is neither ``"train"`` nor ``"test"``.
    """
    if split not in _SPLITS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    x, y = _digits()[split]
    images = torch.tensor(x)
    if binarize:
        images = _binarize(images)
    return (images, torch.tensor(y)) if return_labels else images


@functools.lru_cache(maxsize=1)
def _digits() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Loads and splits the digits once; callers copy the arrays."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x, y = (data.data / 16).astype(np.float32), data.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    return {"train": (x_train, y_train), "test": (x_test, y_test)}


def moons(n: int = 1000, noise: float = 0.1, seed: int = 0,
          return_labels: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """Two interleaving half circles, from ``sklearn.datasets.make_moons``.

    Arguments:
        n: The number of points.
        noise: The standard deviation of the Gaussian noise added to each point.
        seed: The seed of the draw; the same seed gives the same points.
        return_labels: Whether to return which moon (0 or 1) each point belongs to.

    Returns:
        The points as a float32 ``Tensor[n, 2]``, and with ``return_labels`` also the moons as a
        ``LongTensor[n]``.

    Raises:
        TypeError: If ``n`` or ``seed`` is not an int, or ``noise`` not a real number.
        ValueError: If ``n`` is not positive or past the sample budget
            (:data:`ppgen.utils.budget.BUDGET`), ``noise`` is negative or not finite, or ``seed`` is outside
            [0, 2**32).
    """
    from sklearn.datasets import make_moons

    n = check_positive_int(n, "n")
    check_sample_budget(n, (2,))  # as fit.sample's: a request for terabytes is refused, not attempted
    noise = check_non_negative_float(noise, "noise")
    seed = check_seed(seed)
    x, y = make_moons(n_samples=n, noise=noise, random_state=seed)
    points = torch.from_numpy(x.astype(np.float32))
    return (points, torch.from_numpy(y.astype(np.int64))) if return_labels else points


def fashion_mnist(split: str = "train", binarize: bool = False, root: str | os.PathLike | None = None,
                  return_labels: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """Fashion-MNIST: 60,000 training and 10,000 test images of clothes, 28x28 grey pixels scaled to [0, 1].

    The four gzipped IDX files (``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
    ``t10k-images-idx3-ubyte.gz``, ``t10k-labels-idx1-ubyte.gz``) are read from the first of: ``root``,
    the folder named by the environment variable ``PPGEN_FASHION_MNIST``, and
    ``/usr/share/datasets/fashion-mnist/``, where ``apt-get install dataset-fashion-mnist`` puts them
    (``make data`` runs that). Nothing is downloaded.

    Arguments:
        split: ``"train"`` or ``"test"``.
        binarize: Whether to set pixels >= 0.5 to 1.0 and the others to 0.0.
        root: The folder holding the four files.
        return_labels: Whether to return the class (0..9) of each image as well.

    Returns:
        The images as a float32 ``Tensor[N, 784]`` (byte values divided by 255), and with ``return_labels``
        also the classes as a ``LongTensor[N]``.

    Raises:
        ValueError: If ``split`` is neither ``"train"`` nor ``"test"``, or the files are not valid IDX files
            of as many images as labels.
        FileNotFoundError: If the files are in none of the three places; the message says how to get them.

    References:
        Fashion-MNIST: a Novel Image Dataset for Benchmarking Machine Learning Algorithms (Xiao, Rasul and
        Vollgraf, 2017). https://arxiv.org/abs/1708.07747
    """
    if split not in _SPLITS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    folder = _fashion_mnist_folder(root)
    images_file, labels_file = (folder / name for name in _FASHION_MNIST_FILES[split])
    images, labels = idx_images(images_file, binarize=binarize), load_idx(labels_file)
    if labels.dim() != 1 or len(labels) != len(images):
        raise ValueError(f"{labels_file} holds labels of shape {list(labels.shape)}, but {images_file} holds "
                         f"{len(images)} images: expected one label per image")
    return (images, labels.long()) if return_labels else images


def _fashion_mnist_folder(root: str | os.PathLike | None) -> Path:
    """``root`` if given, else ``$PPGEN_FASHION_MNIST`` if set, else the Debian folder; an error if it lacks a file."""
    if root is not None:
        where, folder = "root", Path(root)
    elif os.environ.get(FASHION_MNIST_ENV):
        where, folder = f"${FASHION_MNIST_ENV}", Path(os.environ[FASHION_MNIST_ENV])
    else:
        where, folder = "the Debian location", FASHION_MNIST_DIR
    names = [name for pair in _FASHION_MNIST_FILES.values() for name in pair]
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"Fashion-MNIST: {where} {folder} lacks {', '.join(missing)}. Install Debian's package "
            f"(`apt-get install dataset-fashion-mnist`, or `make data`), which puts the four gzipped IDX files "
            f"in {FASHION_MNIST_DIR}, or point root= or ${FASHION_MNIST_ENV} at a folder that holds them")
    return folder


def load_idx(path: str | os.PathLike) -> Tensor:
    """Reads an MNIST-style IDX file, plain or gzipped (recognised by its content, not its name).

    The format: two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
    0x0D float32, 0x0E float64), the number of dimensions, one big-endian uint32 size per
    dimension, then the values, big-endian and in row-major order.

    Arguments:
        path: The file's local path.

    Returns:
        A tensor with the stored shape and the stored type (uint8 stays ``torch.uint8``).

    Raises:
        FileNotFoundError: If there is no file at ``path``.
        ValueError: If the file is not a valid IDX file: a bad magic number, an unknown type code,
            a length that does not match the header, or a broken gzip stream.
    """
    raw = Path(path).read_bytes()
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as error:
            raise ValueError(f"{path}: broken gzip stream ({error})") from error
    if len(raw) < 4 or raw[:2] != b"\x00\x00":
        raise ValueError(f"{path} is not an IDX file: it must start with two zero bytes, a type code and "
                         f"the number of dimensions, got {raw[:4]!r}")
    code, ndim = raw[2], raw[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"{c:#04x}" for c in IDX_DTYPES)
        raise ValueError(f"{path} has unknown IDX type code {code:#04x} (known: {known})")
    offset = 4 + 4 * ndim
    if len(raw) < offset:
        raise ValueError(f"{path} is truncated: its header announces {ndim} dimensions but the file "
                         f"holds {len(raw)} bytes")
    shape = tuple(int(size) for size in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    dtype = np.dtype(IDX_DTYPES[code])
    expected = offset + math.prod(shape) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(f"{path} holds {len(raw)} bytes but its header (shape {list(shape)}, "
                         f"{dtype.name}) needs {expected}")
    values = np.frombuffer(raw, dtype, offset=offset).reshape(shape)
    return torch.from_numpy(values.astype(dtype.newbyteorder("=")))  # a native, writable copy


def idx_images(path: str | os.PathLike, binarize: bool = False) -> Tensor:
    """Reads an IDX image file as one flattened image per row.

    Arguments:
        path: The file's local path (plain or gzipped).
        binarize: Whether to set values >= 0.5 (after scaling) to 1.0 and the others to 0.0.

    Returns:
        A float32 ``Tensor[N, D]``, D the product of the sizes after the first. uint8 images are
        divided by 255 into [0, 1]; other types are converted to float32 as stored.

    Raises:
        ValueError: If the file is not a valid IDX file, has a single dimension (a label file:
            read it with :func:`load_idx`), or holds NaN or infinite values.
    """
    x = load_idx(path)
    if x.dim() < 2:
        raise ValueError(f"{path} has shape {list(x.shape)}, not [N, ...] images: a 1-D IDX file holds "
                         f"labels, read it with ppgen.datasets.load_idx")
    images = x.flatten(1).to(torch.float32)
    if x.dtype == torch.uint8:
        images /= 255
    bad = int((~torch.isfinite(images)).sum())
    if bad:  # before binarising, which would turn NaN into 0 without a word
        raise ValueError(f"{path} has {bad} non-finite values (NaN or infinity) out of {images.numel()}")
    return _binarize(images) if binarize else images


def _binarize(x: Tensor) -> Tensor:
    """Values >= 0.5 become 1.0, the others 0.0, in the dtype of ``x``."""
    return (x >= 0.5).to(x.dtype)


def ring(n: int = 1000, modes: int = 8, radius: float = 2.0, std: float = 0.02, seed: int = 0,
         return_labels: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """The ring of Gaussians of the mode-collapse benchmarks: M modes N(c_j, sigma^2 I) of equal weight, their centres
    c_j = r (cos 2 pi j / M, sin 2 pi j / M) evenly spaced on a circle, as unrolled GANs (Metz et al., 2017) and VEEGAN
    (Srivastava et al., 2017) use it: 8 modes, radius 2, standard deviation 0.02. :func:`ring_modes` gives the centres
    and sigma that ``fit.evaluate(test, modes=...)`` scores draws against.

    Arguments:
        n: The number of points.
        modes: M, the number of modes.
        radius: r, the radius of the circle of centres.
        std: sigma, the standard deviation of each mode in each coordinate.
        seed: The seed of the draw; the same seed gives the same points.
        return_labels: Whether to return the mode j of each point as well.

    Returns:
        The points as a float32 ``Tensor[n, 2]``, and with ``return_labels`` also the modes as a ``LongTensor[n]``.

    Raises:
        TypeError, ValueError: ``n`` or ``modes`` not a positive int (``n`` within the sample budget), ``radius`` or
            ``std`` not a positive number, or ``seed`` not an int in [0, 2**32).
    """
    n, (centres, std) = check_positive_int(n, "n"), ring_modes(modes, radius, std)
    check_sample_budget(n, (2,))
    rng = np.random.default_rng(check_seed(seed))
    labels = rng.integers(len(centres), size=n)
    points = centres.numpy()[labels] + std * rng.standard_normal((n, 2))
    points = torch.from_numpy(points.astype(np.float32))
    return (points, torch.from_numpy(labels.astype(np.int64))) if return_labels else points


def ring_modes(modes: int = 8, radius: float = 2.0, std: float = 0.02) -> tuple[Tensor, float]:
    """The modes of :func:`ring` with the same arguments: their centres, a float64 ``Tensor[modes, 2]``, and their
    standard deviation, the pair ``fit.evaluate(test, modes=datasets.ring_modes())`` takes (see
    :mod:`ppgen.queries.modes`)."""
    modes = check_positive_int(modes, "modes")
    radius, std = check_positive_float(radius, "radius"), check_positive_float(std, "std")
    angles = 2 * math.pi * torch.arange(modes, dtype=torch.float64) / modes
    return radius * torch.stack([angles.cos(), angles.sin()], 1), std
