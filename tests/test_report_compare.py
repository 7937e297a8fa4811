"""report and compare on JSON that real pytest-benchmark runs produce: the runs time a
busy-wait whose length the test controls, with raw rounds saved; plus plain runs of anyone's
tests (no record), the 2.5 and 3.0 layouts, and damaged files."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inference_scale.cli.main import main
from inference_scale.verdicts.compare import compare_runs, compare_samples, min_p_value
from inference_scale.verdicts.rule import VERDICTS
from inference_scale.verdicts.runs import parse_run

SPIN_TESTS = """
import os, time

RECORD = dict(family="spin", kind="mlp", state="fp32", batch_size=1, device="cpu", threads=1,
              dtype="float32", params=10, nonzero_params=10, macs=1000, bytes=400, input_shape=[4])

def spin(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass

def test_a(benchmark):
    if os.environ.get("RECORD"):
        benchmark.extra_info.update(RECORD, model="spin-a")
    benchmark(spin, float(os.environ["SPIN_A"]))

def test_b(benchmark):
    if os.environ.get("RECORD"):
        benchmark.extra_info.update(RECORD, model="spin-b")
    benchmark(spin, float(os.environ["SPIN_B"]))
"""


def _run(folder: Path, name: str, a_ms: float, b_ms: float, *, save_data: bool = True, record: bool = True) -> Path:
    out = folder / f"{name}.json"
    env = {**os.environ, "SPIN_A": str(a_ms / 1e3), "SPIN_B": str(b_ms / 1e3), "RECORD": "1" if record else ""}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_spin.py", f"--benchmark-json={out}",
         "--benchmark-min-rounds=40", "--benchmark-max-time=0.000001",
         *(["--benchmark-save-data"] if save_data else [])],
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


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def _write(tmp_path: Path, name: str, data: Any) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


def _scaled(data: dict[str, Any], factor: float) -> dict[str, Any]:
    """Every timing of the run multiplied by ``factor``: rounds and the stats derived from them."""
    out = copy.deepcopy(data)
    for bench in out["benchmarks"]:
        stats = bench["stats"]
        for key in ("min", "max", "mean", "median", "q1", "q3", "iqr", "stddev", "ld15iqr", "hd15iqr"):
            if isinstance(stats.get(key), (int, float)):
                stats[key] *= factor
        if stats.get("data"):
            stats["data"] = [x * factor for x in stats["data"]]
    return out


def _verdict(out: str, name: str) -> str:
    line = next(line for line in out.splitlines() if line.startswith(name)) + "  "
    return next(v for v in VERDICTS if f"  {v}  " in line)


def test_same_code_twice_is_no_change(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _compare(str(runs["base"]), str(runs["again"]), capsys=capsys)
    assert code == 0, out
    assert "0 slower, 0 faster" in out and "2 compared" in out


def test_a_25_percent_slowdown_is_a_regression(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _compare(str(runs["base"]), str(runs["slower"]), capsys=capsys)
    assert code == 1
    assert _verdict(out, "test_b") == "slower"
    assert _verdict(out, "test_a") in ("no change", "undecided")
    code, out, _ = _compare(str(runs["slower"]), str(runs["base"]), "--format", "md", capsys=capsys)
    assert code == 0 and "| test_b | faster |" in out


def test_a_faster_run_is_flagged_faster(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _compare(str(runs["base"]), str(runs["faster"]), capsys=capsys)
    assert code == 0 and "0 slower, 1 faster" in out


PLAIN = """
import time

def test_sleepy(benchmark):
    benchmark(time.sleep, 0.0005)

def test_busy(benchmark):
    benchmark(sum, range(2000))
"""


@pytest.mark.parametrize("save_data", [True, False])
def test_pytester_runs_of_plain_benchmarks(
    save_data: bool, pytester: pytest.Pytester, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Someone else's benchmarks, run by pytest-benchmark through pytester: no record, with and
    without raw rounds. Compared with itself: exit 0; every timing x1.25: exit 1."""
    pytester.makepyfile(test_plain=PLAIN)
    out = tmp_path / "plain.json"
    args = [f"--benchmark-json={out}", "--benchmark-max-time=0.05", "-p", "no:cacheprovider"]
    result = pytester.runpytest_subprocess(*args, *(["--benchmark-save-data"] if save_data else []))
    capsys.readouterr()  # pytester's own echo of the run
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*2 passed*"])
    code, text, _ = _compare(str(out), str(out), capsys=capsys)
    assert code == 0, text
    code, text, _ = _compare(str(out), _write(tmp_path, "slow.json", _scaled(_load(out), 1.25)), capsys=capsys)
    assert code == 1 and "2 slower" in text, text
    assert main(["report", str(out), "--format", "csv"]) == 0  # no record: the record's columns read "-"
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and lines[1].startswith("test_busy,-,-,")


MACHINE = {"node": "n", "machine": "x86_64", "processor": "x86_64", "system": "Linux", "python_version": "2.7.3"}
OPTIONS = {"disable_gc": False, "warmup": False, "timer": "time", "min_rounds": 5, "max_time": 1.0, "min_time": 2.5e-5}


def _stats(median: float, data: list[float] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"min": median * 0.9, "max": median * 1.2, "mean": median, "median": median,
                           "stddev": median * 0.05, "rounds": 10, "iterations": 1, "q1": median * 0.97,
                           "q3": median * 1.03, "iqr": median * 0.06, "outliers": "0;0", "iqr_outliers": 0,
                           "stddev_outliers": 0}  # fmt: skip
    if data is not None:
        out["data"] = data
    return out


def _layout_25() -> dict[str, Any]:
    """pytest-benchmark 2.5 (2015): no fullname, no params, no extra_info."""
    return {
        "version": "2.5.0", "datetime": "2015-08-11T03:15:07", "machine_info": MACHINE,
        "commit_info": {"id": "98a371ba", "dirty": False},
        "benchmarks": [{"group": None, "name": f"test_{k}", "stats": _stats(m), "options": OPTIONS}
                       for k, m in (("engine", 0.02), ("parse", 0.001))],
    }  # fmt: skip


def _layout_30() -> dict[str, Any]:
    """pytest-benchmark 3.0: fullname, params, param, extra_info, raw rounds in stats.data."""
    gen = np.random.default_rng(0)
    return {
        "version": "3.0.0", "datetime": "2016-11-01T10:00:00", "machine_info": MACHINE,
        "commit_info": {"id": "abc", "dirty": True, "project": "p", "branch": "master"},
        "benchmarks": [{"group": "g", "name": f"test_x[{i}]", "fullname": f"tests/test_x.py::test_x[{i}]",
                        "params": {"i": i}, "param": str(i), "extra_info": {"note": "not our record"},
                        "stats": _stats(0.01, [float(x) for x in 0.01 * (1 + 0.02 * gen.standard_normal(30))]),
                        "options": OPTIONS} for i in range(3)],
    }  # fmt: skip


@pytest.mark.parametrize("layout", [_layout_25, _layout_30])
def test_old_layouts_compare_with_themselves_and_catch_a_slowdown(
    layout: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = layout()
    base = _write(tmp_path, "base.json", data)
    code, out, _ = _compare(base, base, capsys=capsys)
    assert code == 0, out
    code, out, _ = _compare(base, _write(tmp_path, "new.json", _scaled(data, 1.25)), capsys=capsys)
    assert code == 1 and f"{len(data['benchmarks'])} slower" in out, out
    assert main(["report", base]) == 0


def test_25_layout_pairs_by_group_and_name(tmp_path: Path) -> None:
    data = _layout_25()
    twin = copy.deepcopy(data)
    twin["benchmarks"][0]["group"] = "other"  # same name, another group: not the same benchmark
    result = compare_runs(parse_run(data), parse_run(twin), threshold=0.1)
    assert result.missing == ["test_engine"] and result.added == ["test_engine"]


def test_too_few_rounds_is_undecided_not_no_change(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """3 rounds cannot reach p < 0.01 (the smallest p is 0.1): a 10x slowdown is undecided,
    listed and counted, and --strict fails on it."""
    assert min_p_value(3, 3) == pytest.approx(0.1)
    data = _layout_30()
    for bench in data["benchmarks"]:
        bench["stats"]["data"] = bench["stats"]["data"][:3]
    base = _write(tmp_path, "base.json", data)
    new = _write(tmp_path, "new.json", _scaled(data, 10.0))
    code, out, _ = _compare(base, new, capsys=capsys)
    assert code == 0 and "3 undecided" in out and "smallest possible p" in out
    code, _, _ = _compare(base, new, "--strict", capsys=capsys)
    assert code == 1


def test_many_rounds_do_not_overflow_the_smallest_p() -> None:
    """C(n + m, n) passes the largest float at about 520 + 520 rounds; fast benchmarks have
    thousands (found by running a plain suite: an OverflowError before the fix)."""
    assert min_p_value(5, 5) == pytest.approx(2 / 252)
    assert min_p_value(2000, 3000) == 0.0
    gen = np.random.default_rng(0)
    sample = list(1e-4 * (1 + 0.01 * gen.standard_normal(3000)))
    assert compare_samples(sample, sample, n_resamples=50)[0] == "no change"


def test_missing_benchmarks_fail_unless_allowed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _layout_30()
    crashed = copy.deepcopy(data)
    del crashed["benchmarks"][1]  # pytest-benchmark does not save a benchmark that raised
    base, new = _write(tmp_path, "b.json", data), _write(tmp_path, "n.json", crashed)
    code, out, _ = _compare(base, new, capsys=capsys)
    assert code == 1 and "missing: test_x[1]" in out
    assert _compare(base, new, "--allow-missing", capsys=capsys)[0] == 0
    nothing = copy.deepcopy(data)
    for bench in nothing["benchmarks"]:
        bench["fullname"] += "-renamed"
    code, _, err = _compare(base, _write(tmp_path, "x.json", nothing), capsys=capsys)
    assert code == 2 and "nothing to compare" in err


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -0.001])
def test_nan_infinite_or_negative_rounds_exit_2(bad: float, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _layout_30()
    data["benchmarks"][0]["stats"]["data"][3] = bad
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data, allow_nan=True))  # NaN and Infinity, as Python's json writes them
    code, _, err = _compare(str(path), str(path), capsys=capsys)
    assert code == 2 and "raw round" in err and len(err.strip().splitlines()) == 1


