"""The typed record every benchmark stores in pytest-benchmark's ``extra_info``.

Reports and ``compare`` read saved JSON back through :func:`validate_extra_info`, so a field's
name and type are a contract across commits: add fields, never rename or retype them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from torch import nn

from .errors import InferenceScaleError
from .models import ModelInfo
from .sizing import count_macs, count_params, serialized_bytes

__all__ = ["REQUIRED_FIELDS", "BenchmarkRecord", "InvalidRecordError", "build_record", "validate_extra_info"]


class InvalidRecordError(InferenceScaleError, ValueError):
    """``extra_info`` lacks a required field or holds one of the wrong type."""


@dataclass(frozen=True)
class BenchmarkRecord:
    """What was measured. ``macs`` is per sample (multiply by ``batch_size`` for the call);
    ``bytes`` is the serialized state_dict of the model as benchmarked; ``state`` is the slug
    (``fp32`` is the dense fp32 eager baseline reports compute speedups against)."""

    model: str
    family: str
    kind: str
    state: str
    batch_size: int
    device: str
    threads: int
    dtype: str
    params: int
    nonzero_params: int
    macs: int
    bytes: int
    input_shape: list[int]
    weights: str = "random"
    extras: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        validate_extra_info({k: v for k, v in asdict(self).items() if k != "extras"})
        clash = set(self.extras) & {f.name for f in fields(self)}
        if clash:
            raise InvalidRecordError(f"extras may not override record fields: {sorted(clash)}")

    def to_extra_info(self) -> dict[str, Any]:
        """A flat JSON-ready dict: the fields, then ``extras`` (accuracy, sparsity, ...)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extras"}
        out["input_shape"] = list(self.input_shape)
        out.update(self.extras)
        return out


REQUIRED_FIELDS: dict[str, type | tuple[type, ...]] = {
    "model": str, "family": str, "kind": str, "state": str, "device": str, "dtype": str,
    "batch_size": int, "threads": int, "params": int, "nonzero_params": int, "macs": int,
    "bytes": int, "input_shape": (list, tuple),
}  # fmt: skip


def validate_extra_info(info: dict[str, Any]) -> dict[str, Any]:
    """Check that ``info`` has every required field with its type; returns ``info``."""
    if not isinstance(info, dict):
        raise InvalidRecordError(f"extra_info must be a dict, got {type(info).__name__}")
    missing = sorted(REQUIRED_FIELDS.keys() - info.keys())
    if missing:
        raise InvalidRecordError(f"extra_info lacks {', '.join(missing)} (required: {', '.join(REQUIRED_FIELDS)})")
    for key, expected in REQUIRED_FIELDS.items():
        value = info[key]
        if isinstance(value, bool) or not isinstance(value, expected):
            raise InvalidRecordError(f"extra_info[{key!r}] should be {expected}, got {type(value).__name__}")
    shape = info["input_shape"]
    if not shape or not all(isinstance(d, int) and d > 0 for d in shape):
        raise InvalidRecordError(f"extra_info['input_shape'] should be positive ints, got {shape!r}")
    for key in ("batch_size", "threads"):
        if info[key] < 1:
            raise InvalidRecordError(f"extra_info[{key!r}] should be >= 1, got {info[key]}")
    return info


def build_record(
    info: ModelInfo,
    model: nn.Module,
    *,
    state: str,
    batch_size: int,
    device: str,
    threads: int,
    dtype: str,
    macs: int | None = None,
    nbytes: int | None = None,
    weights: str = "random",
    extras: dict[str, Any] | None = None,
) -> BenchmarkRecord:
    """A record for ``model`` as benchmarked: counts and bytes are measured on it, MACs too.
    A compiled or quantized model cannot be counted: pass its float source as ``model``, the
    fp32 ``macs`` (int8 performs the same multiply-accumulates) and its own ``nbytes``."""
    counts = count_params(model)
    if counts.nonzero is None:
        raise ValueError("benchmark records need a model with real weights, not one on the meta device")
    return BenchmarkRecord(
        model=info.name,
        family=info.family,
        kind=info.kind,
        state=state,
        batch_size=batch_size,
        device=device,
        threads=threads,
        dtype=dtype,
        params=counts.total,
        nonzero_params=counts.nonzero,
        macs=count_macs(model, info.input_shape) if macs is None else int(macs),
        bytes=serialized_bytes(model) if nbytes is None else int(nbytes),
        input_shape=list(info.input_shape),
        weights=weights,
        extras=dict(extras or {}),
    )
