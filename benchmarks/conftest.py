"""Benchmark fixtures: thread control, the device, and the session's model cache."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from benchmarks._harness import Zoo
from inference_scale.runtime import threads


@pytest.fixture(scope="session")
def bench_threads(pytestconfig: pytest.Config) -> Iterator[int]:
    """Pin intra-op threads for the whole session (default 1), restoring them afterwards."""
    n = int(pytestconfig.getoption("--threads"))
    with threads(n):
        yield n


@pytest.fixture(scope="session")
def bench_device(pytestconfig: pytest.Config) -> str:
    return str(pytestconfig.getoption("--device"))


@pytest.fixture(scope="session")
def zoo() -> Zoo:
    return Zoo()
