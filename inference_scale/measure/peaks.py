"""This machine's measured peaks on a thread count: fp32, bf16 and int8 matrix-multiply
throughput and memory bandwidth, each the best of a few short repeats.

No kernel may beat the peak, so each dtype's peak is the best of several paths, each timed:

* library kernels: ``torch.mm`` (MKL for fp32 on x86; on AMD, MKL's dispatch skips its
  AVX-512 kernels, so it is not that machine's peak), oneDNN's inner product
  (``torch.ops.mkldnn._linear_pointwise``) and direct convolution (``F.conv2d``,
  channels-last), and for int8 ``torch._int_mm`` and the oneDNN u8 x s8 kernels that the
  int8 states compile to (``onednn::qlinear_pointwise``, ``onednn::qconv2d_pointwise``:
  torchao's PT2E ``X86InductorQuantizer`` flow lowers to them under inductor freezing);
* instruction-throughput loops (:mod:`._simd`): ``vfmadd231ps``, ``vdpbf16ps``,
  ``vpdpbusd`` and AMX ``tdpbf16ps``/``tdpbusd`` with independent accumulators: what the
  vector units do when nothing else is in the way; on several threads, also the one-thread
  figure x the cores in use (robust to a shared host, and never below what the cores can do).

Beside them stands the theoretical figure: operations per cycle from the ISA and the assumed
FMA units (:func:`.bounds.ops_per_cycle`) x cores x the clock measured by a dependent
``imul`` chain (falling back to /proc/cpuinfo's ``cpu MHz``). ``peak`` is the best measured
path; ``method`` names it; ``above_theoretical`` lists a dtype whose peak exceeds its
theoretical figure (the assumption behind that figure is then wrong for this part).

Memory bandwidth follows STREAM's Copy (McCalpin, "Memory bandwidth and machine balance",
1995; https://www.cs.virginia.edu/stream/ref.html): ``b = a`` over arrays each at least 4x
the last-level cache, counting the bytes read plus the bytes written (2 x 4 bytes per
float32 element; write-allocate traffic is not counted, as STREAM does not).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from inference_scale.errors import InferenceScaleError
from inference_scale.measure import _simd
from inference_scale.measure.bounds import DTYPES, ops_per_cycle
from inference_scale.measure.machine import cpu_flags, cpuinfo, host_info
from inference_scale.runtime import threads as intra_op_threads

__all__ = ["CLOCK_SLACK", "DEFAULT_SECONDS", "PeakOptionError", "measure_peaks"]

DEFAULT_SECONDS = 3.0
# A measured peak counts as above its bound only beyond this share: the bound's clock is itself
# measured, and 20 reads of 0.1 s ranged 3.659-3.685 GHz (0.7%) on a core whose AVX-512 FMA loop
# runs at exactly 32 FLOP a cycle, 117.4-117.6 GFLOP/s (2026-12-04, AMD EPYC host, cpu family 25).
CLOCK_SLACK = 0.01
_SHARE = {"fp32": 0.3, "bf16": 0.2, "int8": 0.25, "bandwidth": 0.25}  # of the time budget
_MM = 1024  # 1024^3 MACs: about 5 ms in fp32 on one AVX-512 core, long enough to time
_CONV = (256, 28, 3)  # C_in = C_out, H = W, k: a ResNet stage-3 convolution, 0.44 GMACs inside the image
_MIN_ARRAY = 64 << 20
# Each array's cap: first touching 2 x 1 GiB took 1.7 s on this project's 2-core KVM host
# (whose lscpu shows the socket's 480 MiB L3, yet copies of 64 MiB to 2 GiB all read the
# same 26 GB/s there); ``stream_rule_met`` says whether the 4x rule held.
_MAX_ARRAY = 256 << 20
_STREAM_FACTOR = 4  # STREAM: each array at least 4x the size of the last-level caches
_UNIT = {"fp32": "fp32_gflops", "bf16": "bf16_gflops", "int8": "int8_gops"}


class PeakOptionError(InferenceScaleError, ValueError):
    """A thread count, time budget or array size that is not a positive number."""


def _best(fn: Callable[[], object], work: float, seconds: float) -> float:
    """Highest rate (work per second) of single calls over about ``seconds``, after two
    untimed calls (oneDNN builds its primitive and caches on the first)."""
    fn()
    fn()
    best, repeats, end = 0.0, 0, time.perf_counter() + seconds
    while repeats < 3 or time.perf_counter() < end:
        start = time.perf_counter()
        fn()
        best = max(best, work / (time.perf_counter() - start))
        repeats += 1
    return best


def _conv_ops() -> float:
    """Operations (2 per MAC) of the ``_CONV`` convolution at stride 1 with "same" padding,
    counting only the taps that fall inside the image: oneDNN's direct kernels skip the
    padding's, so counting all k x k taps per output read its int8 3x3 convolution at 477
    GOP/s against a 471.6 GOP/s bound for this core (2026-12-04, AMD EPYC host). Per axis, an
    output at i uses the taps r with 0 <= i + r - k//2 < hw: hw x k - 2 x (k//2) x (k//2 + 1) / 2
    in all (82 of 84 for hw 28, k 3)."""
    c, hw, k = _CONV
    taps = sum(1 for i in range(hw) for r in range(k) if 0 <= i + r - k // 2 < hw)  # per axis
    return 2.0 * c * c * taps * taps


def _conv(dtype: torch.dtype, gen: torch.Generator) -> tuple[Callable[[], object], float]:
    c, hw, k = _CONV
    x = torch.randn(1, c, hw, hw, generator=gen).to(dtype).contiguous(memory_format=torch.channels_last)
    w = torch.randn(c, c, k, k, generator=gen).to(dtype)
    return (lambda: F.conv2d(x, w, padding=k // 2)), _conv_ops()


_Path = Callable[[], tuple[Callable[[], object], float]]  # builds (the call to time, its operations)


def _float_paths(dtype: torch.dtype, gen: torch.Generator) -> dict[str, _Path]:
    n = _MM

    def mm() -> tuple[Callable[[], object], float]:
        a, b = torch.randn(n, n, generator=gen).to(dtype), torch.randn(n, n, generator=gen).to(dtype)
        return (lambda: torch.mm(a, b)), 2.0 * n**3

    def linear() -> tuple[Callable[[], object], float]:
        a, w = torch.randn(n, n, generator=gen).to(dtype), torch.randn(n, n, generator=gen).to(dtype)
        op = torch.ops.mkldnn._linear_pointwise
        return (lambda: op(a, w, None, "none", [], "")), 2.0 * n**3

    return {"torch.mm": mm, "onednn.linear": linear, "onednn.conv3x3": lambda: _conv(dtype, gen)}


def _int8_paths(gen: torch.Generator) -> dict[str, _Path]:
    n = _MM
    scale = torch.full((n,), 0.01)
    zero = torch.zeros(n, dtype=torch.int64)

    def int_mm() -> tuple[Callable[[], object], float]:
        a = torch.randint(-128, 128, (n, n), dtype=torch.int8, generator=gen)
        b = torch.randint(-128, 128, (n, n), dtype=torch.int8, generator=gen)
        return (lambda: torch._int_mm(a, b)), 2.0 * n**3

    def qlinear() -> tuple[Callable[[], object], float]:  # u8 activations x s8 weights -> u8
        x = torch.randint(0, 256, (n, n), dtype=torch.uint8, generator=gen)
        w = torch.ops.onednn.qlinear_prepack(torch.randint(-127, 128, (n, n), dtype=torch.int8, generator=gen), [n, n])
        op = torch.ops.onednn.qlinear_pointwise
        return (lambda: op(x, 0.1, 0, w, scale, zero, None, 0.5, 128, None, "none", [], "")), 2.0 * n**3

    def qconv() -> tuple[Callable[[], object], float]:
        c, hw, k = _CONV
        x = torch.randint(0, 256, (1, c, hw, hw), dtype=torch.uint8, generator=gen)
        x = x.contiguous(memory_format=torch.channels_last)
        s, z, pad = scale[:c], zero[:c], [k // 2] * 2
        raw = torch.randint(-127, 128, (c, c, k, k), dtype=torch.int8, generator=gen)
        w = torch.ops.onednn.qconv_prepack(raw, s, 0.1, 0, [1, 1], pad, [1, 1], 1, list(x.shape))
        op = torch.ops.onednn.qconv2d_pointwise
        run = lambda: op(x, 0.1, 0, w, s, z, None, [1, 1], pad, [1, 1], 1, 0.5, 0, None, "none", [], "")  # noqa: E731
        return run, _conv_ops()

    return {"torch._int_mm": int_mm, "onednn.qlinear_u8s8": qlinear, "onednn.qconv3x3_u8s8": qconv}


def _measure_paths(paths: dict[str, _Path], *, seconds: float) -> tuple[dict[str, float | None], dict[str, str]]:
    """G-ops/s of every library path (None where it cannot run here) and why each such did not."""
    share = seconds / max(1, len(paths))
    rates: dict[str, float | None] = {}
    skipped: dict[str, str] = {}
    for name, build in paths.items():
        try:
            fn, work = build()
            with torch.inference_mode():
                rates[name] = _best(fn, work, share) / 1e9
        except (RuntimeError, AttributeError, NotImplementedError, TypeError) as exc:
            rates[name] = None
            skipped[name] = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    return rates, skipped


def _measure_loops(loops: list[str], *, threads: int, cores: int, seconds: float) -> dict[str, float | None]:
    """G-ops/s of each throughput loop on ``threads`` threads together and, with more than
    one thread, its one-thread figure x the cores in use: an upper bound on those cores (an
    all-core clock is at most a one-core clock) that needs only one quiet core to measure,
    where the threads-together figure needs every core quiet at once (on a shared host the
    two differed by up to 25% here)."""
    rates: dict[str, float | None] = {}
    runs = [(name, n) for name in loops for n in sorted({threads, 1} if threads > 1 else {1})]
    for name, n in runs:
        rate = _simd.loop_rate(name, threads=n, seconds=seconds / max(1, len(runs)))
        key = f"{name} loop" if n == threads else f"{name} loop 1-thread x {cores}"
        rates[key] = None if rate is None else rate * (cores if n != threads else 1) / 1e9
    return rates


def _cpuinfo_clock_hz() -> float | None:
    mhz = []
    for cpu in cpuinfo():
        with contextlib.suppress(KeyError, ValueError):
            mhz.append(float(cpu["cpu MHz"]))
    return max(mhz) * 1e6 if mhz else None


def _theoretical(host: dict[str, Any], flags: frozenset[str], threads: int, *, clock: float | None) -> dict[str, Any]:
    """The bound from ``clock`` (Hz, from :func:`._simd.clock_hz`; None: /proc/cpuinfo's)."""
    per_cycle = ops_per_cycle(
        {f: True for f in flags}, vendor=host.get("vendor"), family=host.get("cpu_family"), model=host.get("cpu_model")
    )
    source = "dependent imul chain (3 cycles each), the faster of before and after the measured paths"
    cpuinfo_hz = _cpuinfo_clock_hz()
    if clock is None:
        clock, source = cpuinfo_hz, "/proc/cpuinfo cpu MHz"
    cores = min(threads, host.get("physical_cores") or threads)  # SMT siblings share the FMA units
    out: dict[str, Any] = {
        "clock_ghz": None if clock is None else clock / 1e9,
        "clock_source": source if clock is not None else None,
        "cpuinfo_mhz": None if cpuinfo_hz is None else cpuinfo_hz / 1e6,
        "cores": cores,
        "ops_per_cycle": {d: per_cycle[d] for d in DTYPES},
        "assumption": per_cycle["assumption"],
    }
    for dtype in DTYPES:
        out[_UNIT[dtype]] = None if clock is None else per_cycle[dtype] * cores * clock / 1e9
    return out


def _mem_available() -> int | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return None


def _bandwidth(l3_bytes: int | None, *, max_array_bytes: int, seconds: float) -> dict[str, Any]:
    """STREAM Copy at the current thread count (see the module docstring)."""
    wanted = max(_MIN_ARRAY, _STREAM_FACTOR * (l3_bytes or 0))
    available = _mem_available()
    limit = min(max_array_bytes, available // 8) if available else max_array_bytes
    nbytes = max(1 << 20, min(wanted, limit))
    n = nbytes // 4
    a = torch.empty(n, dtype=torch.float32)
    b = torch.empty(n, dtype=torch.float32)
    a.fill_(1.0)  # first touch outside the timing: page faults are not bandwidth
    b.fill_(0.0)
    with torch.inference_mode():
        rate = _best(lambda: b.copy_(a), 2.0 * n * 4, seconds)
    return {
        "bandwidth_gbs": rate / 1e9,
        "array_bytes": n * 4,
        "stream_rule_met": l3_bytes is not None and n * 4 >= _STREAM_FACTOR * l3_bytes,
        "kernel": "STREAM Copy (b = a, float32), bytes read + written",
    }


def _check(threads: object, seconds: object, max_array_bytes: object) -> None:
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise PeakOptionError(f"threads must be a positive integer, got {threads!r}")
    number = isinstance(seconds, (int, float)) and not isinstance(seconds, bool)
    if not number or not (math.isfinite(seconds) and seconds > 0):  # type: ignore[arg-type,operator]
        raise PeakOptionError(f"seconds must be a positive number, got {seconds!r}")
    if isinstance(max_array_bytes, bool) or not isinstance(max_array_bytes, int) or max_array_bytes < (1 << 20):
        raise PeakOptionError(f"max_array_bytes must be an integer of at least 1 MiB, got {max_array_bytes!r}")


def measure_peaks(
    *, threads: int, seconds: float = DEFAULT_SECONDS, max_array_bytes: int = _MAX_ARRAY
) -> dict[str, Any]:
    """This machine's peaks on ``threads`` intra-op threads, in about ``seconds`` (plus the
    bandwidth arrays' first touch), as a JSON-able dict::

        {"threads": n, "fp32_gflops": .., "bf16_gflops": .., "int8_gops": .., "bandwidth_gbs": ..,
         "measured": {"fp32": {path: G/s or None}, "bf16": {...}, "int8": {...}},
         "theoretical": {"fp32_gflops": .., ..., "clock_ghz": .., "ops_per_cycle": {...}},
         "method": {"fp32": "<path> (best of N measured paths)", ..., "bandwidth": "..."},
         "above_theoretical": [dtype, ...], "skipped": {path: why}, "bandwidth": {...}}

    Each dtype's figure is its best measured path (see the module docstring); a kernel of
    that dtype reading above it means a path is missing here."""
    _check(threads, seconds, max_array_bytes)
    host = host_info(torch_capability=False)
    flags = cpu_flags()
    loops = _simd.usable_loops({f: True for f in flags})
    gen = torch.Generator().manual_seed(0)
    result: dict[str, Any] = {"threads": threads, "seconds": float(seconds), "torch": torch.__version__}
    # The loops and the clock first: torch's OpenMP workers spin for a while after each
    # parallel region, and would share the cores with the loops' threads. The clock is taken
    # again at the end and the bound uses the faster: this shared host's speed moves between
    # states seconds long, and a clock read in a slow one put the fp32 bound 0.2% under the
    # measured peak (117.24 against 117.44 GFLOP/s; 2026-12-04, AMD EPYC host).
    clock_before = _simd.clock_hz()
    theoretical = _theoretical(host, flags, threads, clock=clock_before)
    loop_share = 0.5 * sum(_SHARE[d] for d in DTYPES) * seconds
    loop_rates = _measure_loops(loops, threads=threads, cores=theoretical["cores"], seconds=loop_share)
    measured: dict[str, dict[str, float | None]] = {}
    skipped: dict[str, str] = {}
    with intra_op_threads(threads):
        sets = {
            "fp32": _float_paths(torch.float32, gen),
            "bf16": _float_paths(torch.bfloat16, gen),
            "int8": _int8_paths(gen),
        }
        for dtype in DTYPES:
            measured[dtype], why = _measure_paths(sets[dtype], seconds=0.5 * _SHARE[dtype] * seconds)
            mine = {k: r for k, r in loop_rates.items() if _simd.LOOPS[k.split()[0]].dtype == dtype}
            measured[dtype].update(mine)
            skipped.update({f"{dtype} {k}": v for k, v in why.items()})
        band = _bandwidth(host.get("l3_bytes"), max_array_bytes=max_array_bytes, seconds=_SHARE["bandwidth"] * seconds)
    clocks = [c for c in (clock_before, _simd.clock_hz()) if c is not None]
    theoretical = _theoretical(host, flags, threads, clock=max(clocks) if clocks else None)
    method: dict[str, str] = {}
    above: list[str] = []
    for dtype in DTYPES:
        got = {k: v for k, v in measured[dtype].items() if v is not None}
        best = max(got, key=lambda k: got[k]) if got else None
        result[_UNIT[dtype]] = got[best] if best else None
        method[dtype] = f"{best} (best of {len(got)} measured paths)" if best else "none measured"
        limit = theoretical[_UNIT[dtype]]
        if best and limit is not None and got[best] > limit * (1 + CLOCK_SLACK):
            above.append(dtype)
    result["bandwidth_gbs"] = band["bandwidth_gbs"]
    method["bandwidth"] = band["kernel"]
    result.update(measured=measured, theoretical=theoretical, method=method, above_theoretical=above)
    result.update(skipped=skipped, bandwidth=band)
    return result
