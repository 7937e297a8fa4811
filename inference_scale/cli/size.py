"""``inference-scale size``: params, MACs and checkpoint bytes of a model (random weights)."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import Any

from inference_scale.cli.args import MAX_RESOLUTION, add_parser
from inference_scale.options import number

__all__ = ["add", "run"]


def run(args: argparse.Namespace) -> int:
    from inference_scale.sizing import size_report
    from inference_scale.subjects.models import get_model, model_info

    info = model_info(args.name)
    res = info.resolution if args.resolution is None else args.resolution
    shape = (info.input_shape[0], res, res)
    # Real weights are needed for bytes; shapes alone (meta) suffice for params and MACs.
    model = get_model(args.name, device="meta" if args.no_bytes else None)
    report = size_report(model, shape, compress=not args.no_bytes)
    print(json.dumps({"model": args.name, **asdict(report), "macs_metadata": info.macs}, indent=2))
    return 0


def add(sub: Any) -> None:
    p = add_parser(sub, "size", help="count params, MACs and checkpoint bytes of a model (random weights)")
    p.add_argument("name")
    p.add_argument(
        "--resolution", type=number(int, low=1, high=MAX_RESOLUTION),
        help=f"input height/width, 1..{MAX_RESOLUTION} (default: the model's eval resolution)",
    )  # fmt: skip
    p.add_argument("--no-bytes", action="store_true", help="build on the meta device: params and MACs only")
    p.set_defaults(func=run)
