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

import gc
import itertools
import threading
import time
from bisect import bisect_right
from collections.abc import Callable, Mapping

import numpy as np
import torch

from inference_scale.serving.search import SPIN_S, Policy, Probe, arrivals, latency_stats, padded_size
from inference_scale.serving.times import before_key

__all__ = ["Runners", "gather", "run_probe", "serving_step", "wait_until"]

# Each prepared batch size's callable factory: given a batch (fp32, CPU), the zero-arg call.
Runners = Mapping[int, Callable[[tuple[torch.Tensor, ...]], Callable[[], object]]]
_JOIN_SLICE_S = 0.05


def gather(pool: tuple[torch.Tensor, ...], head: int, k: int, size: int) -> tuple[torch.Tensor, ...]:
    """The batch of requests ``head .. head + k - 1`` (each one row of ``pool``, cycling),
    padded to ``size`` rows by repeating the last: what the worker assembles before each call."""
    rows = int(pool[0].shape[0])  # pool: the model's inputs (a tuple of tensors), one request a row
    idx = torch.tensor([i % rows for i in range(head, head + k)] + [(head + k - 1) % rows] * (size - k))
    return tuple(t.index_select(0, idx) for t in pool)


def serving_step(
    make: Callable[[tuple[torch.Tensor, ...]], Callable[[], object]], pool: tuple[torch.Tensor, ...], size: int
) -> Callable[[], object]:
    """The worker's step on a full batch of ``size``, as the load test runs it: the next
    ``size`` requests of ``pool`` gathered (:func:`gather`), laid out by ``make`` (a prepared
    runner) and called. Each call serves a fresh batch. The service times are taken on this,
    not on one reused input: on LeNet at batch 8 (2026-12-02, Xeon VNNI host) the step took
    0.371 ms and a call on a reused input 0.320 ms (the gather alone is 9 us; the rest is the
    call on a freshly made tensor), and from the reused call the simulator read the highest
    rate 10-23% high."""
    heads = itertools.count(0, size)

    def step() -> object:
        return make(gather(pool, next(heads), size, size))()

    return step


def wait_until(at: float, stop: threading.Event) -> None:
    """Return at ``at`` (perf_counter seconds), or as soon as ``stop`` is set."""
    while not stop.is_set():
        left = at - time.perf_counter()
        if left <= 0:
            return
        if left > SPIN_S:
            stop.wait(min(left - SPIN_S / 2, _JOIN_SLICE_S))


def _worker(
    schedule: list[float],
    t0: float,
    pool: tuple[torch.Tensor, ...],
    runners: Runners,
    policy: Policy,
    stop: threading.Event,
    finish: np.ndarray,
    threads: int,
    service: list[tuple[int, float, str]],
) -> None:
    torch.set_num_threads(threads)  # the intra-op setting `bench` times under, in this thread too
    sizes = tuple(sorted(runners))
    n, head, b = len(schedule), 0, policy.max_batch
    previous: int | None = None
    while head < n and not stop.is_set():
        # Ready when the batch is full or its oldest request has waited max_delay.
        full_at = schedule[head + b - 1] if head + b - 1 < n else float("inf")
        ready = t0 + max(schedule[head], min(full_at, schedule[head] + policy.max_delay_s))
        idle = ready - time.perf_counter()  # wait_until sleeps through a wait over SPIN_S
        wait_until(ready, stop)
        if stop.is_set():
            return
        now = time.perf_counter() - t0
        k = min(b, bisect_right(schedule, now, lo=head, hi=min(n, head + b)) - head)
        size = padded_size(k, sizes)
        started = time.perf_counter()  # the batch's service: assembling it, laying it out, the call
        runners[size](gather(pool, head, k, size))()
        done = time.perf_counter()
        service.append((size, done - started, before_key(size, previous, idle)))
        previous = size
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
) -> tuple[Probe, list[tuple[int, float, str]]]:
    """Offer ``n`` Poisson queries at ``rate`` per second (arrivals seeded by ``seed``); each
    is one sample of ``pool``. Returns the probe and each batch's (prepared size, seconds,
    what ran before it: :func:`~.times.before_key`).
    A probe that has not served every query after ``max_seconds`` stops and fails."""
    schedule = arrivals(rate, n, seed)
    stop = threading.Event()
    finish = np.full(n, np.nan)
    service: list[tuple[int, float, str]] = []
    t0 = time.perf_counter() + 0.005  # the worker starts before the first arrival
    work = threading.Thread(
        target=_worker,
        args=([float(t) for t in schedule], t0, pool, runners, policy, stop, finish, threads, service),
        name="serve-worker",
        daemon=True,  # never keeps the interpreter alive; it is joined below in any case
    )
    deadline = t0 + max_seconds
    # A production Python server freezes its start-up heap so that a full collection walks only
    # what serving allocates (gc.freeze, in the gc module's docs). This process holds about
    # 710,000 objects from torch's imports, whose full collection took 193 ms (LeNet,
    # 2026-12-02, Xeon VNNI host): one inside a probe would be charged to the model.
    gc.freeze()
    try:
        work.start()
        while work.is_alive() and time.perf_counter() < deadline:
            work.join(_JOIN_SLICE_S)
    finally:
        stop.set()
        if work.ident is not None:
            work.join()
        gc.unfreeze()
    served = ~np.isnan(finish)
    complete = bool(served.all())
    p50, p99 = latency_stats(finish - (t0 + schedule)) if complete else (float("nan"), float("inf"))
    longest = max((sec for _, sec, _ in service), default=None)
    return Probe(rate=rate, p50_ms=p50, p99_ms=p99, queries=n, passed=complete and p99 <= budget_ms,
                 complete=complete, longest_batch_ms=None if longest is None else longest * 1e3), service  # fmt: skip
