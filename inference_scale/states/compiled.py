"""torch.compile as states: the same fp32 weights run through inductor's generated kernels, in
fp32 (``compile``) or under bf16 autocast (``compile-bf16``)."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import ClassVar, cast

import torch
from torch import nn

from inference_scale.states.base import Context, Prepared, State
from inference_scale.states.precision import BF16, _eager
from inference_scale.states.registry import register_state

__all__ = ["Compile", "CompileBF16"]


@register_state
@dataclass(frozen=True)
class Compile(State):
    """fp32 through torch.compile (inductor, default mode), compiled for the example's shape
    before timing (the first call compiles: minutes for a large model on a small CPU with a
    cold cache). Without compilation (the smoke run, --is-no-compile) it runs eager and its
    record says ``compiled: false``."""

    pattern: ClassVar[str] = "compile"
    family: ClassVar[str] = "runtime"
    needs: ClassVar[frozenset[str]] = frozenset({"example_input"})
    compiles: ClassVar[bool] = True
    autocast: ClassVar[torch.dtype | None] = None

    def apply(self, model: nn.Module, ctx: Context) -> Prepared:
        eager = _eager(self, model, ctx, autocast=self.autocast)
        if not ctx.compile:
            return replace(eager, extras={"compiled": False})
        module = cast(nn.Module, eager.module)  # _eager always runs an nn.Module
        # dynamic=False: one static graph for the timed shape, as a deployment would pin it.
        compiled = torch.compile(module, dynamic=False)
        start = time.perf_counter()
        compiled_prepared = replace(eager, module=compiled)
        compiled_prepared(ctx.example)  # compile now (under the same autocast), not inside the timed call
        seconds = time.perf_counter() - start
        return replace(eager, module=compiled, float_module=None, extras={"compiled": True, "compile_s": seconds})


@register_state
@dataclass(frozen=True)
class CompileBF16(Compile):
    """torch.compile (inductor) under bf16 autocast: matmuls and convolutions in bfloat16
    through inductor's kernels, fp32 weights kept. Needs native bf16, as ``bf16`` does."""

    pattern: ClassVar[str] = "compile-bf16"
    autocast: ClassVar[torch.dtype | None] = torch.bfloat16

    def skip_reason(self, model: nn.Module, *, device: str, kind: str | None = None) -> str | None:
        return BF16().skip_reason(model, device=device, kind=kind)
