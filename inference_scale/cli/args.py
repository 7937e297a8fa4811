"""What the commands share beyond :mod:`inference_scale.options`: ``--debug`` after the
command name, a few argparse types, and the checks of an optional extra and of an HTML path."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from inference_scale.errors import InferenceScaleError, OutputPathError
from inference_scale.options import number

__all__ = [
    "DEBUG_HELP",
    "MAX_RESOLUTION",
    "PARAM_COUNT",
    "MissingExtraError",
    "add_parser",
    "check_html_path",
    "cli_flagged",
    "require_report_extra",
]

DEBUG_HELP = "show the full traceback of an unexpected error"
# Larger inputs than this are a typo rather than a model (ImageNet models evaluate at <= 600).
MAX_RESOLUTION = 4096
PARAM_COUNT = number(float, low=0)


def add_parser(sub: Any, name: str, **kwargs: Any) -> argparse.ArgumentParser:
    """A subcommand that also takes ``--debug`` after its name (SUPPRESS keeps the top-level value)."""
    p: argparse.ArgumentParser = sub.add_parser(name, **kwargs)
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
    return p


def cli_flagged(exc: BaseException) -> str:
    """A plan error's message led by the command's flag for its option: the plugin's
    ``--is-NAME`` without its ``is-``, MODEL for the model (bench and serve share make_plan)."""
    from inference_scale.measure.plan import flagged
    from inference_scale.measure.plugin import FLAGS

    flags = {key: "MODEL" if key == "models" else flag.replace("--is-", "--") for key, flag in FLAGS.items()}
    return flagged(exc, flags)


class MissingExtraError(InferenceScaleError, ValueError):
    """A command that needs the ``report`` extra (ruptures, plotly) without it installed."""


def require_report_extra(what: str, *modules: str) -> None:
    """One line naming the extra when one of ``modules`` cannot be imported."""
    import importlib.util

    absent = [m for m in modules if importlib.util.find_spec(m) is None]
    if absent:
        raise MissingExtraError(
            f"{what} needs {', '.join(absent)}: pip install 'inference-scale[report]' (or the dev extra)"
        )


def check_html_path(path: str) -> Path:
    """``report --html``'s path, refused before any work: a file name whose folder exists."""
    from inference_scale.atomic import check_output_path

    target = check_output_path(path, what="--html")
    if not target.parent.is_dir():
        raise OutputPathError(f"--html path {target}: folder {target.parent} does not exist (create it first)")
    if target.suffix.lower() not in (".html", ".htm"):
        raise OutputPathError(f"--html path {target} should end in .html")
    return target
