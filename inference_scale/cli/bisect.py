"""``inference-scale bisect``: the first commit between GOOD and BAD where a benchmark got
slower, one interleaved A/B per probe (:mod:`inference_scale.verdicts.bisect`)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

from inference_scale.cli.args import add_parser
from inference_scale.errors import InvalidValueError
from inference_scale.options import add_flags, number
from inference_scale.verdicts.ab import ABConfig

__all__ = ["add", "run"]


def run(args: argparse.Namespace) -> int:
    from inference_scale.verdicts.bisect import format_bisect, run_bisect

    if not args.passthrough:
        raise InvalidValueError("give the benchmark's pytest arguments after --, e.g. -- benchmarks/test_x.py -k lenet")
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


def add(sub: Any) -> None:
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
    add_flags(p, "alpha", "threshold")
    p.add_argument(
        "--block-time",
        type=number(float, low=0, low_open=True, high=60),
        default=ab["block_time"],
        help="seconds of rounds per benchmark and side in one block (default %(default)s)",
    )
    p.set_defaults(func=run)
