"""``inference-scale ab``: an interleaved A/B of BASE against the working tree; exit 1 on a slowdown."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from inference_scale.atomic import check_output_path
from inference_scale.cli.args import add_parser
from inference_scale.errors import InvalidValueError
from inference_scale.options import add_flags, number
from inference_scale.verdicts.ab import ABConfig

__all__ = ["add", "run"]


def run(args: argparse.Namespace) -> int:
    from inference_scale.verdicts.ab import format_ab, run_ab

    if args.aa == (args.base is not None):
        raise InvalidValueError(
            "give BASE (a commit to compare the working tree with) or --aa, not both and not neither"
        )
    check_output_path(Path(args.out) / "A-01.json", what="--out")
    cpus: dict[str, Any] = {}
    if args.cpus == "all":
        cpus["cpus"] = None
    elif args.cpus is not None:
        try:
            cpus["cpus"] = tuple(int(c) for c in args.cpus.split(","))
        except ValueError:
            raise InvalidValueError(f"--cpus {args.cpus!r}: give CPU numbers such as 0 or 0,1, or 'all'") from None
    cfg = ABConfig(
        **cpus,
        base=args.base, pytest_args=tuple(args.passthrough), runs=args.runs, max_runs=args.max_runs, alpha=args.alpha,
        threshold=args.threshold, block_time=args.block_time, out_dir=Path(args.out),
    )  # fmt: skip
    result = run_ab(cfg, aa=args.aa, log=lambda line: print(line, file=sys.stderr, flush=True))
    if args.strict and result.isa:
        from inference_scale.verdicts.compare import IsaMismatchError

        raise IsaMismatchError(
            f"A and B recorded CPUs whose ISA flags differ: {result.isa}; --strict refuses the verdicts "
            f"(the blocks are saved under {result.files[0].parent})"
        )
    print(format_ab(result))
    print(f"saved {len(result.files)} pytest-benchmark JSON files under {result.files[0].parent}", file=sys.stderr)
    return result.exit_code(strict=args.strict, allow_missing=args.allow_missing)


def add(sub: Any) -> None:
    p = add_parser(
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
        "--runs", type=number(int, low=2), default=ab_defaults["runs"],
        help=f"blocks, K (default {ab_defaults['runs']})",
    )  # fmt: skip
    p.add_argument("--max-runs", type=number(int, low=2), help="add blocks while undecided, up to this many per side")
    add_flags(p, "alpha", "threshold")
    p.add_argument(
        "--block-time", type=number(float, low=0, low_open=True, high=60), default=ab_defaults["block_time"],
        help="seconds of rounds per benchmark and side in one block (default %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--cpus", metavar="LIST",
        help="CPUs both sides are pinned to once collected (default: the last CPU; 'all' pins nothing); "
        "give as many as --threads",
    )  # fmt: skip
    p.add_argument("--out", default=".benchmarks/ab", help="folder for the blocks' JSON (default .benchmarks/ab)")
    add_flags(p, "strict", "allow-missing")
    p.set_defaults(func=run)
