"""``inference-scale history``: the steps in every saved run of one machine (regression
tracking across a whole history, :mod:`inference_scale.verdicts.history`)."""

from __future__ import annotations

import argparse
from typing import Any

from inference_scale.cli.args import add_parser, require_report_extra
from inference_scale.options import SHARED, add_flags

__all__ = ["add", "run"]


def run(args: argparse.Namespace) -> int:
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


def add(sub: Any) -> None:
    from inference_scale.verdicts.history import STATS

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
        default=SHARED["storage"].default,
        metavar="STORAGE",
        help=SHARED["storage"].help,
    )
    p.add_argument("--machine", help="the machine folder under STORAGE (needed when there are several)")
    p.add_argument("--since", metavar="DATE|COMMIT", help="only runs from this ISO date, or this commit, on")
    p.add_argument("--benchmark", metavar="PATTERN", help="only benchmarks whose name matches (glob or substring)")
    add_flags(p, "threshold", "alpha")
    p.add_argument("--stat", choices=tuple(STATS), default="median", help="each run's value (default median)")
    p.add_argument("--no-normalize", action="store_true", help="do not divide the reference workload's drift out")
    p.add_argument("--format", choices=("table", "md"), default="table")
    p.set_defaults(func=run)
