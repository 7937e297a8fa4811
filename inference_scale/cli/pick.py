"""``inference-scale pick``: one EfficientNet, one ResNet and one transformer in a parameter range."""

from __future__ import annotations

import argparse
from typing import Any

from inference_scale.cli.args import PARAM_COUNT, add_parser

__all__ = ["add", "run"]


def run(args: argparse.Namespace) -> int:
    from inference_scale.reporting.report import human
    from inference_scale.subjects.models import model_info, pick_architectures

    for name in pick_architectures(min_params=args.min_params, max_params=args.max_params):
        info = model_info(name)
        print(f"{name}\t{info.family}\t{info.kind}\t{info.num_params:,} params\t{human(info.macs)} MACs")
    return 0


def add(sub: Any) -> None:
    p = add_parser(sub, "pick", help="pick one EfficientNet, one ResNet and one transformer in a parameter range")
    p.add_argument("--min-params", type=PARAM_COUNT, default=20e6)
    p.add_argument("--max-params", type=PARAM_COUNT, default=30e6)
    p.set_defaults(func=run)
