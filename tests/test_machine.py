"""The machine record: read against /proc and sysfs directly, round-tripped through a saved
run's JSON, and compared between runs; and the ISA table behind the theoretical peaks."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from inference_scale.measure.bounds import ops_per_cycle
from inference_scale.measure.machine import (
    ISA_FLAGS,
    KEY,
    SECTION,
    cpuinfo,
    host_info,
    host_line,
    isa_differences,
    isa_flags,
)


def _flags_from_proc() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def _saved(host: dict) -> dict:
    """machine_info as a saved run holds it: through JSON."""
    return json.loads(json.dumps({"cpu": {}, SECTION: {KEY: host}}))


@pytest.fixture(scope="module")
def host() -> dict:
    return host_info()


def test_host_info_matches_proc_and_torch(host: dict) -> None:
    import torch

    assert host["torch_capability"] == torch.backends.cpu.get_cpu_capability()
    flags = _flags_from_proc()
    assert list(host["isa"]) == list(ISA_FLAGS)
    assert host["isa"] == {f: f in flags for f in ISA_FLAGS}
    processors = Path("/proc/cpuinfo").read_text().count("\nprocessor") + Path("/proc/cpuinfo").read_text().startswith(
        "processor"
    )
    assert host["logical_cpus"] == processors
    assert 1 <= host["physical_cores"] <= host["logical_cpus"]
    kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if "MemTotal" in line)
    assert host["memory_bytes"] == kib * 1024
    assert host["vendor"] in {"GenuineIntel", "AuthenticAMD"} or host["vendor"]
    assert isinstance(host["cpu_family"], int) and isinstance(host["cpu_model"], int)


def test_cache_sizes_match_sysfs(host: dict) -> None:
    sizes = {}
    for index in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        if (index / "type").read_text().strip() != "Instruction":
            text = (index / "size").read_text().strip()
            sizes[int((index / "level").read_text())] = int(text[:-1]) * 1024 if text.endswith("K") else int(text)
    if not sizes:
        pytest.skip("no cache information in sysfs here")
    assert host["l2_bytes"] == sizes.get(2)
    assert host["l3_bytes"] == sizes.get(3)


def test_physical_cores_are_unique_package_core_pairs() -> None:
    text = "\n\n".join(
        f"processor : {i}\nphysical id : {i // 4}\ncore id : {(i % 4) // 2}\nflags : avx2 fma" for i in range(8)
    )
    cpus = cpuinfo(text)
    assert len(cpus) == 8
    assert len({(c["physical id"], c["core id"]) for c in cpus}) == 4


def test_the_readers_load_no_torch() -> None:
    code = (
        "import sys\n"
        "import inference_scale.measure.machine, inference_scale.measure.bounds, inference_scale.measure.memory\n"
        "import inference_scale.verdicts.tails, inference_scale.measure._simd\n"
        "from inference_scale.measure.machine import host_info\n"
        "host_info(torch_capability=False)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)


def test_isa_flags_round_trip_and_differences(host: dict) -> None:
    base = _saved(host)
    assert isa_flags(base) == host["isa"]
    new = copy.deepcopy(base)
    new[SECTION][KEY]["isa"]["avx512_vnni"] = not host["isa"]["avx512_vnni"]
    new[SECTION][KEY]["isa"]["amx_int8"] = not host["isa"]["amx_int8"]
    assert isa_differences(base, new) == ["avx512_vnni", "amx_int8"]
    assert isa_differences(base, base) == []


@pytest.mark.parametrize("broken", [{}, {"cpu": {}}, {SECTION: {}}, {SECTION: {KEY: {"isa": {"avx2": True}}}}, None])
def test_older_runs_have_no_flags_and_no_differences(host: dict, broken: object) -> None:
    assert isa_flags(broken) is None
    assert isa_differences(_saved(host), broken) == []
    assert isa_differences(broken, _saved(host)) == []


def test_host_line(host: dict) -> None:
    line = host_line(_saved(host))
    assert f"{host['physical_cores']} cores ({host['logical_cpus']} logical)" in line
    assert f"torch capability {host['torch_capability']}" in line
    assert ("AVX-512" in line) == host["isa"]["avx512f"]
    assert ("AMX-INT8" in line) == host["isa"]["amx_int8"]
    assert "(R)" not in line
    assert host_line({}) == "-, - cores (- logical), ISA -, L2 -, L3 -, -, torch capability -"


def test_host_line_of_an_avx2_only_amd() -> None:
    isa = {f: f == "avx2" for f in ISA_FLAGS}
    host = {"model_name": "AMD EPYC 7B12", "physical_cores": 2, "logical_cpus": 4, "isa": isa}
    host.update(l2_bytes=512 << 10, l3_bytes=16 << 20, memory_bytes=8 << 30, torch_capability="AVX2")
    assert host_line(_saved(host)) == (
        "AMD EPYC 7B12, 2 cores (4 logical), AVX2, L2 0.5 MiB, L3 16 MiB, 8 GiB, torch capability AVX2"
    )


@pytest.mark.parametrize(
    ("flags", "vendor", "family", "model", "expected"),
    [
        # Sapphire Rapids-class Xeon: AVX-512 with 2 FMA units, AMX for bf16 and int8
        ({"avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16"},
         "GenuineIntel", 6, 143, (64, 1024, 2048)),
        # Zen 5: full-width AVX-512, VNNI, BF16, no AMX
        ({"avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16"}, "AuthenticAMD", 26, 2, (64, 128, 256)),
        # Zen 4: AVX-512 double-pumped
        ({"avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16"}, "AuthenticAMD", 25, 17, (32, 64, 128)),
        # AVX2-only Zen 2
        ({"avx2", "fma"}, "AuthenticAMD", 23, 49, (32, 32, 128)),
    ],
)  # fmt: skip
def test_ops_per_cycle(flags: set[str], vendor: str, family: int, model: int, expected: tuple[int, int, int]) -> None:
    got = ops_per_cycle(dict.fromkeys(flags, True), vendor=vendor, family=family, model=model)
    assert (got["fp32"], got["bf16"], got["int8"]) == expected
    assert set(got["assumption"]) == {"fp32", "bf16", "int8"}
