"""Precision states: the same weights run eager in another memory format or number format."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from inference_scale.sizing import serialized_bytes
from inference_scale.states.base import Context, Facts, Prepared, State, dense_facts
from inference_scale.states.registry import register_state
from inference_scale.subjects.cloning import clone
from inference_scale.subjects.inputs import Batch, map_tensors

__all__ = ["BF16", "FP16", "FP32", "ChannelsLast"]


def _eager(
    state: State,
    model: nn.Module,
    ctx: Context,
    *,
    channels_last: bool = False,
    autocast: torch.dtype | None = None,
    cast: torch.dtype | None = None,
    facts: Facts | None = None,
) -> Prepared:
    """A copy of ``model`` on the context's device, in eval mode, optionally in channels-last
    memory format (4-D inputs only: a transformer's token tensors keep their layout and only its
    patch-embedding convolution sees NHWC), under autocast, or with weights and inputs ``cast``
    to another dtype. ``facts`` are ``model``'s own (:func:`dense_facts`) unless the caller has
    them; a cast model's bytes are its cast state_dict's."""
    device = torch.device(ctx.device)
    facts = dense_facts(model, ctx) if facts is None else facts
    prepared = clone(model).to(device).eval()
    if cast is not None:
        prepared = prepared.to(cast)
        facts = Facts(**{**facts, "bytes": serialized_bytes(prepared)})
    if channels_last:
        prepared = prepared.to(memory_format=torch.channels_last)  # type: ignore[call-overload]

    def one(x: torch.Tensor) -> torch.Tensor:
        # Only floating inputs are cast or laid out: token ids and masks keep their dtype.
        if not x.is_floating_point():
            return x.to(device)
        x = x.to(device) if cast is None else x.to(device, cast)
        return x.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x

    def layout(batch: Batch) -> Batch:
        return map_tensors(batch, one)

    return Prepared(
        slug=state.slug,
        module=prepared,
        device=ctx.device,
        dtype=str(cast or autocast or torch.float32).removeprefix("torch."),
        layout=layout,
        autocast=autocast,
        float_module=prepared,
        **facts,
    )


def _native(name: str, device: str, cpu: Callable[[], bool], cuda: Callable[[], bool]) -> str | None:
    """Why a number format is skipped on ``device``: no native support (emulated is slow)."""
    if torch.device(device).type == "cpu" and not cpu():
        return f"this CPU has no native {name} support (oneDNN reports none)"
    if torch.device(device).type == "cuda" and not cuda():
        return f"this GPU does not support {name}"
    return None


@register_state
@dataclass(frozen=True)
class FP32(State):
    """Dense fp32 eager: the baseline every speedup is measured against."""

    pattern: ClassVar[str] = "fp32"
    family: ClassVar[str] = "precision"
    chainable: ClassVar[bool] = True

    def apply(self, model: nn.Module, ctx: Context) -> Prepared:
        return _eager(self, model, ctx)


@register_state
@dataclass(frozen=True)
class ChannelsLast(State):
    """fp32 eager with NHWC (channels-last) memory format, which oneDNN and cuDNN prefer for
    convolutions."""

    pattern: ClassVar[str] = "channels-last"
    family: ClassVar[str] = "precision"
    chainable: ClassVar[bool] = True

    def apply(self, model: nn.Module, ctx: Context) -> Prepared:
        return _eager(self, model, ctx, channels_last=True)


@register_state
@dataclass(frozen=True)
class BF16(State):
    """bf16 autocast: matmuls and convolutions in bfloat16, fp32 weights kept (so the bytes do
    not change). Needs native bf16 (AVX512-BF16/AMX on the CPU, Ampere or later on CUDA)."""

    pattern: ClassVar[str] = "bf16"
    family: ClassVar[str] = "precision"

    def skip_reason(self, model: nn.Module, *, device: str, kind: str | None = None) -> str | None:
        return super().skip_reason(model, device=device, kind=kind) or _native(
            "bf16", device, torch.ops.mkldnn._is_mkldnn_bf16_supported, torch.cuda.is_bf16_supported
        )

    def apply(self, model: nn.Module, ctx: Context) -> Prepared:
        return _eager(self, model, ctx, autocast=torch.bfloat16)


@register_state
@dataclass(frozen=True)
class FP16(State):
    """fp16 weights and inputs (``model.half()``): half the bytes, tensor cores on CUDA. On the
    CPU only where oneDNN reports native fp16 (AVX512-FP16/AMX-FP16); elsewhere it would run
    emulated and slow, so it is skipped with that reason."""

    pattern: ClassVar[str] = "fp16"
    family: ClassVar[str] = "precision"

    def skip_reason(self, model: nn.Module, *, device: str, kind: str | None = None) -> str | None:
        # every CUDA GPU PyTorch supports has fp16 arithmetic
        return super().skip_reason(model, device=device, kind=kind) or _native(
            "fp16", device, torch.ops.mkldnn._is_mkldnn_fp16_supported, lambda: True
        )

    def apply(self, model: nn.Module, ctx: Context) -> Prepared:
        return _eager(self, model, ctx, cast=torch.float16)
