"""This repo's benchmark suite run as a user runs it: usage errors for bad options, the grids
expanded with one fp32 baseline per model and batch (first), and saved JSON whose every
benchmark carries the typed extra_info record."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

# Imported before any in-process pytester run, which restores sys.modules afterwards: torch's
# extensions and operator libraries cannot be loaded a second time in one process.
import torch  # noqa: F401

from inference_scale.measure.record import validate_extra_info

ROOT = Path(__file__).resolve().parents[1]


def collect(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """Collect this repo's suite in process (seconds cheaper than a subprocess per case)."""
    return pytester.runpytest_inprocess(
        str(ROOT / "benchmarks"), f"--rootdir={ROOT}", "-p", "no:cacheprovider", "--collect-only", "-q", *args
    )


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--is-model", "resnt50"], "did you mean: resnet50"),
        (["--is-batch-size", "eight"], "--is-batch-size: batch size 'eight' is not valid"),
        (["--is-device", "tpu"], "--is-device: device 'tpu' is not valid; valid: cpu, cuda"),
        (["--is-threads", "0"], "--is-threads: threads must be 1..1024, got 0"),
        (["--is-states", "channels_lastt"], "did you mean: channels-last"),
        (["--is-eval", "x:y"], "--is-model: an input shape, example factory, sequence length or loader"),
        (["--is-reference-seconds", "-1"], "--is-reference-seconds must be within 0..60 seconds"),
    ],
)
def test_bad_options_are_usage_errors(pytester: pytest.Pytester, option: list[str], message: str) -> None:
    result = collect(pytester, *option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()


def _ids(result: pytest.RunResult) -> list[str]:
    return [line.split("[", 1)[1].rstrip("]") for line in result.stdout.lines if "::test_state[" in line]


def test_each_model_and_batch_has_one_fp32_baseline_timed_first(pytester: pytest.Pytester) -> None:
    ids = _ids(collect(pytester))
    assert len(ids) == len(set(ids))
    seen: set[str] = set()
    for case in ids:
        model_batch = case.replace("-fp32-", "-", 1) if "-fp32-" in case else None
        if model_batch is not None:
            seen.add(case.rsplit("-fp32-", 1)[0] + "-" + case.rsplit("-", 1)[1])
        else:
            batch = case.rsplit("-", 1)[1]
            assert any(case.startswith(s.rsplit("-", 1)[0] + "-") and s.endswith(batch) for s in seen), case
    fp32 = [c for c in ids if "-fp32-" in c]
    assert "resnet50-fp32-b8" in fp32 and fp32.count("resnet50-fp32-b8") == 1
    assert "lenet-fp32-b100" in fp32 and "linear-1024-fp32-b32" in fp32


def test_options_select_cases(pytester: pytest.Pytester) -> None:
    ids = _ids(collect(pytester, "--is-model", "lenet", "--is-batch-size", "4", "--is-states", "fp32,bf16,csr-90"))
    assert ids == ["lenet-fp32-b4", "lenet-bf16-b4", "lenet-csr-90-b4"]
    # a model no grid names gets the default states
    ids = _ids(collect(pytester, "--is-model", "mobilenet_v3_small", "--is-batch-size", "2"))
    assert ids[0] == "mobilenet_v3_small-fp32-b2" and "mobilenet_v3_small-prune-channels-50-b2" in ids
    assert len(ids) == 6


@pytest.mark.slow
def test_timed_json_has_the_record_for_every_benchmark(tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "benchmarks/test_suite.py", "--benchmark-only",
         "--is-model", "lenet", "--is-batch-size", "1", "--is-states", "fp32,channels-last,prune-l1-50",
         f"--benchmark-json={out}", "--benchmark-min-rounds=1", "--benchmark-max-time=0.000001", "-q",
         "--is-reference-seconds=0"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data: dict[str, Any] = json.loads(out.read_text())
    benches = data["benchmarks"]
    assert [b["extra_info"]["state"] for b in benches] == ["fp32", "channels-last", "prune-l1-50"]
    for bench in benches:
        extra = validate_extra_info(bench["extra_info"])
        assert extra["batch_size"] == 1 and extra["threads"] == 1 and extra["device"] == "cpu"
        assert bench["name"].endswith(f"[{extra['model']}-{extra['state']}-b1]")
        assert bench["group"] == extra["model"] == "lenet"
        assert extra["weights"] == "trained:mnist" and extra["accuracy"] > 0.9  # the trained LeNet
    info = data["machine_info"]["inference_scale"]
    assert info["torch"] and info["torchvision"] and info["threads"] == 1 and info["cpu_name"]
