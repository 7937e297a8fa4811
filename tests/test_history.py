"""``history`` and ``bisect`` on a real git history (tests/_history_repo.py): twelve commits of
three pure-compute benchmarks, commit 7 makes test_b do 20% more work, one saved run per commit
(pytest-benchmark's autosave). Plus the foreign pytest-benchmark layouts the compare tests use,
and each bad input as one line with exit 2.

The saved runs time ``min`` over about 0.3 s of rounds per benchmark: this shared host switches
between a fast and a slow state for seconds at a time (1.8x apart, see docs/history.md), and a
run's median follows whichever state it landed in; the fastest round does not."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from inference_scale.cli.main import main
from inference_scale.verdicts.compare import min_p_value
from inference_scale.verdicts.history import load_history

from ._history_repo import SLOW_COMMIT, git, make_repo, pytest_env, save_runs
from ._timing import TIMING
from .test_report_compare import _layout_25, _layout_30, _scaled

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def history_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], Path]:
    root = tmp_path_factory.mktemp("history")
    repo, shas = make_repo(root)
    storage = root / "storage"
    save_runs(repo, shas, storage, rounds=1, max_time=0.3)
    return repo, shas, storage


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


# The two step-finding checks on a real 12-commit history time real compute per commit: a 20%
# step against the host's own swings. On the 2-core Intel Xeon VM (2026-12-02, evening) history
# and bisect were right 5 of 5 (tools/history_repeats.py, 20 s a repeat), so CI runs them. On
# the AMD Zen 5 VM the same day, runs switched 1.6-1.8x and history was right 0 of 5 and bisect
# 2 of 5 (docs/history.md). So each reads the host's swing from its own runs and skips, naming
# it, where the host moved more than the step it looks for: history from its controls (test_a
# and test_c, the same code at every commit: a step found in them is the host's), bisect from
# its own verdict (undecided, not significant at its q-value: the tool saying the noise hid
# it). History skips where a control's fastest-round time spans more than 1.10x (half the step)
# over the twelve runs. A wrong answer on a steady host still fails. INFERENCE_SCALE_TIMING_TESTS=0 skips them
# outright (2026-12-04, AMD EPYC host: both failed in a clean-clone .ci/run, the control test_c
# stepping twice).


@TIMING
def test_history_flags_the_slow_benchmark_at_commit_7_only(
    history_repo: tuple[Path, list[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, shas, storage = history_repo
    hist = load_history(storage, stat="min")
    assert [s.points[0].commit for s in hist.series] == [shas[0][:10]] * 3  # ordered by commit time
    steps = [(s.benchmark, s.verdict, s.commit_before, s.commit_after) for s in hist.steps]
    # The controls' spread over the twelve runs against half the 20% step looked for.
    spread = {s.name: max(v := [p.value for p in s.points if not p.outlier]) / min(v) for s in hist.series}
    moved = {name: r for name, r in spread.items() if name != "test_b" and r > 1.10}
    if moved:
        words = ", ".join(f"{name} {r:.2f}x" for name, r in moved.items())
        pytest.skip(f"the host moved: the unchanged controls spanned {words} over the same runs (> 1.10x)")
    slow, parent = shas[SLOW_COMMIT - 1][:10], shas[SLOW_COMMIT - 2][:10]
    assert steps == [("test_b", "slower", parent, slow)], steps
    assert 1.1 < hist.steps[0].ratio < 1.35
    code, out, _ = _cli(["history", str(storage), "--stat", "min"], capsys)
    assert code == 1 and f"{parent}..{slow}" in out and "latest segment regressed: test_b" in out
    code, out, _ = _cli(
        ["history", str(storage), "--stat", "min", "--benchmark", "test_[ac]", "--format", "md"], capsys
    )
    assert code == 0 and "| benchmark | step |" in out and "test_b" not in out
    code, out, _ = _cli(["history", str(storage), "--stat", "min", "--since", shas[SLOW_COMMIT - 1][:8]], capsys)
    assert code == 0 and "6 runs" in out  # from commit 7 on there is no step left
    code, out, _ = _cli(["history", str(storage), "--since", "2026-01-01T10:00:00+00:00"], capsys)
    assert code == 0 and "3 runs" in out


@TIMING
def test_bisect_names_commit_7(history_repo: tuple[Path, list[str], Path]) -> None:
    repo, shas, _ = history_repo
    env = {**pytest_env(), "PYTHONPATH": str(ROOT)}
    cmd = [
        sys.executable,
        "-m",
        "inference_scale.cli.main",
        "bisect",
        shas[0],
        shas[-1],
        "--runs",
        "4",
        "--",
        "test_bench.py::test_b",  # -k test_b would also match the module, test_bench.py
    ]
    proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    # Undecided where a probe's A/B was not significant, or "no change" with a 95% interval that
    # still reaches past the threshold: bisect itself saying the noise hid it (at BAD against
    # GOOD, or at enough commits between to spend --max-probes). The second read "reaches 1.408"
    # in a clean-clone .ci/run (2026-12-06, AMD EPYC host). A named commit that is wrong fails.
    noise = ("not significant", "95% interval of")
    if proc.returncode == 1 and "undecided:" in proc.stdout and any(w in proc.stdout + proc.stderr for w in noise):
        pytest.skip(f"the host's noise hid the step, by bisect's own test: {proc.stdout.strip().splitlines()[-1]}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"first slower commit: {shas[SLOW_COMMIT - 1][:7]}" in proc.stdout, proc.stdout + proc.stderr
    assert "probe 1/" in proc.stderr and "range now" in proc.stderr  # progress
    assert git(repo, "worktree", "list").count("\n") == 0  # every probe's worktree is gone


def test_interrupted_bisect_cleans_up_and_prints_the_range(
    history_repo: tuple[Path, list[str], Path], tmp_path: Path
) -> None:
    repo, shas, _ = history_repo
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**pytest_env(), "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp)}
    cmd = [sys.executable, "-m", "inference_scale.cli.main", "bisect", shas[0], shas[-1], "--", "test_bench.py"]
    proc = subprocess.Popen(cmd, cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    lines = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        lines.append(line)
        if "block 1" in line:  # the first probe's A/B is under way, in worktrees
            break
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=120)
    err = "".join(lines) + rest
    assert proc.returncode == 130, err
    assert f"after {shas[0][:7]} and at or before {shas[-1][:7]}" in err
    assert git(repo, "worktree", "list").count("\n") == 0
    assert list(tmp.iterdir()) == []  # no worktree or plugin folder left behind


def test_history_reads_the_foreign_layouts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for layout in (_layout_25, _layout_30):
        folder = tmp_path / layout.__name__ / "Linux-CPython-3.11-64bit"
        folder.mkdir(parents=True)
        for i, factor in enumerate((1.0, 1.0, 1.0, 1.3, 1.3, 1.3)):
            data = _scaled(layout(), factor)
            data["datetime"] = f"2026-01-0{i + 1}T00:00:00"
            (folder / f"000{i + 1}_run.json").write_text(json.dumps(data))
        code, out, err = _cli(["history", str(folder.parent)], capsys)
        assert err == "" and "6 runs" in out, out + err
        if layout is _layout_30:  # raw rounds: the 30% step of every benchmark is flagged
            assert code == 1 and "3 steps (3 slower" in out, out
        else:  # medians alone, 3 runs a side: the smallest p is 2 / C(6, 3) = 0.1 > alpha
            assert min_p_value(3, 3) == pytest.approx(0.1)
            assert code == 0 and "0 steps" in out and "no raw rounds" in out, out


def _one_line_error(argv: list[str], capsys: pytest.CaptureFixture[str], needle: str) -> None:
    code, _, err = _cli(argv, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and needle in err, err


def test_bad_input_is_one_line(
    history_repo: tuple[Path, list[str], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo, shas, storage = history_repo
    (tmp_path / "empty").mkdir()
    _one_line_error(["history", str(tmp_path / "empty")], capsys, "no saved runs")
    two = tmp_path / "two"
    for machine in ("m1", "m2"):
        (two / machine).mkdir(parents=True)
        (two / machine / "0001_x.json").write_text(json.dumps(_layout_25()))
    _one_line_error(["history", str(two)], capsys, "--machine (m1, m2)")
    _one_line_error(["history", str(two), "--machine", "m3"], capsys, "valid choices: m1, m2")
    for bad in ("-0.1", "nan"):  # the shared --threshold: a finite number >= 0, as in compare and ab
        with pytest.raises(SystemExit) as exc:
            main(["history", str(storage), "--threshold", bad])
        assert exc.value.code == 2
        assert "out of range" in capsys.readouterr().err
    _one_line_error(["history", str(storage), "--benchmark", "nothing*"], capsys, "matches no benchmark")
    here = os.getcwd()
    os.chdir(repo)
    try:
        _one_line_error(["bisect", shas[-1], shas[0], "--", "test_bench.py"], capsys, "is not an ancestor")
        (repo / "notes.txt").write_text("uncommitted\n")
        _one_line_error(["bisect", shas[0], shas[-1], "--", "test_bench.py"], capsys, "uncommitted changes")
    finally:
        git(repo, "checkout", "--", "notes.txt")
        os.chdir(here)
