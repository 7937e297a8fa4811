"""``inference-scale states``: the state registry (slugs, what each needs, where it runs)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from inference_scale.cli.args import add_parser

__all__ = ["add", "run"]


def run(args: argparse.Namespace) -> int:
    from inference_scale.reporting.table import render
    from inference_scale.states import list_states

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


def add(sub: Any) -> None:
    p = add_parser(sub, "states", help="list the compression states (slugs, what each needs, where it runs)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)
