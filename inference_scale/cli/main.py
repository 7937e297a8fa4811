"""The ``inference-scale`` entry point: one parser assembled from the command modules of this
package (each adds itself with ``add``), and one error rule. Every subcommand has ``--help``;
an :class:`~inference_scale.errors.InferenceScaleError` (a user's mistake) exits 2 with one
line; anything else is a failure of ours, one line and exit 1 (``--debug`` shows the traceback)."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence

from inference_scale import __version__
from inference_scale.cli.args import DEBUG_HELP
from inference_scale.errors import InferenceScaleError

__all__ = ["COMMANDS", "build_parser", "main"]

# The command modules of this package, in the order --help lists them.
COMMANDS: tuple[str, ...] = (
    "models", "info", "size", "pick", "report", "compare", "ab", "distill", "states", "bench", "advise",
    "history", "bisect", "serve",
)  # fmt: skip
# Commands that pass the arguments after "--" through to pytest.
PASSTHROUGH = ("ab", "bisect")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inference-scale",
        description="Compare what makes PyTorch inference cheaper: architecture, int8, pruning, distillation.",
        epilog="Exit status: 0 success, 1 an unexpected failure (or a regression, for compare), 2 bad input.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", default=False, help=DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"{__package__}.{name}").add(sub)
    return parser


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand. Exit 0 on success, 2 on bad input (one line on stderr), 1 on an
    unexpected failure (one line; ``--debug`` re-raises it with its traceback)."""
    parser = build_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    # Everything after the first "--" is passed through to pytest (ab, bisect); argparse would
    # otherwise take a pytest path for ab's optional BASE.
    passthrough: list[str] = []
    if "--" in words:
        cut = words.index("--")
        words, passthrough = words[:cut], words[cut + 1 :]
    args = parser.parse_args(words)
    if passthrough and args.command not in PASSTHROUGH:
        parser.error(
            f"only `ab` and `bisect` pass arguments after -- (to pytest); {args.command} got: {' '.join(passthrough)}"
        )
    args.passthrough = passthrough
    func: Callable[[argparse.Namespace], int] = args.func
    debug = bool(getattr(args, "debug", False))
    try:
        return func(args)
    except InferenceScaleError as exc:  # a user's mistake, and only that
        if debug:
            raise
        print(f"inference-scale {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"inference-scale {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `inference-scale models | head`: the reader left; nothing is wrong
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - so the interpreter's final flush is quiet
        return 0
    except Exception as exc:
        if debug:
            raise
        print(
            f"inference-scale {args.command}: failed with {type(exc).__name__}: {_one_line(exc)} "
            "(this is not a usage error; run again with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
