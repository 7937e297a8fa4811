"""This machine's peaks against measurements made here, independently of the project: a plain
``torch.mm`` and numpy's BLAS, timed in the test on the same thread count. Also the readers,
the roofline bound and the machine code of the throughput loops."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from inference_scale.measure import _simd
from inference_scale.measure.bounds import (
    BoundError,
    lower_bound_ms,
    ops_unit,
    peak_for_dtype,
    peaks_from,
    percent_of_peak,
)
from inference_scale.measure.machine import SECTION
from inference_scale.measure.peaks import CLOCK_SLACK, PeakOptionError, measure_peaks

THREADS = 1  # one thread: the figure least disturbed by whatever else shares this machine
N = 1024


@pytest.fixture(scope="module")
def peaks() -> dict:
    return measure_peaks(threads=THREADS, seconds=1.5)


MM_TRIES = 3


def _best_gflops(fn, work: float, seconds: float = 0.6) -> float:
    fn()
    best, end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        fn()
        best = max(best, work / (time.perf_counter() - start) / 1e9)
    return best


def test_torch_mm_figure_agrees_with_an_independent_timing(peaks: dict) -> None:
    # The independent timing brackets a fresh measurement, so that both see the same host: this
    # shared host's speed moves between states seconds long, and a figure from the module's
    # fixture, taken a minute earlier, read 69.7 GFLOP/s against 89.6 timed here (2026-12-04,
    # AMD EPYC host). Where the two independent timings themselves differ by over 10%, the host
    # moved during the measurement. A slow stretch can also fall inside the bracket alone: a
    # clean-clone .ci/run read 82.7 GFLOP/s between 92.4 and 93.2 (2026-12-06, AMD EPYC host).
    # So up to three tries: one that agrees passes; a wrong FLOP count or timer disagrees in every
    # steady try and fails; where no try was steady, the test skips, naming them.
    a, b = torch.randn(N, N), torch.randn(N, N)
    previous = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    tries: list[tuple[float, float, float]] = []
    steady: list[bool] = []  # per try: the bracket's two timings within 10% of each other
    try:
        for _ in range(MM_TRIES):
            before = _best_gflops(lambda: torch.mm(a, b), 2.0 * N**3)
            fresh = measure_peaks(threads=THREADS, seconds=1.5)
            after = _best_gflops(lambda: torch.mm(a, b), 2.0 * N**3)
            recorded = fresh["measured"]["fp32"]["torch.mm"]
            tries.append((recorded, before, after))
            steady.append(abs(before - after) <= 0.10 * min(before, after))
            plain = max(before, after)  # each is a best-of; the faster is the closer to the kernel's speed
            if steady[-1] and abs(recorded - plain) <= 0.10 * plain:
                break
        else:
            if not any(steady):
                pytest.skip(f"the host moved in every try: (recorded, before, after) GFLOP/s {tries}")
            pytest.fail(f"torch.mm's figure disagreed with its bracket in every steady try: {tries}")
    finally:
        torch.set_num_threads(previous)
    assert fresh["fp32_gflops"] >= recorded and peaks["fp32_gflops"] >= peaks["measured"]["fp32"]["torch.mm"]


def test_numpy_blas_does_not_beat_the_peak(peaks: dict) -> None:
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((N, N), dtype=np.float32), rng.standard_normal((N, N), dtype=np.float32)
    with threadpool_limits(THREADS):
        blas = _best_gflops(lambda: a @ b, 2.0 * N**3)
    assert blas <= peaks["fp32_gflops"], (blas, peaks["measured"]["fp32"])


def test_peaks_are_within_theoretical(peaks: dict) -> None:
    theory = peaks["theoretical"]
    for dtype, field in (("fp32", "fp32_gflops"), ("bf16", "bf16_gflops"), ("int8", "int8_gops")):
        measured = [v for v in peaks["measured"][dtype].values() if v is not None]
        assert measured and peaks[field] == max(measured)
        assert peaks["method"][dtype].split(" (")[0] in peaks["measured"][dtype]
        if theory[field] is not None:
            assert peaks[field] <= theory[field] * (1 + CLOCK_SLACK), (dtype, peaks[field], theory)
    assert peaks["above_theoretical"] == []
    assert peaks["bandwidth_gbs"] > 0 and peaks["bandwidth"]["array_bytes"] >= 64 << 20


def test_peaks_round_trip_through_a_saved_run(peaks: dict) -> None:
    info = json.loads(json.dumps({SECTION: {"peaks": peaks}}))
    read = peaks_from(info)
    assert read is not None
    for field in ("fp32_gflops", "bf16_gflops", "int8_gops", "bandwidth_gbs", "threads"):
        assert read[field] == pytest.approx(peaks[field])
    assert peak_for_dtype(read, "float32") == pytest.approx(peaks["fp32_gflops"] * 1e9)
    assert peak_for_dtype(read, "int8") == pytest.approx(peaks["int8_gops"] * 1e9)
    assert peak_for_dtype(read, "float16") is None
    assert (ops_unit("int8"), ops_unit("float32"), ops_unit("bfloat16")) == ("GOP/s", "GFLOP/s", "GFLOP/s")


@pytest.mark.parametrize("info", [{}, None, {SECTION: {}}, {SECTION: {"peaks": "fast"}}])
def test_older_runs_have_no_peaks(info: object) -> None:
    assert peaks_from(info) is None


def test_broken_figures_read_as_none() -> None:
    read = peaks_from({SECTION: {"peaks": {"fp32_gflops": math.nan, "int8_gops": -1, "bf16_gflops": True}}})
    assert read is not None
    assert (read["fp32_gflops"], read["int8_gops"], read["bf16_gflops"], read["threads"]) == (None, None, None, None)


def test_lower_bound_is_the_larger_of_compute_and_memory() -> None:
    # ResNet-50-like: 4.1 GMACs per sample, 100 MB of weights, a 200 GFLOP/s peak, 20 GB/s
    compute = 2 * 4.1e9 * 8 / 200e9 * 1e3
    rates = {"peak_ops_per_s": 200e9, "bandwidth_bytes_per_s": 20e9}
    got = lower_bound_ms(macs_per_sample=4.1e9, batch=8, bytes_read=1e8, **rates)
    assert got == pytest.approx(compute)
    memory = lower_bound_ms(macs_per_sample=1e3, batch=1, bytes_read=1e8, **rates)
    assert memory == pytest.approx(1e8 / 20e9 * 1e3)
    nothing = {"peak_ops_per_s": None, "bytes_read": None, "bandwidth_bytes_per_s": None}
    assert lower_bound_ms(macs_per_sample=1e6, batch=1, **nothing) is None


@pytest.mark.parametrize("bad", [math.nan, -1.0, math.inf, "1", True])
def test_lower_bound_refuses_bad_numbers(bad: object) -> None:
    with pytest.raises(BoundError) as err:
        lower_bound_ms(macs_per_sample=bad, batch=1, peak_ops_per_s=1e9, bytes_read=0, bandwidth_bytes_per_s=1e9)  # type: ignore[arg-type]
    assert isinstance(err.value, ValueError)


def test_percent_of_peak() -> None:
    assert percent_of_peak(50.0, 200.0) == pytest.approx(25.0)
    assert percent_of_peak(None, 200.0) is None
    assert percent_of_peak(50.0, None) is None
    assert percent_of_peak(50.0, 0.0) is None
    with pytest.raises(BoundError):
        percent_of_peak(math.nan, 1.0)


BAD_OPTIONS = [
    {"threads": 0},
    {"threads": True},
    {"threads": 1, "seconds": 0},
    {"threads": 1, "seconds": math.nan},
    {"threads": 1, "max_array_bytes": 10},
]


@pytest.mark.parametrize("kwargs", BAD_OPTIONS)
def test_bad_options_are_refused(kwargs: dict) -> None:
    with pytest.raises(PeakOptionError) as err:
        measure_peaks(**kwargs)
    assert isinstance(err.value, ValueError)


def test_machine_code_is_what_gnu_as_assembles() -> None:
    """Bytes from GNU as 2.40 (``as`` + ``objdump -d``) of the loops _simd's docstring describes."""
    zero = (
        "c5f857c0c5f057c9c5e857d2c5e057dbc5d857e4c5d057edc5c857f6c5c057ff"
        "c4413857c0c4413057c9c4412857d2c4412057dbc4411857e4c4411057ed"
    )
    fma512 = "".join(f"62{'d2' if d < 8 else '52'}1d48b8{0xC5 | ((d & 7) << 3):02x}" for d in range(12))
    assert _simd.machine_code("fma512").hex() == zero + fma512 + "48ffcf75b3c5f877c3"
    assert _simd.machine_code("vnni256").hex().startswith(zero + "c4c21d50c5c4c21d50cd")
    assert _simd.machine_code("bf16dp512").hex().startswith(zero + "62d21e4852c5")
    assert _simd.machine_code("amx_int8").hex() == (
        "c4e2784906c4e27b49c0c4e27b49c8c4e27b49d0c4e27b49d8c4e27b49e0c4e27b49e8"
        "c4e2515ec4c4e2515eccc4e2515ed4c4e2515edc48ffcf75e7c4e27849c0c3"
    )
    assert _simd.machine_code("clock").hex() == "480fafc0" * 8 + "48ffcf75dbc3"


