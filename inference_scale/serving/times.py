"""Service times: the seconds of the worker's step, per prepared batch size and per what ran just
before it, as the service-time benchmark measured them and the simulator draws them.

What ran before matters. On ResNet-50 ov-int8 (2026-12-02, Xeon VNNI host) a batch of 1 took
4.95 ms back to back, 5.37 ms right after a batch of 2 and 6.98 ms right after a batch of 8
(the bigger batch's activations and weights have left the caches); on LeNet a batch of 1 took
0.17 ms back to back and 0.25 ms right after the worker slept. A load test mixes all three, so
each batch in the simulator draws from the times taken after what preceded it there:

* :data:`SAME`: the same size (the benchmark's ordinary back-to-back rounds);
* :data:`SLEEP`: the worker's sleep (it sleeps on waits over :data:`~.search.SPIN_S`);
* ``"b<k>"``: a step at another size ``k``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["SAME", "SLEEP", "ServiceTimes", "before_key"]

SAME, SLEEP = "same", "sleep"


def before_key(size: int, previous: int | None, slept: bool) -> str:
    """What ran before a batch of ``size``: a sleep, the same size (or nothing yet), or ``b<k>``."""
    if slept:
        return SLEEP
    return SAME if previous in (None, size) else f"b{previous}"


@dataclass(frozen=True)
class ServiceTimes:
    """Measured seconds per call, keyed by (batch size, what ran before: :func:`before_key`).
    Every size has :data:`SAME`; a (size, before) never measured draws from :data:`SAME`."""

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
        return self.rounds.get((size, before)) or self.rounds[(size, SAME)]

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
        """The inverse of :meth:`to_record` (a size mapped to a bare list: back to back)."""
        rounds: dict[tuple[int, str], Sequence[float]] = {}
        for size, entry in service_s.items():
            for before, times in entry.items() if isinstance(entry, Mapping) else [(SAME, entry)]:
                rounds[(int(size), before)] = times
        return cls(rounds)
