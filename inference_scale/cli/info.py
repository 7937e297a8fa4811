"""``inference-scale info``: one model's metadata as JSON."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import Any

from inference_scale.cli.args import add_parser

__all__ = ["add", "run"]


def run(args: argparse.Namespace) -> int:
    from inference_scale.subjects.models import model_info

    print(json.dumps(asdict(model_info(args.name)), indent=2))
    return 0


def add(sub: Any) -> None:
    p = add_parser(sub, "info", help="print one model's metadata as JSON")
    p.add_argument("name")
    p.set_defaults(func=run)
