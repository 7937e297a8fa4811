"""Tail latency with an honest sample count: p50, p90 and p99 of a record's raw rounds, each
given only where the rounds suffice. Torch-free (numpy only).

How many rounds suffice is MLPerf LoadGen's early-stopping rule (``loadgen/early_stopping.cc``
and ``PerformanceSummary::EarlyStopping`` in ``loadgen/results.cc``, github.com/mlcommons
/inference): with ``n`` queries of which ``t`` are above the latency bound ("overlatency"), the
chance of seeing at most ``t`` when a query is overlatency with probability ``1 - p`` is the
binomial CDF

    odds(h, t, p) = sum_{x=0..t} C(h+t, x) (1-p)^x p^(h+t-x)  ( = BetaRegularized[p, h, 1+t] ),

``h = n - t`` the queries under the bound. LoadGen finds the least ``h`` with
``odds(h, 1, p) < 1 - confidence`` (tolerance d = 0, t = 1: the largest round stands for the
tail) and asks for ``h + 1`` queries ("Need to process at least h_min + 1 queries"). At 99%
confidence that is 64 for p90 and 662 for p99, the minimums LoadGen's documentation gives;
they are computed here, not stored.

Percentiles are ``numpy.percentile``'s default (linear interpolation between order
statistics, Hyndman and Fan's definition 7).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from inference_scale.errors import InferenceScaleError

__all__ = ["DEFAULT_CONFIDENCE", "DEFAULT_QS", "TailError", "label", "min_samples", "percentiles", "reason"]

DEFAULT_QS: tuple[float, ...] = (50, 90, 99)
DEFAULT_CONFIDENCE = 0.99  # LoadGen's EarlyStopping: confidence = 0.99, tolerance = 0.0
_OVERLATENCY = 1  # LoadGen's t for the minimum query count
_MAX_SAMPLES = 1 << 40


class TailError(InferenceScaleError, ValueError):
    """A percentile outside (0, 100), a confidence outside (0, 1), or rounds that are not
    finite numbers."""


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TailError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    return float(value)


def _check_q(q: object) -> float:
    value = _number("percentile", q)
    if not 0 < value < 100:  # NaN fails this too
        raise TailError(f"percentile must be strictly between 0 and 100, got {q!r}")
    return value


def _check_confidence(confidence: object) -> float:
    value = _number("confidence", confidence)
    if not 0 < value < 1:
        raise TailError(f"confidence must be strictly between 0 and 1, got {confidence!r}")
    return value


def _log_odds(h: int, t: int, p: float) -> float:
    """log of the binomial CDF above: at most ``t`` overlatency queries in ``h + t``."""
    n = h + t
    log_p, log_q = math.log(p), math.log1p(-p)
    terms = [
        math.lgamma(n + 1) - math.lgamma(x + 1) - math.lgamma(n - x + 1) + x * log_q + (n - x) * log_p
        for x in range(t + 1)
    ]
    top = max(terms)
    return top + math.log(sum(math.exp(v - top) for v in terms))


def min_samples(q: float, *, confidence: float = DEFAULT_CONFIDENCE) -> int:
    """The least number of rounds for an early-stopping estimate of the ``q``-th percentile
    at ``confidence``: LoadGen's ``h_min + 1`` (see the module docstring). 64 for p90 and
    662 for p99 at 0.99."""
    p = _check_q(q) / 100.0
    limit = math.log1p(-_check_confidence(confidence))

    def passes(h: int) -> bool:  # the odds decrease in h, so the passing h form a ray
        return _log_odds(h, _OVERLATENCY, p) < limit

    hi = 1
    while not passes(hi):
        hi *= 2
        if hi > _MAX_SAMPLES:
            raise TailError(f"percentile {q!r} at confidence {confidence!r} needs more than {_MAX_SAMPLES} rounds")
    lo = hi // 2  # passes(lo) is False (or lo == 0)
    while hi - lo > 1:  # LoadGen's find_min_passing: a binary search for the least passing h
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if passes(mid) else (mid, hi)
    return hi + _OVERLATENCY


def label(q: float) -> str:
    """``p90``, ``p99``, ``p99.9``."""
    return f"p{_check_q(q):g}"


def _rounds(rounds: Sequence[float]) -> np.ndarray:
    if isinstance(rounds, (str, bytes)) or not hasattr(rounds, "__len__"):
        raise TailError(f"rounds must be a sequence of numbers, got {type(rounds).__name__}")
    values = [_number("a round", r) for r in rounds]
    if not all(math.isfinite(v) for v in values):
        raise TailError("rounds must be finite numbers (a NaN or inf round is a broken timer, not a latency)")
    return np.asarray(values, dtype=np.float64)


def percentiles(
    rounds: Sequence[float], *, qs: Sequence[float] = DEFAULT_QS, confidence: float = DEFAULT_CONFIDENCE
) -> dict[float, float | None]:
    """Each ``q`` of ``qs`` -> ``numpy.percentile(rounds, q)`` (linear), or None where there
    are fewer rounds than :func:`min_samples` asks for that ``q``."""
    values = _rounds(rounds)
    _check_confidence(confidence)
    out: dict[float, float | None] = {}
    for q in qs:
        enough = len(values) >= min_samples(q, confidence=confidence)
        out[q] = float(np.percentile(values, _check_q(q))) if enough else None
    return out


def reason(q: float, n: int, *, confidence: float = DEFAULT_CONFIDENCE) -> str:
    """Why a percentile cell reads ``-``: ``"p99 needs 662 rounds, have 40"``."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise TailError(f"a round count is a non-negative integer, got {n!r}")
    return f"{label(q)} needs {min_samples(q, confidence=confidence)} rounds, have {int(n)}"
