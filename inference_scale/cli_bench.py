"""``inference-scale states`` and ``inference-scale bench``: the state registry, and any model
benchmarked in chosen states through the pytest plugin's suite (the same cases, runner and
record as ``pytest --is-model ...``)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import Any

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


def _plan(args: argparse.Namespace) -> Any:
    """The plan of ``bench``'s arguments, checked by make_plan (the plugin's path too); an
    error names bench's flag for the option (the plugin's, without its ``is-``)."""
    from .plan import PlanError, flagged, make_plan
    from .plugin import FLAGS

    flags = {key: "MODEL" if key == "models" else flag.replace("--is-", "--") for key, flag in FLAGS.items()}
    seconds = _reference_seconds()  # outside the try: bench has no flag of its own to name
    try:
        return _make(args, make_plan, seconds)
    except PlanError as exc:
        raise PlanError(flagged(exc, flags)) from None


def _reference_seconds() -> dict[str, float]:
    """``$INFERENCE_SCALE_REFERENCE_SECONDS``, as the plugin reads it where no flag is given;
    a bad value is a one-line error naming the variable."""
    from .plan import PlanError, check_reference_seconds
    from .plugin import REFERENCE_ENV

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
        all_int8=args.all_int8, **seconds,
    )  # fmt: skip


def _cmd_bench(args: argparse.Namespace) -> int:
    from .api import BenchError, check_paths, run_plan
    from .report import fastest_lines

    check_paths(json=args.json, storage=args.storage, names=("--json", "--storage"))  # before any model is built
    plan = _plan(args)
    try:
        result = run_plan(plan, json=args.json, storage=args.storage)
    except BenchError as exc:
        print(f"inference-scale bench: {exc}", file=sys.stderr)
        return 2 if exc.usage else 1
    print(result.table())
    print("\n".join(fastest_lines(result.rows)))
    if args.json:
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


def add_commands(sub: Any, add_parser: Callable[..., argparse.ArgumentParser], positive_int: Any) -> None:
    """Add ``states`` and ``bench`` to the ``inference-scale`` subparsers."""
    from .api import DEFAULT_STORAGE
    from .plan import DEFAULTS
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
    p.add_argument("model", metavar="MODEL", help="a registry name, hf:DIR, timm:NAME or module:factory")
    p.add_argument("--example", metavar="MODULE:FN",
                   help="a callable taking the batch size and returning the model's inputs: a tensor, a tuple "
                   "(positional) or a dict (keyword arguments) of tensors")  # fmt: skip
    p.add_argument("--states", metavar="SLUG[,SLUG]", help=f"default: {','.join(DEFAULT_STATES)}")
    p.add_argument("--batch-size", metavar="N[,N]", help=f"default: {','.join(map(str, DEFAULT_BATCHES))}")
    p.add_argument("--input-shape", metavar="C,H,W",
                   help="shorthand for one float input: one sample's shape without the batch")  # fmt: skip
    p.add_argument(
        "--seq-len", type=positive_int, metavar="N", help="tokens per input of an hf: text model (default 128)"
    )
    p.add_argument("--eval", metavar="MODULE:LOADER", help="(inputs, targets) batches: accuracy in every state")
    p.add_argument("--calibration", metavar="MODULE:LOADER", help="input batches for static int8 (default: --eval's)")
    p.add_argument("--device", choices=DEVICES, default=DEFAULTS["device"])
    p.add_argument("--threads", type=positive_int, default=DEFAULTS["threads"],
                   help="intra-op threads, the same for every state (default 1)")  # fmt: skip
    seeds = DEFAULTS["seeds"]
    p.add_argument("--seeds", type=positive_int, default=seeds,
                   help=f"training states (kd) run once per seed; accuracy is the mean (default {seeds})")  # fmt: skip
    p.add_argument("--all-int8", action="store_true", help="compiled states (int8, compile) on transformers too")
    p.add_argument("--no-compile", action="store_true", help="run compiled states eager: quick, not their speed")
    p.add_argument("--json", metavar="OUT", help="also write the run's pytest-benchmark JSON here")
    p.add_argument("--storage", default=DEFAULT_STORAGE, help=f"where the run is saved (default {DEFAULT_STORAGE})")
    p.set_defaults(func=_cmd_bench)
