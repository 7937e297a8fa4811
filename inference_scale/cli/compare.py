"""``inference-scale compare``: two saved runs, a verdict per benchmark, a gate's exit status."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from inference_scale.cli.args import add_parser
from inference_scale.options import add_flags

__all__ = ["add", "run"]


def run(args: argparse.Namespace) -> int:
    from inference_scale.verdicts.compare import check_isa, compare_runs, format_comparison
    from inference_scale.verdicts.runs import find_run, load_run, warn_once

    storage, warn = Path(args.storage), warn_once()
    base = load_run(find_run(args.base, storage=storage, warn=warn))
    new = load_run(find_run(args.new, storage=storage, warn=warn))
    if args.strict:  # runs whose CPUs differ in ISA ran different kernels: refused in one line
        check_isa(base, new)
    result = compare_runs(
        base, new, alpha=args.alpha, threshold=args.threshold, accuracy_drop=args.accuracy_drop / 100,
        normalize=args.normalize,
    )  # fmt: skip
    print(format_comparison(result, fmt=args.format))
    return result.exit_code(strict=args.strict, allow_missing=args.allow_missing)


def add(sub: Any) -> None:
    p = add_parser(
        sub,
        "compare",
        help="compare two saved runs: Mann-Whitney U (FDR-controlled) + threshold per benchmark",
        description=(
            "Compare two pytest-benchmark runs. Verdicts: slower, faster, no change, undecided. Exit 0: nothing "
            "regressed; 1: a benchmark is slower, a metric regressed, a base benchmark is missing (unless "
            "--allow-missing) or, with --strict, a verdict is undecided; 2: bad input (unreadable runs, NaN or "
            "negative rounds, nothing paired) or, with --strict, runs from CPUs whose ISA flags differ (without "
            "--strict, a warning names the flags)."
        ),
    )
    p.add_argument("base", help="baseline run: JSON file or saved id such as 0001")
    p.add_argument("new", help="new run: JSON file or saved id")
    add_flags(p, "alpha", "threshold", "accuracy-drop", "strict", "allow-missing")
    p.add_argument("--normalize", action="store_true", help="divide the reference workload's drift out of NEW")
    p.add_argument("--format", choices=("table", "md"), default="table")
    add_flags(p, "storage")
    p.set_defaults(func=run)
