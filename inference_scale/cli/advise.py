"""``inference-scale advise``: which state to deploy, per model, from saved runs and budgets
(:mod:`inference_scale.reporting.advice`). Exit 0 with a pick for every model, 1 when nothing fits a model's budgets
(the binding budget is named), 2 on bad input.

``--p99-ms`` has two meanings, told apart by ``--qps``: with it, capacity advice from a serve
JSON (:func:`inference_scale.serving.capacity.advise_serve`); without it, a tail budget on
the p99 of each benchmark's raw rounds."""

from __future__ import annotations

import argparse
import json
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

    if args.qps is not None:  # capacity advice from a serve JSON (--p99-ms is its latency budget)
        from inference_scale.serving.capacity import advise_serve

        return advise_serve(args)
    budgets = Budgets(
        args.max_latency_ms, args.max_bytes, args.max_accuracy_drop, max_p99_ms=args.p99_ms,
        max_memory_mb=args.max_memory_mb,
    )  # fmt: skip
    if args.plot:
        check_output_path(Path(args.plot) / "advice.png", what="--plot")
    rows = [r for spec in args.runs or [None] for r in rows_from_run(_load(spec, Path(args.storage)))]
    advice = advise(rows, budgets=budgets, batch=args.batch_size)
    print(format_advice(advice, fmt=args.format))
    if args.plot:
        for png in plot_advice(advice, Path(args.plot)):
            print(f"wrote {png}", file=sys.stderr)
    return 0 if all(a.pick is not None for a in advice) else 1


def _load(spec: str | None, storage: Path) -> Any:
    """A saved run; a serve JSON given without ``--qps`` is named as such, in one line."""
    from inference_scale.verdicts.runs import BadRunError, find_run, load_run

    path = find_run(spec, storage=storage)
    try:
        return load_run(path)
    except BadRunError:
        from inference_scale.serving.capacity import SERVE_KIND
        from inference_scale.serving.search import ServingError

        try:
            kind = json.loads(path.read_text(encoding="utf-8")).get("kind")
        except (OSError, ValueError, AttributeError, RecursionError):
            kind = None
        if kind == SERVE_KIND:
            raise ServingError(
                f"{path} is a serve JSON: capacity advice needs --qps N with --p99-ms X (without --qps, "
                "--p99-ms is a tail budget on a benchmark run)"
            ) from None
        raise


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
    p.add_argument("--max-memory-mb", type=float, metavar="M",
                   help="peak resident memory budget in MB (10^6 bytes), >= 1; a state whose memory was not "
                   "measured (--is-memory) does not fit")  # fmt: skip
    p.add_argument("--format", choices=("table", "md"), default="table")
    p.add_argument("--plot", metavar="DIR", help="also draw latency against quality per model into DIR")
    add_flags(p, "storage")
    # capacity advice from a serve JSON (:mod:`inference_scale.serving.capacity`)
    p.add_argument("--qps", type=float, metavar="N", help="with a serve JSON: queries per second to serve")
    p.add_argument("--p99-ms", type=float, metavar="X",
                   help="p99 latency budget in ms, > 0: with --qps, of a serve JSON's simulated service; without, "
                   "of each benchmark's raw rounds (a state with too few rounds for a p99 does not fit)")  # fmt: skip
    p.set_defaults(func=run)
