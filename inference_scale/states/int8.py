"""int8 states: the three whole-model int8 paths of :mod:`inference_scale.techniques.quantize`, each a
state. They run on the CPU (oneDNN/fbgemm kernels); their bytes are the int8 model's."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from torch import nn

from inference_scale.states.base import Context, Prepared, State, dense_facts
from inference_scale.states.registry import register_state
from inference_scale.techniques.quantize import DynamicInt8, StaticInt8, StaticInt8FX, quantize_model

__all__ = ["Int8Dynamic", "Int8Static", "Int8StaticFX", "linear_share"]


def linear_share(model: nn.Module) -> float:
    """Share of parameters held by nn.Linear weights: what dynamic int8 can reach."""
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))
    total = sum(p.numel() for p in model.parameters())
    return linear / total if total else 0.0


def _quantized(state: State, model: nn.Module, ctx: Context, config: Any) -> Prepared:
    if hasattr(config, "compile"):
        config = dataclasses.replace(config, compile=ctx.compile)
    q = quantize_model(
        model, config, calibration_inputs=ctx.calibration or None, example_inputs=ctx.example, progress=ctx.progress
    )
    facts = dense_facts(model, ctx)  # int8 performs the same multiply-accumulates
    facts["bytes"] = q.report.bytes_after
    extras = {
        "compiled": bool(getattr(config, "compile", False)),
        "quantized_modules": len(q.report.quantized),
        "float_modules": len(q.report.kept_float),
    }
    return Prepared(slug=state.slug, module=q, device=ctx.device, dtype="int8", extras=extras, **facts)


@dataclass(frozen=True)
class _Int8(State):
    """An int8 state: its :mod:`inference_scale.techniques.quantize` config, run on the CPU's int8 kernels."""

    family: ClassVar[str] = "quantize"
    needs: ClassVar[frozenset[str]] = frozenset({"calibration", "example_input"})
    devices: ClassVar[tuple[str, ...]] = ("cpu",)
    config_type: ClassVar[type[Any]]  # a quantize config class, built with its defaults

    def apply(self, model: nn.Module, ctx: Context) -> Prepared:
        return _quantized(self, model, ctx, self.config_type())


@register_state
@dataclass(frozen=True)
class Int8Static(_Int8):
    """Static int8 through torchao's PT2E flow (X86InductorQuantizer, calibrated activation
    ranges), compiled with inductor: the fast CPU path for conv nets. The export is specialized
    to the example's batch size."""

    pattern: ClassVar[str] = "int8-static"
    config_type = StaticInt8
    compiles: ClassVar[bool] = True
    compile_skip: ClassVar[str] = (
        "static PT2E int8 on a transformer needs minutes of inductor compile per batch size on a small CPU"
    )


@register_state
@dataclass(frozen=True)
class Int8Dynamic(_Int8):
    """Dynamic int8 (torchao): int8 nn.Linear weights, activations quantized per token at run
    time; for models whose parameters are mostly in nn.Linear (transformers)."""

    pattern: ClassVar[str] = "int8-dynamic"
    needs: ClassVar[frozenset[str]] = frozenset({"example_input"})
    config_type = DynamicInt8
    min_linear_share: ClassVar[float] = 0.5
    compiles: ClassVar[bool] = True
    # Measured on this project's 2-core Zen4 host: eager torch._int_mm is ~14x slower than an
    # fp32 matmul of the same shape, so uncompiled dynamic int8 is no deployment.
    compile_skip: ClassVar[str] = (
        "dynamic int8 is only fast compiled (eager torch._int_mm is a slow reference kernel), and inductor needs "
        "minutes per batch size for a transformer on a small CPU"
    )

    def skip_reason(self, model: nn.Module, *, device: str, kind: str | None = None) -> str | None:
        share = linear_share(model)
        if share < self.min_linear_share:
            return f"dynamic int8 covers nn.Linear only, which holds {share:.0%} of this model's parameters"
        return super().skip_reason(model, device=device, kind=kind)


@register_state
@dataclass(frozen=True)
class Int8StaticFX(_Int8):
    """Static int8 through torch.ao's FX graph mode (prepare_fx/convert_fx, x86 backend), the
    older eager-runnable path, kept for comparison."""

    pattern: ClassVar[str] = "int8-static-fx"
    config_type = StaticInt8FX
