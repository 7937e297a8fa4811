"""``advise``: Pareto fronts known by construction, budgets, the pick and its reason, what binds
when nothing fits, bad input, and a Hypothesis property of the front."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inference_scale.cli.main import main
from inference_scale.measure.record import BenchmarkRecord
from inference_scale.reporting.advice import (
    AdviceError,
    BudgetError,
    Budgets,
    Candidate,
    advise,
    dominates,
    pareto_front,
)

MACHINE = {"node": "n", "processor": "x86_64", "machine": "x86_64", "python_implementation": "CPython",
           "python_version": "3.11.7", "python_compiler": "GCC", "release": "6", "system": "Linux",
           "cpu": {"brand_raw": "test cpu"}}  # fmt: skip


def _bench(model: str, state: str, batch: int, ms: float, mb: float, acc: float | None, top1: float | None) -> Any:
    extras: dict[str, Any] = {}
    if acc is not None:
        extras["accuracy"] = acc
    if top1 is not None:
        extras["top1_agreement"] = top1
    record = BenchmarkRecord(model=model, family="cnn", kind="conv", state=state, batch_size=batch, device="cpu",
                             threads=1, dtype="float32", params=1000, nonzero_params=1000, macs=10**6,
                             bytes=int(mb * 1e6), input_shape=[1, 28, 28], extras=extras)  # fmt: skip
    s = ms / 1e3
    stats = {"min": s * 0.95, "max": s * 1.1, "mean": s, "median": s, "stddev": s * 0.02, "rounds": 20,
             "iterations": 1, "q1": s * 0.98, "q3": s * 1.02, "iqr": s * 0.04, "outliers": "0;0",
             "iqr_outliers": 0, "stddev_outliers": 0, "ops": 1 / s, "total": s * 20}  # fmt: skip
    name = f"test_state[{model}-{state}-b{batch}]"
    return {"group": model, "name": name, "fullname": f"t.py::{name}", "params": None, "param": None,
            "extra_info": record.to_extra_info(), "options": {}, "stats": stats}  # fmt: skip


def _run(tmp_path: Path, benches: list[Any], name: str = "run.json") -> str:
    path = tmp_path / name
    data = {"machine_info": MACHINE, "commit_info": {"id": "abc", "dirty": False}, "benchmarks": benches,
            "datetime": "2026-11-26T10:00:00", "version": "5.3.1"}  # fmt: skip
    path.write_text(json.dumps(data))
    return str(path)


# By construction: fp32 is slow and big; "fast" is fastest but loses 3 points; "small" is the
# smallest; "good" is fast-ish with no loss; "dominated" is slower, bigger and worse than "good".
CNN = [("fp32", 100, 4.0, 0.980), ("fast", 5, 1.0, 0.950), ("small", 30, 0.5, 0.975),
       ("good", 10, 1.0, 0.978), ("dominated", 12, 1.5, 0.970)]  # fmt: skip


@pytest.fixture
def run(tmp_path: Path) -> str:
    return _run(tmp_path, [_bench("cnn", s, 100, ms, mb, acc, None) for s, ms, mb, acc in CNN])


def test_the_front_is_known_by_construction_and_a_free_budget_picks_the_fastest(
    run: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["advise", run, "--batch-size", "100", "--max-accuracy-drop", "100"]) == 0
    out = capsys.readouterr().out
    front_lines = [line for line in out.splitlines() if "cnn" in line and "│" in line]
    listed = {s for s, *_ in CNN if any(f" {s} " in line or f" {s} <-" in line for line in front_lines)}
    assert listed == {"fp32", "fast", "small", "good"}  # "dominated" is off the front
    assert "pick for cnn b100: fast: fastest state within the budgets (5 ms, 20.00x vs fp32" in out


@pytest.mark.parametrize("flags", [[], ["--max-accuracy-drop", "1"]])
def test_an_accuracy_budget_moves_the_pick_and_says_why(
    run: str, flags: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["advise", run, "--batch-size", "100", *flags]) == 0  # 1 point is the default budget
    out = capsys.readouterr().out
    # fast drops 3 points; good drops 0.2 and is the next fastest
    expected = "pick for cnn b100: good: fastest state within the budgets; the faster fast breaks --max-accuracy-drop"
    assert expected in out
    assert "accuracy 97.80% (-0.20 points vs fp32)" in out


def test_several_budgets_together(run: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["advise", run, "--max-accuracy-drop", "1", "--max-bytes", "6e5"]) == 0
    assert "pick for cnn b100: small:" in capsys.readouterr().out


def test_nothing_fits_names_the_binding_budget_and_exits_1(run: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["advise", run, "--max-latency-ms", "1"]) == 1
    out = capsys.readouterr().out
    assert "nothing fits cnn b100: no state meets --max-latency-ms (fastest is 5 ms)" in out
    # each budget alone is met by some state, both together by none
    assert main(["advise", run, "--max-latency-ms", "6", "--max-bytes", "6e5", "--max-accuracy-drop", "100"]) == 1
    assert "no state meets --max-bytes and --max-latency-ms together" in capsys.readouterr().out


def test_agreement_stands_in_where_no_accuracy_exists(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _run(tmp_path, [_bench("resnet50", "fp32", 1, 160, 100, None, None),
                           _bench("resnet50", "int8-static", 1, 60, 26, None, 0.875),
                           _bench("resnet50", "ov-int8", 1, 55, 26, None, 1.0)])  # fmt: skip
    assert main(["advise", path, "--max-accuracy-drop", "5", "--format", "md"]) == 0
    out = capsys.readouterr().out
    assert "**pick for resnet50 b1: ov-int8:" in out and "top-1 agreement 100.00%" in out
    assert "| resnet50 | 1 | int8-static |" not in out  # dominated by ov-int8


def test_plot_draws_one_panel_per_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _run(tmp_path, [_bench(m, s, 100, ms, mb, acc, None) for m in ("a", "b") for s, ms, mb, acc in CNN])
    assert main(["advise", path, "--plot", str(tmp_path / "plots")]) == 0
    png = tmp_path / "plots" / "advice.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["advice.png"]  # no temp files left


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--max-latency-ms", "-1"], "out of range"),
        (["--max-bytes", "lots"], "is not a number"),
        (["--max-accuracy-drop", "nan"], "out of range"),
        (["--batch-size", "8"], "no benchmarks at batch size 8; its batch sizes: [100]"),
    ],
)
def test_bad_input_is_one_line(run: str, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = main(["advise", run, *argv])
    except SystemExit as exc:  # argparse: its usage line, then the one-line error
        code = exc.code  # type: ignore[assignment]
    assert code == 2
    err = capsys.readouterr().err
    assert message in err.strip().splitlines()[-1] and "Traceback" not in err


def test_a_run_without_timings_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bench = _bench("cnn", "fp32", 1, 10, 1, 0.9, None)
    bench["stats"] = None  # what --benchmark-disable leaves
    path = _run(tmp_path, [bench])
    assert main(["advise", path]) == 2
    err = capsys.readouterr().err
    assert "timing" in err.lower() and len(err.strip().splitlines()) == 1


def test_budgets_are_checked_in_the_library_too() -> None:
    with pytest.raises(BudgetError, match="must be a finite number >= 0"):
        Budgets(max_latency_ms=-1)
    with pytest.raises(BudgetError, match="must be a number"):
        Budgets(max_bytes="10MB")  # type: ignore[arg-type]
    with pytest.raises(AdviceError, match="no timed"):
        advise([], budgets=Budgets())


_cands = st.lists(
    st.builds(
        Candidate,
        model=st.just("m"),
        state=st.text("abcdef", min_size=1, max_size=4),
        batch=st.just(1),
        latency_ms=st.floats(0.1, 100),
        bytes=st.integers(1, 10**6),
        quality=st.one_of(st.none(), st.floats(0, 1)),
        quality_kind=st.just("accuracy"),
        drop=st.none(),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=200, deadline=None)
@given(_cands)
def test_no_front_point_is_dominated_and_every_dominated_point_is_off_it(cands: list[Candidate]) -> None:
    front = pareto_front(cands)
    assert front
    for c in front:
        assert not any(dominates(o, c) for o in cands)
    for c in cands:
        if any(dominates(o, c) for o in cands):
            assert c not in front
        else:
            assert c in front


# --- report: the fastest state across runtimes; plots: one panel per model ---------------------


def _peer(model: str, state: str, batch: int, ms: float, runtime: str, version: str) -> Any:
    bench = _bench(model, state, batch, ms, 26, None, 1.0)
    bench["extra_info"].update(runtime=runtime, runtime_version=version, cosine_vs_fp32=0.9998)
    return bench


def test_report_marks_the_fastest_state_of_each_model_and_batch_across_runtimes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from inference_scale.reporting.report import rows_from_run
    from inference_scale.verdicts.runs import load_run

    benches = [_bench("resnet50", "fp32", b, 160 * b, 100, None, None) for b in (1, 8)]
    benches += [_peer("resnet50", "int8-static", 1, 60, "torch", "2.14.1"),
                _peer("resnet50", "ort-int8", 1, 52, "onnxruntime", "1.32.0"),
                _peer("resnet50", "int8-static", 8, 460, "torch", "2.14.1"),
                _peer("resnet50", "ov-int8", 8, 480, "openvino", "2026.4.1")]  # fmt: skip
    path = _run(tmp_path, benches)
    rows = rows_from_run(load_run(Path(path)))
    fastest = {(r.batch, r.state) for r in rows if r.fastest}
    assert fastest == {(1, "ort-int8"), (8, "int8-static")}
    assert main(["report", path]) == 0
    out = capsys.readouterr().out
    assert "fastest resnet50 b1: ort-int8 (onnxruntime 1.32.0) 52 ms, 3.08x vs fp32, cos 0.99980" in out
    assert "fastest resnet50 b8: int8-static (torch 2.14.1)" in out


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def test_plots_draw_one_panel_per_model(tmp_path: Path) -> None:
    one = _run(tmp_path, [_bench("a", s, 100, ms, mb, acc, None) for s, ms, mb, acc in CNN], "one.json")
    three = _run(tmp_path, [_bench(m, s, 100, ms, mb, acc, None) for m in "abc" for s, ms, mb, acc in CNN], "3.json")
    assert main(["report", one, "--plot", str(tmp_path / "one")]) == 0
    assert main(["report", three, "--plot", str(tmp_path / "three")]) == 0
    names = ["latency_vs_bytes.png", "latency_vs_quality.png", "speedup.png"]
    assert sorted(p.name for p in (tmp_path / "three").iterdir()) == names
    for name in names:  # three models: three panels side by side, each as wide as the lone one
        w1, h1 = _png_size(tmp_path / "one" / name)
        w3, h3 = _png_size(tmp_path / "three" / name)
        assert 2.5 < w3 / w1 < 3.5 and h3 == h1