def test_false_discovery_control_over_many_identical_benchmarks() -> None:
    """100 benchmarks with no change at all, 10 seeded runs, threshold 0 so significance alone
    decides: raw p < 0.01 flags about one row a run; Benjamini-Hochberg keeps whole runs clean."""
    raw_flags = bh_runs_flagged = 0
    for seed in range(10):
        gen = np.random.default_rng(seed)

        def run(gen: np.random.Generator = gen) -> dict[str, Any]:
            return {"machine_info": {}, "benchmarks": [
                {"name": f"t{i}", "fullname": f"t{i}", "stats": {"data": list(1.0 + 0.05 * gen.standard_normal(20))}}
                for i in range(100)]}  # fmt: skip

        base, new = parse_run(run()), parse_run(run())
        result = compare_runs(base, new, threshold=0.0)
        raw_flags += sum(c.p_value is not None and c.p_value < 0.01 for c in result.changes)
        bh_runs_flagged += any(c.verdict in ("slower", "faster") for c in result.changes)
    assert raw_flags >= 3  # the problem is real: about 1 per run of 100
    assert bh_runs_flagged <= 1  # BH under the full null: P(any false discovery) <= alpha


def _with_reference(data: dict[str, Any], speed: float) -> dict[str, Any]:
    out = copy.deepcopy(data)
    sample = {"gemm_gflops": 70.0 * speed, "conv_gflops": 65.0 * speed}
    out["machine_info"] = {**out["machine_info"], "inference_scale": {"reference": {"start": sample, "end": sample}}}
    return out


