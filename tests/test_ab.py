"""``inference-scale ab`` on a real git repository that the test writes: two commits of a
benchmark file whose busy-waits the test controls, each block a fresh pytest process."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from inference_scale.cli.main import main
from inference_scale.verdicts.ab import ABConfig, ABError, format_ab, run_ab

SPIN = """
import time

A_MS, B_MS = {a}, {b}

def spin(ms):
    end = time.perf_counter() + ms / 1e3
    while time.perf_counter() < end:
        pass

def test_a(benchmark):
    benchmark(spin, A_MS)
{extra}
"""
TEST_B = """
def test_b(benchmark):
    benchmark(spin, B_MS)
"""


def _git(repo: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}  # fmt: skip
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, env=env)


def _commit(repo: Path, a: float, b: float | None, message: str) -> None:
    extra = TEST_B if b is not None else ""
    (repo / "test_spin.py").write_text(SPIN.format(a=a, b=b or 0, extra=extra))
    _git(repo, "add", "test_spin.py")
    _git(repo, "commit", "-q", "-m", message)


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    _git(root, "init", "-q")
    _commit(root, 1.0, 1.0, "base")
    monkeypatch.chdir(root)
    return root


def _ab(*argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["ab", *argv, "--block-time", "0.05", "--out", "out", "--", "test_spin.py"])
    return code, capsys.readouterr().out


def _row(out: str, name: str) -> list[str]:
    line = next(line for line in out.splitlines() if line.startswith(name))
    return [cell.strip() for cell in line.split("  ") if cell.strip()]


def test_a_slowed_benchmark_is_caught_and_nothing_else(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _commit(repo, 1.0, 1.3, "b is 30% slower")
    code, out = _ab("HEAD~1", "--runs", "3", capsys=capsys)
    assert code == 1, out
    assert _row(out, "test_spin.py::test_b")[1] == "slower"
    assert _row(out, "test_spin.py::test_a")[1] in ("no change", "undecided")
    assert float(_row(out, "test_spin.py::test_b")[2]) == pytest.approx(1.3, rel=0.1)
    files = sorted(p.name for p in (repo / "out").glob("*/*.json"))
    assert files == [f"{side}-0{i}.json" for side in "AB" for i in range(1, 4)]
    saved = json.loads(next((repo / "out").glob("*/A-01.json")).read_text())
    assert {b["name"] for b in saved["benchmarks"]} == {"test_a", "test_b"}  # ordinary pytest-benchmark JSON
    worktrees = subprocess.run(["git", "worktree", "list"], capture_output=True, text=True, check=True).stdout
    assert len(worktrees.strip().splitlines()) == 1  # BASE's worktree is gone


def test_aa_reports_the_between_block_cv(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _ab("--aa", "--runs", "2", capsys=capsys)
    assert code == 0, out
    assert "0 slower" in out and "A/A: between-block CV up to" in out
    cv = _row(out, "test_spin.py::test_a")[6]
    assert cv.endswith("%") and float(cv[:-1]) < 10


def test_a_crashed_benchmark_fails_the_gate(repo: Path) -> None:
    _commit(repo, 1.0, None, "test_b removed (as if it crashed: pytest-benchmark saves no failed benchmark)")
    result = run_ab(
        ABConfig(base="HEAD~1", pytest_args=("test_spin.py",), runs=2, block_time=0.05, out_dir=repo / "out")
    )
    assert result.missing == ["test_spin.py::test_b"] and "missing in B: test_spin.py::test_b" in format_ab(result)
    assert [r.name for r in result.rows] == ["test_spin.py::test_a"]
    assert result.exit_code() == 1 and result.exit_code(allow_missing=True) == 0


ROUND_LOGGER = """
import os, sys, time

SIDE = "{side}"

def test_rounds(benchmark):
    sync = sys.modules["_inference_scale_ab_sync"]  # the plugin ab loads into each side

    def setup():
        sync.round_barrier()
        with open(os.environ["ROUND_LOG"], "a") as fh:
            fh.write(f"{{time.monotonic_ns()}} {{SIDE}}\\n")

    rounds = sync.agree_rounds({rounds})  # each side proposes its own; both run the smaller
    benchmark.pedantic(time.sleep, args=(0.001,), setup=setup, rounds=rounds, iterations=1)
"""


def test_round_barriers_alternate_the_sides_rounds(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A benchmark timed through the round barrier runs its rounds A, B, A, B (or B, A, ...),
    as the wall clock of each round's start shows, and both sides run on the one pinned CPU."""
    for side in ("A", "B"):
        (repo / "test_rounds.py").write_text(ROUND_LOGGER.format(side=side, rounds=12 if side == "A" else 15))
        _git(repo, "add", "test_rounds.py")
        _git(repo, "commit", "-q", "-m", f"side {side}")
    log = tmp_path / "rounds.log"
    monkeypatch.setenv("ROUND_LOG", str(log))
    cfg = ABConfig(base="HEAD~1", pytest_args=("test_rounds.py",), runs=2, out_dir=repo / "out")
    run_ab(cfg)
    sides = [line.split()[1] for line in sorted(log.read_text().splitlines(), key=lambda x: int(x.split()[0]))]
    assert len(sides) == 2 * 2 * 12  # 2 blocks x 2 sides x 12 rounds
    first, second = sides[:24], sides[24:]
    assert first == ["A", "B"] * 12 and second == ["B", "A"] * 12


def test_bad_configs_are_refused_before_any_block(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ABError, match="runs must be an integer >= 2"):
        ABConfig(base="HEAD", runs=1)
    with pytest.raises(ABError, match="max_runs must be"):
        ABConfig(base="HEAD", runs=4, max_runs=3)
    with pytest.raises(ABError, match="are not all available"):
        ABConfig(base="HEAD", cpus=(10**6,))
    code = main(["ab", "no-such-commit", "--out", "out", "--", "test_spin.py"])
    assert code == 2 and "no-such-commit" in capsys.readouterr().err
    assert not (repo / "out").exists()


@pytest.mark.parametrize("value", [None, "", "x", "0", "-1", "nan", "inf"])
def test_a_side_refuses_a_block_time_it_cannot_use(value: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    # ab sets the variable from its checked block_time; anything else ends the side in one line
    # (pytest's usage-error code) rather than a traceback or a quietly wrong round count.
    from inference_scale.verdicts import ab_sync

    if value is None:
        monkeypatch.delenv(ab_sync.BLOCK_TIME_ENV, raising=False)
    else:
        monkeypatch.setenv(ab_sync.BLOCK_TIME_ENV, value)
    with pytest.raises(pytest.exit.Exception) as info:
        ab_sync.block_time()
    assert info.value.returncode == 4 and ab_sync.BLOCK_TIME_ENV in str(info.value.msg)


def test_a_side_reads_the_block_time_ab_sets(monkeypatch: pytest.MonkeyPatch) -> None:
    from inference_scale.verdicts import ab_sync

    monkeypatch.setenv(ab_sync.BLOCK_TIME_ENV, "0.125")
    assert ab_sync.block_time() == 0.125
