"""Instruction-throughput loops: what one core's vector units can do, measured, not looked up.

A library kernel (MKL, oneDNN) is only a lower bound on a machine's peak: MKL skips its AVX-512
kernels on AMD, and oneDNN's convolution can beat ``torch.mm`` in the same process. The bound
that no kernel can beat is the throughput of the multiply-accumulate instruction itself. This
module runs that instruction in a tight loop of independent accumulators, as hand-assembled
x86-64 machine code called through :mod:`ctypes` (the loop cannot be written in torch: every
torch op costs microseconds of dispatch). Torch-free; stdlib only.

Each loop (System V ABI: ``rdi`` = iteration count, ``rsi`` = AMX tile config):

* zero the registers it uses (``vxorps xmmN``: a VEX.128 write zeroes the register up to its
  full width, Intel SDM vol. 1 §14.1.3), so no denormal or NaN input can take a slow path;
* run 12 independent accumulators (``zmm0..zmm11`` from ``zmm12 x zmm13``), enough to cover
  latency x ports (FMA: 4 cycles x 2 ports = 8 in flight on Skylake-SP and later and on Zen 5,
  Agner Fog's instruction tables; VNNI: 5 x 2 = 10), or 4 AMX tile accumulators (``tmm0..3``
  from ``tmm4 x tmm5``; a TDP* issues every 16 cycles, Intel optimization manual §20);
* ``dec rdi; jnz``, then ``vzeroupper`` (or ``tilerelease``) and ``ret``.

The clock is a dependent chain of ``imul rax, rax``: 3 cycles each on every Intel core since
Nehalem and every AMD Zen (Agner Fog, instruction tables), so cycles / seconds is the clock the
core actually ran at (turbo included; ``cpu MHz`` in a VM reads the nominal TSC rate).

Nothing runs unless /proc/cpuinfo lists the instruction set (the kernel clears a flag whose
register state it does not enable) and, for AMX, the kernel grants the tile data permission
(``arch_prctl(ARCH_REQ_XCOMP_PERM)``, Linux 5.16+); otherwise the rate is None.
"""

from __future__ import annotations

import contextlib
import ctypes
import mmap
import platform
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from inference_scale.measure.machine import cpu_flags

__all__ = ["LOOPS", "Loop", "amx_permitted", "clock_hz", "loop_rate", "machine_code", "usable_loops"]

_ACCUMULATORS = 12


def _vxorps(n: int) -> bytes:
    """``vxorps xmmN, xmmN, xmmN``: the two-byte VEX form below 8, the three-byte one from 8."""
    if n < 8:
        return bytes([0xC5, 0xF8 - 8 * n, 0x57, 0xC0 | (n << 3) | n])
    r = n - 8
    return bytes([0xC4, 0x41, 0x38 - 8 * r, 0x57, 0xC0 | (r << 3) | r])


_ZERO = b"".join(_vxorps(n) for n in range(14))
_DEC_RDI = bytes.fromhex("48ffcf")  # dec rdi
_VZEROUPPER_RET = bytes.fromhex("c5f877c3")
_IMUL_RAX = bytes.fromhex("480fafc0")  # imul rax, rax
_IMUL_PER_ITER = 8
_IMUL_LATENCY = 3  # cycles (see the module docstring)


def _evex(opcode: int, p1: int) -> Callable[[int], bytes]:
    """``OP zmm{d}, zmm12, zmm13`` (EVEX.512.0F38.W0; ``p1`` carries vvvv=12 and pp)."""
    return lambda d: bytes([0x62, 0xD2 if d < 8 else 0x52, p1, 0x48, opcode, 0xC0 | ((d & 7) << 3) | 5])


def _vex256(opcode: int) -> Callable[[int], bytes]:
    """``OP ymm{d}, ymm12, ymm13`` (VEX.256.66.0F38.W0)."""
    return lambda d: bytes([0xC4, 0xC2 if d < 8 else 0x42, 0x1D, opcode, 0xC0 | ((d & 7) << 3) | 5])


