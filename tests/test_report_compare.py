"""report and compare on JSON that real pytest-benchmark runs produce: the runs time a
busy-wait whose length the test controls, with raw rounds saved."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inference_scale.cli import main
from inference_scale.compare import compare_runs, compare_samples

SPIN_TESTS = """
import os, time

RECORD = dict(family="spin", kind="mlp", state="fp32", batch_size=1, device="cpu", threads=1,
              dtype="float32", params=10, nonzero_params=10, macs=1000, bytes=400, input_shape=[4])

def spin(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass

def test_a(benchmark):
    benchmark.extra_info.update(RECORD, model="spin-a")
    benchmark(spin, float(os.environ["SPIN_A"]))

def test_b(benchmark):
    benchmark.extra_info.update(RECORD, model="spin-b")
    benchmark(spin, float(os.environ["SPIN_B"]))
"""


def _run(folder: Path, name: str, a_ms: float, b_ms: float) -> Path:
    out = folder / f"{name}.json"
    env = {**__import__("os").environ, "SPIN_A": str(a_ms / 1e3), "SPIN_B": str(b_ms / 1e3)}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_spin.py", "--benchmark-save-data",
         f"--benchmark-json={out}", "--benchmark-min-rounds=40", "--benchmark-max-time=0.000001"],
        cwd=folder, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("spin")
    (folder / "test_spin.py").write_text(SPIN_TESTS)
    return {
        "base": _run(folder, "base", 2.0, 2.0),
        "again": _run(folder, "again", 2.0, 2.0),  # the same code run twice: A/A
        "slower": _run(folder, "slower", 2.0, 2.5),  # b is 25% slower
        "faster": _run(folder, "faster", 2.0, 1.5),
    }


def _compare(*argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["compare", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_same_code_twice_is_no_significant_change(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _compare(str(runs["base"]), str(runs["again"]), capsys=capsys)
    assert code == 0, out
    assert "0 slower, 0 faster, 0 metric regressions, 2 compared" in out


def test_a_25_percent_slowdown_is_a_regression(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _compare(str(runs["base"]), str(runs["slower"]), capsys=capsys)
    assert code == 1
    line = next(line for line in out.splitlines() if line.startswith("test_b"))
    assert "slower" in line
    assert next(line for line in out.splitlines() if line.startswith("test_a")).split()[1:4] == [
        "no",
        "significant",
        "change",
    ]
    code, out, _ = _compare(str(runs["slower"]), str(runs["base"]), "--format", "md", capsys=capsys)
    assert code == 0 and "| test_b | faster |" in out


def test_a_faster_run_is_flagged_faster(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _compare(str(runs["base"]), str(runs["faster"]), capsys=capsys)
    assert code == 0 and "0 slower, 1 faster" in out


def test_without_raw_rounds_falls_back_with_a_warning(runs: dict[str, Path], tmp_path: Path) -> None:
    data = [json.loads(runs[k].read_text()) for k in ("base", "slower")]
    for run in data:
        for bench in run["benchmarks"]:
            bench["stats"].pop("data")
    result = compare_runs(*data)
    assert any("no raw rounds" in w for w in result.warnings)
    assert [c.verdict for c in result.changes] == ["no significant change", "slower"]


def test_metric_gates_and_machine_warnings(runs: dict[str, Path]) -> None:
    base = json.loads(runs["base"].read_text())
    new = copy.deepcopy(base)
    new["benchmarks"][0]["extra_info"]["bytes"] += 1
    new["benchmarks"][1]["extra_info"]["accuracy"] = 0.90
    base["benchmarks"][1]["extra_info"]["accuracy"] = 0.91
    new["machine_info"]["cpu"]["brand_raw"] = "another CPU"
    result = compare_runs(base, new)
    assert result.regressed
    assert [bool(c.metric_regressions) for c in result.changes] == [True, True]
    assert any("another CPU" in w for w in result.warnings)
    base["benchmarks"][1]["extra_info"]["accuracy"] = 0.904  # 0.4 points: inside the default 0.5
    assert not compare_runs(base, base).regressed
    assert compare_runs(base, {**base, "benchmarks": base["benchmarks"][:1]}).missing


@pytest.mark.parametrize(
    ("content", "message"),
    [("not json", "is not JSON"), ('{"a": 1}', "not pytest-benchmark output")],
)
def test_bad_files_exit_2_with_one_line(
    tmp_path: Path, content: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    code, _, err = _compare(str(bad), str(bad), capsys=capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_unknown_run_id_and_missing_record(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _compare("0042", "0043", "--storage", str(tmp_path), capsys=capsys)
    assert code == 2 and "no run '0042'" in err
    data = json.loads(runs["base"].read_text())
    data["benchmarks"][0]["extra_info"] = {}
    stripped = tmp_path / "stripped.json"
    stripped.write_text(json.dumps(data))
    code, _, err = _compare(str(stripped), str(runs["base"]), capsys=capsys)
    assert code == 2 and "no usable extra_info record" in err


def test_report_prints_every_benchmark_and_writes_plots(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = tmp_path / "store" / "Linux-CPython"
    storage.mkdir(parents=True)
    (storage / "0001_abc_20260101_000000.json").write_text(runs["slower"].read_text())
    assert main(["report", "--storage", str(tmp_path / "store"), "--plot", str(tmp_path / "plots")]) == 0
    out = capsys.readouterr().out
    assert "spin-a" in out and "spin-b" in out
    pngs = sorted((tmp_path / "plots").glob("*.png"))
    assert [p.name for p in pngs] == ["latency_vs_bytes.png", "speedup.png", "throughput_vs_params.png"]
    assert all(p.stat().st_size > 1000 and p.read_bytes()[:4] == b"\x89PNG" for p in pngs)
    assert main(["report", "0001", "--storage", str(tmp_path / "store"), "--format", "csv"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 3  # header + two benchmarks


samples = st.lists(st.floats(1e-4, 1e-1, allow_nan=False), min_size=2, max_size=30)


@settings(max_examples=60, deadline=None)
@given(samples)
def test_identical_samples_never_regress(sample: list[float]) -> None:
    verdict, ratio, *_ = compare_samples(sample, list(sample))
    assert verdict == "no significant change" and ratio == 1.0


@settings(max_examples=60, deadline=None)
@given(samples, samples)
def test_swapping_base_and_new_swaps_slower_and_faster(a: list[float], b: list[float]) -> None:
    forward, *_ = compare_samples(a, b, n_resamples=100)
    backward, *_ = compare_samples(b, a, n_resamples=100)
    swap: dict[str, Any] = {"slower": "faster", "faster": "slower", "no significant change": "no significant change"}
    assert backward == swap[forward]
