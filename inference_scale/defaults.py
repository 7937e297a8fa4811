"""The one default of each option (benchmark, gate and storage), in a module that imports nothing, so the plan
(:mod:`.plan`), the runner's options (:mod:`.suite`) and every adapter read them without an
import cycle."""

from __future__ import annotations

from typing import Any

__all__ = ["DEFAULTS", "DEFAULT_BATCHES", "DEFAULT_STATES"]

DEFAULTS: dict[str, Any] = {
    "device": "cpu",
    "threads": 1,
    "seeds": 3,
    "cuda_events": 0,
    "reference_seconds": 0.5,
    "compile": True,
    "all_int8": False,
    # the gates of compare, ab, history and the HTML report
    "alpha": 0.01,  # significance level of every verdict
    "threshold": 0.10,  # the relative change that matters
    "accuracy_drop_points": 0.5,  # accuracy points a new run may lose before the gate fails
    "storage": ".benchmarks",  # pytest-benchmark's storage folder
    "memory": False,  # probe each case's memory and cold start in a fresh process
    "memory_timeout_s": 600.0,  # a probe child is killed after this (a cold inductor compile takes minutes)
    "tail": False,  # take enough rounds for p90/p99
    "tail_seconds": 4.0,  # the time budget of one case's tail rounds (at least a p90's 64 rounds are taken)
    "ab_block_time_s": 0.25,  # ab: seconds of rounds per benchmark in one block of a side
    # serve: the longest one load-test probe may offer queries for. A p99 needs 662 queries
    # however slow the rate, so a rate under 662 / this is not load-tested (ResNet-50 fp32 at
    # p99 <= 100 ms sustains well under 1 q/s on 2 cores: one valid probe would take over 10 min).
    "max_probe_s": 60.0,
    # serve: without --max-batch, each state is prepared at 1, 2, 4, ... up to this size and
    # load-tested at the max batch the simulator rates highest; a request waits at most
    # max_delay_ms for its batch to fill (Triton's max_queue_delay).
    "serve_max_batch": 8,
    "serve_max_delay_ms": 2.0,
}

# What `bench` and the plugin run for a model no grid names.
DEFAULT_STATES: tuple[str, ...] = ("fp32", "channels-last", "bf16", "int8-static", "int8-dynamic", "prune-channels-50")
DEFAULT_BATCHES: tuple[int, ...] = (1, 8)
