"""Quantization: affine quantize/dequantize math (:mod:`.affine`) and whole-model int8
(:mod:`.model`, imported lazily because it pulls in torchao and torch.export)."""

from __future__ import annotations

from typing import Any

from inference_scale.techniques.quantize.affine import (
    QParams,
    choose_qparams,
    dequantize,
    fake_quantize,
    quant_range,
    quantize,
)

__all__ = [
    "DynamicInt8",
    "QParams",
    "QuantizationError",
    "QuantizationReport",
    "QuantizedModel",
    "StaticInt8",
    "StaticInt8FX",
    "StaticShapeError",
    "choose_qparams",
    "dequantize",
    "fake_quantize",
    "quant_range",
    "quantize",
    "quantize_model",
]

_MODEL_NAMES = {"DynamicInt8", "QuantizationError", "QuantizationReport", "QuantizedModel", "StaticInt8",
                "StaticInt8FX", "StaticShapeError", "quantize_model"}  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _MODEL_NAMES:
        from inference_scale.techniques.quantize import model

        return getattr(model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
