"""The machine a run measured on: its CPU, the instruction sets that decide which kernels run,
its cores, caches and memory. Recorded under ``machine_info["inference_scale"][KEY]``, read
back from saved runs by :func:`isa_flags`, :func:`isa_differences` and :func:`host_line`.

Torch-free at import: only :func:`host_info` imports torch, for its CPU capability (the
vectorized kernels ATen dispatches to: ``DEFAULT``, ``AVX2``, ``AVX512``), so a report or a
comparison of saved runs loads no torch.

Sources: /proc/cpuinfo (vendor, model, flags, topology; Linux's ``Documentation/filesystems
/proc.rst``), ``/sys/devices/system/cpu/cpu0/cache/index*/{level,type,size}`` (the kernel's
cacheinfo ABI, ``Documentation/ABI/testing/sysfs-devices-system-cpu``) or ``lscpu``, and
``MemTotal`` in /proc/meminfo. A figure that cannot be read is None, never a guess.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "ISA_FLAGS",
    "KEY",
    "SECTION",
    "cache_sizes",
    "cpu_flags",
    "cpuinfo",
    "host_info",
    "host_line",
    "host_record",
    "isa_differences",
    "isa_flags",
]

SECTION = "inference_scale"  # machine_info[SECTION][KEY] holds host_info()
KEY = "host"
# The flags that decide which CPU kernels run (oneDNN's and MKL's dispatch; Linux's names).
ISA_FLAGS: tuple[str, ...] = (
    "avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16",
)  # fmt: skip
_CPUINFO = Path("/proc/cpuinfo")
_MEMINFO = Path("/proc/meminfo")
_CACHE_DIR = Path("/sys/devices/system/cpu/cpu0/cache")
_SIZE = re.compile(r"^\s*(\d+)\s*([KMG]?)i?B?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def cpuinfo(text: str | None = None) -> list[dict[str, str]]:
    """/proc/cpuinfo (or ``text``) as one dict per logical CPU."""
    text = _read(_CPUINFO) if text is None else text
    blocks: list[dict[str, str]] = []
    for block in (text or "").split("\n\n"):
        entry = {}
        for line in block.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                entry[key.strip()] = value.strip()
        if entry:
            blocks.append(entry)
    return blocks


def cpu_flags(cpus: list[dict[str, str]] | None = None) -> frozenset[str]:
    """The first CPU's flags (Linux lists a flag only where the kernel enables its state)."""
    cpus = cpuinfo() if cpus is None else cpus
    return frozenset(cpus[0].get("flags", "").split()) if cpus else frozenset()


def _int(value: str | None) -> int | None:
    with contextlib.suppress(TypeError, ValueError):
        return int(value)  # type: ignore[arg-type]
    return None


def _physical_cores(cpus: list[dict[str, str]]) -> int | None:
    """Unique (physical id, core id) pairs; then sysfs topology; then None."""
    pairs = {(c.get("physical id"), c.get("core id")) for c in cpus}
    if pairs and all(p is not None and c is not None for p, c in pairs):
        return len(pairs)
    topo = set()
    for cpu in Path("/sys/devices/system/cpu").glob("cpu[0-9]*/topology"):
        package, core = _read(cpu / "physical_package_id"), _read(cpu / "core_id")
        if package is not None and core is not None:
            topo.add((package.strip(), core.strip()))
    return len(topo) or None


def _parse_size(text: str) -> int | None:
    match = _SIZE.match(text)
    return int(match.group(1)) * _UNITS[match.group(2).upper()] if match else None


def cache_sizes() -> dict[int, int]:
    """Bytes of one instance of each unified or data cache level seen by cpu0 (L2 is one
    core's; L3 is the instance cpu0 shares), from sysfs, else from ``lscpu``."""
    sizes: dict[int, int] = {}
    for index in sorted(_CACHE_DIR.glob("index[0-9]*")):
        level, kind, size = (_read(index / n) for n in ("level", "type", "size"))
        if level is None or kind is None or size is None or kind.strip() == "Instruction":
            continue
        lvl, nbytes = _int(level.strip()), _parse_size(size)
        if lvl is not None and nbytes is not None:
            sizes[lvl] = max(sizes.get(lvl, 0), nbytes)
    if sizes:
        return sizes
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["lscpu", "-B", "-C=LEVEL,TYPE,ONE-SIZE"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
        for line in out.splitlines()[1:]:
            parts = line.split()
            if len(parts) == 3 and parts[1] != "Instruction" and _int(parts[0]) and _int(parts[2]):
                sizes[int(parts[0])] = max(sizes.get(int(parts[0]), 0), int(parts[2]))
    return sizes


def _memory_bytes() -> int | None:
    for line in (_read(_MEMINFO) or "").splitlines():
        if line.startswith("MemTotal:"):
            kib = _int(line.split()[1]) if len(line.split()) > 1 else None
            return None if kib is None else kib * 1024  # /proc/meminfo's "kB" are KiB
    return None


def _torch_capability() -> str | None:
    try:
        import torch  # the one torch import of this module
    except ImportError:
        return None
    with contextlib.suppress(AttributeError, RuntimeError):
        return str(torch.backends.cpu.get_cpu_capability())
    return None


def host_info(*, torch_capability: bool = True) -> dict[str, Any]:
    """This machine, as a JSON-able dict: torch's CPU capability (unless
    ``torch_capability=False``), vendor, model name, cpu family and model, :data:`ISA_FLAGS`
    (bool each), physical cores, logical CPUs (and those this process may run on), L2 and L3
    bytes (one instance each, see :func:`cache_sizes`) and total memory bytes."""
    cpus = cpuinfo()
    first = cpus[0] if cpus else {}
    flags = cpu_flags(cpus)
    caches = cache_sizes()
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "torch_capability": _torch_capability() if torch_capability else None,
        "vendor": first.get("vendor_id") or None,
        "model_name": first.get("model name") or platform.processor() or None,
        "cpu_family": _int(first.get("cpu family")),
        "cpu_model": _int(first.get("model")),
        "isa": {flag: flag in flags for flag in ISA_FLAGS},
        "physical_cores": _physical_cores(cpus),
        "logical_cpus": len(cpus) or os.cpu_count(),
        "affinity_cpus": affinity,
        "l2_bytes": caches.get(2),
        "l3_bytes": caches.get(3),
        "memory_bytes": _memory_bytes(),
    }


