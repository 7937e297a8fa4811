"""The benchmark suite run as a user runs it (pytest in a subprocess): usage errors for bad
options, and saved JSON whose every benchmark carries the typed extra_info record."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from inference_scale.record import validate_extra_info

ROOT = Path(__file__).resolve().parents[1]


def run_pytest(*args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--arch", "resnt50"], "did you mean: resnet50"),
        (["--batch-size", "eight"], "--batch-size 'eight' is not valid"),
        (["--device", "tpu"], "choices: cpu, cuda"),
        (["--threads", "0"], "--threads must be >= 1"),
    ],
)
def test_bad_options_are_usage_errors(option: list[str], message: str) -> None:
    proc = run_pytest("benchmarks", "--collect-only", "-q", *option)
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR
    assert message in proc.stderr


def test_options_select_cases() -> None:
    proc = run_pytest(
        "benchmarks/test_architectures.py", "--collect-only", "-q", "--arch", "lenet", "--batch-size", "4"
    )
    assert proc.returncode == 0, proc.stderr
    ids = sorted(line.split("[", 1)[1].rstrip("]") for line in proc.stdout.splitlines() if "[" in line)
    assert ids == ["lenet-bf16-b4", "lenet-channels_last-b4", "lenet-fp32-b4"]


@pytest.mark.slow
def test_b1_json_has_the_record_for_every_benchmark(tmp_path: Path) -> None:
    out = tmp_path / "b1.json"
    proc = run_pytest(
        "benchmarks/test_architectures.py", "--benchmark-only", "-k", "b1", f"--benchmark-json={out}",
        "--benchmark-min-rounds=1", "--benchmark-max-time=0.000001", "-q",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data: dict[str, Any] = json.loads(out.read_text())
    benches = data["benchmarks"]
    assert benches, "no benchmark ran"
    for bench in benches:
        extra = validate_extra_info(bench["extra_info"])
        assert extra["batch_size"] == 1 and extra["threads"] == 1 and extra["device"] == "cpu"
        assert bench["name"].endswith(f"[{extra['model']}-{extra['state']}-b1]")
        assert bench["group"] == extra["model"]
    records = [b["extra_info"] for b in benches]
    assert {r["family"] for r in records} >= {"efficientnet", "resnet", "lenet"}
    assert any(r["kind"] == "transformer" for r in records)
    assert {r["model"] for r in records if r["state"] == "fp32"} == {r["model"] for r in records}
    info = data["machine_info"]["inference_scale"]
    assert info["torch"] and info["torchvision"] and info["threads"] == 1 and info["cpu_name"]
