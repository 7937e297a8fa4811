"""Model size: parameter counts, MACs/FLOPs and bytes on disk.

MACs come from ptflops' aten backend (a ``TorchDispatchMode`` that counts ``mm``, ``addmm``,
``bmm`` and ``convolution`` at the aten level, so transformer matmuls are seen). Two gaps are
closed here, both measured on torch 2.14:

* Under ``no_grad``/``inference_mode`` ``nn.MultiheadAttention`` takes its fused fast path
  (``aten._native_multi_head_attention``), which no counter sees: we count with gradients
  enabled, which forces the decomposed path.
* That decomposed path calls ``scaled_dot_product_attention``, which on the CPU dispatches to
  ``aten._scaled_dot_product_flash_attention_for_cpu`` and is missed too: we add it by its
  formula (two batched matmuls, Q K^T and P V).

One MAC is one multiply-accumulate; FLOPs are always ``2 * MACs`` here and named as such.
"""

from __future__ import annotations

import gzip
import io
import numbers
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from ptflops.aten_engine import FlopCounterMode
from torch import nn

from inference_scale.errors import InvalidTypeError, InvalidValueError, MacCountError
from inference_scale.units import flops_from_macs

__all__ = [
    "ParamCount",
    "SizeReport",
    "check_shape",
    "count_macs",
    "count_macs_on",
    "count_params",
    "gzip_bytes",
    "linear_nonzero_macs_on",
    "sdpa_macs",
    "serialized_bytes",
    "size_report",
]


@dataclass(frozen=True)
class ParamCount:
    """Parameter counts; ``nonzero`` is None for a model on the meta device (no values)."""

    total: int
    trainable: int
    nonzero: int | None


def count_params(model: nn.Module) -> ParamCount:
    """Count parameters. Shared (tied) parameters count once, as ``model.parameters()`` yields
    them once; pruning masks are buffers and are not counted."""
    params = list(model.parameters())
    total = sum(p.numel() for p in params)
    trainable = sum(p.numel() for p in params if p.requires_grad)
    if any(p.is_meta for p in params):
        nonzero = None
    else:
        # A pruned module's effective weight is ``weight_orig * weight_mask`` (an attribute, not
        # a parameter), so count non-zeros on the tensors the forward pass actually uses.
        nonzero = 0
        for module in model.modules():
            for name, p in module.named_parameters(recurse=False):
                effective = getattr(module, name[: -len("_orig")], p) if name.endswith("_orig") else p
                nonzero += int(torch.count_nonzero(effective.detach()))
    return ParamCount(total=total, trainable=trainable, nonzero=nonzero)


