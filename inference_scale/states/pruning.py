"""Pruning states: unstructured L1 masks (zeros a dense kernel still multiplies), CSR Linear
layers at high sparsity, and structured channel pruning (a smaller dense model)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

from torch import nn

from inference_scale.sizing import linear_nonzero_macs_on
from inference_scale.states.base import Context, Prepared, State, check_pct, cpu_example, dense_facts
from inference_scale.states.precision import _eager
from inference_scale.states.registry import register_state
from inference_scale.subjects.cloning import clone
from inference_scale.techniques.prune import (
    make_permanent,
    prune_channels,
    prune_global,
    sparse_linear,
    sparsity_report,
)
from inference_scale.techniques.sparse_io import save_sparse

__all__ = ["CSR", "PruneChannels", "PruneL1", "PruneL1Masked", "sparse_file_bytes"]


def sparse_file_bytes(model: nn.Module) -> int:
    """Bytes of ``model`` saved with :func:`sparse_io.save_sparse` (CSR or bitmask per tensor)."""
    with tempfile.TemporaryDirectory() as tmp:
        return save_sparse(model, Path(tmp) / "model.pt")


def _with(prepared: Prepared, extras: dict[str, Any]) -> Prepared:
    return replace(prepared, extras={**prepared.extras, **extras})


def _l1(state: State, model: nn.Module, ctx: Context, pct: int, *, permanent: bool) -> Prepared:
    pruned = prune_global(model, pct / 100)
    if permanent:
        pruned = make_permanent(pruned)
    extras = {"sparsity": sparsity_report(pruned).sparsity, "sparse_bytes": sparse_file_bytes(pruned)}
    return _with(_eager(state, pruned, ctx, facts=dense_facts(pruned, ctx)), extras)


@dataclass(frozen=True)
class _Percent(State):
    """A state with one parameter, a percentage in 1..99 (of weights or channels)."""

    defaults: ClassVar[dict[str, int]] = {"pct": 50}
    pct: int = 50

    def __post_init__(self) -> None:
        check_pct(self.pct)


@register_state
@dataclass(frozen=True)
class PruneL1(_Percent):
    """Global unstructured L1 pruning of {pct}% of the conv and linear weights, made permanent:
    a dense model with zeros. No faster on dense kernels; smaller as a sparse file."""

    pattern: ClassVar[str] = "prune-l1-{pct}"
    family: ClassVar[str] = "prune"
    chainable: ClassVar[bool] = True

    def apply(self, model: nn.Module, ctx: Context) -> Prepared:
        return _l1(self, model, ctx, self.pct, permanent=True)


@register_state
@dataclass(frozen=True)
class PruneL1Masked(_Percent):
    """As prune-l1-{pct}, but with torch's pruning masks still attached (a forward pre-hook
    multiplies each weight by its mask on every call): what pruning costs before it is made
    permanent."""

    pattern: ClassVar[str] = "prune-l1-{pct}-masked"
    family: ClassVar[str] = "prune"
    # The masks are the point of this state, and no later state keeps them (channel pruning and
    # int8 rebuild the weights; export drops the hooks): it can only end a compound.
    chainable: ClassVar[bool] = False
    unchainable_reason: ClassVar[str] = (
        "keeps torch's pruning masks as forward pre-hooks, which no later state keeps (prune-l1-{pct} is the "
        "permanent form that chains)"
    )

    def apply(self, model: nn.Module, ctx: Context) -> Prepared:
        return _l1(self, model, ctx, self.pct, permanent=False)


def _csr_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every nn.Linear replaced by its CSR twin."""
    if isinstance(model, nn.Linear):
        return sparse_linear(model)
    out = clone(model)
    for parent in list(out.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Linear):
                setattr(parent, name, sparse_linear(child))
    return out


@register_state
@dataclass(frozen=True)
class CSR(_Percent):
    """Unstructured L1 pruning of {pct}% of the weights, then every nn.Linear stored and run as
    CSR (torch.sparse.mm). Pays off only at high sparsity; the bytes are the sparse file's."""

    pattern: ClassVar[str] = "csr-{pct}"
    family: ClassVar[str] = "prune"
    devices: ClassVar[tuple[str, ...]] = ("cpu",)
    defaults: ClassVar[dict[str, int]] = {"pct": 90}
    pct: int = 90

    def skip_reason(self, model: nn.Module, *, device: str, kind: str | None = None) -> str | None:
        if not any(isinstance(m, nn.Linear) for m in model.modules()):
            return "csr runs nn.Linear layers as CSR, and this model has none"
        return super().skip_reason(model, device=device, kind=kind)

    def apply(self, model: nn.Module, ctx: Context) -> Prepared:
        pruned = make_permanent(prune_global(model, self.pct / 100))
        facts = dense_facts(pruned, ctx)
        # The CSR kernels multiply the non-zeros only: % of peak and the bound count those.
        nonzero_macs = linear_nonzero_macs_on(pruned, cpu_example(ctx.example), dense_macs=facts["macs"])
        extras = {
            "sparsity": sparsity_report(pruned).sparsity,
            "dense_bytes": facts["bytes"],
            "nonzero_macs": nonzero_macs,
        }
        facts["bytes"] = sparse_file_bytes(pruned)
        csr = _csr_copy(pruned).eval()
        return Prepared(slug=self.slug, module=csr, device=ctx.device, dtype="float32", extras=extras, **facts)


@register_state
@dataclass(frozen=True)
class PruneChannels(_Percent):
    """Structured L1 pruning of {pct}% of the channels of every conv and linear layer but the
    classifier (Torch-Pruning's DependencyGraph keeps residuals consistent): a smaller dense
    model, with fewer MACs and really faster."""

    pattern: ClassVar[str] = "prune-channels-{pct}"
    family: ClassVar[str] = "prune"
    chainable: ClassVar[bool] = True
    needs: ClassVar[frozenset[str]] = frozenset({"example_input"})

    def apply(self, model: nn.Module, ctx: Context) -> Prepared:
        one = tuple(t[:1] for t in ctx.example)  # torch-pruning traces model(*one)
        pruned = prune_channels(model, self.pct / 100, example_inputs=one[0] if len(one) == 1 else one)  # type: ignore[arg-type]
        facts = dense_facts(pruned, ctx, recount=True)
        removed = 1 - facts["params"] / sum(p.numel() for p in model.parameters())
        extras = {"sparsity": sparsity_report(pruned).sparsity, "params_removed": removed}
        return _with(_eager(self, pruned, ctx, facts=facts), extras)
