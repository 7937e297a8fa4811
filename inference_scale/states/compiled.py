"""torch.compile as a state: the same fp32 weights run through inductor's generated kernels."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import ClassVar, cast

import torch
from torch import nn

from .base import Context, Prepared, State, register_state
from .precision import _eager

__all__ = ["Compile"]


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

    def apply(self, model: nn.Module, ctx: Context) -> Prepared:
        eager = _eager(self, model, ctx)
        if not ctx.compile:
            return replace(eager, extras={"compiled": False})
        module = cast(nn.Module, eager.module)  # _eager always runs an nn.Module
        # dynamic=False: one static graph for the timed shape, as a deployment would pin it.
        compiled = torch.compile(module, dynamic=False)
        start = time.perf_counter()
        with torch.inference_mode():
            compiled(eager.layout(ctx.example))  # compile now, not inside the timed call
        seconds = time.perf_counter() - start
        return replace(eager, module=compiled, float_module=None, extras={"compiled": True, "compile_s": seconds})
