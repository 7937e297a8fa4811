"""The on-disk loaders on small files the tests write themselves: CIFAR-10 in its real
python format (read by torchvision's own loader), a Hugging Face dataset saved with
``save_to_disk``, and a tiny ViT teacher saved with ``save_pretrained``. Nothing is downloaded."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from inference_scale.subjects.data import load_dataset
from inference_scale.techniques.distill import HFTeacher, teacher_logits


def _write_cifar(root: Path, per_batch: int = 20) -> np.ndarray:
    """Files laid out as cifar-10-python.tar.gz unpacks: pickled dicts with 'data' (N x 3072
    uint8, channel-major rows) and 'labels', plus batches.meta. Written by us, for us.
    Returns the first batch's raw rows."""
    first = None
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        labels = [i % 10 for i in range(per_batch)]
        data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        first = data if first is None else first
        with open(folder / name, "wb") as fh:
            pickle.dump({"data": data, "labels": labels, "batch_label": name}, fh)
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, fh)
    assert first is not None
    return first


def test_cifar10_reads_the_real_format(tmp_path: Path) -> None:
    raw = _write_cifar(tmp_path)
    split = load_dataset("cifar10", root=tmp_path, verify=False)
    assert split.x_train.shape == (100, 3, 32, 32) and split.x_test.shape == (20, 3, 32, 32)
    assert torch.bincount(split.y_train).tolist() == [10] * 10
    # a pixel survives the HWC transpose: row 0 of batch 1, channel 1 (green), pixel (0, 1)
    expected = raw[0, 1024 + 1] / 255.0
    assert split.x_train[0, 1, 0, 1].item() * split.std + split.mean == pytest.approx(expected, abs=1e-5)
    half = load_dataset("cifar10", root=tmp_path, verify=False, train_fraction=0.5)
    assert torch.bincount(half.y_train).tolist() == [5] * 10


def test_cifar10_checks_its_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"CIFAR-10 is not under .*cifar-10-batches-py"):
        load_dataset("cifar10", root=tmp_path)
    _write_cifar(tmp_path)
    with pytest.raises(FileNotFoundError, match="corrupted"):  # md5 of the published batches
        load_dataset("cifar10", root=tmp_path, verify=True)
    with pytest.raises(ValueError, match="pass root="):
        load_dataset("cifar10")


def _hf_dataset(root: Path) -> None:
    from datasets import Dataset, DatasetDict
    from PIL import Image

    rng = np.random.default_rng(1)

    def part(n: int) -> Dataset:
        images = [Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)) for _ in range(n)]
        return Dataset.from_dict({"img": images, "label": [i % 4 for i in range(n)]})

    DatasetDict({"train": part(16), "test": part(8)}).save_to_disk(str(root))


def test_hugging_face_dataset_from_disk(tmp_path: Path) -> None:
    _hf_dataset(tmp_path / "hf")
    split = load_dataset("hf", root=tmp_path / "hf")
    assert split.x_train.shape == (16, 3, 12, 12) and split.x_test.shape == (8, 3, 12, 12)
    assert split.num_classes == 4
    with pytest.raises(ValueError, match="lacks"):
        load_dataset("hf", root=tmp_path / "hf", image_column="image")


def test_hugging_face_teacher_from_a_local_folder(tmp_path: Path) -> None:
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    config = ViTConfig(
        image_size=32, patch_size=8, num_channels=3, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, num_labels=10,
    )  # fmt: skip
    torch.manual_seed(0)
    ViTForImageClassification(config).save_pretrained(tmp_path / "vit")
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(tmp_path / "vit")
    data = load_dataset("digits", seed=0)
    teacher = HFTeacher(tmp_path / "vit", data=data)
    logits = teacher_logits(teacher, data.x_train[:20], cache=tmp_path / "cache.pt", progress=False)
    assert logits.shape == (20, 10) and torch.isfinite(logits).all()
    with pytest.raises(FileNotFoundError, match="no Hugging Face model folder"):
        HFTeacher(tmp_path / "missing", data=data)
