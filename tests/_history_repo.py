"""A real git history for the history and bisect tests (and tools/history_repeats.py): twelve
commits, each holding three small pytest-benchmark benchmarks of fixed pure-Python work (no
sleep). Commit 7 gives ``test_b`` 20% more work; every other commit changes only a notes file.

Commit times are set one hour apart (``GIT_COMMITTER_DATE``), so ordering by commit time is
exact; the runs are saved with pytest-benchmark's own ``--benchmark-autosave``, so the storage
layout, file names and ``commit_info`` are what a user's CI writes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["COMMITS", "SLOW_COMMIT", "WORK", "git", "make_repo", "pytest_env", "save_runs"]

COMMITS = 12
SLOW_COMMIT = 7  # 1-based: the commit that makes test_b 20% slower
WORK = 6000  # loop iterations of one round: about 0.5 ms of pure Python here

BENCH = """
WORK = {work}

def spin(n):
    total = 0
    for i in range(n):
        total += i * i % 7
    return total

def test_a(benchmark):
    benchmark(spin, WORK)

def test_b(benchmark):
    benchmark(spin, {work_b})

def test_c(benchmark):
    benchmark(spin, WORK // 2)
"""


def git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, env=env, check=True)
    return proc.stdout.strip()


def make_repo(root: Path, *, slow_commit: int = SLOW_COMMIT) -> tuple[Path, list[str]]:
    """The repository under ``root`` and its commit shas, oldest first."""
    repo = root / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "test@example.com")
    git(repo, "config", "user.name", "test")
    shas = []
    for k in range(1, COMMITS + 1):
        work_b = int(WORK * 1.2) if k >= slow_commit else WORK
        (repo / "test_bench.py").write_text(BENCH.format(work=WORK, work_b=work_b))
        (repo / "notes.txt").write_text(f"commit {k}\n")
        git(repo, "add", "-A")
        stamp = f"2026-01-01T{k:02d}:00:00+00:00"
        env = {**os.environ, "GIT_COMMITTER_DATE": stamp, "GIT_AUTHOR_DATE": stamp}
        message = f"commit {k}: test_b does 20% more work" if k == slow_commit else f"commit {k}"
        git(repo, "commit", "-q", "-m", message, env=env)
        shas.append(git(repo, "rev-parse", "HEAD"))
    return repo, shas


def pytest_env() -> dict[str, str]:
    """No plugin autoloading: the runs need pytest-benchmark alone (not this package's plugin,
    which imports torch), and each process starts in well under a second."""
    return {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}


def save_runs(repo: Path, shas: list[str], storage: Path, *, rounds: int = 25, max_time: float = 0.000001) -> None:
    """Check out each commit and save one run of it with its raw rounds, as CI would."""
    for sha in shas:
        git(repo, "checkout", "-q", sha)
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "pytest_benchmark.plugin",
            "test_bench.py",
            "--benchmark-autosave",
            "--benchmark-save-data",
            f"--benchmark-storage={storage}",
            f"--benchmark-min-rounds={rounds}",
            f"--benchmark-max-time={max_time}",
            "--benchmark-warmup=off",
        ]
        proc = subprocess.run(cmd, cwd=repo, env=pytest_env(), capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(proc.stdout + proc.stderr)
    git(repo, "checkout", "-q", "main")
