"""Subjects of this repo's suites that the registry alone cannot give: LeNet trained on real
digits (so its records carry accuracy; :mod:`inference_scale.subjects.trained`) and a lone 1024x1024
Linear (where CSR pays off)."""

from __future__ import annotations

import torch
from torch import nn

from inference_scale.subjects.subject import Subject
from inference_scale.subjects.trained import ACCURACY_DATASET, digits_subject

__all__ = ["ACCURACY_DATASET", "lenet_subject", "linear_subject"]


def lenet_subject() -> Subject:
    """Trained LeNet; eval on the digits' test split, calibration on training digits."""
    return digits_subject("lenet")


def _linear() -> nn.Module:
    torch.manual_seed(0)
    return nn.Linear(1024, 1024).eval()


def linear_subject() -> Subject:
    """One 1024x1024 Linear with random weights (seed 0): CSR against dense."""
    return Subject(name="linear-1024", family="linear", kind="mlp", input_shape=(1024,), build=_linear)
