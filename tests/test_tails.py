"""Tail percentiles against numpy.percentile, and the sample counts against LoadGen's published
minimums (64 rounds for p90, 662 for p99 at 99% confidence) and scipy's binomial CDF."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inference_scale.verdicts.tails import TailError, label, min_samples, percentiles, reason


def test_loadgen_minimums() -> None:
    # MLPerf LoadGen: 64 queries for a p90 and 662 for a p99 early-stopping estimate at 99%
    # confidence (mlperf.conf's MultiStream min_query_count = 662).
    assert min_samples(90) == 64
    assert min_samples(99) == 662
    assert min_samples(99, confidence=0.99) == 662


@pytest.mark.parametrize("q", [50, 75, 90, 95, 99, 99.9])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_min_samples_is_the_least_count_scipy_agrees_with(q: float, confidence: float) -> None:
    from scipy.stats import binom

    n = min_samples(q, confidence=confidence)
    p_over = 1 - q / 100  # a round above the q-th percentile
    # n rounds: at most one above it is unlikely (< 1 - confidence); with n - 1 rounds it is not
    assert binom.cdf(1, n, p_over) < 1 - confidence
    assert binom.cdf(1, n - 1, p_over) >= 1 - confidence


def test_min_samples_grows_with_the_percentile_and_the_confidence() -> None:
    counts = [min_samples(q) for q in (50, 90, 95, 99, 99.9)]
    assert counts == sorted(counts) and len(set(counts)) == len(counts)
    assert min_samples(99, confidence=0.9) < min_samples(99, confidence=0.99) < min_samples(99, confidence=0.999)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(min_value=0, max_value=1e3, allow_nan=False, allow_infinity=False), min_size=0, max_size=700),
    st.sampled_from([(50, 90, 99), (90,), (99, 50), (99.9,)]),
)
def test_percentiles_are_numpys_where_the_rounds_suffice(rounds: list[float], qs: tuple[float, ...]) -> None:
    got = percentiles(rounds, qs=qs)
    assert list(got) == list(qs)
    for q in qs:
        if len(rounds) >= min_samples(q):
            assert got[q] == float(np.percentile(np.asarray(rounds), q))
        else:
            assert got[q] is None


def test_percentiles_at_the_boundary() -> None:
    rounds = [float(i % 17) for i in range(662)]
    got = percentiles(rounds)
    assert got[99] == float(np.percentile(rounds, 99))
    assert percentiles(rounds[:-1])[99] is None
    assert percentiles(rounds[:64])[90] == float(np.percentile(rounds[:64], 90))
    assert percentiles(rounds[:63])[90] is None
    assert percentiles([]) == {50: None, 90: None, 99: None}


def test_reason_and_label() -> None:
    assert reason(99, 40) == "p99 needs 662 rounds, have 40"
    assert reason(90, 10) == "p90 needs 64 rounds, have 10"
    assert label(99.9) == "p99.9"


@pytest.mark.parametrize("q", [0, 100, -5, 150, math.nan, "90", True])
def test_bad_percentiles_are_refused(q: object) -> None:
    with pytest.raises(TailError) as err:
        min_samples(q)  # type: ignore[arg-type]
    assert isinstance(err.value, ValueError)


@pytest.mark.parametrize("bad", [[1.0, math.nan], [1.0, math.inf], ["1"], "123", 5])
def test_bad_rounds_are_refused(bad: object) -> None:
    with pytest.raises(TailError):
        percentiles(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("confidence", [0, 1, 1.5, math.nan])
def test_bad_confidence_is_refused(confidence: float) -> None:
    with pytest.raises(TailError):
        percentiles([1.0], confidence=confidence)


def _spin(seconds: float) -> object:
    def run() -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass

    return run


def test_tail_rounds_buy_a_p99_where_the_budget_affords_it_else_a_p90() -> None:
    from inference_scale.measure.suite import tail_rounds

    # 20 ms a call (or more, if descheduled): a p99 would take 13 s of a 4 s budget, so a p90's 64
    # rounds (max_time's 1 s holds 50 at most); 2 ms a call: 662 rounds fit in a 40 s budget even
    # at 60 ms a call, and max_time's 1 s holds 500 at most.
    assert tail_rounds(_spin(0.02), max_time=1.0, seconds=4.0) == min_samples(90)
    assert tail_rounds(_spin(0.002), max_time=1.0, seconds=40.0) == min_samples(99)
    # a fast call keeps pytest-benchmark's own count: 10 s of max_time at 0.1 ms a call (or at
    # up to 15 ms, if descheduled) holds more than a p99 needs
    assert tail_rounds(_spin(0.0001), max_time=10.0, seconds=4.0) > min_samples(99)