def test_no_loop_runs_without_its_flags() -> None:
    assert _simd.usable_loops({}) == []
    assert set(_simd.usable_loops({"avx2": True, "fma": True})) <= {"fma256"}


def test_on_two_threads_the_loops_also_scale_their_one_thread_figure() -> None:
    peaks = measure_peaks(threads=2, seconds=1.0)
    cores = peaks["theoretical"]["cores"]
    assert peaks["threads"] == 2 and 1 <= cores <= 2
    fp32 = peaks["measured"]["fp32"]
    scaled = [k for k in fp32 if k.endswith(f"1-thread x {cores}")]
    assert scaled or not _simd.usable_loops({"avx512f": True, "avx2": True, "fma": True})
    theory = peaks["theoretical"]["fp32_gflops"]
    assert theory is None or peaks["fp32_gflops"] <= theory * (1 + CLOCK_SLACK)


def test_the_conv_paths_count_the_taps_inside_the_image() -> None:
    # Oracle: torch's own convolution of ones by ones with the same padding sums, over every
    # output, the taps that fall inside the image (one channel; the count scales by C_in x C_out).
    from inference_scale.measure import peaks as peaks_module

    c, hw, k = peaks_module._CONV
    inside = F.conv2d(torch.ones(1, 1, hw, hw, dtype=torch.float64), torch.ones(1, 1, k, k, dtype=torch.float64),
                      padding=k // 2).sum()  # fmt: skip
    assert peaks_module._conv_ops() == 2.0 * c * c * float(inside)
    assert float(inside) < hw * hw * k * k  # fewer than k x k a position: the padding's taps are not counted
