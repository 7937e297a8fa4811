"""``inference-scale history`` and ``inference-scale bisect``, and the check of ``report --html``'s
path: regression tracking across a whole history (:mod:`.history`, :mod:`.bisect`)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from inference_scale.errors import InferenceScaleError, OutputPathError

__all__ = ["MissingExtraError", "add_commands", "check_html_path", "require_report_extra"]


class MissingExtraError(InferenceScaleError, ValueError):
    """A command that needs the ``report`` extra (ruptures, plotly) without it installed."""


def require_report_extra(what: str, *modules: str) -> None:
    """One line naming the extra when one of ``modules`` cannot be imported."""
    import importlib.util

    absent = [m for m in modules if importlib.util.find_spec(m) is None]
    if absent:
        raise MissingExtraError(
            f"{what} needs {', '.join(absent)}: pip install 'inference-scale[report]' (or the dev extra)"
        )


def check_html_path(path: str) -> Path:
    """``report --html``'s path, refused before any work: a file name whose folder exists."""
    from inference_scale.atomic import check_output_path

    target = check_output_path(path, what="--html")
    if not target.parent.is_dir():
        raise OutputPathError(f"--html path {target}: folder {target.parent} does not exist (create it first)")
    if target.suffix.lower() not in (".html", ".htm"):
        raise OutputPathError(f"--html path {target} should end in .html")
    return target


def _cmd_history(args: argparse.Namespace) -> int:
    from inference_scale.verdicts.history import format_history, load_history

    require_report_extra("history", "ruptures")
    history = load_history(
        args.storage,
        machine=args.machine,
        since=args.since,
        benchmark=args.benchmark,
        threshold=args.threshold,
        alpha=args.alpha,
        normalize=not args.no_normalize,
        stat=args.stat,
    )
    print(format_history(history, fmt=args.format))
    return history.exit_code()


def _cmd_bisect(args: argparse.Namespace) -> int:
    from inference_scale.verdicts.ab import ABConfig
    from inference_scale.verdicts.bisect import format_bisect, run_bisect

    if not args.passthrough:
        raise ValueError("give the benchmark's pytest arguments after --, e.g. -- benchmarks/test_x.py -k lenet")
    max_runs = args.max_runs if args.max_runs is not None else max(args.runs, 8)
    cfg = ABConfig(
        base=None,
        pytest_args=tuple(args.passthrough),
        runs=args.runs,
        max_runs=max_runs,
        alpha=args.alpha,
        threshold=args.threshold,
        block_time=args.block_time,
    )
    result = run_bisect(
        args.good,
        args.bad,
        cfg,
        benchmark=args.benchmark,
        max_probes=args.max_probes,
        log=lambda line: print(line, file=sys.stderr, flush=True),
    )
    print(format_bisect(result))
    return 0 if result.found else 1


def add_commands(sub: Any, add_parser: Callable[..., argparse.ArgumentParser], number: Any) -> None:
    """Add ``history`` and ``bisect`` to the ``inference-scale`` subparsers; ``number(kind,
    low=..., ...)`` builds a bounded argparse type (cli's ``_number``)."""
    from inference_scale.verdicts.ab import ABConfig
    from inference_scale.verdicts.history import STATS
    from inference_scale.verdicts.rule import DEFAULT_ALPHA, DEFAULT_THRESHOLD

    alpha = number(float, low=0, high=1, low_open=True, high_open=True)
    threshold = number(float, low=0, low_open=True)
    p = add_parser(
        sub,
        "history",
        help="steps in every saved run of one machine (PELT + threshold + Mann-Whitney/BH)",
        description="Order one machine's saved runs by commit time, find the steps in each benchmark's series "
        "(ruptures PELT, then the size threshold and a Mann-Whitney test with Benjamini-Hochberg) and print "
        "each: benchmark, commit range, ratio, q. Exit 1 when the latest segment of any benchmark is a "
        "regression on the one before; 2 on bad input.",
    )
    p.add_argument(
        "storage",
        nargs="?",
        default=".benchmarks",
        metavar="STORAGE",
        help="pytest-benchmark storage folder (default .benchmarks)",
    )
    p.add_argument("--machine", help="the machine folder under STORAGE (needed when there are several)")
    p.add_argument("--since", metavar="DATE|COMMIT", help="only runs from this ISO date, or this commit, on")
    p.add_argument("--benchmark", metavar="PATTERN", help="only benchmarks whose name matches (glob or substring)")
    p.add_argument(
        "--threshold",
        type=threshold,
        default=DEFAULT_THRESHOLD,
        help=f"relative size a step needs, > 0 (default {DEFAULT_THRESHOLD:g})",
    )
    p.add_argument("--alpha", type=alpha, default=DEFAULT_ALPHA, help=f"significance level (default {DEFAULT_ALPHA:g})")
    p.add_argument("--stat", choices=tuple(STATS), default="median", help="each run's value (default median)")
    p.add_argument("--no-normalize", action="store_true", help="do not divide the reference workload's drift out")
    p.add_argument("--format", choices=("table", "md"), default="table")
    p.set_defaults(func=_cmd_history)

    ab = {f.name: f.default for f in dataclasses.fields(ABConfig)}
    p = add_parser(
        sub,
        "bisect",
        help="first commit between GOOD and BAD where a benchmark got slower (ab blocks per probe)",
        description="Bisect GOOD..BAD with one interleaved A/B (`inference-scale ab`) per probe against GOOD; "
        "commits where the benchmark fails, is missing or stays undecided are skipped. Arguments after -- "
        "go to pytest, e.g. `inference-scale bisect v1.0 HEAD -- benchmarks/test_x.py -k lenet`. Exit 0: "
        "the commit is named; 1: undecided (the range is printed); 2: bad input (a dirty work tree, GOOD "
        "not an ancestor of BAD); 130: interrupted (the range so far is printed).",
    )
    p.add_argument("good", metavar="GOOD", help="a commit where the benchmark is fast")
    p.add_argument("bad", metavar="BAD", help="a later commit, descending from GOOD, where it is slow")
    p.add_argument("--benchmark", metavar="PATTERN", help="judge only these of the selected benchmarks")
    p.add_argument("--max-probes", type=number(int, low=1), help="probes at most (default 2 log2(n+1) + 1)")
    p.add_argument("--runs", type=number(int, low=3), default=4, help="ab blocks per probe (default 4)")
    p.add_argument("--max-runs", type=number(int, low=3), help="blocks a probe may grow to while undecided (default 8)")
    p.add_argument("--alpha", type=alpha, default=ab["alpha"], help="significance level of each probe")
    p.add_argument("--threshold", type=threshold, default=ab["threshold"], help="relative slowdown that counts")
    p.add_argument(
        "--block-time",
        type=number(float, low=0, low_open=True, high=60),
        default=ab["block_time"],
        help="seconds of rounds per benchmark and side in one block (default %(default)s)",
    )
    p.set_defaults(func=_cmd_bisect)
