"""OpenVINO as states: the model converted with ``openvino.convert_model`` at the example's
static shape, saved as IR (``.xml`` + ``.bin``, fp32 weights kept), read back and compiled for
the CPU plugin; ``ov-int8`` first quantizes the converted model with NNCF post-training
quantization on the same calibration batches as ``int8-static``."""

from __future__ import annotations

import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from torch import nn

from inference_scale.errors import InvalidValueError
from inference_scale.states.base import Context, Prepared
from inference_scale.states.peers import PeerState, artifact_bytes, numpy_batches, peer_prepared, peer_step
from inference_scale.states.registry import register_state
from inference_scale.subjects.cloning import clone

__all__ = ["OvFP32", "OvInt8", "ov_config"]


def ov_config(threads: int) -> dict[str, Any]:
    """The CPU plugin's settings: ``threads`` for inference, one stream and the latency hint
    (one request at a time, as every other state runs), and fp32 as the inference precision:
    on a CPU with bf16 the plugin would otherwise run float layers in bf16 and the fp32 row
    would not be fp32."""
    return {
        "INFERENCE_NUM_THREADS": threads,
        "NUM_STREAMS": 1,
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_PRECISION_HINT": "f32",
    }


def _convert(model: nn.Module, ctx: Context, runtime: str) -> Any:
    import openvino as ov

    with peer_step(ctx.name, runtime, "conversion (openvino.convert_model)"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        converted = ov.convert_model(clone(model).cpu().eval(), example_input=ctx.example)
        if len(converted.inputs) != len(ctx.example):
            raise InvalidValueError(
                f"the converted model has {len(converted.inputs)} inputs, the model {len(ctx.example)}"
            )
        # one static shape per batch size, for every input
        converted.reshape({i: list(t.shape) for i, t in enumerate(ctx.example)})
    return converted


def _compiled(state: OvState, model: nn.Module, ctx: Context, converted: Any, dtype: str) -> Prepared:
    import openvino as ov

    runtime = f"openvino {state.version()}"
    config = ov_config(ctx.intra_threads)
    with tempfile.TemporaryDirectory(prefix="is-ov-") as tmp:
        xml = Path(tmp) / "model.xml"
        # compress_to_fp16=False: save_model would otherwise halve the fp32 weights on disk.
        ov.save_model(converted, str(xml), compress_to_fp16=False)
        size = artifact_bytes(xml, xml.with_suffix(".bin"))
        core = ov.Core()
        with peer_step(ctx.name, runtime, "compile_model for CPU"):
            compiled = core.compile_model(core.read_model(str(xml)), "CPU", config)
    request = compiled.create_infer_request()

    def run(*x: Any) -> Any:
        request.infer(dict(enumerate(x)), share_inputs=True)
        # the output tensor is the request's own buffer, overwritten by the next call
        return request.get_output_tensor(0).data.copy()

    return peer_prepared(state, model, ctx, run, dtype=dtype, artifact="model.xml+model.bin", size=size, config=config)


@dataclass(frozen=True)
class OvState(PeerState):
    """An OpenVINO state (CPU plugin)."""

    runtime: ClassVar[str] = "openvino"
    packages: ClassVar[tuple[str, ...]] = ("openvino",)
    distribution: ClassVar[str] = "openvino"
    needs: ClassVar[frozenset[str]] = frozenset({"example_input"})


@register_state
@dataclass(frozen=True)
class OvFP32(OvState):
    """fp32 through OpenVINO's CPU plugin (inference precision pinned to f32)."""

    pattern: ClassVar[str] = "ov-fp32"

    def apply(self, model: nn.Module, ctx: Context) -> Prepared:
        return _compiled(self, model, ctx, _convert(model, ctx, f"openvino {self.version()}"), "float32")


@register_state
@dataclass(frozen=True)
class OvInt8(OvState):
    """int8 through OpenVINO: NNCF post-training quantization (its default performance preset;
    the transformer model type for transformers) of the converted model, calibrated on the
    same batches as ``int8-static``."""

    pattern: ClassVar[str] = "ov-int8"
    packages: ClassVar[tuple[str, ...]] = ("openvino", "nncf")
    needs: ClassVar[frozenset[str]] = frozenset({"calibration", "example_input"})

    def apply(self, model: nn.Module, ctx: Context) -> Prepared:
        import nncf

        runtime = f"openvino {self.version()} + nncf {nncf.__version__}"
        converted = _convert(model, ctx, runtime)
        batches = list(numpy_batches(ctx.calibration))
        model_type = nncf.ModelType.TRANSFORMER if ctx.kind == "transformer" else None
        with peer_step(ctx.name, runtime, "post-training quantization (nncf.quantize)"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantized = nncf.quantize(
                converted,
                nncf.Dataset(batches),
                subset_size=len(batches),
                model_type=model_type,
            )
        prepared = _compiled(self, model, ctx, quantized, "int8")
        prepared.extras["nncf_version"] = nncf.__version__
        return prepared
