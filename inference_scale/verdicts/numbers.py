"""The one number formatter of every table: a value in its format, or ``-`` where it is
missing or not finite (a NaN never prints as a number, ``nan%`` included)."""

from __future__ import annotations

import math

__all__ = ["num"]


def num(value: float | None, spec: str) -> str:
    """``value`` formatted with ``spec``, or ``-`` for None, NaN and infinities."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return format(value, spec)
