"""ONNX Runtime's dynamic int8, the quantization its documentation recommends for transformers
(``onnxruntime/quantization/README``: "dynamic quantization for transformer-based models"):
int8 weights, activation ranges computed per call, so no calibration data is needed."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from torch import nn

from inference_scale.states.base import Context, Prepared
from inference_scale.states.onnxrt import OrtState, export_onnx, ort_prepared
from inference_scale.states.peers import peer_step
from inference_scale.states.registry import register_state

__all__ = ["OrtInt8Dynamic"]


@register_state
@dataclass(frozen=True)
class OrtInt8Dynamic(OrtState):
    """Dynamic int8 through ONNX Runtime: ``quantize_dynamic`` of the dynamo export, int8
    weights per channel and uint8 activations quantized at run time (MatMul and Gemm become
    MatMulInteger/DynamicQuantizeLinear); no calibration."""

    pattern: ClassVar[str] = "ort-int8-dynamic"

    def apply(self, model: nn.Module, ctx: Context) -> Prepared:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        runtime = f"onnxruntime {self.version()}"
        with tempfile.TemporaryDirectory(prefix="is-ort-") as tmp:
            src, out = export_onnx(model, ctx, Path(tmp) / "fp32.onnx"), Path(tmp) / "model.onnx"
            with peer_step(ctx.name, runtime, "dynamic quantization (quantize_dynamic)"):
                quantize_dynamic(str(src), str(out), per_channel=True, weight_type=QuantType.QInt8)
            return ort_prepared(self, model, ctx, out, "int8")
