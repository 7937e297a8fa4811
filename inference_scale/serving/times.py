"""Service times: the seconds of the worker's step, per prepared batch size and per what ran just
before it, as the service-time benchmark measured them and the simulator draws them.

What ran before matters. On ResNet-50 ov-int8 (2026-12-02, Xeon VNNI host) a batch of 1 took
4.95 ms back to back, 5.37 ms right after a batch of 2 and 6.98 ms right after a batch of 8
(the bigger batch's activations and weights have left the caches); on LeNet a batch of 1 took
0.17 ms back to back and 0.25 ms right after the worker slept. How long it slept matters too,
where the weights outgrow the core's caches: ResNet-50 int8-static's batch of 1 took 10.2 ms
back to back, 10.5 ms after a 2 ms sleep, 10.9 ms after 10 ms and 11.8 ms after 20 ms
(2026-12-03, Xeon VNNI host; LeNet's took the same after 0.1 or 2 ms). A load test mixes all
of these, so each batch in the simulator draws from the times taken after what preceded it there:

* :data:`SAME`: the same size (the benchmark's ordinary back-to-back rounds);
* a spin (the worker spins on the clock through waits up to :data:`~.search.SPIN_S`), keyed by
  the nearest of :data:`SPIN_GAPS_MS`; waits under half the shortest count as none;
* a sleep (the worker sleeps on longer waits), keyed by the nearest of :data:`IDLE_GAPS_MS`
  (:func:`sleep_key`);
* ``"b<k>"``: a step at another size ``k``.

A spin matters as well: LeNet's batch of 8 took 0.506 ms back to back, 0.513 ms after a 0.1 ms
spin, 0.543 ms after 0.3 ms and 0.557 ms after 0.6 ms (medians of 2,000 calls each, the four
interleaved in blocks of 50 so that the host's drift falls on all alike; 2026-12-04, AMD EPYC
host). At 70% load most of the worker's waits are such spins, and with back-to-back times
alone the load test's batches of 8 ran a median 1.04x (0.96-1.27x over 17 runs) what the
simulator drew for them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from inference_scale.serving.search import SPIN_S

__all__ = [
    "IDLE_GAPS_MS", "SAME", "SLEEP", "SLEEPS", "SPINS", "SPIN_GAPS_MS", "WAITS", "ServiceTimes", "before_key",
    "describe", "sleep_key", "wait_key",
]  # fmt: skip

SAME = "same"
# The worker's sleeps the service times are also taken after, a factor of 4 apart: a sleep of
# any length is drawn from the nearest (a geometric bucket: up to 4 ms from 2 ms, up to 16 ms
# from 8, longer from 32). At the load test's 70% check, ResNet-50's idle waits run 5-30 ms.
IDLE_GAPS_MS = (2, 8, 32)


def sleep_key(gap_ms: float) -> str:
    """The key of a sleep of ``gap_ms`` before a batch: that of the nearest of :data:`IDLE_GAPS_MS`."""
    nearest = next((g for g in IDLE_GAPS_MS if gap_ms <= 2 * g), IDLE_GAPS_MS[-1])
    return f"sleep{nearest}ms"


SLEEPS = {sleep_key(g): g for g in IDLE_GAPS_MS}  # each sleep key and the gap (ms) it is timed after
SLEEP = sleep_key(IDLE_GAPS_MS[0])  # the shortest; records before the buckets had one, "sleep"
_LEGACY_SLEEP = "sleep"
# The spins the service times are also taken after, a factor of 2 apart, all within SPIN_S: a
# spin up to 0.5 ms draws from the 0.25 ms pool, a longer one from the 0.5 ms pool.
SPIN_GAPS_MS = (0.25, 0.5)  # all under SPIN_S, all shorter than IDLE_GAPS_MS (tests/test_serving.py)
_SPIN_KEYS = {g: f"spin{g:g}ms" for g in SPIN_GAPS_MS}
SPINS = {key: g for g, key in _SPIN_KEYS.items()}
WAITS = {**SPINS, **SLEEPS}  # every wait key and its gap (ms), shortest first


def wait_key(gap_ms: float) -> str:
    """The key of a wait of ``gap_ms`` (at least half the shortest spin) before a batch: the
    nearest spin's, or over :data:`~.search.SPIN_S` the nearest sleep's."""
    if gap_ms > SPIN_S * 1e3:
        return sleep_key(gap_ms)
    return _SPIN_KEYS[next((g for g in SPIN_GAPS_MS if gap_ms <= 2 * g), SPIN_GAPS_MS[-1])]


def before_key(size: int, previous: int | None, idle_s: float) -> str:
    """What ran before a batch of ``size``: a wait (``idle_s`` of at least half the shortest
    spin: :func:`wait_key`), the same size (or nothing yet), or ``b<k>``."""
    if idle_s * 1e3 >= SPIN_GAPS_MS[0] / 2:
        return wait_key(idle_s * 1e3)
    return SAME if previous in (None, size) else f"b{previous}"


def describe(size: int, before: str) -> str:
    """``b<size>`` and what ran before it, in words: "b1", "b1 after sleeping 8 ms", "b1 after
    spinning 0.25 ms", "b1 after b4"."""
    if before == SAME:
        return f"b{size}"
    if before in WAITS:
        return f"b{size} after {'sleeping' if before in SLEEPS else 'spinning'} {WAITS[before]:g} ms"
    return f"b{size} after {before}"


