"""The "over 5 repeats" check of issue 22, run by hand (too long for CI): each repeat builds the
12-commit repository of tests/_history_repo.py afresh, saves a run per commit, runs ``history``
(which must flag test_b at commit 7 and nothing else) and ``bisect`` from commit 1 to 12 (which
must name commit 7), and prints one line per repeat and a tally.

    PYTHONPATH=. python tools/history_repeats.py --repeats 5 [--no-bisect] [--rounds 25]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _history_repo import SLOW_COMMIT, make_repo, pytest_env, save_runs

from inference_scale.verdicts.history import load_history


def _history_ok(storage: Path, shas: list[str], stat: str) -> tuple[bool, str]:
    hist = load_history(storage, stat=stat)
    steps = [(s.benchmark, s.verdict, s.commit_after) for s in hist.steps]
    ok = steps == [("test_b", "slower", shas[SLOW_COMMIT - 1][:10])] and hist.exit_code() == 1
    return ok, ", ".join(f"{b} {v} at {c[:7]}" for b, v, c in steps) or "no steps"


def _bisect_ok(repo: Path, shas: list[str]) -> tuple[bool, str]:
    cmd = [
        sys.executable,
        "-m",
        "inference_scale.cli.main",
        "bisect",
        shas[0],
        shas[-1],
        "--",
        "test_bench.py::test_b",  # -k test_b would also match the module, test_bench.py
    ]
    env = {**pytest_env(), "PYTHONPATH": os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=900)
    line = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr.strip()[-200:]
    return proc.returncode == 0 and shas[SLOW_COMMIT - 1][:7] in line, line


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--stat", default="median")
    parser.add_argument("--max-time", type=float, default=0.000001)
    parser.add_argument("--no-bisect", action="store_true")
    args = parser.parse_args()
    tally = {"history": 0, "bisect": 0}
    for k in range(1, args.repeats + 1):
        with tempfile.TemporaryDirectory(prefix="history-repeat-") as tmp:
            t0 = time.perf_counter()
            repo, shas = make_repo(Path(tmp))
            save_runs(repo, shas, Path(tmp) / "storage", rounds=args.rounds, max_time=args.max_time)
            ok_h, what_h = _history_ok(Path(tmp) / "storage", shas, args.stat)
            tally["history"] += ok_h
            line = f"repeat {k}: history {'ok' if ok_h else 'WRONG'} ({what_h})"
            if not args.no_bisect:
                ok_b, what_b = _bisect_ok(repo, shas)
                tally["bisect"] += ok_b
                line += f"; bisect {'ok' if ok_b else 'WRONG'} ({what_b})"
            print(f"{line}; {time.perf_counter() - t0:.0f} s", flush=True)
    print(
        f"history right {tally['history']}/{args.repeats}"
        + ("" if args.no_bisect else f", bisect right {tally['bisect']}/{args.repeats}")
    )
    return 0 if tally["history"] == args.repeats and (args.no_bisect or tally["bisect"] == args.repeats) else 1


if __name__ == "__main__":
    sys.exit(main())
