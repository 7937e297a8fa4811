"""``inference-scale states`` and ``inference-scale bench``: the state registry, and any model
benchmarked in chosen states through the pytest plugin's suite (the same cases, runner and
record as ``pytest --is-model ...``)."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .atomic import check_output_path
from .runtime import DEVICES
from .table import render

__all__ = ["add_commands"]

BENCH_EXAMPLE = """\
example (a model of your own, from its folder):
  PYTHONPATH=. inference-scale bench mypkg.mod:build --input-shape 3,32,32 \\
      --states fp32,bf16,int8-static,prune-channels-50 --eval mypkg.mod:val --json out.json

MODEL is a registry name (`inference-scale models`) or module:factory, a callable with no
arguments that returns an nn.Module. --eval and --calibration name callables that return an
iterable of (inputs, targets) batches (calibration: input tensors also do). The run is saved
under --storage like the main job's, and the table printed at the end."""


def _cmd_states(args: argparse.Namespace) -> int:
    from .states import list_states

    classes = list_states()
    if args.json:
        print(json.dumps([
            {"slug": c.pattern, "example": c.example().slug, "family": c.family, "needs": sorted(c.needs),
             "devices": list(c.devices), "summary": c.summary()} for c in classes
        ], indent=2))  # fmt: skip
        return 0
    rows = [[c.pattern, c.family, ", ".join(sorted(c.needs)) or "-", ", ".join(c.devices)] for c in classes]
    title = f"{len(classes)} states (join slugs with + to compose, e.g. prune-channels-50+int8-static)"
    columns = ("slug", "family", "needs", "devices")
    print(render(columns, rows, title=title, left=columns))
    for c in classes:
        print(f"  {c.pattern}: {c.summary()}")
    return 0


def _pytest_args(args: argparse.Namespace, json_out: Path) -> list[str]:
    from .plugin import SUITE_FILE

    out = [
        str(SUITE_FILE), "--benchmark-only", "--benchmark-autosave", "--benchmark-save-data",
        f"--benchmark-storage={Path(args.storage).resolve()}", f"--benchmark-json={json_out}",
        f"--rootdir={Path.cwd()}", "-p", "no:cacheprovider", "--benchmark-sort=name",
        "--benchmark-columns=median,iqr,ops,rounds", "--is-model", args.model,
        "--is-device", args.device, "--is-threads", str(args.threads), "--is-seeds", str(args.seeds),
    ]  # fmt: skip
    for flag, value in (("--is-states", args.states), ("--is-batch-size", args.batch_size),
                        ("--is-input-shape", args.input_shape), ("--is-eval", args.eval),
                        ("--is-calibration", args.calibration)):  # fmt: skip
        if value is not None:
            out += [flag, value]
    if args.all_int8:
        out.append("--is-all-int8")
    if args.no_compile:
        out.append("--is-no-compile")
    return out


def _check(args: argparse.Namespace) -> None:
    """Everything that can be wrong, before any benchmark: paths, slugs, shape, model, loaders."""
    from .plugin import split_values
    from .states import get_state
    from .subject import parse_input_shape, subject_from_spec
    from .suite import DEFAULT_STATES, missing_input

    if args.json:
        check_output_path(args.json, what="--json")
    check_output_path(Path(args.storage) / "run.json", what="--storage")
    for flag, value in (("--states", args.states), ("--batch-size", args.batch_size)):
        if value is not None and not split_values([value]):
            raise ValueError(f"{flag} {value!r} names nothing; give comma-separated values or leave it out")
    states = [get_state(s) for s in split_values([args.states] if args.states else None) or DEFAULT_STATES]
    for raw in split_values([args.batch_size] if args.batch_size else None):
        if not raw.isdigit() or int(raw) < 1:
            raise ValueError(f"--batch-size {raw!r} is not valid; choices: positive integers such as 1, 8")
    shape = parse_input_shape(args.input_shape) if args.input_shape is not None else None
    if ":" in args.model and shape is None:
        raise ValueError(f"model {args.model!r} is a factory: give its input shape, e.g. --input-shape 3,224,224")
    subject = subject_from_spec(args.model, input_shape=shape, eval_spec=args.eval, calibration_spec=args.calibration)
    for state in states:
        problem = missing_input(state, subject)
        if problem:
            raise ValueError(problem.replace("--is-calibration / ", "").replace("--is-eval / ", ""))


def _cmd_bench(args: argparse.Namespace) -> int:
    import pytest

    from .report import fastest_lines, format_rows, rows_from_run
    from .runs import load_run

    _check(args)
    with tempfile.TemporaryDirectory() as tmp:
        json_out = Path(args.json).resolve() if args.json else Path(tmp) / "run.json"
        code = int(pytest.main(_pytest_args(args, json_out)))
        if code != 0:
            print(f"inference-scale bench: pytest exited {code}; see its output above", file=sys.stderr)
            return 2 if code == pytest.ExitCode.USAGE_ERROR else 1
        rows = rows_from_run(load_run(json_out))
        print(format_rows(rows, "table"))
        print("\n".join(fastest_lines(rows)))
        if args.json:
            print(f"wrote {args.json}", file=sys.stderr)
    return 0


def add_commands(sub: Any, add_parser: Callable[..., argparse.ArgumentParser], positive_int: Any) -> None:
    """Add ``states`` and ``bench`` to the ``inference-scale`` subparsers."""
    from .plugin import _DEFAULTS
    from .suite import DEFAULT_BATCHES, DEFAULT_STATES

    p = add_parser(sub, "states", help="list the compression states (slugs, what each needs, where it runs)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_cmd_states)

    p = add_parser(
        sub, "bench", help="benchmark a model (registry name or module:factory) in chosen states",
        description="Benchmark MODEL in each state at each batch size, against its fp32 baseline timed in the "
        "same run: speed, size, MACs, accuracy (with --eval) and agreement with fp32.",
        epilog=BENCH_EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    p.add_argument("model", metavar="MODEL", help="a registry name or module:factory")
    p.add_argument("--states", metavar="SLUG[,SLUG]", help=f"default: {','.join(DEFAULT_STATES)}")
    p.add_argument("--batch-size", metavar="N[,N]", help=f"default: {','.join(map(str, DEFAULT_BATCHES))}")
    p.add_argument("--input-shape", metavar="C,H,W", help="one sample's shape without the batch (needed for a factory)")
    p.add_argument("--eval", metavar="MODULE:LOADER", help="(inputs, targets) batches: accuracy in every state")
    p.add_argument("--calibration", metavar="MODULE:LOADER", help="input batches for static int8 (default: --eval's)")
    p.add_argument("--device", choices=DEVICES, default="cpu")
    p.add_argument("--threads", type=positive_int, default=1,
                   help="intra-op threads, the same for every state (default 1)")  # fmt: skip
    seeds = _DEFAULTS["--is-seeds"]
    p.add_argument("--seeds", type=positive_int, default=seeds,
                   help=f"training states (kd) run once per seed; accuracy is the mean (default {seeds})")  # fmt: skip
    p.add_argument("--all-int8", action="store_true", help="compiled states (int8, compile) on transformers too")
    p.add_argument("--no-compile", action="store_true", help="run compiled states eager: quick, not their speed")
    p.add_argument("--json", metavar="OUT", help="also write the run's pytest-benchmark JSON here")
    p.add_argument("--storage", default=".benchmarks", help="where the run is saved (default .benchmarks)")
    p.set_defaults(func=_cmd_bench)