@dataclass(frozen=True)
class ServiceTimes:
    """Measured seconds per call, keyed by (batch size, what ran before: :func:`before_key`).
    Every size has :data:`SAME`. A (size, before) never measured draws from the next shorter
    wait that was, and failing that from :data:`SAME`."""

    rounds: Mapping[tuple[int, str], Sequence[float]]

    @classmethod
    def of(cls, service: ServiceTimes | Mapping[int, Sequence[float]]) -> ServiceTimes:
        """``service`` itself, or a plain mapping of size to seconds taken as back to back."""
        if isinstance(service, ServiceTimes):
            return service
        return cls({(size, SAME): times for size, times in service.items()})

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(sorted(size for size, before in self.rounds if before == SAME))

    def draws(self, size: int, before: str = SAME) -> Sequence[float]:
        """The seconds a batch of ``size`` after ``before`` draws from."""
        tried = [k for k, g in WAITS.items() if g <= WAITS[before]][::-1] if before in WAITS else [before]
        for key in tried:
            if self.rounds.get((size, key)):
                return self.rounds[(size, key)]
        return self.rounds[(size, SAME)]

    def median(self, size: int, before: str = SAME) -> float:
        return float(np.median(self.draws(size, before)))

    def up_to(self, max_batch: int) -> ServiceTimes:
        """The sizes a batcher of ``max_batch`` runs at."""
        return ServiceTimes({key: v for key, v in self.rounds.items() if key[0] <= max_batch})

    def medians_ms(self) -> dict[str, dict[str, float]]:
        """The median of each measured pool in ms, nested as :meth:`to_record` nests them."""
        return {
            size: {before: float(np.median(t)) * 1e3 for before, t in by.items()}
            for size, by in self.to_record().items()
        }

    def to_record(self) -> dict[str, dict[str, list[float]]]:
        """The serve JSON's ``service_s``: size -> what ran before -> seconds."""
        out: dict[str, dict[str, list[float]]] = {}
        for (size, before), times in sorted(self.rounds.items()):
            out.setdefault(str(size), {})[before] = [float(t) for t in times]
        return out

    @classmethod
    def from_record(cls, service_s: Mapping[str, Any]) -> ServiceTimes:
        """The inverse of :meth:`to_record`. Older records read too: a size mapped to a bare list
        (back to back), and the one sleep of 2 ms keyed "sleep"."""
        rounds: dict[tuple[int, str], Sequence[float]] = {}
        for size, entry in service_s.items():
            for before, times in entry.items() if isinstance(entry, Mapping) else [(SAME, entry)]:
                rounds[(int(size), SLEEP if before == _LEGACY_SLEEP else before)] = times
        return cls(rounds)
