"""Peaks and physical lower bounds, torch-free: what the ISA allows per cycle, a run's measured
peaks read back from its ``machine_info``, the roofline lower bound of a record, and its
percentage of peak. :mod:`.peaks` measures; this module only computes and reads, so a report
of saved runs loads no torch.

The lower bound is the roofline model's (Williams, Waterman and Patterson, "Roofline: an
insightful visual performance model", CACM 52(4), 2009): a call can go no faster than its
operations at the peak rate, nor than the bytes it must move at the memory bandwidth.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from inference_scale.errors import InferenceScaleError
from inference_scale.measure.machine import SECTION

__all__ = [
    "DTYPES",
    "PEAKS_KEY",
    "BoundError",
    "lower_bound_ms",
    "ops_per_cycle",
    "ops_unit",
    "peak_for_dtype",
    "peaks_from",
    "percent_of_peak",
]

PEAKS_KEY = "peaks"  # machine_info[SECTION][PEAKS_KEY] holds measure.peaks.measure_peaks()
DTYPES: tuple[str, ...] = ("fp32", "bf16", "int8")
_PEAK_FIELDS = {"fp32": "fp32_gflops", "bf16": "bf16_gflops", "int8": "int8_gops"}
# A record's compute dtype (Prepared.dtype) -> the peak it is held against. float16 has no
# measured peak (no fp16 matmul path is timed), so it reads None rather than borrow another.
_RECORD_DTYPES = {"float32": "fp32", "fp32": "fp32", "bfloat16": "bf16", "bf16": "bf16", "int8": "int8"}


class BoundError(InferenceScaleError, ValueError):
    """A bound or percentage asked of a value that is not a finite, non-negative number."""


def ops_per_cycle(
    flags: Mapping[str, bool], *, vendor: str | None, family: int | None, model: int | None = None
) -> dict[str, Any]:
    """One core's operations per cycle (2 per multiply-accumulate) for fp32, bf16 and int8
    matrix multiplication, from its ISA flags, with the assumption behind each.

    Assumptions (the figures are upper bounds: a part with fewer units reads below them):

    * fp32, AVX-512: two 512-bit FMA units (16 lanes x 2 ops x 2 = 64): Intel Xeon Scalable
      parts with two FMA ports (Skylake-SP Gold 6xxx/Platinum and every server core since
      Ice Lake-SP) and AMD Zen 5 (family 26, full 512-bit datapath; its mobile parts
      double-pump and read half). AMD Zen 4 (family 25) executes 512-bit ops as two 256-bit
      halves: 32. AVX2+FMA: two 256-bit FMA units (Haswell and later, Zen 2 and later): 32;
      Zen 1 (family 23, model < 0x30) has 128-bit units: 16. Agner Fog, microarchitecture
      guide; AMD's Zen 4/Zen 5 software optimization guides.
    * bf16: AMX-BF16 ``tdpbf16ps`` does 16x16x32 MACs per 16 cycles = 1024 ops (Intel
      optimization manual, AMX chapter); AVX512-BF16 ``vdpbf16ps`` two products per fp32
      lane on two ports: 128 (Zen 4: 64); else bf16 runs as fp32 FMAs: the fp32 figure.
    * int8: AMX-INT8 ``tdpbusd`` 16x16x64 MACs per 16 cycles = 2048; AVX512-VNNI
      ``vpdpbusd`` four u8 x s8 products per int32 lane on two ports: 256 (Zen 4: 128);
      AVX-VNNI (256-bit): 128; AVX2 ``vpmaddubsw`` 32 products on two ports: 128 (its
      accumulating ``vpmaddwd``/``vpaddd`` are not counted: an upper bound); else fp32's.
    """
    amd = vendor == "AuthenticAMD"
    zen4 = amd and family == 25
    if flags.get("avx512f"):
        fp32, why = (32, "AVX-512 on Zen 4: two 256-bit halves") if zen4 else (64, "AVX-512, 2 FMA units")
    elif flags.get("avx2") and flags.get("fma"):
        fp32, why = 32, "AVX2, 2 x 256-bit FMA units"
        if amd and family == 23 and model is not None and model < 0x30:
            fp32, why = 16, "Zen 1: 2 x 128-bit FMA units"
    else:
        fp32, why = 8, "SSE: 4 lanes, separate multiply and add ports"
    if flags.get("amx_bf16"):
        bf16, bwhy = 1024, "AMX-BF16 tdpbf16ps"
    elif flags.get("avx512_bf16"):
        bf16, bwhy = (64, "vdpbf16ps double-pumped (Zen 4)") if zen4 else (128, "vdpbf16ps on 2 ports")
    else:
        bf16, bwhy = fp32, "no bf16 instructions: fp32 FMAs"
    if flags.get("amx_int8"):
        int8, iwhy = 2048, "AMX-INT8 tdpbusd"
    elif flags.get("avx512_vnni"):
        int8, iwhy = (128, "vpdpbusd zmm double-pumped (Zen 4)") if zen4 else (256, "vpdpbusd zmm on 2 ports")
    elif flags.get("avx_vnni"):
        int8, iwhy = 128, "vpdpbusd ymm on 2 ports"
    elif flags.get("avx2"):
        int8, iwhy = 128, "vpmaddubsw ymm on 2 ports (upper bound)"
    else:
        int8, iwhy = fp32, "no int8 dot-product instructions: fp32's"
    return {"fp32": fp32, "bf16": bf16, "int8": int8, "assumption": {"fp32": why, "bf16": bwhy, "int8": iwhy}}


def _positive(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) and value > 0 else None


def peaks_from(machine_info: object) -> dict[str, Any] | None:
    """The peaks a saved run recorded (``machine_info[SECTION][PEAKS_KEY]``), each figure a
    positive finite number or None; None when the run has none (every older run)."""
    section = machine_info.get(SECTION) if isinstance(machine_info, Mapping) else None
    peaks = section.get(PEAKS_KEY) if isinstance(section, Mapping) else None
    if not isinstance(peaks, Mapping):
        return None
    out: dict[str, Any] = dict(peaks)
    for name in (*_PEAK_FIELDS.values(), "bandwidth_gbs"):
        out[name] = _positive(peaks.get(name))
    threads = peaks.get("threads")
    out["threads"] = threads if isinstance(threads, int) and not isinstance(threads, bool) and threads > 0 else None
    return out


def ops_unit(dtype: str) -> str:
    """``GOP/s`` for an int8 record, ``GFLOP/s`` for a float one."""
    return "GOP/s" if _RECORD_DTYPES.get(dtype) == "int8" else "GFLOP/s"


def peak_for_dtype(peaks: Mapping[str, Any] | None, dtype: str) -> float | None:
    """Operations per second of the peak a ``dtype`` record is held against, or None."""
    key = _RECORD_DTYPES.get(dtype)
    if peaks is None or key is None:
        return None
    value = _positive(peaks.get(_PEAK_FIELDS[key]))
    return None if value is None else value * 1e9


def _check(name: str, value: object, *, allow_none: bool) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BoundError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    if not math.isfinite(value) or value < 0:
        raise BoundError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def lower_bound_ms(
    *,
    macs_per_sample: float,
    batch: int,
    peak_ops_per_s: float | None,
    bytes_read: float | None,
    bandwidth_bytes_per_s: float | None,
) -> float | None:
    """The roofline lower bound of one call, in milliseconds: the larger of
    ``2 x macs_per_sample x batch / peak_ops_per_s`` (compute) and
    ``bytes_read / bandwidth_bytes_per_s`` (memory: the bytes the state must read once, its
    weights). A term whose rate is None (or 0) is left out; None when both are."""
    macs = _check("macs_per_sample", macs_per_sample, allow_none=False)
    rows = _check("batch", batch, allow_none=False)
    peak = _check("peak_ops_per_s", peak_ops_per_s, allow_none=True)
    nbytes = _check("bytes_read", bytes_read, allow_none=True)
    bandwidth = _check("bandwidth_bytes_per_s", bandwidth_bytes_per_s, allow_none=True)
    terms = []
    if peak:
        terms.append(2.0 * macs * rows / peak)  # type: ignore[operator]
    if bandwidth and nbytes is not None:
        terms.append(nbytes / bandwidth)
    return max(terms) * 1e3 if terms else None


def percent_of_peak(achieved: float | None, peak: float | None) -> float | None:
    """``100 x achieved / peak`` (same units), or None where either is missing or the peak is
    not positive. Above 100 means the peak is wrong (a kernel beat it), never the kernel."""
    got = _check("achieved", achieved, allow_none=True)
    top = _positive(peak)
    if got is None or top is None:
        return None
    return 100.0 * got / top