def sdpa_macs(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """MACs of scaled dot-product attention: Q K^T is (..., L, E) x (..., E, S) and P V is
    (..., L, S) x (..., S, Ev), so L*S*E + L*S*Ev per batch-head. Softmax and scaling are not
    multiply-accumulates and are left out, as ptflops does for every other op."""
    q, k, v = inputs[0], inputs[1], inputs[2]
    *lead, length, e = q.shape
    s = k.shape[-2]
    ev = v.shape[-1]
    batch_heads = 1
    for d in lead:
        batch_heads *= int(d)
    return batch_heads * int(length) * int(s) * (int(e) + int(ev))


def _attention_hooks() -> dict[Any, Callable[[Sequence[Any], Sequence[Any]], int]]:
    aten = torch.ops.aten
    names = (
        "_scaled_dot_product_flash_attention_for_cpu",
        "_scaled_dot_product_flash_attention",
        "_scaled_dot_product_efficient_attention",
        "_scaled_dot_product_cudnn_attention",
        "_scaled_dot_product_fused_attention_overrideable",
    )
    return {getattr(aten, n): sdpa_macs for n in names if hasattr(aten, n)}


def _first_param(model: nn.Module) -> torch.Tensor | None:
    return next(iter(model.parameters()), None)


def count_macs(
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    dtype: torch.dtype | None = None,
) -> int:
    """MACs of one forward pass for one sample of ``input_shape`` (no batch dimension).

    The model runs once in eval mode with gradients enabled (see the module docstring) on
    whatever device it lives on; on the meta device nothing is computed. The model is left as
    it was: its training flag is restored and no hooks are left behind (ptflops'
    ``get_model_complexity_info`` registers forward hooks on every child and never removes
    them, so we drive its counting mode directly).
    """
    if not isinstance(model, nn.Module):
        raise InvalidTypeError(f"count_macs needs an nn.Module, got {type(model).__name__}")
    shape = check_shape(input_shape)
    ref = _first_param(model)
    device = ref.device if ref is not None else torch.device("cpu")
    dtype = dtype or (ref.dtype if ref is not None and ref.is_floating_point() else torch.float32)
    try:
        # Allocated inside the try: an input too large for memory is a bad shape, not a crash.
        x = torch.zeros((1, *shape), device=device, dtype=dtype)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MacCountError(
            f"{type(model).__name__} does not run on input {shape} (one sample, no batch): {first}"
        ) from exc
    return count_macs_on(model, (x,), what=str(shape))


def count_macs_on(model: nn.Module, sample: tuple[torch.Tensor, ...], *, what: str | None = None) -> int:
    """MACs of one forward pass ``model(*sample)`` on inputs of any structure (a tuple of
    tensors: images, token ids and masks), counted by torch's FlopCounterMode. MACs per sample
    are counted on a batch of one (``sample[i][:1]``)."""
    if not isinstance(model, nn.Module):
        raise InvalidTypeError(f"count_macs needs an nn.Module, got {type(model).__name__}")
    one = tuple(t[:1] for t in sample)
    output_params: dict[str, dict[str, Any]] = defaultdict(dict)
    counter = FlopCounterMode(None, False, False, output_params, _attention_hooks(), [])
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad(), counter:
            model(*one)
    except Exception as exc:  # the message names the model and the failing op
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        shown = what or ", ".join(f"{tuple(t.shape[1:])} {str(t.dtype).removeprefix('torch.')}" for t in one)
        raise MacCountError(
            f"{type(model).__name__} does not run on input {shown} (one sample, no batch): {first}"
        ) from exc
    finally:
        model.train(was_training)
    return int(counter.complexity)


def linear_nonzero_macs_on(model: nn.Module, sample: tuple[torch.Tensor, ...], *, dense_macs: int) -> int:
    """MACs per sample that a sparse kernel executes when every ``nn.Linear`` of ``model`` runs
    on its non-zero weights only (CSR): ``dense_macs`` less, for each Linear, its zero weights
    times the rows it sees per sample (its input's elements over ``in_features``). A dense
    kernel multiplies the zeros too, so only a state that runs Linears as sparse reads this."""
    rows: dict[int, int] = {}

    def seen(module: nn.Module, args: tuple[Any, ...]) -> None:
        x = args[0] if args else None
        if isinstance(x, torch.Tensor) and isinstance(module, nn.Linear) and module.in_features > 0:
            rows[id(module)] = rows.get(id(module), 0) + x.numel() // module.in_features

    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    handles = [m.register_forward_pre_hook(seen) for m in linears]
    try:
        with torch.no_grad():
            model(*(t[:1] for t in sample))
    finally:
        for handle in handles:
            handle.remove()
    zeros = sum(rows.get(id(m), 0) * (m.weight.numel() - int(torch.count_nonzero(m.weight))) for m in linears)
    return max(int(dense_macs) - zeros, 0)


def check_shape(input_shape: object) -> tuple[int, ...]:
    """``input_shape`` as a tuple of positive ints (one sample's shape, without the batch), or a
    ``TypeError``/``ValueError`` that says what was given instead."""
    if isinstance(input_shape, torch.Tensor):
        raise InvalidTypeError(
            "input_shape must be a shape such as (3, 224, 224), not a tensor; for a batch x pass tuple(x.shape[1:])"
        )
    if isinstance(input_shape, (str, bytes)) or not isinstance(input_shape, Sequence):
        raise InvalidTypeError(f"input_shape must be a sequence of ints such as (3, 224, 224), got {input_shape!r}")
    dims = []
    for d in input_shape:
        if isinstance(d, bool) or not isinstance(d, numbers.Integral):
            raise InvalidTypeError(f"input_shape must hold ints, got {d!r} in {tuple(input_shape)}")
        dims.append(int(d))
    if not dims or any(d <= 0 for d in dims):
        raise InvalidValueError(f"input_shape must be positive sizes without the batch, got {tuple(dims)}")
    return tuple(dims)


def _serialize(model_or_state: nn.Module | dict[str, Any]) -> bytes:
    state = model_or_state.state_dict() if isinstance(model_or_state, nn.Module) else model_or_state
    if any(isinstance(t, torch.Tensor) and t.is_meta for t in state.values()):
        raise InvalidValueError("a model on the meta device has no values to serialize; build it on a real device")
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def serialized_bytes(model_or_state: nn.Module | dict[str, Any]) -> int:
    """Bytes of ``torch.save(model.state_dict())``: what a checkpoint costs on disk. (A file's
    zip entries carry its stem as their folder name, so ``name.pt`` differs from this by a few
    bytes per tensor: ``len(stem) - len("archive")`` per entry.)"""
    return len(_serialize(model_or_state))


def gzip_bytes(model_or_state: nn.Module | dict[str, Any], *, level: int = 6) -> int:
    """Bytes of that checkpoint after gzip: pruned (zeroed) weights compress, random ones do not."""
    return len(gzip.compress(_serialize(model_or_state), compresslevel=level))


@dataclass(frozen=True)
class SizeReport:
    """Size of a model for one input shape. ``macs`` and ``flops`` are per sample."""

    params: int
    trainable_params: int
    nonzero_params: int | None
    macs: int
    flops: int
    bytes: int | None
    gzip_bytes: int | None
    input_shape: tuple[int, ...]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def size_report(model: nn.Module, input_shape: Sequence[int], *, compress: bool = True) -> SizeReport:
    """Parameters, MACs, FLOPs and checkpoint bytes of ``model`` (bytes are None on meta)."""
    counts = count_params(model)
    macs = count_macs(model, input_shape)
    on_meta = counts.nonzero is None
    raw = None if on_meta else _serialize(model)
    return SizeReport(
        params=counts.total,
        trainable_params=counts.trainable,
        nonzero_params=counts.nonzero,
        macs=macs,
        flops=flops_from_macs(macs),
        bytes=None if raw is None else len(raw),
        gzip_bytes=None if raw is None or not compress else len(gzip.compress(raw, compresslevel=6)),
        input_shape=tuple(int(d) for d in input_shape),
    )
