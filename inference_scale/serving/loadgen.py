"""The real load test, in one process, on this machine only: Poisson arrivals, a dynamic
batcher (the rule in :mod:`.simulate`) and one worker thread that runs the state's prepared
callable. A request's latency is its completion minus its scheduled arrival (as in MLPerf
LoadGen: a late batcher counts against the system, not for it).

The arrival generator is the seeded schedule itself: the worker admits every request whose
arrival time has passed on the clock. LoadGen issues queries from a C++ thread that never holds
Python's interpreter lock; a Python generator thread would, and on LeNet it tripled the time
per batch (0.14 ms timed alone, 0.41 ms beside a generator thread at 6000 q/s, on this 2-core
host), charging the lock to the model. Waits under a millisecond spin on the clock (a sleep
overshoots by tens of microseconds); longer ones sleep on the stop flag.

Every probe is bounded: ``n`` queries and ``max_seconds``. The worker checks one stop flag; the
main thread waits on it in short slices, so Ctrl-C (KeyboardInterrupt) sets the flag and joins
the worker before it propagates: nothing is left running.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_right
from collections.abc import Callable, Mapping

import numpy as np
import torch

from inference_scale.serving.search import Policy, Probe, arrivals, latency_stats, padded_size

__all__ = ["Runners", "batch_overhead_seconds", "gather", "run_probe"]

# Each prepared batch size's callable factory: given a batch (fp32, CPU), the zero-arg call.
Runners = Mapping[int, Callable[[tuple[torch.Tensor, ...]], Callable[[], object]]]
_JOIN_SLICE_S = 0.05
_SPIN_S = 1e-3


def gather(pool: tuple[torch.Tensor, ...], head: int, k: int, size: int) -> tuple[torch.Tensor, ...]:
    """The batch of requests ``head .. head + k - 1`` (each one row of ``pool``, cycling),
    padded to ``size`` rows by repeating the last: what the worker assembles before each call."""
    rows = int(pool[0].shape[0])  # pool: the model's inputs (a tuple of tensors), one request a row
    idx = torch.tensor([i % rows for i in range(head, head + k)] + [(head + k - 1) % rows] * (size - k))
    return tuple(t.index_select(0, idx) for t in pool)


def batch_overhead_seconds(
    runners: Runners,
    pool: tuple[torch.Tensor, ...],
    *,
    pairs: int = 200,
    min_pairs: int = 5,
    seconds: float = 2.0,
) -> dict[int, float]:
    """Per prepared size, what serving a fresh batch costs over the benchmark's call: the
    median of the worker's whole step (:func:`gather`, building the runner, which lays the
    batch out, and the call) less the median call on one reused input, the benchmark's way.
    The two are interleaved, ``pairs`` of them (at least ``min_pairs``, else until ``seconds``).
    On LeNet at batch 8 (2026-12-02, Xeon VNNI host) the step took 0.371 ms and the reused
    call 0.320 ms: the assembly alone is 9 us, the rest is the call on a freshly made tensor;
    left out, the simulator read the highest rate 10-23% high."""
    out = {}
    for size, make in runners.items():
        reused = make(gather(pool, 0, size, size))
        steps, calls = [], []
        start = time.perf_counter()
        for i in range(pairs):
            if i >= min_pairs and time.perf_counter() - start > seconds:
                break
            t0 = time.perf_counter()
            reused()
            t1 = time.perf_counter()
            make(gather(pool, i * size, size, size))()
            t2 = time.perf_counter()
            calls.append(t1 - t0)
            steps.append(t2 - t1)
        out[size] = max(0.0, float(np.median(steps)) - float(np.median(calls)))
    return out


def _wait_until(at: float, stop: threading.Event) -> None:
    """Return at ``at`` (perf_counter seconds), or as soon as ``stop`` is set."""
    while not stop.is_set():
        left = at - time.perf_counter()
        if left <= 0:
            return
        if left > _SPIN_S:
            stop.wait(min(left - _SPIN_S / 2, _JOIN_SLICE_S))


def _worker(
    schedule: list[float],
    t0: float,
    pool: tuple[torch.Tensor, ...],
    runners: Runners,
    policy: Policy,
    stop: threading.Event,
    finish: np.ndarray,
    threads: int,
    service: list[tuple[int, float]],
) -> None:
    torch.set_num_threads(threads)  # the intra-op setting `bench` times under, in this thread too
    sizes = tuple(sorted(runners))
    n, head, b = len(schedule), 0, policy.max_batch
    while head < n and not stop.is_set():
        # Ready when the batch is full or its oldest request has waited max_delay.
        full_at = schedule[head + b - 1] if head + b - 1 < n else float("inf")
        _wait_until(t0 + max(schedule[head], min(full_at, schedule[head] + policy.max_delay_s)), stop)
        if stop.is_set():
            return
        now = time.perf_counter() - t0
        k = min(b, bisect_right(schedule, now, lo=head, hi=min(n, head + b)) - head)
        size = padded_size(k, sizes)
        started = time.perf_counter()  # the batch's service: assembling it, laying it out, the call
        runners[size](gather(pool, head, k, size))()
        done = time.perf_counter()
        service.append((size, done - started))
        finish[head : head + k] = done
        head += k


def run_probe(
    runners: Runners,
    pool: tuple[torch.Tensor, ...],
    policy: Policy,
    rate: float,
    n: int,
    budget_ms: float,
    *,
    seed: int,
    threads: int,
    max_seconds: float,
) -> tuple[Probe, list[tuple[int, float]]]:
    """Offer ``n`` Poisson queries at ``rate`` per second (arrivals seeded by ``seed``); each
    is one sample of ``pool``. Returns the probe and each batch's (prepared size, seconds).
    A probe that has not served every query after ``max_seconds`` stops and fails."""
    schedule = arrivals(rate, n, seed)
    stop = threading.Event()
    finish = np.full(n, np.nan)
    service: list[tuple[int, float]] = []
    t0 = time.perf_counter() + 0.005  # the worker starts before the first arrival
    work = threading.Thread(
        target=_worker,
        args=([float(t) for t in schedule], t0, pool, runners, policy, stop, finish, threads, service),
        name="serve-worker",
        daemon=True,  # never keeps the interpreter alive; it is joined below in any case
    )
    deadline = t0 + max_seconds
    try:
        work.start()
        while work.is_alive() and time.perf_counter() < deadline:
            work.join(_JOIN_SLICE_S)
    finally:
        stop.set()
        if work.ident is not None:
            work.join()
    served = ~np.isnan(finish)
    complete = bool(served.all())
    p50, p99 = latency_stats(finish - (t0 + schedule)) if complete else (float("nan"), float("inf"))
    return Probe(rate=rate, p50_ms=p50, p99_ms=p99, queries=n, passed=complete and p99 <= budget_ms,
                 complete=complete), service  # fmt: skip
