"""The ``inference-scale`` command line. Every subcommand has ``--help``; bad input exits 2
with a one-line error rather than a traceback."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict

from rich.console import Console
from rich.table import Table

from . import __version__
from .models import KINDS, get_model, list_models, model_info, pick_architectures
from .sizing import size_report

__all__ = ["build_parser", "main"]


def _human(n: float | None, unit: str = "") -> str:
    if n is None:
        return "-"
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{suffix}{unit}"
    return f"{n:g}{unit}"


def _cmd_models(args: argparse.Namespace) -> int:
    infos = list_models(family=args.family, kind=args.kind, min_params=args.min_params, max_params=args.max_params)
    if args.json:
        print(json.dumps([asdict(i) for i in infos], indent=2))
        return 0
    table = Table(title=f"{len(infos)} models (MACs per sample at the eval resolution)")
    for col in ("name", "family", "kind", "params", "GMACs", "input", "acc@1", "MB"):
        left = col in ("name", "family", "kind", "input")
        table.add_column(col, justify="left" if left else "right", no_wrap=True)
    for i in infos:
        table.add_row(
            i.name, i.family, i.kind, _human(i.num_params), f"{i.macs / 1e9:.3f}",
            "x".join(map(str, i.input_shape)), "-" if i.acc1 is None else f"{i.acc1:.2f}",
            "-" if i.file_size_mb is None else f"{i.file_size_mb:.1f}",
        )  # fmt: skip
    Console(width=max(Console().width, 110)).print(table)
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    print(json.dumps(asdict(model_info(args.name)), indent=2))
    return 0


def _cmd_size(args: argparse.Namespace) -> int:
    info = model_info(args.name)
    res = args.resolution or info.resolution
    shape = (info.input_shape[0], res, res)
    # Real weights are needed for bytes; shapes alone (meta) suffice for params and MACs.
    model = get_model(args.name, device="meta" if args.no_bytes else None)
    report = size_report(model, shape, compress=not args.no_bytes)
    out = {"model": args.name, **asdict(report), "macs_metadata": info.macs}
    print(json.dumps(out, indent=2))
    return 0


def _cmd_pick(args: argparse.Namespace) -> int:
    for name in pick_architectures(min_params=args.min_params, max_params=args.max_params):
        info = model_info(name)
        print(f"{name}\t{info.family}\t{info.kind}\t{info.num_params:,} params\t{info.macs / 1e9:.3f} GMACs")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .report import find_run, format_rows, load_run, plot_rows, rows_from_run

    specs = args.runs or [None]
    for spec in specs:
        path = find_run(spec, storage=Path(args.storage))
        rows = rows_from_run(load_run(path))
        if args.format == "table":
            print(f"run: {path}")
        print(format_rows(rows, args.format))
        if args.plot:
            for png in plot_rows(rows, Path(args.plot)):
                print(f"wrote {png}", file=sys.stderr)
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .compare import compare_runs, format_comparison
    from .report import find_run, load_run

    storage = Path(args.storage)
    base = load_run(find_run(args.base, storage=storage))
    new = load_run(find_run(args.new, storage=storage))
    result = compare_runs(base, new, alpha=args.alpha, threshold=args.threshold, accuracy_drop=args.accuracy_drop / 100)
    print(format_comparison(result, fmt=args.format))
    return 1 if result.regressed else 0


def _cmd_distill(args: argparse.Namespace) -> int:
    from .atomic import write_json_atomic
    from .distill import DistillConfig, run_distillation
    from .models import model_info

    for name in (args.student, args.teacher):
        model_info(name)  # an unknown name fails here, with close matches, before any training
    config = DistillConfig(
        dataset=args.dataset, student=args.student, teacher=args.teacher, train_fraction=args.train_fraction,
        seeds=args.seeds, temperature=args.temperature, alpha=args.alpha, student_epochs=args.epochs,
        teacher_epochs=args.teacher_epochs, cache_dir=None if args.no_cache else args.cache_dir,
    )  # fmt: skip
    result = run_distillation(config, progress=not args.quiet)
    table = Table(title=f"distillation on {args.dataset}, train fraction {args.train_fraction}, {args.seeds} seeds")
    for col in ("model", "role", "accuracy (mean +- std)", "wins", "params", "MACs", "latency b1 (ms)"):
        table.add_column(col, justify="left" if col in ("model", "role") else "right", no_wrap=True)
    for key, name in (("teacher", args.teacher), ("student_ce", args.student), ("student_kd", args.student)):
        r = result[key]
        wins = f"{r['wins']}/{args.seeds}" if key == "student_kd" else "-"
        table.add_row(
            name, key, f"{r['accuracy_mean']:.2%} +- {r['accuracy_std']:.2%}", wins, f"{r['params']:,}",
            f"{r['macs']:,}", f"{r['latency_ms_b1']:.3f}",
        )  # fmt: skip
    Console(width=max(Console().width, 110)).print(table)
    gain = result["student_kd"]["accuracy_mean"] - result["student_ce"]["accuracy_mean"]
    print(f"KD - CE: {gain * 100:+.2f} points, KD wins {result['student_kd']['wins']}/{args.seeds} seeds")
    if args.json:
        write_json_atomic(result, args.json)
        print(f"wrote {args.json}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inference-scale",
        description="Compare what makes PyTorch inference cheaper: architecture, int8, pruning, distillation.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("models", help="list registered models from torchvision's offline metadata")
    p.add_argument("--family", help="e.g. resnet, efficientnet, swin, vit, convnext, lenet")
    p.add_argument("--kind", choices=KINDS)
    p.add_argument("--min-params", type=float)
    p.add_argument("--max-params", type=float)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_cmd_models)

    p = sub.add_parser("info", help="print one model's metadata as JSON")
    p.add_argument("name")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("size", help="count params, MACs and checkpoint bytes of a model (random weights)")
    p.add_argument("name")
    p.add_argument("--resolution", type=int, help="input height/width (default: the eval resolution)")
    p.add_argument("--no-bytes", action="store_true", help="build on the meta device: params and MACs only")
    p.set_defaults(func=_cmd_size)

    p = sub.add_parser("pick", help="pick one EfficientNet, one ResNet and one transformer in a parameter range")
    p.add_argument("--min-params", type=float, default=20e6)
    p.add_argument("--max-params", type=float, default=30e6)
    p.set_defaults(func=_cmd_pick)

    p = sub.add_parser("report", help="table (and plots) of saved benchmark runs, grouped by model")
    p.add_argument("runs", nargs="*", metavar="RUN", help="JSON files or saved ids such as 0001 (default: the newest)")
    p.add_argument("--format", choices=("table", "md", "csv"), default="table")
    p.add_argument("--plot", metavar="DIR", help="also write PNG plots into DIR")
    p.add_argument("--storage", default=".benchmarks", help="pytest-benchmark storage folder (default .benchmarks)")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser(
        "compare", help="compare two saved runs: Mann-Whitney U + threshold per benchmark; exit 1 on a regression"
    )
    p.add_argument("base", help="baseline run: JSON file or saved id such as 0001")
    p.add_argument("new", help="new run: JSON file or saved id")
    p.add_argument("--alpha", type=float, default=0.01, help="significance level (default 0.01)")
    p.add_argument("--threshold", type=float, default=0.10, help="relative change that matters (default 0.10)")
    p.add_argument("--accuracy-drop", type=float, default=0.5, help="accuracy points that may be lost (default 0.5)")
    p.add_argument("--format", choices=("table", "md"), default="table")
    p.add_argument("--storage", default=".benchmarks", help="pytest-benchmark storage folder (default .benchmarks)")
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser("distill", help="train a student with and without knowledge distillation from a teacher")
    p.add_argument("--dataset", default="mnist", choices=("mnist", "digits"))
    p.add_argument("--student", default="lenet")
    p.add_argument("--teacher", default="teacher-cnn")
    p.add_argument("--train-fraction", type=float, default=0.1, help="share of the training split the students see")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--temperature", type=float, default=4.0)
    p.add_argument("--alpha", type=float, default=0.5, help="weight of the soft (teacher) term")
    p.add_argument("--epochs", type=int, default=60, help="student epochs")
    p.add_argument("--teacher-epochs", type=int, default=15)
    p.add_argument("--cache-dir", default=".cache/inference-scale", help="where teacher logits are cached")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the teacher-logit cache")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON (atomically)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_distill)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print(f"inference-scale {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
