"""inference-scale: measure what makes PyTorch inference cheaper on your hardware.

The names below are imported on first use (PEP 562): importing the package, as pytest does
for its plugin in every session of a repo that installs it, costs no torch import."""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "InvalidOptionError": "errors", "MacCountError": "errors", "UnknownModelError": "errors",
    "UnknownWeightsError": "errors", "WeightsNotFoundError": "errors",
    "ModelInfo": "subjects.models", "get_model": "subjects.models", "list_models": "subjects.models",
    "model_info": "subjects.models", "pick_architectures": "subjects.models",
    "BenchResult": "api", "bench": "api", "Plan": "measure.plan", "make_plan": "measure.plan",
    "BenchmarkRecord": "measure.record", "validate_extra_info": "measure.record",
    "SizeReport": "sizing", "count_macs": "sizing", "count_params": "sizing", "serialized_bytes": "sizing",
    "size_report": "sizing",
    "serve": "serving",
    "Context": "states", "Prepared": "states", "State": "states", "get_state": "states", "list_states": "states",
}  # fmt: skip

__all__ = sorted([*_LAZY, "__version__"])


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