def host_record(machine_info: object) -> dict[str, Any] | None:
    """``machine_info[SECTION][KEY]`` of a saved run, or None (an older run has none)."""
    section = machine_info.get(SECTION) if isinstance(machine_info, Mapping) else None
    host = section.get(KEY) if isinstance(section, Mapping) else None
    return dict(host) if isinstance(host, Mapping) else None


def isa_flags(machine_info: object) -> dict[str, bool] | None:
    """The :data:`ISA_FLAGS` a saved run recorded, or None unless every one is a bool."""
    host = host_record(machine_info)
    isa = host.get("isa") if host else None
    if not isinstance(isa, Mapping) or not all(isinstance(isa.get(f), bool) for f in ISA_FLAGS):
        return None
    return {f: bool(isa[f]) for f in ISA_FLAGS}


def isa_differences(base_info: object, new_info: object) -> list[str]:
    """The flags of :data:`ISA_FLAGS` whose value differs between two saved runs'
    machine_info, in that order; empty where either run lacks the record."""
    base, new = isa_flags(base_info), isa_flags(new_info)
    if base is None or new is None:
        return []
    return [f for f in ISA_FLAGS if base[f] != new[f]]


def _isa_summary(isa: Mapping[str, bool]) -> str:
    """``AVX-512 VNNI BF16 FP16 AMX-INT8 AMX-BF16``: the widest vector ISA, then extensions."""
    parts = ["AVX-512" if isa.get("avx512f") else "AVX2" if isa.get("avx2") else "no AVX2"]
    if isa.get("avx512_vnni"):
        parts.append("VNNI")
    elif isa.get("avx_vnni"):
        parts.append("AVX-VNNI")
    parts += [name for flag, name in (("avx512_bf16", "BF16"), ("avx512_fp16", "FP16")) if isa.get(flag)]
    parts += [name for flag, name in (("amx_int8", "AMX-INT8"), ("amx_bf16", "AMX-BF16")) if isa.get(flag)]
    return " ".join(parts)


def _bytes(n: object, unit: str) -> str:
    if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
        return "-"
    value = n / (1 << {"MiB": 20, "GiB": 30}[unit])
    return f"{value:.0f} {unit}" if value >= 10 or value == int(value) else f"{value:.1f} {unit}"


def _count(n: object) -> str:
    return str(n) if isinstance(n, int) and not isinstance(n, bool) else "-"


def host_line(machine_info: object) -> str:
    """One line for a report: ``Intel Xeon Processor, 2 cores (2 logical), AVX-512 VNNI ...,
    L2 2 MiB, L3 480 MiB, 23.5 GiB, torch capability AVX512``; ``-`` for each missing part."""
    host = host_record(machine_info) or {}
    name = host.get("model_name")
    name = re.sub(r"\((R|TM|tm|r)\)", "", name).replace("  ", " ").strip() if isinstance(name, str) else "-"
    cores, logical = host.get("physical_cores"), host.get("logical_cpus")
    cores_part = f"{_count(cores)} cores ({_count(logical)} logical)"
    isa = isa_flags(machine_info)
    capability = host.get("torch_capability")
    return ", ".join(
        [
            name or "-",
            cores_part,
            _isa_summary(isa) if isa else "ISA -",
            f"L2 {_bytes(host.get('l2_bytes'), 'MiB')}",
            f"L3 {_bytes(host.get('l3_bytes'), 'MiB')}",
            _bytes(host.get("memory_bytes"), "GiB"),
            f"torch capability {capability if isinstance(capability, str) else '-'}",
        ]
    )