def _loop(body: bytes) -> bytes:
    """``body; dec rdi; jnz body`` (a short backward jump)."""
    body += _DEC_RDI
    return body + bytes([0x75, (256 - (len(body) + 2)) & 0xFF])


def _vector(instr: Callable[[int], bytes]) -> bytes:
    return _ZERO + _loop(b"".join(instr(d) for d in range(_ACCUMULATORS))) + _VZEROUPPER_RET


def _amx(pp_byte: int, opcode: int) -> bytes:
    """``ldtilecfg [rsi]``; ``tilezero tmm0..5``; loop of ``TDP* tmm0..3, tmm4, tmm5``; ``tilerelease``."""
    setup = bytes.fromhex("c4e2784906") + b"".join(bytes([0xC4, 0xE2, 0x7B, 0x49, 0xC0 | (t << 3)]) for t in range(6))
    body = b"".join(bytes([0xC4, 0xE2, pp_byte, opcode, 0xC0 | (d << 3) | 4]) for d in range(4))
    return setup + _loop(body) + bytes.fromhex("c4e27849c0c3")


@dataclass(frozen=True)
class Loop:
    """One throughput loop: its code, the /proc/cpuinfo flags it needs, the dtype it measures
    and the operations (2 per multiply-accumulate) one iteration performs."""

    code: bytes
    flags: tuple[str, ...]
    dtype: str
    ops_per_iter: int
    amx: bool = False


# Operations per iteration: accumulators x lanes x products per lane x 2 (multiply and add).
LOOPS: dict[str, Loop] = {
    # vfmadd231ps: 16 (zmm) or 8 (ymm) fp32 lanes, one product each
    "fma512": Loop(_vector(_evex(0xB8, 0x1D)), ("avx512f",), "fp32", _ACCUMULATORS * 16 * 2),
    "fma256": Loop(_vector(_vex256(0xB8)), ("avx2", "fma"), "fp32", _ACCUMULATORS * 8 * 2),
    # vdpbf16ps (EVEX.F3): 16 fp32 lanes, two bf16 products each
    "bf16dp512": Loop(_vector(_evex(0x52, 0x1E)), ("avx512_bf16",), "bf16", _ACCUMULATORS * 16 * 2 * 2),
    # vpdpbusd: 16 (zmm) or 8 (ymm) int32 lanes, four u8 x s8 products each
    "vnni512": Loop(_vector(_evex(0x50, 0x1D)), ("avx512_vnni",), "int8", _ACCUMULATORS * 16 * 4 * 2),
    "vnni256": Loop(_vector(_vex256(0x50)), ("avx_vnni",), "int8", _ACCUMULATORS * 8 * 4 * 2),
    # tdpbusd: 16x16 int32 += 16x64 u8 . 64x16 s8 (16*16*64 MACs); tdpbf16ps: 16*16*32 MACs
    "amx_int8": Loop(_amx(0x51, 0x5E), ("amx_tile", "amx_int8"), "int8", 4 * 16 * 16 * 64 * 2, amx=True),
    "amx_bf16": Loop(_amx(0x52, 0x5C), ("amx_tile", "amx_bf16"), "bf16", 4 * 16 * 16 * 32 * 2, amx=True),
}
_CLOCK = _loop(_IMUL_RAX * _IMUL_PER_ITER) + b"\xc3"

_ARCH_REQ_XCOMP_PERM = 0x1023  # arch/x86/include/uapi/asm/prctl.h
_XFEATURE_XTILEDATA = 18
_SYS_ARCH_PRCTL = 158  # x86-64 syscall number


def machine_code(name: str) -> bytes:
    """The bytes of loop ``name`` (or ``"clock"``), for inspection and tests."""
    return _CLOCK if name == "clock" else LOOPS[name].code


def _is_x86_64() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64")


_amx_lock = threading.Lock()
_amx_state: list[bool] = []


def amx_permitted() -> bool:
    """Ask Linux for the AMX tile data state (once per process); True when granted."""
    with _amx_lock:
        if not _amx_state:
            ok = False
            with contextlib.suppress(OSError, AttributeError):
                libc = ctypes.CDLL(None, use_errno=True)
                ok = libc.syscall(_SYS_ARCH_PRCTL, _ARCH_REQ_XCOMP_PERM, _XFEATURE_XTILEDATA) == 0
            _amx_state.append(ok)
        return _amx_state[0]


