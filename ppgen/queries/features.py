"""A small classifier of a data set's own labels, whose penultimate layer is the feature map f of the Fréchet distance
(:mod:`ppgen.queries.frechet`): ppgen's stand-in for FID's Inception network, trained here, never downloaded.

An MLP x -> 256 -> :data:`FEATURES` -> C classes with ReLU units, on inputs standardised by the training set's mean and
standard deviation per coordinate (at least a tenth of the mean standard deviation); f(x) is the :data:`FEATURES`
activations before the last layer, which the training makes the coordinates that tell the classes apart. It trains in
seconds on the CPU (digits' 1,437 images) to a minute or two (Fashion-MNIST's 60,000), seeded, without touching the
caller's RNG; a classifier trained once in a process is kept and given again for the same data and settings.
:meth:`FeatureClassifier.save` writes it to a file the user names and :func:`load_feature_classifier` reads it back, so
that every evaluation of a project uses one feature map.

Example:
    >>> import ppgen.queries.features as F
    >>> from ppgen import datasets
    >>> classifier = F.feature_classifier(*datasets.digits(return_labels=True))
    >>> classifier.accuracy(*datasets.digits(split="test", return_labels=True)) > 0.93
    True
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import torch
from torch import Tensor, nn

from ppgen.run.checkpoint import atomic_save
from ppgen.utils.checks import check_positive_int, check_seed
from ppgen.utils.paths import check_output_file, naming_path

#: the dimension of the feature space, the penultimate layer's width.
FEATURES = 64
#: the width of the first hidden layer.
HIDDEN = 256
#: the format tag of a saved classifier.
FORMAT = "ppgen-feature-classifier-1"

_TRAINED: dict[tuple, FeatureClassifier] = {}


class FeatureClassifier(nn.Module):
    """p(class | x) by an MLP on standardised x; :meth:`features` gives its penultimate layer.

    Arguments:
        in_features: the numbers in one point x (a flattened image's pixels).
        classes: C, the number of labels.
    """

    def __init__(self, in_features: int, classes: int) -> None:
        super().__init__()
        self.in_features, self.classes = in_features, classes
        self.register_buffer("shift", torch.zeros(in_features))
        self.register_buffer("scale", torch.ones(in_features))
        self.body = nn.Sequential(nn.Linear(in_features, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, FEATURES), nn.ReLU())
        self.head = nn.Linear(FEATURES, classes)

    def forward(self, x: Tensor) -> Tensor:
        """The logits of the C classes for each row of x, Tensor[n, C]."""
        return self.head(self.body((x.reshape(len(x), -1) - self.shift) / self.scale))

    def check_input(self, size: int, name: str) -> None:
        """A ``ValueError`` naming ``name`` unless points of ``size`` numbers are what this classifier takes."""
        if size != self.in_features:
            raise ValueError(f"{name}: the feature classifier takes points of {self.in_features} numbers, but these "
                             f"have {size}: train one on data of this shape, feature_classifier(x, labels)")

    @torch.no_grad()
    def features(self, x: Tensor) -> Tensor:
        """f(x), the penultimate layer's activations for each row of x, float64 Tensor[n, :data:`FEATURES`] on x's
        device."""
        self.eval()
        flat = x.reshape(len(x), -1).to(self.shift.device, self.shift.dtype)
        self.check_input(flat.shape[1], "x")
        return self.body((flat - self.shift) / self.scale).to(x.device, torch.float64)

    @torch.no_grad()
    def accuracy(self, x: Tensor, labels: Tensor) -> float:
        """The fraction of rows of x whose most probable class is their label."""
        self.eval()
        flat = torch.as_tensor(x).reshape(len(x), -1).to(self.shift.device, self.shift.dtype)
        self.check_input(flat.shape[1], "x")
        return (self(flat).argmax(1).cpu() == torch.as_tensor(labels).cpu()).double().mean().item()

    def save(self, path: str | os.PathLike) -> None:
        """Write the classifier to ``path`` (atomically: a crash mid-write leaves any earlier file intact); the
        errors name ``path``."""
        path = check_output_file(path, "path", example="features.pt")
        state = {"format": FORMAT, "in_features": self.in_features, "classes": self.classes,
                 "state_dict": {name: t.detach().cpu() for name, t in self.state_dict().items()}}
        with naming_path(path, "path"):
            atomic_save(state, path)


def load_feature_classifier(path: str | os.PathLike) -> FeatureClassifier:
    """Read a classifier written by :meth:`FeatureClassifier.save` (``torch.load(weights_only=True)``: nothing in the
    file is run); a ``ValueError`` where the file is not one."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (FileNotFoundError, IsADirectoryError):
        raise
    except Exception as error:  # noqa: BLE001 - whatever bytes are there, they are not a classifier: say so
        raise ValueError(f"{os.fspath(path)} is not a readable feature classifier (torch.load raised "
                         f"{type(error).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{os.fspath(path)} is not a ppgen feature classifier (no '{FORMAT}' format tag)")
    _check_saved(state, os.fspath(path))
    classifier = FeatureClassifier(state["in_features"], state["classes"])
    classifier.load_state_dict(state["state_dict"])
    return classifier.eval()


def _check_saved(state: dict[str, Any], where: str) -> None:
    """A ``ValueError`` naming the file and the field unless ``state`` is what :meth:`FeatureClassifier.save` writes:
    positive ints ``in_features`` and ``classes`` (two or more), and exactly the classifier's tensors of their shapes,
    finite, the scale positive; checked before a classifier of those sizes is built."""

    def bad(field: str, expected: str) -> ValueError:
        return ValueError(f"{where}: field {field!r} of the feature classifier is damaged: expected {expected}")

    keys = {"format", "in_features", "classes", "state_dict"}
    if set(state) != keys:
        raise bad("keys", f"exactly {sorted(keys)}, got {sorted(map(str, state))}")
    d, c = state["in_features"], state["classes"]
    if type(d) is not int or d < 1:
        raise bad("in_features", "a positive int")
    if type(c) is not int or c < 2:
        raise bad("classes", "an int of at least 2")
    shapes = {"shift": (d,), "scale": (d,), "body.0.weight": (HIDDEN, d), "body.0.bias": (HIDDEN,),
              "body.2.weight": (FEATURES, HIDDEN), "body.2.bias": (FEATURES,), "head.weight": (c, FEATURES),
              "head.bias": (c,)}
    tensors = state["state_dict"]
    if not isinstance(tensors, dict) or set(tensors) != set(shapes):
        raise bad("state_dict", f"the tensors {sorted(shapes)}")
    for name, shape in shapes.items():
        value = tensors[name]
        if not (isinstance(value, Tensor) and value.is_floating_point() and tuple(value.shape) == shape):
            raise bad(f"state_dict.{name}", f"a floating-point tensor of shape {list(shape)}")
        if not bool(torch.isfinite(value).all()) or name == "scale" and not bool((value > 0).all()):
            raise bad(f"state_dict.{name}", "finite values" + (", all positive" if name == "scale" else ""))


def feature_classifier(x: Any, labels: Any, *, epochs: int = 20, seed: int = 0) -> FeatureClassifier:
    """The classifier of ``labels`` given ``x``, trained by Adam (learning rate 1e-3, batches of 128) for ``epochs``
    passes on the CPU from a seeded start, or the one already trained in this process on the same data and settings.

    Arguments:
        x: the training points, [N, ...] (images flattened or not).
        labels: each point's class, integers 0..C-1, [N].
        epochs: passes over the data.
        seed: the seed of the initial weights and the batches; the caller's RNG is left as it was.

    Raises:
        TypeError, ValueError: x not a tensor or array of finite points, labels not one integer in [0, C) per point
            with at least two classes, or ``epochs`` or ``seed`` not a positive int (seed: an int in [0, 2**32)).
    """
    epochs, seed = check_positive_int(epochs, "epochs"), check_seed(seed)
    x, labels = _checked(x, labels)
    key = (hashlib.sha256(x.numpy().tobytes()).hexdigest(), hashlib.sha256(labels.numpy().tobytes()).hexdigest(),
           tuple(x.shape), epochs, seed)
    if key not in _TRAINED:
        _TRAINED[key] = _train(x, labels, epochs, seed)
    return _TRAINED[key]


def _checked(x: Any, labels: Any) -> tuple[Tensor, Tensor]:
    if not hasattr(x, "shape") or not hasattr(labels, "shape"):
        raise TypeError(f"x and labels must be Tensors or arrays, got {type(x).__name__} and {type(labels).__name__}")
    x, labels = torch.as_tensor(x), torch.as_tensor(labels)
    if x.dim() < 2 or not bool(torch.isfinite(x.double()).all()):
        raise ValueError(f"x must hold finite points [N, ...], got shape {list(x.shape)} with NaN or infinite values"
                         if x.dim() >= 2 else f"x must hold points [N, ...], got shape {list(x.shape)}")
    if labels.shape != (len(x),) or labels.is_floating_point() or labels.dtype == torch.bool:
        raise ValueError(f"labels must be one integer class per point, shape [{len(x)}], got {labels.dtype} of shape "
                         f"{list(labels.shape)}")
    if int(labels.min()) < 0 or len(labels.unique()) < 2:
        raise ValueError(f"labels must be classes 0..C-1 with at least two of them, got the values "
                         f"{labels.unique().tolist()[:10]}")
    return x.reshape(len(x), -1).float().cpu().contiguous(), labels.long().cpu().contiguous()


def _train(x: Tensor, labels: Tensor, epochs: int, seed: int) -> FeatureClassifier:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        classifier = FeatureClassifier(x.shape[1], int(labels.max()) + 1)
        classifier.shift.copy_(x.mean(0))
        spread = x.std(0)
        # a pixel that never varies in training (a border) is scaled by a tenth of a typical pixel's spread, not blown
        # up: a draw that lights it must not swamp the features
        classifier.scale.copy_(spread.clamp(min=0.1 * spread.mean().item() or 1.0))
        optimiser = torch.optim.Adam(classifier.parameters(), lr=1e-3)
        order = torch.Generator().manual_seed(seed)
        for _ in range(epochs):
            for rows in torch.randperm(len(x), generator=order).split(128):
                optimiser.zero_grad()
                nn.functional.cross_entropy(classifier(x[rows]), labels[rows]).backward()
                optimiser.step()
    return classifier.eval()
