"""The one verdict rule and the one gate-exit rule, shared by ``compare``, ``ab`` and ``history``.

A benchmark pair gets one of four verdicts from two gates:

* significance: the (false-discovery adjusted) q-value below ``alpha``;
* size: the new/base ratio beyond ``1 + threshold`` (slower) or below ``1 / (1 + threshold)``
  (faster), symmetric in log space, so swapping the runs swaps the verdicts exactly.

Both passed: ``slower`` or ``faster``. Neither: ``no change``. One without the other:
``undecided``, with the reason (a large change the samples cannot confirm, or a real change
too small to matter). Each caller decides first whether its test can answer at all.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from inference_scale.defaults import DEFAULTS
from inference_scale.errors import InvalidValueError

__all__ = ["DEFAULT_ALPHA", "DEFAULT_THRESHOLD", "VERDICTS", "by_threshold", "check_gates", "gate_exit_code", "judge"]

VERDICTS = ("slower", "faster", "no change", "undecided")
DEFAULT_ALPHA: float = DEFAULTS["alpha"]
DEFAULT_THRESHOLD: float = DEFAULTS["threshold"]


def check_gates(alpha: float, threshold: float) -> None:
    """``alpha`` in (0, 1) and ``threshold`` finite and >= 0, else one line naming the range."""
    if not (isinstance(alpha, (int, float)) and 0 < alpha < 1):
        raise InvalidValueError(f"alpha must be in (0, 1), got {alpha!r}")
    if not (isinstance(threshold, (int, float)) and math.isfinite(threshold) and threshold >= 0):
        raise InvalidValueError(f"threshold must be a finite number >= 0, got {threshold!r}")


def by_threshold(ratio: float, threshold: float) -> str | None:
    """``slower``/``faster`` where the ratio is beyond the threshold, else None."""
    if ratio > 1 + threshold:
        return "slower"
    if ratio < 1 / (1 + threshold):
        return "faster"
    return None


def judge(ratio: float, q: float, *, alpha: float, threshold: float, unconfirmed: str = "") -> tuple[str, str]:
    """(verdict, reason) from the q-value and the ratio; ``unconfirmed`` is added to the reason
    of a large change that is not significant (what would settle it)."""
    beyond = by_threshold(ratio, threshold)
    if q >= alpha:
        if beyond is not None:  # a large ratio the samples cannot confirm: say so, not "no change"
            return "undecided", f"{beyond} by {ratio:.3f}, but not significant (q {q:.2g}){unconfirmed}"
        return "no change", ""
    if beyond is None:
        return "undecided", f"significant, but within the {threshold:.0%} threshold"
    return beyond, ""


def gate_exit_code(
    regressed: bool, missing: Sequence[str], undecided: int, *, strict: bool, allow_missing: bool
) -> int:
    """The gate's exit status: 1 when something regressed, a base benchmark went missing
    (unless allowed) or, with ``strict``, a verdict is undecided; else 0."""
    failed = regressed or (bool(missing) and not allow_missing) or (strict and undecided > 0)
    return 1 if failed else 0