def usable_loops(flags: Mapping[str, bool]) -> list[str]:
    """The loops this machine can run: its flags list their instructions (and AMX is granted)."""
    if not _is_x86_64():
        return []
    names = [n for n, loop in LOOPS.items() if all(flags.get(f) for f in loop.flags)]
    return [n for n in names if not LOOPS[n].amx or amx_permitted()]


_Fn = Callable[[int, int], None]
_compiled: dict[str, tuple[mmap.mmap, _Fn]] = {}


def _function(name: str) -> _Fn | None:
    """Loop ``name`` copied into an executable page; None where the system refuses one."""
    if name not in _compiled:
        code = machine_code(name)
        try:
            page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        except (OSError, ValueError, AttributeError):  # W^X policies (SELinux execmem), no mmap
            return None
        page[: len(code)] = code
        address = ctypes.addressof(ctypes.c_char.from_buffer(page))
        proto = ctypes.CFUNCTYPE(None, ctypes.c_uint64, ctypes.c_void_p)  # releases the GIL while it runs
        _compiled[name] = (page, proto(address))
    return _compiled[name][1]


_TILE_CONFIG = (ctypes.c_uint8 * 64)()  # palette 1; tiles 0-5 of 16 rows x 64 bytes (SDM vol. 2, LDTILECFG)
_TILE_CONFIG[0] = 1
for _t in range(6):
    _TILE_CONFIG[16 + 2 * _t] = 64
    _TILE_CONFIG[48 + _t] = 16


def _run(fn: _Fn, iterations: int, threads: int) -> list[float]:
    """Seconds each of ``threads`` threads took to run ``iterations``, started together."""
    config = ctypes.addressof(_TILE_CONFIG)
    if threads == 1:
        start = time.perf_counter()
        fn(iterations, config)
        return [time.perf_counter() - start]
    barrier = threading.Barrier(threads)
    seconds = [0.0] * threads

    def work(i: int) -> None:
        barrier.wait()
        start = time.perf_counter()
        fn(iterations, config)
        seconds[i] = time.perf_counter() - start

    workers = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return seconds


def _best_rate(name: str, work_per_iter: float, *, threads: int, seconds: float) -> float | None:
    """The sum over threads of each thread's best rate over repeats of about 5-20 ms, for
    about ``seconds``: each thread's best repeat is one where its core was not shared (this
    machine's other tenants), and the threads run together, so all-core clocks apply."""
    fn = _function(name)
    if fn is None:
        return None
    iterations = 1000
    while _run(fn, iterations, 1)[0] < 0.005 and iterations < 1 << 40:  # size one repeat
        iterations *= 4
    best = [0.0] * threads
    repeats, end = 0, time.perf_counter() + seconds
    while repeats < 3 or time.perf_counter() < end:
        for i, took in enumerate(_run(fn, iterations, threads)):
            best[i] = max(best[i], iterations * work_per_iter / took)
        repeats += 1
    return sum(best)


def loop_rate(name: str, *, threads: int = 1, seconds: float = 0.2) -> float | None:
    """Operations per second of loop ``name`` on ``threads`` threads together, best of repeats
    over about ``seconds``; None where it cannot run here: this host's own flags are checked
    every time (an instruction the CPU lacks, or AMX without the kernel's grant, is SIGILL)."""
    loop = LOOPS[name]
    if name not in usable_loops({f: True for f in cpu_flags()}):
        return None
    return _best_rate(name, loop.ops_per_iter, threads=threads, seconds=seconds)


def clock_hz(*, seconds: float = 0.1) -> float | None:
    """One core's clock in Hz, from the dependent ``imul`` chain; None off x86-64."""
    if not _is_x86_64():
        return None
    return _best_rate("clock", _IMUL_PER_ITER * _IMUL_LATENCY, threads=1, seconds=seconds)