def test_reference_drift_is_reported_and_normalize_divides_it_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The machine ran its reference 20% slower in the new run, and every benchmark took 1/0.8
    as long: compare says the machine drifted; --normalize finds no change in the code."""
    data = _layout_30()
    base = _write(tmp_path, "b.json", _with_reference(data, 1.0))
    new = _write(tmp_path, "n.json", _with_reference(_scaled(data, 1.25), 0.8))
    code, out, _ = _compare(base, new, capsys=capsys)
    assert code == 1 and "reference between runs (new/base speed): 0.800" in out and "drifted" in out
    code, out, _ = _compare(base, new, "--normalize", capsys=capsys)
    assert code == 0 and "0 slower" in out, out


def test_metric_gates_and_machine_warnings(runs: dict[str, Path]) -> None:
    base = _load(runs["base"])
    new = copy.deepcopy(base)
    new["benchmarks"][0]["extra_info"]["bytes"] += 1
    new["benchmarks"][1]["extra_info"]["accuracy"] = 0.90
    base["benchmarks"][1]["extra_info"]["accuracy"] = 0.91
    new["machine_info"]["cpu"]["brand_raw"] = "another CPU"
    result = compare_runs(parse_run(base), parse_run(new))
    assert result.regressed
    assert [bool(c.metric_regressions) for c in result.changes] == [True, True]
    assert any("another CPU" in w for w in result.warnings)
    base["benchmarks"][1]["extra_info"]["accuracy"] = 0.904  # 0.4 points: inside the default 0.5
    assert not compare_runs(parse_run(base), parse_run(base)).regressed


@pytest.mark.parametrize(
    ("mutate", "code", "message"),
    [
        (lambda d: d.update(machine_info=None), 0, "no machine_info"),
        (lambda d: d.update(machine_info="cpu"), 0, "no machine_info"),
        (lambda d: d["benchmarks"][0].update(stats=None), 2, "no stats object"),
        (lambda d: d["benchmarks"][0]["stats"].pop("iqr"), 0, ""),
        (lambda d: d["benchmarks"][0].update(name=7), 2, "no text name"),
        (lambda d: d["benchmarks"][0]["stats"].update(median=0, data=None), 2, "median 0"),
    ],
)
def test_damaged_runs_are_one_line_or_documented(
    mutate: Any, code: int, message: str, runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _load(runs["base"])
    mutate(data)
    path = _write(tmp_path, "m.json", data)
    got, out, err = _compare(path, path, capsys=capsys)
    assert got == code, out + err
    assert "Traceback" not in err and message in out + err
    if code == 2:
        assert len(err.strip().splitlines()) == 1
        assert main(["report", path]) == 2  # report reads through the same checks


@pytest.mark.parametrize(("content", "message"), [("not json", "is not JSON"), ('{"a": 1}', "not pytest-benchmark")])
def test_bad_files_exit_2_with_one_line(
    tmp_path: Path, content: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    code, _, err = _compare(str(bad), str(bad), capsys=capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_unknown_and_ambiguous_run_ids(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _compare("0042", "0043", "--storage", str(tmp_path), capsys=capsys)
    assert code == 2 and "no run '0042'" in err
    for machine in ("Linux-CPython-3.11-64bit", "Darwin-CPython-3.12-64bit"):
        (tmp_path / machine).mkdir()
        (tmp_path / machine / "0001_abc_20260101_000000.json").write_text(runs["base"].read_text())
    assert main(["report", "0001", "--storage", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "ambiguous" in err and "Linux-CPython" in err and "Darwin-CPython" in err


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
    assert [p.name for p in pngs] == ["latency_vs_bytes.png", "latency_vs_quality.png", "speedup.png"]
    assert all(p.stat().st_size > 1000 and p.read_bytes()[:4] == b"\x89PNG" for p in pngs)
    assert not list((tmp_path / "plots").glob(".*"))  # no temporary file left
    assert main(["report", "0001", "--storage", str(tmp_path / "store"), "--format", "csv"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 3  # header + two benchmarks


def test_report_of_an_empty_run_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = _write(tmp_path, "empty.json", {"machine_info": MACHINE, "benchmarks": []})
    assert main(["report", empty, "--plot", str(tmp_path / "plots")]) == 2
    assert "holds no benchmarks" in capsys.readouterr().err
    assert not (tmp_path / "plots").exists()


samples = st.lists(st.floats(1e-4, 1e-1, allow_nan=False), min_size=2, max_size=30)


@settings(max_examples=60, deadline=None)
@given(samples)
def test_identical_samples_never_regress(sample: list[float]) -> None:
    verdict, ratio, *_ = compare_samples(sample, list(sample))
    assert verdict in ("no change", "undecided") and ratio == 1.0


@settings(max_examples=60, deadline=None)
@given(samples, samples)
def test_swapping_base_and_new_swaps_slower_and_faster(a: list[float], b: list[float]) -> None:
    forward, *_ = compare_samples(a, b, n_resamples=100)
    backward, *_ = compare_samples(b, a, n_resamples=100)
    swap = {"slower": "faster", "faster": "slower", "no change": "no change", "undecided": "undecided"}
    assert backward == swap[forward]


def _mutations() -> st.SearchStrategy[list[tuple[str, Any]]]:
    junk = st.one_of(st.none(), st.integers(-5, 5), st.floats(allow_nan=True, allow_infinity=True),
                     st.text(max_size=5), st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3),
                     st.integers(), max_size=2))  # fmt: skip
    paths = st.sampled_from(["", "machine_info", "benchmarks", "b.name", "b.fullname", "b.group", "b.stats",
                             "b.stats.median", "b.stats.iqr", "b.stats.data", "b.stats.data.0", "b.extra_info",
                             "b.extra_info.bytes", "b.extra_info.model", "b"])  # fmt: skip
    op = st.tuples(paths, st.one_of(st.just("<drop>"), junk))
    return st.lists(op, min_size=1, max_size=4)


def _apply(data: dict[str, Any], path: str, value: Any, index: int) -> None:
    parts = [p for p in path.split(".") if p]
    if not parts:
        return
    node: Any = data
    parts = [str(index) if p == "b" else p for p in parts]
    if parts[0].isdigit():
        parts.insert(0, "benchmarks")
    for part in parts[:-1]:
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            return
    last = parts[-1]
    if isinstance(node, list) and last.isdigit() and int(last) < len(node):
        if value == "<drop>":
            del node[int(last)]
        else:
            node[int(last)] = value
    elif isinstance(node, dict):
        if value == "<drop>":
            node.pop(last, None)
        else:
            node[last] = value


@settings(max_examples=100, deadline=None)
@given(_mutations(), st.integers(0, 1))
def test_mutated_json_never_raises(ops: list[tuple[str, Any]], index: int) -> None:
    """Fields dropped, nulls, wrong types, NaN: compare answers 0, 1 or 2, never a traceback."""
    import contextlib
    import io
    import tempfile

    data = _layout_30()
    for path, value in ops:
        _apply(data, path, value, index)
    with tempfile.TemporaryDirectory() as folder:
        base = _write(Path(folder), "base.json", _layout_30())
        new = Path(folder) / "new.json"
        new.write_text(json.dumps(data, allow_nan=True))
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(["compare", base, str(new)])
            code_report = main(["report", str(new)])
    assert code in (0, 1, 2) and code_report in (0, 2)
    assert "Traceback" not in err.getvalue()
