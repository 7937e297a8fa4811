"""A reference workload that measures the machine, not the code: fp32 GEMM and convolution
throughput on one thread, recorded in a run's ``machine_info`` at its start and at its end.

Between two runs of the same commit a shared machine can drift by 10-40% (other tenants, clock
and thermal state). The reference does not change with the code under test, so when it moved,
the machine did; ``compare`` says so and can divide it out (``--normalize``); the reading is
:mod:`inference_scale.verdicts.drift`, which loads no torch. Each workload
runs for about ``seconds`` in chunks of a few milliseconds and reports the median chunk's rate,
so one descheduled chunk does not move it.
"""

from __future__ import annotations

import math
import statistics
import time
from typing import Any

import torch
import torch.nn.functional as F

from inference_scale.errors import InvalidValueError
from inference_scale.runtime import threads
from inference_scale.units import flops_from_macs

__all__ = ["measure_reference"]

_GEMM_N = 512  # 512^3 MACs: a few ms on one core
_CONV = (1, 64, 56, 56, 64, 3)  # N, C_in, H, W, C_out, k: a ResNet stage-1 convolution


def _rate(fn: Any, macs: int, seconds: float) -> float:
    """Median GFLOP/s over chunks of one call each, for about ``seconds``."""
    fn()  # first call: oneDNN/BLAS set-up, not timed
    rates: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(rates) < 5:
        start = time.perf_counter()
        fn()
        rates.append(flops_from_macs(macs) / (time.perf_counter() - start) / 1e9)
    return statistics.median(rates)


def measure_reference(*, seconds: float = 0.5) -> dict[str, float]:
    """GEMM and conv GFLOP/s on one thread, each measured for about ``seconds``."""
    if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds > 0):
        raise InvalidValueError(f"seconds must be a positive number, got {seconds!r}")
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(_GEMM_N, _GEMM_N, generator=gen)
    b = torch.randn(_GEMM_N, _GEMM_N, generator=gen)
    n, c, h, w, k, r = _CONV
    x = torch.randn(n, c, h, w, generator=gen)
    weight = torch.randn(k, c, r, r, generator=gen)
    conv_macs = n * k * h * w * c * r * r  # 'same' padding: one output per input pixel
    with threads(1), torch.inference_mode():
        gemm = _rate(lambda: torch.mm(a, b), _GEMM_N**3, seconds)
        conv = _rate(lambda: F.conv2d(x, weight, padding=r // 2), conv_macs, seconds)
    return {"gemm_gflops": gemm, "conv_gflops": conv}
