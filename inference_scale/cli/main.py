"""The ``inference-scale`` command line. Every subcommand has ``--help``; bad input exits 2
with a one-line error rather than a traceback."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from inference_scale import __version__
from inference_scale.atomic import check_output_path
from inference_scale.cli.advise import add_advise
from inference_scale.cli.bench import add_commands
from inference_scale.cli.history import add_commands as add_history
from inference_scale.cli.serve import add_serve
from inference_scale.errors import InferenceScaleError
from inference_scale.reporting.report import human
from inference_scale.reporting.table import render
from inference_scale.sizing import size_report
from inference_scale.subjects.models import KINDS, get_model, list_models, model_info, pick_architectures
from inference_scale.techniques.distill import MAX_TEMPERATURE, DistillConfig
from inference_scale.verdicts.ab import ABConfig

__all__ = ["MAX_RESOLUTION", "build_parser", "main"]

# Larger inputs than this are a typo rather than a model (ImageNet models evaluate at <= 600).
MAX_RESOLUTION = 4096


def _number(
    kind: type, *, low: float | None = None, high: float | None = None, low_open: bool = False, high_open: bool = False
) -> Callable[[str], Any]:
    """An argparse ``type`` for a finite int or float within bounds; its error names the range."""
    lo = "-inf" if low is None else f"{low:g}"
    hi = "inf" if high is None else f"{high:g}"
    span = f"{'(' if low_open or low is None else '['}{lo}, {hi}{')' if high_open or high is None else ']'}"
    noun = "an integer" if kind is int else "a number"

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"{text!r} is not {noun}; valid: {noun} in {span}") from None
        ok = math.isfinite(value)
        if ok and low is not None:
            ok = value > low if low_open else value >= low
        if ok and high is not None:
            ok = value < high if high_open else value <= high
        if not ok:
            raise argparse.ArgumentTypeError(f"{text} is out of range; valid: {noun} in {span}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


_POSITIVE_INT = _number(int, low=1)
_PARAM_COUNT = _number(float, low=0)
_FRACTION_OPEN = _number(float, low=0, high=1, low_open=True, high_open=True)


def _cmd_models(args: argparse.Namespace) -> int:
    infos = list_models(family=args.family, kind=args.kind, min_params=args.min_params, max_params=args.max_params)
    if args.json:
        print(json.dumps([asdict(i) for i in infos], indent=2))
        return 0
    rows = [
        [i.name, i.family, i.kind, human(i.num_params), human(i.macs), "x".join(map(str, i.input_shape)),
         "-" if i.acc1 is None else f"{i.acc1:.2f}", "-" if i.file_size_mb is None else f"{i.file_size_mb:.1f}"]
        for i in infos
    ]  # fmt: skip
    columns = ("name", "family", "kind", "params", "MACs", "input", "acc@1", "MB")
    title = f"{len(infos)} models (MACs per sample at the eval resolution)"
    print(render(columns, rows, title=title, left=("name", "family", "kind", "input")))
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    print(json.dumps(asdict(model_info(args.name)), indent=2))
    return 0


def _cmd_size(args: argparse.Namespace) -> int:
    info = model_info(args.name)
    res = info.resolution if args.resolution is None else args.resolution
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
        print(f"{name}\t{info.family}\t{info.kind}\t{info.num_params:,} params\t{human(info.macs)} MACs")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from inference_scale.reporting.plots import plot_rows
    from inference_scale.reporting.report import fastest_lines, format_rows, rows_from_run
    from inference_scale.verdicts.runs import BadRunError, find_run, load_run

    if args.plot:
        check_output_path(Path(args.plot) / "plot.png", what="--plot")
    if args.html:
        from inference_scale.cli.history import check_html_path, require_report_extra

        check_html_path(args.html)
        require_report_extra("report --html", "plotly", "ruptures")
    specs = args.runs or [None]
    # Every run is read and checked before anything is printed or written.
    loaded = [
        (run.path, rows_from_run(run)) for run in (load_run(find_run(s, storage=Path(args.storage))) for s in specs)
    ]
    if args.plot and not any(r.params is not None for _, rows in loaded for r in rows):
        raise BadRunError("--plot: no benchmark carries an inference-scale record (params, bytes), so there is no plot")
    for path, rows in loaded:
        if args.format == "table":
            print(f"run: {path}")
        print(format_rows(rows, args.format))
        if args.format == "table":
            print("\n".join(fastest_lines(rows)))
        if args.plot:
            for png in plot_rows(rows, Path(args.plot)):
                print(f"wrote {png}", file=sys.stderr)
    if args.html:
        from inference_scale.reporting.html_report import write_html

        write_html(Path(args.html), [path for path, _ in loaded], storage=Path(args.storage))
        print(f"wrote {args.html}", file=sys.stderr)
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from inference_scale.verdicts.compare import compare_runs, format_comparison
    from inference_scale.verdicts.runs import find_run, load_run

    storage = Path(args.storage)
    base = load_run(find_run(args.base, storage=storage))
    new = load_run(find_run(args.new, storage=storage))
    result = compare_runs(
        base, new, alpha=args.alpha, threshold=args.threshold, accuracy_drop=args.accuracy_drop / 100,
        normalize=args.normalize,
    )  # fmt: skip
    print(format_comparison(result, fmt=args.format))
    return result.exit_code(strict=args.strict, allow_missing=args.allow_missing)


def _cmd_ab(args: argparse.Namespace) -> int:
    from inference_scale.verdicts.ab import format_ab, run_ab

    if args.aa == (args.base is not None):
        raise ValueError("give BASE (a commit to compare the working tree with) or --aa, not both and not neither")
    check_output_path(Path(args.out) / "A-01.json", what="--out")
    cpus: dict[str, Any] = {}
    if args.cpus == "all":
        cpus["cpus"] = None
    elif args.cpus is not None:
        try:
            cpus["cpus"] = tuple(int(c) for c in args.cpus.split(","))
        except ValueError:
            raise ValueError(f"--cpus {args.cpus!r}: give CPU numbers such as 0 or 0,1, or 'all'") from None
    cfg = ABConfig(
        **cpus,
        base=args.base, pytest_args=tuple(args.passthrough), runs=args.runs, max_runs=args.max_runs, alpha=args.alpha,
        threshold=args.threshold, block_time=args.block_time, out_dir=Path(args.out),
    )  # fmt: skip
    result = run_ab(cfg, aa=args.aa, log=lambda line: print(line, file=sys.stderr, flush=True))
    print(format_ab(result))
    print(f"saved {len(result.files)} pytest-benchmark JSON files under {result.files[0].parent}", file=sys.stderr)
    return result.exit_code(strict=args.strict, allow_missing=args.allow_missing)


def _cmd_distill(args: argparse.Namespace) -> int:
    from inference_scale.atomic import write_json_atomic
    from inference_scale.techniques.distill import DistillConfig, check_distillation, run_distillation

    # Everything that can be wrong is checked before minutes of training: names, numbers, the
    # output path, the cache folder, the dataset's folder and the train fraction against it.
    if args.json:
        check_output_path(args.json, what="--json")
    config = DistillConfig(
        dataset=args.dataset, student=args.student, teacher=args.teacher, train_fraction=args.train_fraction,
        seeds=args.seeds, temperature=args.temperature, alpha=args.alpha, student_epochs=args.epochs,
        teacher_epochs=args.teacher_epochs, cache_dir=None if args.no_cache else args.cache_dir, root=args.root,
    )  # fmt: skip
    check_distillation(config)
    result = run_distillation(config, progress=not args.quiet)
    rows = []
    for key, name in (("teacher", args.teacher), ("student_ce", args.student), ("student_kd", args.student)):
        r = result[key]
        wins = f"{r['wins']}/{args.seeds}" if key == "student_kd" else "-"
        rows.append([
            name, key, f"{r['accuracy_mean']:.2%} +- {r['accuracy_std']:.2%}", wins, f"{r['params']:,}",
            f"{r['macs']:,}", f"{r['latency_ms_b1']:.3f}",
        ])  # fmt: skip
    columns = ("model", "role", "accuracy (mean +- std)", "wins", "params", "MACs", "latency b1 (ms)")
    title = f"distillation on {args.dataset}, train fraction {args.train_fraction}, {args.seeds} seeds"
    print(render(columns, rows, title=title, left=("model", "role")))
    gain = result["student_kd"]["accuracy_mean"] - result["student_ce"]["accuracy_mean"]
    print(f"KD - CE: {gain * 100:+.2f} points, KD wins {result['student_kd']['wins']}/{args.seeds} seeds")
    if args.json:
        write_json_atomic(result, args.json)
        print(f"wrote {args.json}")
    return 0


def _add_parser(sub: Any, name: str, **kwargs: Any) -> argparse.ArgumentParser:
    """A subcommand that also takes ``--debug`` after its name (SUPPRESS keeps the top-level value)."""
    p: argparse.ArgumentParser = sub.add_parser(name, **kwargs)
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=_DEBUG_HELP)
    return p


_DEBUG_HELP = "show the full traceback of an unexpected error"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inference-scale",
        description="Compare what makes PyTorch inference cheaper: architecture, int8, pruning, distillation.",
        epilog="Exit status: 0 success, 1 an unexpected failure (or a regression, for compare), 2 bad input.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", default=False, help=_DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = _add_parser(sub, "models", help="list registered models from torchvision's offline metadata")
    p.add_argument("--family", help="e.g. resnet, efficientnet, swin, vit, convnext, lenet")
    p.add_argument("--kind", choices=KINDS)
    p.add_argument("--min-params", type=_PARAM_COUNT)
    p.add_argument("--max-params", type=_PARAM_COUNT)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_cmd_models)

    p = _add_parser(sub, "info", help="print one model's metadata as JSON")
    p.add_argument("name")
    p.set_defaults(func=_cmd_info)

    p = _add_parser(sub, "size", help="count params, MACs and checkpoint bytes of a model (random weights)")
    p.add_argument("name")
    p.add_argument(
        "--resolution", type=_number(int, low=1, high=MAX_RESOLUTION),
        help=f"input height/width, 1..{MAX_RESOLUTION} (default: the model's eval resolution)",
    )  # fmt: skip
    p.add_argument("--no-bytes", action="store_true", help="build on the meta device: params and MACs only")
    p.set_defaults(func=_cmd_size)

    p = _add_parser(sub, "pick", help="pick one EfficientNet, one ResNet and one transformer in a parameter range")
    p.add_argument("--min-params", type=_PARAM_COUNT, default=20e6)
    p.add_argument("--max-params", type=_PARAM_COUNT, default=30e6)
    p.set_defaults(func=_cmd_pick)

    p = _add_parser(sub, "report", help="table (and plots) of saved benchmark runs, grouped by model")
    p.add_argument("runs", nargs="*", metavar="RUN", help="JSON files or saved ids such as 0001 (default: the newest)")
    p.add_argument("--format", choices=("table", "md", "csv"), default="table")
    p.add_argument("--plot", metavar="DIR", help="also write PNG plots into DIR")
    p.add_argument("--html", metavar="OUT.html", help="also write one self-contained interactive HTML report")
    p.add_argument("--storage", default=".benchmarks", help="pytest-benchmark storage folder (default .benchmarks)")
    p.set_defaults(func=_cmd_report)

    p = _add_parser(
        sub,
        "compare",
        help="compare two saved runs: Mann-Whitney U (FDR-controlled) + threshold per benchmark",
        description=(
            "Compare two pytest-benchmark runs. Verdicts: slower, faster, no change, undecided. Exit 0: nothing "
            "regressed; 1: a benchmark is slower, a metric regressed, a base benchmark is missing (unless "
            "--allow-missing) or, with --strict, a verdict is undecided; 2: bad input (unreadable runs, NaN or "
            "negative rounds, nothing paired)."
        ),
    )
    p.add_argument("base", help="baseline run: JSON file or saved id such as 0001")
    p.add_argument("new", help="new run: JSON file or saved id")
    p.add_argument("--alpha", type=_FRACTION_OPEN, default=0.01, help="significance level (default 0.01)")
    p.add_argument(
        "--threshold", type=_number(float, low=0), default=0.10, help="relative change that matters (default 0.10)"
    )
    p.add_argument(
        "--accuracy-drop", type=_number(float, low=0, high=100), default=0.5,
        help="accuracy points that may be lost (default 0.5)",
    )  # fmt: skip
    p.add_argument("--strict", action="store_true", help="exit 1 on an undecided verdict too")
    p.add_argument("--allow-missing", action="store_true", help="a base benchmark missing from NEW is not a failure")
    p.add_argument("--normalize", action="store_true", help="divide the reference workload's drift out of NEW")
    p.add_argument("--format", choices=("table", "md"), default="table")
    p.add_argument("--storage", default=".benchmarks", help="pytest-benchmark storage folder (default .benchmarks)")
    p.set_defaults(func=_cmd_compare)

    p = _add_parser(
        sub,
        "ab",
        help="interleaved A/B of BASE against the working tree, blocks as samples; exit 1 on a slowdown",
        description=(
            "Run the selected benchmarks in K blocks per side, each a fresh pytest process, A-B then B-A, and "
            "judge each benchmark on its paired per-block ratios (t-test, Benjamini-Hochberg, plus the ratio "
            "threshold). Arguments after -- go to pytest, e.g. "
            "`inference-scale ab HEAD~1 -- benchmarks/test_pruning.py -k lenet`. Exit 0: nothing slower; "
            "1: a benchmark is slower or missing (or undecided, with --strict); 2: bad input."
        ),
    )
    p.add_argument("base", nargs="?", help="commit-ish for side A (a git worktree of it is made and removed)")
    p.add_argument("--aa", action="store_true", help="A/A calibration: the working tree against itself")
    ab_defaults = {f.name: f.default for f in dataclasses.fields(ABConfig)}
    p.add_argument(
        "--runs", type=_number(int, low=2), default=ab_defaults["runs"],
        help=f"blocks, K (default {ab_defaults['runs']})",
    )  # fmt: skip
    p.add_argument("--max-runs", type=_number(int, low=2), help="add blocks while undecided, up to this many per side")
    p.add_argument("--alpha", type=_FRACTION_OPEN, default=ab_defaults["alpha"], help="significance level")
    p.add_argument("--threshold", type=_number(float, low=0), default=ab_defaults["threshold"], help="ratio threshold")
    p.add_argument(
        "--block-time", type=_number(float, low=0, low_open=True, high=60), default=ab_defaults["block_time"],
        help="seconds of rounds per benchmark and side in one block (default %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--cpus", metavar="LIST",
        help="CPUs both sides are pinned to once collected (default: the last CPU; 'all' pins nothing); "
        "give as many as --threads",
    )  # fmt: skip
    p.add_argument("--out", default=".benchmarks/ab", help="folder for the blocks' JSON (default .benchmarks/ab)")
    p.add_argument("--strict", action="store_true", help="exit 1 on an undecided verdict too")
    p.add_argument("--allow-missing", action="store_true", help="a benchmark missing from B is not a failure")
    p.set_defaults(func=_cmd_ab)

    p = _add_parser(sub, "distill", help="train a student with and without knowledge distillation from a teacher")
    d = DistillConfig()  # the defaults live in the config, once
    p.add_argument("--dataset", default=d.dataset, choices=("mnist", "digits", "cifar10", "hf"))
    p.add_argument(
        "--root", metavar="DIR", help="folder of --dataset cifar10 (cifar-10-batches-py) or hf (save_to_disk)"
    )
    p.add_argument("--student", default=d.student)
    p.add_argument("--teacher", default=d.teacher)
    p.add_argument(
        "--train-fraction", type=_number(float, low=0, high=1, low_open=True), default=d.train_fraction,
        help="share of the training split the students see, in (0, 1]",
    )  # fmt: skip
    p.add_argument("--seeds", type=_POSITIVE_INT, default=d.seeds)
    p.add_argument(
        "--temperature", type=_number(float, low=0, low_open=True, high=MAX_TEMPERATURE), default=d.temperature,
        help=f"softmax temperature T in (0, {MAX_TEMPERATURE:g}] (default %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--alpha", type=_number(float, low=0, high=1), default=d.alpha, help="weight of the soft (teacher) term"
    )
    p.add_argument("--epochs", type=_POSITIVE_INT, default=d.student_epochs, help="student epochs")
    p.add_argument("--teacher-epochs", type=_POSITIVE_INT, default=d.teacher_epochs)
    p.add_argument("--cache-dir", default=d.cache_dir, help="where teacher logits are cached")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the teacher-logit cache")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON (atomically)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_distill)

    add_commands(sub, _add_parser, _POSITIVE_INT)
    add_advise(sub, _add_parser, _POSITIVE_INT, _PARAM_COUNT)
    add_history(sub, _add_parser, _number)
    add_serve(sub, _add_parser, _POSITIVE_INT)
    return parser


# A user's mistake: our own errors, and the builtins a bad value or path raises. Anything else
# is a failure of ours and says how to see its traceback.
_USER_ERRORS = (InferenceScaleError, ValueError, TypeError, FileNotFoundError, NotADirectoryError,
                IsADirectoryError, PermissionError)  # fmt: skip


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand. Exit 0 on success, 2 on bad input (one line on stderr), 1 on an
    unexpected failure (one line; ``--debug`` re-raises it with its traceback)."""
    parser = build_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    # Everything after the first "--" is passed through to pytest (ab only); argparse would
    # otherwise take a pytest path for ab's optional BASE.
    passthrough: list[str] = []
    if "--" in words:
        cut = words.index("--")
        words, passthrough = words[:cut], words[cut + 1 :]
    args = parser.parse_args(words)
    if passthrough and args.command not in ("ab", "bisect"):
        parser.error(
            f"only `ab` and `bisect` pass arguments after -- (to pytest); {args.command} got: {' '.join(passthrough)}"
        )
    args.passthrough = passthrough
    func: Callable[[argparse.Namespace], int] = args.func
    debug = bool(getattr(args, "debug", False))
    try:
        return func(args)
    except _USER_ERRORS as exc:
        if debug:
            raise
        print(f"inference-scale {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"inference-scale {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `inference-scale models | head`: the reader left; nothing is wrong
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - so the interpreter's final flush is quiet
        return 0
    except Exception as exc:
        if debug:
            raise
        print(
            f"inference-scale {args.command}: failed with {type(exc).__name__}: {_one_line(exc)} "
            "(this is not a usage error; run again with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
