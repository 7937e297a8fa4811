"""The arithmetic every probe shares: the batching policy, Poisson arrivals, percentiles, the
queries a probe needs for its p99 to mean something, and MLPerf LoadGen's Server-scenario search
(double the offered rate until the latency bound fails, then bisect), used on the real load test
and on the simulator alike."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import binom

from inference_scale.defaults import DEFAULTS
from inference_scale.errors import InferenceScaleError, InvalidValueError

__all__ = [
    "PERCENTILE",
    "SPIN_S",
    "Policy",
    "Probe",
    "ServingError",
    "arrivals",
    "batch_sizes",
    "check_budget",
    "check_words",
    "latency_stats",
    "min_queries",
    "padded_size",
    "policy_words",
    "search_highest_rate",
    "steady",
]

PERCENTILE = 0.99  # the latency bound is on the 99th percentile (LoadGen's Server scenario)
CONFIDENCE = 0.99  # how sure a passing probe is that the true p99 is within the bound
TOLERATED_OVER = 1  # queries over the bound a probe may see and still be sure (early stopping)
BISECT_TOLERANCE = 0.05  # stop bisecting when the bracket is this narrow (relative)
# A repeated probe is steady when its last 3 p99s are within 10% of each other: Triton
# perf_analyzer's rule and default (--stability-percentage 10 over the recent 3 measurements,
# at most --max-trials 10).
STEADY_LAST, STEADY_WITHIN, STEADY_MAX_TRIALS = 3, 0.10, 10
# The load test's worker spins on waits up to this long and sleeps on longer ones (a sleep
# overshoots by tens of microseconds); a call after a sleep is slower, and the simulator draws
# such batches from the service times taken after one (serving.service).
SPIN_S = 1e-3


class ServingError(InferenceScaleError, ValueError):
    """A serving option out of range; the message names it and the valid values."""


def check_budget(p99_ms: float) -> float:
    """``p99_ms`` if it is a finite number > 0, else :class:`ServingError`."""
    if isinstance(p99_ms, bool) or not isinstance(p99_ms, (int, float)) or not math.isfinite(p99_ms) or p99_ms <= 0:
        raise ServingError(f"--p99-ms {p99_ms!r} is not valid; give a latency budget in ms > 0, such as 100")
    return float(p99_ms)


@dataclass(frozen=True)
class Policy:
    """A dynamic batcher's policy: run a batch when it holds ``max_batch`` requests or its
    oldest request has waited ``max_delay_ms`` (Triton's ``max_queue_delay``)."""

    max_batch: int = DEFAULTS["serve_max_batch"]
    max_delay_ms: float = DEFAULTS["serve_max_delay_ms"]

    def __post_init__(self) -> None:
        if isinstance(self.max_batch, bool) or not isinstance(self.max_batch, int) or self.max_batch < 1:
            raise ServingError(f"--max-batch {self.max_batch!r} is not valid; give an integer >= 1, such as 8")
        d = self.max_delay_ms
        if isinstance(d, bool) or not isinstance(d, (int, float)) or not math.isfinite(d) or d < 0:
            raise ServingError(f"--max-delay-ms {d!r} is not valid; give a number of ms >= 0, such as 2")

    @property
    def max_delay_s(self) -> float:
        return self.max_delay_ms / 1e3

    @property
    def label(self) -> str:
        return f"max batch {self.max_batch}, max delay {self.max_delay_ms:g} ms"


def policy_words(policy: Mapping[str, Any]) -> str:
    """A serve record's ``policy`` in words, for the console and the plot."""
    if policy.get("max_batch_chosen"):  # absent from older records
        return f"max batch per state (the simulator's best up to {policy['max_batch']}), max delay " \
               f"{policy['max_delay_ms']:g} ms"  # fmt: skip
    return f"max batch {policy['max_batch']}, max delay {policy['max_delay_ms']:g} ms"


def check_words(check: Mapping[str, Any]) -> str:
    """What a record's check at 70% is the median of, in words (records before the rule had
    no ``steady``: the median of every probe)."""
    n, within = len(check.get("trials") or [0]), check.get("steady_within", STEADY_WITHIN)
    if check.get("steady"):
        return f"medians of the last {len(check['seeds'])} of {n} probes, steady within {within:.0%}"
    if "steady" in check:
        return f"medians of {n} probes, not steady: no {STEADY_LAST} in a row within {within:.0%}"
    return f"medians of {n} probes"


def batch_sizes(max_batch: int) -> tuple[int, ...]:
    """The batch sizes that are prepared and timed: powers of two below ``max_batch``, and
    ``max_batch`` itself. Compiled and int8 states are specialized to one static batch size, so a
    partial batch is padded up to the next of these (:func:`padded_size`), in the load test and in
    the simulator alike; nothing is interpolated."""
    sizes = {max_batch}
    size = 1
    while size < max_batch:
        sizes.add(size)
        size *= 2
    return tuple(sorted(sizes))


def padded_size(k: int, sizes: tuple[int, ...]) -> int:
    """The smallest prepared size that holds ``k`` requests."""
    for size in sizes:
        if size >= k:
            return size
    raise InvalidValueError(f"a batch of {k} is larger than the largest prepared size {sizes[-1]}")


def min_queries(percentile: float = PERCENTILE, confidence: float = CONFIDENCE, over: int = TOLERATED_OVER) -> int:
    """The fewest queries a probe needs so that, seeing at most ``over`` queries above the
    bound, it is ``confidence`` sure the true ``percentile`` latency is within it: the smallest
    n with P(Binomial(n, 1 - percentile) <= over) <= 1 - confidence. This is MLPerf LoadGen's
    early-stopping rule (docs/serving.md); for p99, 99% confidence and one query over, n = 662."""
    p_over, n = 1.0 - percentile, over + 1
    while binom.cdf(over, n, p_over) > 1.0 - confidence:
        n += 1
    return n


def arrivals(rate: float, n: int, seed: int) -> np.ndarray:
    """``n`` Poisson arrival times (seconds from 0) at ``rate`` per second: exponential gaps."""
    gaps = np.random.default_rng(seed).exponential(1.0 / rate, n)
    return np.cumsum(gaps) - gaps[0]  # the first request arrives at 0


def latency_stats(latencies_s: np.ndarray) -> tuple[float, float]:
    """(p50, p99) in milliseconds."""
    p50, p99 = np.percentile(latencies_s, [50.0, 100.0 * PERCENTILE])
    return float(p50) * 1e3, float(p99) * 1e3


@dataclass(frozen=True)
class Probe:
    """One probe: the offered rate, its p50 and p99 (ms), its query count and whether it met
    the budget (``complete``: every query was served within the probe's time bound). A real
    probe also gives its longest batch (ms): a host stall shows there, as a batch far over its
    size's median."""

    rate: float
    p50_ms: float
    p99_ms: float
    queries: int
    passed: bool
    complete: bool = True
    longest_batch_ms: float | None = None


def steady(values: list[float], *, last: int = STEADY_LAST, within: float = STEADY_WITHIN) -> bool:
    """Whether the ``last`` values (a repeated probe's p99s, in the order run) agree: their
    max / min is at most 1 + ``within``. Triton perf_analyzer's stability rule
    (``--stability-percentage``, default 10%, on the most recent 3 measurements)."""
    tail = values[-last:]
    return len(tail) == last and all(math.isfinite(v) and v > 0 for v in tail) and max(tail) <= (1 + within) * min(tail)


def search_highest_rate(
    probe: Callable[[float], Probe],
    *,
    start: float,
    max_probes: int,
    tolerance: float = BISECT_TOLERANCE,
    min_rate: float = 0.0,
) -> tuple[float | None, list[Probe]]:
    """LoadGen's Server-scenario search: from ``start``, double the rate until a probe fails,
    then bisect between the last pass and the first fail until they are within ``tolerance``.
    A first probe that fails halves instead, until one passes or the rate falls below
    ``min_rate`` (the slowest a probe can run within its time bound). Returns the highest
    passing rate (None if none passed within ``max_probes``) and every probe in order."""
    done: list[Probe] = []
    lo: float | None = None
    hi: float | None = None
    rate = max(start, min_rate)
    while len(done) < max_probes and rate >= min_rate:
        result = probe(rate)
        done.append(result)
        if result.passed:
            lo = rate
        else:
            hi = rate
        if lo is not None and hi is not None:
            if hi / lo - 1.0 <= tolerance:
                break
            rate = (lo + hi) / 2.0
        elif lo is None:
            rate /= 2.0
        else:
            rate *= 2.0
    return lo, done
