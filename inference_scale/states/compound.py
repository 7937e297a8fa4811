"""Compound states: slugs joined with ``+`` apply left to right (``prune-channels-50+int8-static``
prunes, then quantizes the pruned model). Every part but the last must hand on a float
nn.Module (pruning, distillation and the precision states do; int8 and other runtimes end a
chain). A ``kd`` part learns from the model as it was before the compound, unless the context
names another teacher."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from inference_scale.slugs import COMPOUND_SEP
from inference_scale.states.base import CompositionError, Context, Prepared, State

__all__ = ["Compound"]


@dataclass(frozen=True)
class Compound(State):
    """Several states applied in order; see the module docstring. Build one from a slug with
    :func:`~.registry.get_state`, which checks that the parts can follow one another."""

    pattern: ClassVar[str] = "{state}+{state}"
    family: ClassVar[str] = "compound"
    parts: tuple[State, ...] = ()

    @property
    def slug(self) -> str:
        return COMPOUND_SEP.join(p.slug for p in self.parts)

    @property
    def needs(self) -> frozenset[str]:  # type: ignore[override]
        return frozenset().union(*(p.needs for p in self.parts))

    @property
    def devices(self) -> tuple[str, ...]:  # type: ignore[override]
        common = set(self.parts[0].devices).intersection(*(p.devices for p in self.parts))
        return tuple(d for d in self.parts[0].devices if d in common)

    def unavailable(self) -> str | None:
        return next((r for r in (p.unavailable() for p in self.parts) if r), None)

    def skip_reason(self, model: nn.Module, *, device: str, kind: str | None = None) -> str | None:
        # Later parts see a changed model; checking them on the original is the best guess
        # available before applying (a pruned model keeps its layer types).
        for part in self.parts:
            reason = part.skip_reason(model, device=device, kind=kind)
            if reason:
                return f"{part.slug}: {reason}"
        return None

    def compile_reason(self, kind: str | None, *, slow_compile: bool) -> str | None:
        for part in self.parts:
            reason = part.compile_reason(kind, slow_compile=slow_compile)
            if reason:
                return f"{part.slug}: {reason}"
        return None

    def check_context(self, ctx: Context) -> None:
        # A part that needs a teacher (kd) gets the compound's source model when ctx has none.
        given = ctx if ctx.teacher is not None else dataclasses.replace(ctx, teacher=nn.Identity())
        for part in self.parts:
            if part.needs & {"calibration", "training_data", "teacher"}:
                part.check_context(given)

    def apply(self, model: nn.Module, ctx: Context) -> Prepared:
        current, step_ctx = model, ctx
        if ctx.teacher is None:
            step_ctx = dataclasses.replace(ctx, teacher=model)
        extras: dict[str, Any] = {}
        steps: list[dict[str, Any]] = []
        *first, final = self.parts
        for i, part in enumerate(first):
            # Non-final parts are applied on the CPU in fp32: the device move comes at the end.
            prepared = part(current, dataclasses.replace(step_ctx, device="cpu"))
            extras.update(prepared.extras)
            steps.append(_step(prepared))
            if prepared.float_module is None:
                raise CompositionError(
                    f"{part.slug} does not produce a float nn.Module, so it can only end a compound, not precede "
                    f"{self.parts[i + 1].slug}"
                )
            current = prepared.float_module.cpu()
            if prepared.autocast is not None or prepared.dtype not in ("float32", str(torch.float32)):
                raise CompositionError(f"{part.slug} changes the number format, so it can only end a compound")
            # The next part measures the model as this one left it: its MACs, not the source's.
            step_ctx = dataclasses.replace(step_ctx, macs=prepared.macs)
        prepared = final(current, step_ctx)
        extras.update(prepared.extras)
        extras.update(parts=[p.slug for p in self.parts], steps=[*steps, _step(prepared)])
        return dataclasses.replace(prepared, slug=self.slug, extras=extras)


def _step(prepared: Prepared) -> dict[str, Any]:
    """What one part left: its slug and the model's params, MACs per sample and bytes after it."""
    return {"state": prepared.slug, "params": prepared.params, "macs": prepared.macs, "bytes": prepared.bytes}
