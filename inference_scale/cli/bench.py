"""``inference-scale bench``: any model benchmarked in chosen states through the pytest
plugin's suite (the same cases, runner and record as ``pytest --is-model ...``)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from inference_scale.cli.args import add_parser, cli_flagged
from inference_scale.defaults import DEFAULT_BATCHES, DEFAULT_STATES
from inference_scale.options import MODEL_FLAGS, add_flags

__all__ = ["add", "run"]

BENCH_EXAMPLE = """\
example (a model of your own, from its folder):
  PYTHONPATH=. inference-scale bench mypkg.mod:build --input-shape 3,32,32 \\
      --states fp32,bf16,int8-static,prune-channels-50 --eval mypkg.mod:val --json out.json

MODEL is a registry name (`inference-scale models`) or module:factory, a callable with no
arguments that returns an nn.Module. --eval and --calibration name callables that return an
iterable of (inputs, targets) batches (calibration: input tensors also do). The run is saved
under --storage like the main job's, and the table printed at the end."""


def _plan(args: argparse.Namespace) -> Any:
    """The plan of ``bench``'s arguments, checked by make_plan (the plugin's path too); an
    error names bench's flag for the option (the plugin's, without its ``is-``)."""
    from inference_scale.measure.plan import PlanError, make_plan

    seconds = _reference_seconds()  # outside the try: bench has no flag of its own to name
    try:
        return _make(args, make_plan, seconds)
    except PlanError as exc:
        raise PlanError(cli_flagged(exc)) from None


def _reference_seconds() -> dict[str, float]:
    """``$INFERENCE_SCALE_REFERENCE_SECONDS``, as the plugin reads it where no flag is given;
    a bad value is a one-line error naming the variable."""
    from inference_scale.measure.plan import PlanError, check_reference_seconds
    from inference_scale.measure.plugin import REFERENCE_ENV

    value = os.environ.get(REFERENCE_ENV)
    if value is None:
        return {}
    try:
        return {"reference_seconds": check_reference_seconds(value, what=REFERENCE_ENV)}
    except PlanError as exc:
        raise PlanError(str(exc)) from None  # without its option: no bench flag carried it


def _make(args: argparse.Namespace, make_plan: Any, seconds: dict[str, float]) -> Any:
    return make_plan(
        args.model, example=args.example, input_shape=args.input_shape, states=args.states,
        batch_sizes=args.batch_size, eval=args.eval, calibration=args.calibration, seq_len=args.seq_len,
        device=args.device, threads=args.threads, seeds=args.seeds, compile=not args.no_compile,
        all_int8=args.all_int8, memory=args.memory, tail=args.tail, **seconds,
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from inference_scale.api import BenchError, check_paths, run_plan
    from inference_scale.reporting.report import fastest_lines

    check_paths(json=args.json, storage=args.storage, names=("--json", "--storage"))  # before any model is built
    plan = _plan(args)
    try:
        result = run_plan(plan, json=args.json, storage=args.storage)
    except BenchError as exc:
        print(f"inference-scale bench: {exc}", file=sys.stderr)
        return 2 if exc.usage else 1
    print(result.table())
    print("\n".join(fastest_lines(result.rows)))
    if result.storage_path is not None:
        print(f"saved run: {result.storage_path}", file=sys.stderr)
    if args.json:
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


def add(sub: Any) -> None:
    p = add_parser(
        sub, "bench", help="benchmark a model (registry name or module:factory) in chosen states",
        description="Benchmark MODEL in each state at each batch size, against its fp32 baseline timed in the "
        "same run: speed, size, MACs, accuracy (with --eval) and agreement with fp32.",
        epilog=BENCH_EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    p.add_argument("model", metavar="MODEL", help="a registry name, hf:DIR, timm:NAME or module:factory")
    p.add_argument("--states", metavar="SLUG[,SLUG]", help=f"default: {','.join(DEFAULT_STATES)}")
    p.add_argument("--batch-size", metavar="N[,N]", help=f"default: {','.join(map(str, DEFAULT_BATCHES))}")
    add_flags(p, *MODEL_FLAGS)
    add_flags(p, "device", "threads", "seeds")
    p.add_argument("--all-int8", action="store_true", help="compiled states (int8, compile) on transformers too")
    p.add_argument("--no-compile", action="store_true", help="run compiled states eager: quick, not their speed")
    p.add_argument(
        "--memory",
        action="store_true",
        help="also measure each case's peak RSS and cold start (load, first call) in a fresh process",
    )
    p.add_argument(
        "--tail",
        action="store_true",
        help="take enough rounds for p90 and p99 (MLPerf LoadGen's counts), bounded in time",
    )
    p.add_argument("--json", metavar="OUT", help="also write the run's pytest-benchmark JSON here")
    add_flags(p, "storage")  # where the run is saved
    p.set_defaults(func=run)
