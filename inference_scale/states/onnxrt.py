"""ONNX Runtime as states: the model exported with ``torch.onnx.export(dynamo=True)`` at the
example's static shape, run by ONNX Runtime's CPU execution provider, in fp32 or quantized to
static int8 (QDQ, per-channel weights) on the same calibration batches as ``int8-static``."""

from __future__ import annotations

import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from inference_scale.states.base import Context, Prepared
from inference_scale.states.peers import PeerState, artifact_bytes, numpy_batches, peer_prepared, peer_step
from inference_scale.states.registry import register_state
from inference_scale.subjects.cloning import clone
from inference_scale.subjects.inputs import Batch

__all__ = ["OrtFP32", "OrtInt8", "export_onnx", "onnx_input_names", "ort_prepared", "ort_session"]


def export_onnx(model: nn.Module, ctx: Context, path: Path) -> Path:
    """``model`` (not changed) exported to ``path`` with the dynamo exporter, weights inside
    the file, one static input shape (the example's)."""
    with peer_step(ctx.name, "onnx", "export (torch.onnx.export dynamo=True)"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            clone(model).cpu().eval(),
            ctx.example,
            str(path),
            dynamo=True,
            external_data=False,
            input_names=list(ctx.names),
            verbose=False,
        )
    return path


def _config(ctx: Context) -> dict[str, Any]:
    # The same threads as torch: intra-op as set, no inter-op parallelism (torch has none in
    # eager inference either), the graph run in order.
    return {"intra_op_num_threads": ctx.intra_threads, "inter_op_num_threads": 1, "execution_mode": "sequential"}


def onnx_input_names(path: Path) -> list[str]:
    """The graph inputs of an ONNX file (an exporter drops inputs the graph never reads)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    weights = {init.name for init in graph.initializer}
    return [i.name for i in graph.input if i.name not in weights]


def ort_session(path: Path, ctx: Context, runtime: str) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    config = _config(ctx)
    options.intra_op_num_threads = config["intra_op_num_threads"]
    options.inter_op_num_threads = config["inter_op_num_threads"]
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    with peer_step(ctx.name, runtime, "creating the inference session"):
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def ort_prepared(state: OrtState, model: nn.Module, ctx: Context, path: Path, dtype: str) -> Prepared:
    """The Prepared of an ONNX file run by ONNX Runtime's CPU provider: the model's inputs
    fed by name (those the graph kept), its first output returned."""
    runtime = f"onnxruntime {state.version()}"
    session = ort_session(path, ctx, runtime)
    kept = {i.name for i in session.get_inputs()}
    names = [n if n in kept else None for n in ctx.names]

    def run(*x: Any) -> Any:
        return session.run(None, {n: a for n, a in zip(names, x, strict=True) if n is not None})[0]

    return peer_prepared(
        state, model, ctx, run, dtype=dtype, artifact=path.name, size=artifact_bytes(path), config=_config(ctx)
    )


@dataclass(frozen=True)
class OrtState(PeerState):
    """An ONNX Runtime state (CPU execution provider)."""

    runtime: ClassVar[str] = "onnxruntime"
    packages: ClassVar[tuple[str, ...]] = ("onnx", "onnxscript", "onnxruntime")
    distribution: ClassVar[str] = "onnxruntime"
    needs: ClassVar[frozenset[str]] = frozenset({"example_input"})


@register_state
@dataclass(frozen=True)
class OrtFP32(OrtState):
    """fp32 through ONNX Runtime: the dynamo ONNX export at the example's shape, with ORT's
    full graph optimizations (fusions, constant folding)."""

    pattern: ClassVar[str] = "ort-fp32"

    def apply(self, model: nn.Module, ctx: Context) -> Prepared:
        with tempfile.TemporaryDirectory(prefix="is-ort-") as tmp:
            path = export_onnx(model, ctx, Path(tmp) / "model.onnx")
            return ort_prepared(self, model, ctx, path, "float32")


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over the context's calibration batches,
    each fed by input name (only the inputs the graph kept)."""

    def __init__(self, names: tuple[str, ...], kept: list[str], batches: tuple[Batch, ...]) -> None:
        self._feeds = (
            {n: a for n, a in zip(names, arrays, strict=True) if n in kept} for arrays in numpy_batches(batches)
        )

    def get_next(self) -> dict[str, Any] | None:
        return next(self._feeds, None)


@register_state
@dataclass(frozen=True)
class OrtInt8(OrtState):
    """Static int8 through ONNX Runtime: ``quantize_static`` in QDQ format with per-channel
    int8 weights and uint8 activations (the pair ORT's x86 kernels are fastest with), min-max
    calibrated on the same batches as ``int8-static``."""

    pattern: ClassVar[str] = "ort-int8"
    needs: ClassVar[frozenset[str]] = frozenset({"calibration", "example_input"})

    def apply(self, model: nn.Module, ctx: Context) -> Prepared:
        from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process

        runtime = f"onnxruntime {self.version()}"
        with tempfile.TemporaryDirectory(prefix="is-ort-") as tmp:
            src = export_onnx(model, ctx, Path(tmp) / "fp32.onnx")
            pre, out = Path(tmp) / "pre.onnx", Path(tmp) / "model.onnx"
            with peer_step(ctx.name, runtime, "quantization pre-processing (quant_pre_process)"):
                quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
            with peer_step(ctx.name, runtime, "static quantization (quantize_static)"):
                quantize_static(
                    str(pre),
                    str(out),
                    _Reader(ctx.names, onnx_input_names(pre), ctx.calibration),  # type: ignore[arg-type]
                    quant_format=QuantFormat.QDQ,
                    per_channel=True,
                    activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8,
                )
            return ort_prepared(self, model, ctx, out, "int8")
