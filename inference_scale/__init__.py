"""inference-scale: measure what makes PyTorch inference cheaper on your hardware."""

from __future__ import annotations

from .errors import (
    InvalidOptionError,
    MacCountError,
    UnknownModelError,
    UnknownWeightsError,
    WeightsNotFoundError,
)
from .models import ModelInfo, get_model, list_models, model_info, pick_architectures
from .record import BenchmarkRecord, build_record, validate_extra_info
from .sizing import SizeReport, count_macs, count_params, serialized_bytes, size_report

__version__ = "0.1.0"

__all__ = [
    "BenchmarkRecord",
    "InvalidOptionError",
    "MacCountError",
    "ModelInfo",
    "SizeReport",
    "UnknownModelError",
    "UnknownWeightsError",
    "WeightsNotFoundError",
    "__version__",
    "build_record",
    "count_macs",
    "count_params",
    "get_model",
    "list_models",
    "model_info",
    "pick_architectures",
    "serialized_bytes",
    "size_report",
    "validate_extra_info",
]
