"""The typed record every benchmark stores in pytest-benchmark's ``extra_info``.

Reports and ``compare`` read saved JSON back through :func:`validate_extra_info`, so a field's
name and type are a contract across commits: add fields, never rename or retype them.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

from inference_scale.errors import InferenceScaleError

__all__ = ["REQUIRED_FIELDS", "BenchmarkRecord", "InvalidRecordError", "validate_extra_info"]


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
    runtime: str = "torch"  # what executes the model: torch, onnxruntime, openvino
    runtime_version: str = ""
    state_family: str = ""  # the state's family (precision, quantize, ...): reports group by it
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


# The required fields are the record's fields without a default, read off the dataclass (its
# annotations are strings under ``from __future__ import annotations``).
_JSON_TYPES: dict[str, type | tuple[type, ...]] = {"str": str, "int": int, "list[int]": (list, tuple)}
REQUIRED_FIELDS: dict[str, type | tuple[type, ...]] = {
    f.name: _JSON_TYPES[str(f.type)]
    for f in fields(BenchmarkRecord)
    if f.default is MISSING and f.default_factory is MISSING
}


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
