"""The one default of each benchmark option, in a module that imports nothing, so the plan
(:mod:`.plan`), the runner's options (:mod:`.suite`) and every adapter read them without an
import cycle."""

from __future__ import annotations

from typing import Any

__all__ = ["DEFAULTS"]

DEFAULTS: dict[str, Any] = {
    "device": "cpu",
    "threads": 1,
    "seeds": 3,
    "cuda_events": 0,
    "reference_seconds": 0.5,
    "compile": True,
    "all_int8": False,
}
