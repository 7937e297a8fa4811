"""``inference-scale advise``: which state to deploy, per model, from saved runs and budgets
(:mod:`inference_scale.reporting.advice`). Exit 0 with a pick for every model, 1 when nothing fits a model's budgets
(the binding budget is named), 2 on bad input."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from inference_scale.atomic import check_output_path
from inference_scale.cli.args import PARAM_COUNT, add_parser
from inference_scale.options import POSITIVE_INT, add_flags

__all__ = ["add", "run"]


def run(args: argparse.Namespace) -> int:
    from inference_scale.reporting.advice import Budgets, advise, format_advice
    from inference_scale.reporting.plots import plot_advice
    from inference_scale.reporting.report import rows_from_run
    from inference_scale.verdicts.runs import find_run, load_run

    if args.qps is not None or args.p99_ms is not None:  # capacity advice from a serve JSON
        from inference_scale.serving.capacity import advise_serve

        return advise_serve(args)
    budgets = Budgets(args.max_latency_ms, args.max_bytes, args.max_accuracy_drop)
    if args.plot:
        check_output_path(Path(args.plot) / "advice.png", what="--plot")
    rows = [
        r for spec in args.runs or [None] for r in rows_from_run(load_run(find_run(spec, storage=Path(args.storage))))
    ]
    advice = advise(rows, budgets=budgets, batch=args.batch_size)
    print(format_advice(advice, fmt=args.format))
    if args.plot:
        for png in plot_advice(advice, Path(args.plot)):
            print(f"wrote {png}", file=sys.stderr)
    return 0 if all(a.pick is not None for a in advice) else 1


def add(sub: Any) -> None:
    from inference_scale.reporting.advice import DEFAULT_MAX_DROP

    number = PARAM_COUNT  # a finite float >= 0
    p = add_parser(
        sub, "advise", help="which state to deploy: each model's Pareto front and the pick under your budgets",
        description="For each model in the runs: the Pareto front over latency, bytes and quality (accuracy, "
        "else top-1 agreement with fp32), then the fastest state within the budgets, with the reason. "
        "Exits 1 when nothing fits, naming the budget that binds.",
    )  # fmt: skip
    p.add_argument("runs", nargs="*", metavar="RUN", help="JSON files or saved ids such as 0001 (default: the newest)")
    p.add_argument("--batch-size", type=POSITIVE_INT, help="advise at this batch size (default: each in the runs)")
    p.add_argument("--max-latency-ms", type=number, metavar="X", help="median latency budget in ms")
    p.add_argument("--max-bytes", type=number, metavar="B", help="size budget in bytes of the deployed model")
    p.add_argument("--max-accuracy-drop", type=number, metavar="P", default=DEFAULT_MAX_DROP,
                   help="points of accuracy below the model's fp32, top-1 disagreement where no accuracy "
                   f"(default {DEFAULT_MAX_DROP:g}; 100 allows anything)")  # fmt: skip
    p.add_argument("--format", choices=("table", "md"), default="table")
    p.add_argument("--plot", metavar="DIR", help="also draw latency against quality per model into DIR")
    add_flags(p, "storage")
    # capacity advice from a serve JSON (:mod:`inference_scale.serving.capacity`)
    p.add_argument("--qps", type=float, metavar="N", help="with a serve JSON: queries per second to serve")
    p.add_argument("--p99-ms", type=float, metavar="X", help="with a serve JSON: the p99 latency budget in ms")
    p.set_defaults(func=run)
