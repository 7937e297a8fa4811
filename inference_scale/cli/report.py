"""``inference-scale report``: a table (and plots, and an HTML page) of saved benchmark runs,
each under its host line, with notes and warnings beneath (:func:`.report.format_report`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from inference_scale.atomic import check_output_path
from inference_scale.cli.args import add_parser, check_html_path, require_report_extra
from inference_scale.options import add_flags

__all__ = ["add", "run"]


def run(args: argparse.Namespace) -> int:
    from inference_scale.reporting.report import format_report, rows_from_run
    from inference_scale.verdicts.runs import BadRunError, find_run, load_run, warn_once

    if args.plot:
        check_output_path(Path(args.plot) / "plot.png", what="--plot")
    if args.html:
        check_html_path(args.html)
        require_report_extra("report --html", "plotly", "ruptures")
    specs, warn = args.runs or [None], warn_once()
    # Every run is read and checked before anything is printed or written.
    found = (load_run(find_run(s, storage=Path(args.storage), warn=warn)) for s in specs)
    loaded = [(saved, rows_from_run(saved)) for saved in found]
    if args.plot and not any(r.params is not None for _, rows in loaded for r in rows):
        raise BadRunError("--plot: no benchmark carries an inference-scale record (params, bytes), so there is no plot")
    for saved, rows in loaded:
        text, warnings = format_report(saved, rows, args.format)
        print(text)
        for line in warnings:
            print(line, file=sys.stderr)
        if args.plot:
            from inference_scale.reporting.plots import plot_rows

            for png in plot_rows(rows, Path(args.plot)):
                print(f"wrote {png}", file=sys.stderr)
    if args.html:
        from inference_scale.reporting.html_report import write_html

        write_html(Path(args.html), [saved.path for saved, _ in loaded], storage=Path(args.storage))
        print(f"wrote {args.html}", file=sys.stderr)
    return 0


def add(sub: Any) -> None:
    p = add_parser(sub, "report", help="table (and plots) of saved benchmark runs, grouped by model")
    p.add_argument("runs", nargs="*", metavar="RUN", help="JSON files or saved ids such as 0001 (default: the newest)")
    p.add_argument("--format", choices=("table", "md", "csv"), default="table")
    p.add_argument("--plot", metavar="DIR", help="also write PNG plots into DIR")
    p.add_argument("--html", metavar="OUT.html", help="also write one self-contained interactive HTML report")
    add_flags(p, "storage")
    p.set_defaults(func=run)
