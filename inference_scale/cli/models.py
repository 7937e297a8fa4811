"""``inference-scale models``: the registered models, from torchvision's offline metadata."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import Any

from inference_scale.cli.args import PARAM_COUNT, add_parser
from inference_scale.subjects.kinds import KINDS

__all__ = ["add", "run"]


def run(args: argparse.Namespace) -> int:
    from inference_scale.reporting.report import human
    from inference_scale.reporting.table import render
    from inference_scale.subjects.models import list_models

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


def add(sub: Any) -> None:
    p = add_parser(sub, "models", help="list registered models from torchvision's offline metadata")
    p.add_argument("--family", help="e.g. resnet, efficientnet, swin, vit, convnext, lenet")
    p.add_argument("--kind", choices=KINDS)
    p.add_argument("--min-params", type=PARAM_COUNT)
    p.add_argument("--max-params", type=PARAM_COUNT)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)
