"""A discrete-event simulation of the load test: the same Poisson arrivals and the same dynamic
batcher, with ``servers`` workers sharing one queue, each batch's service time drawn from the
times measured for its (padded) batch size.

The batcher's rule, here and in :mod:`.loadgen`: when a worker is free, it starts a batch as
soon as the queue holds ``max_batch`` requests or its oldest request has waited ``max_delay``,
and takes the oldest requests, up to ``max_batch``. The batch runs at the smallest prepared size
that holds it (padding), so its service time is one drawn from that size's measured times
after what ran before it on that worker (:mod:`.times`): a sleep of about its idle wait, where
that was longer than :data:`~.search.SPIN_S` (it sleeps on such waits), else the previous
batch's size.

Each batch draws its time independently. Replaying each pool's times in the order measured
(a trace-driven simulation, to carry the host's slow stretches: LeNet's back-to-back times at
batch 8 had a lag-1 autocorrelation of 0.46-0.63) was tried and read LeNet's p99 at 70% load
worse: within 20% of the load test's in 5 of 9 runs, against 7 of 9 for independent draws of
the same times (2026-12-04, AMD EPYC host). A slow stretch caught in a 0.5 s benchmark window
came back in every replay through it.
"""

from __future__ import annotations

import heapq
from bisect import bisect_right
from collections.abc import Mapping, Sequence

import numpy as np

from inference_scale.serving.search import (
    Policy,
    Probe,
    arrivals,
    latency_stats,
    padded_size,
    search_highest_rate,
)
from inference_scale.serving.times import ServiceTimes, before_key

__all__ = ["SIM_QUERIES", "simulate", "simulate_probe", "simulated_highest_rate"]

SIM_QUERIES = 20_000  # per simulated search probe: its p99 rests on 200 queries, not 6


def simulate(
    times: np.ndarray,
    service: ServiceTimes | Mapping[int, Sequence[float]],
    policy: Policy,
    *,
    servers: int = 1,
    seed: int = 0,
) -> np.ndarray:
    """Latency (completion minus arrival, seconds) of each request arriving at ``times``
    (sorted), served by ``servers`` workers sharing one batcher. ``service`` holds each
    prepared batch size's measured seconds per call; each batch draws one, seeded."""
    rng = np.random.default_rng(seed)
    times_of = ServiceTimes.of(service)
    sizes = times_of.sizes
    pools: dict[tuple[int, str], np.ndarray] = {}
    arr = [float(t) for t in times]
    n, head = len(arr), 0
    latency = np.empty(n)
    free = [(0.0, w) for w in range(servers)]  # (when each worker is next free, which)
    previous: list[int | None] = [None] * servers  # each worker's last batch size
    b, delay = policy.max_batch, policy.max_delay_s
    while head < n:
        t_free, worker = heapq.heappop(free)
        full_at = arr[head + b - 1] if head + b - 1 < n else float("inf")
        # The batch starts when a worker is free and the batch is full or its oldest timed out.
        start = max(t_free, arr[head], min(full_at, arr[head] + delay))
        k = min(b, bisect_right(arr, start, lo=head, hi=min(n, head + b)) - head)
        size = padded_size(k, sizes)
        key = (size, before_key(size, previous[worker], start - t_free))
        if key not in pools:
            pools[key] = np.asarray(times_of.draws(*key), dtype=float)
        pool = pools[key]
        finish = start + float(pool[rng.integers(len(pool))])
        latency[head : head + k] = finish - np.asarray(arr[head : head + k])
        head += k
        previous[worker] = size
        heapq.heappush(free, (finish, worker))
    return latency


def simulate_probe(
    rate: float,
    n: int,
    service: ServiceTimes | Mapping[int, Sequence[float]],
    policy: Policy,
    budget_ms: float,
    *,
    servers: int = 1,
    seed: int = 0,
    repeats: int = 1,
) -> Probe:
    """A simulated probe at ``rate`` with ``n`` queries: the arrivals the real probe with the
    same ``seed`` gets. With ``repeats``, its p50 and p99 are each the median of that many
    simulations of those arrivals, each drawing its service times with its own seed."""
    times = arrivals(rate, n, seed)
    stats = [
        latency_stats(simulate(times, service, policy, servers=servers, seed=seed + 1 + 1000 * r))
        for r in range(repeats)
    ]
    p50, p99 = (float(np.median(v)) for v in zip(*stats, strict=True))
    return Probe(rate=rate, p50_ms=p50, p99_ms=p99, queries=n, passed=p99 <= budget_ms)


def simulated_highest_rate(
    service: ServiceTimes | Mapping[int, Sequence[float]],
    policy: Policy,
    budget_ms: float,
    *,
    servers: int = 1,
    queries: int = SIM_QUERIES,
    seed: int = 0,
    tolerance: float = 0.01,
) -> tuple[float | None, list[Probe]]:
    """The simulator's highest rate under the budget, by the same search as the load test,
    starting from one worker's throughput at batch 1. None when even a lone request misses it."""
    times = ServiceTimes.of(service)
    one = times.median(times.sizes[0])
    if one * 1e3 > budget_ms:
        return None, []
    return search_highest_rate(
        lambda r: simulate_probe(r, queries, times, policy, budget_ms, servers=servers, seed=seed),
        start=0.5 * servers / one,
        max_probes=40,
        tolerance=tolerance,
    )
