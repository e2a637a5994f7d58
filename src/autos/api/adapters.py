"""What a user has (a DataLoader, an ``(x, y)`` pair, a ``(train, test)`` pair of either) as an ``ImageData``.

Every method reads its data through ``autos.training.batches``: NCHW image tensors ``train_x`` / ``test_x`` that
``Normalizer`` maps to the model's inputs with ``(x - mean * 255) / (std * 255)``. The pipeline stores uint8 images
and the dataset's statistics. A user's images come in two kinds, and each gets the statistics that make
``Normalizer`` do what the user's own pipeline does:

- **float** images are taken as the model's inputs, already normalised the way the user trains: stored as float32
  with ``mean = 0`` and ``std = 1/255``, so that ``Normalizer`` is exactly the identity (``float32(1/255) * 255`` is
  exactly 1, and ``x - 0`` is ``x``);
- **uint8** images are mapped to [0, 1] (``mean = 0``, ``std = 1``: ``x / 255``), as torchvision's ``ToTensor`` does.
  Other statistics: give ``ImageTensors`` your own ``mean`` / ``std`` (in [0, 1] units, as torchvision writes them).

Methods that augment (the AutoS g0 pass, the training loop of the methods that train) pad crops with zeros, i.e. with
the mean colour for float images (black for uint8), and flip horizontally.

A DataLoader is read once, into memory: give it the subset you want the method to see (a few hundred images are
enough for the saliency methods; AutoS's g0 pass reads all of it unless its features config caps the batches).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor

from autos.training.batches import ImageData

FLOAT_MEAN, FLOAT_STD = 0.0, 1.0 / 255  # Normalizer is the identity on float images
UINT8_MEAN, UINT8_STD = 0.0, 1.0  # Normalizer maps uint8 images to [0, 1]

_IMAGE_DATA_FIELDS = ("train_x", "train_y", "test_x", "test_y", "mean", "std")


@dataclass
class ImageTensors:
    """An ``ImageData`` over in-memory tensors: NCHW images (uint8 or float32) and int64 labels."""

    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    mean: tuple[float, ...]
    std: tuple[float, ...]


def is_image_data(data: object) -> bool:
    """Whether ``data`` already provides what ``ImageData`` asks for (e.g. ``autos.data.PreparedData``)."""
    return all(hasattr(data, name) for name in _IMAGE_DATA_FIELDS)


def _tensor(value: Any, what: str) -> Tensor:
    if isinstance(value, Tensor):
        return value.detach().cpu()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    raise TypeError(f"{what}: expected a torch.Tensor or numpy array, got {type(value).__name__}")


def _is_pair_of_arrays(data: object) -> bool:
    return (isinstance(data, (tuple, list)) and len(data) == 2
            and all(isinstance(v, (Tensor, np.ndarray)) for v in data))


def _read_batches(loader: Iterable[Any]) -> tuple[Tensor, Tensor]:
    """Every (x, y) batch of ``loader`` concatenated (x, y as the first two items of each batch)."""
    xs, ys = [], []
    for i, batch in enumerate(loader):
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise TypeError(f"data: batch {i} is a {type(batch).__name__}; expected (images, labels) batches")
        xs.append(_tensor(batch[0], f"data: batch {i} images"))
        ys.append(_tensor(batch[1], f"data: batch {i} labels"))
    if not xs:
        raise ValueError("data: the loader yielded no batch")
    return torch.cat(xs), torch.cat(ys)


def _split(data: object, what: str) -> tuple[Tensor, Tensor]:
    """(images, labels) of one split given as an ``(x, y)`` pair or an iterable of batches, checked."""
    if _is_pair_of_arrays(data):
        pair = cast(Sequence[Any], data)
        x, y = _tensor(pair[0], f"{what} images"), _tensor(pair[1], f"{what} labels")
    elif isinstance(data, Iterable) and not isinstance(data, (Tensor, np.ndarray, str, bytes)):
        x, y = _read_batches(data)
    else:
        raise TypeError(f"{what}: expected a DataLoader of (images, labels) batches or an (images, labels) pair, "
                        f"got {type(data).__name__}")
    if x.dim() != 4:
        raise ValueError(f"{what}: images must be NCHW (4 dimensions), got shape {tuple(x.shape)}")
    if y.dim() != 1 or y.shape[0] != x.shape[0] or y.is_floating_point() or y.dtype == torch.bool:
        raise ValueError(f"{what}: labels must be {x.shape[0]} integer class indices, got {y.dtype} of shape "
                         f"{tuple(y.shape)}")
    if x.dtype != torch.uint8 and not x.is_floating_point():
        raise ValueError(f"{what}: images must be float (already normalised) or uint8, got {x.dtype}")
    return (x if x.dtype == torch.uint8 else x.float()), y.long()


def _statistics(x: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    channels = int(x.shape[1])
    mean, std = (UINT8_MEAN, UINT8_STD) if x.dtype == torch.uint8 else (FLOAT_MEAN, FLOAT_STD)
    return (mean,) * channels, (std,) * channels


def as_image_data(data: object) -> ImageData:
    """``data`` as an ``ImageData`` (module docstring for the conventions).

    Accepted: an ``ImageData`` (returned as is); ``(train, test)``, each a DataLoader or an ``(x, y)`` pair; or a
    single DataLoader / ``(x, y)`` pair, which then serves as both the training and the test split (only the methods
    that train read the test split, to report accuracy; pass ``(train, test)`` for a held-out one).
    """
    if is_image_data(data):
        return data  # type: ignore[return-value]
    if isinstance(data, (tuple, list)) and len(data) == 2 and not _is_pair_of_arrays(data):
        train, test = _split(data[0], "data[0] (train)"), _split(data[1], "data[1] (test)")
    else:
        train = _split(data, "data")
        test = train
    if train[0].dtype != test[0].dtype or train[0].shape[1:] != test[0].shape[1:]:
        raise ValueError(f"data: train and test images differ: {train[0].dtype} {tuple(train[0].shape[1:])} vs "
                         f"{test[0].dtype} {tuple(test[0].shape[1:])}")
    mean, std = _statistics(train[0])
    return ImageTensors(train[0], train[1], test[0], test[1], mean, std)


class NoData:
    """The data of a call that gave none: reading images raises a clear error naming the method, so a data-free
    method that still needs something from the data (SynFlow: the input shape) says what to pass."""

    def __init__(self, method: str) -> None:
        self._method = method

    def _missing(self) -> ValueError:
        return ValueError(f"method {self._method!r} reads the input shape or images from data: pass data=..., or "
                          "input_shape=(channels, height, width)")

    @property
    def train_x(self) -> Tensor:
        raise self._missing()

    @property
    def train_y(self) -> Tensor:
        raise self._missing()

    @property
    def test_x(self) -> Tensor:
        raise self._missing()

    @property
    def test_y(self) -> Tensor:
        raise self._missing()

    @property
    def mean(self) -> Sequence[float]:
        raise self._missing()

    @property
    def std(self) -> Sequence[float]:
        raise self._missing()


def shape_only_data(input_shape: Sequence[int]) -> ImageData:
    """No images, only their shape ``(C, H, W)``: for data-free methods that build an input of that shape."""
    if len(input_shape) != 3 or any(int(s) < 1 for s in input_shape):
        raise ValueError(f"input_shape must be (channels, height, width) of positive sizes, got {tuple(input_shape)}")
    c, h, w = (int(s) for s in input_shape)
    empty_x, empty_y = torch.zeros(0, c, h, w, dtype=torch.uint8), torch.zeros(0, dtype=torch.long)
    return ImageTensors(empty_x, empty_y, empty_x, empty_y, (UINT8_MEAN,) * c, (UINT8_STD,) * c)
