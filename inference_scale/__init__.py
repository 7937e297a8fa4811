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
from .record import BenchmarkRecord, validate_extra_info
from .sizing import SizeReport, count_macs, count_params, serialized_bytes, size_report
from .states import Context, Prepared, State, get_state, list_states

__version__ = "0.1.0"

__all__ = [
    "BenchmarkRecord",
    "Context",
    "InvalidOptionError",
    "MacCountError",
    "ModelInfo",
    "Prepared",
    "SizeReport",
    "State",
    "UnknownModelError",
    "UnknownWeightsError",
    "WeightsNotFoundError",
    "__version__",
    "count_macs",
    "count_params",
    "get_model",
    "get_state",
    "list_models",
    "list_states",
    "model_info",
    "pick_architectures",
    "serialized_bytes",
    "size_report",
    "validate_extra_info",
]
