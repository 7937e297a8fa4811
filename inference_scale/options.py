"""Option groups declared once: each shared flag's name, type, default and help, added to the
CLI's commands as ``--NAME`` and to the pytest plugin as ``--is-NAME`` (pytest-benchmark's
prefix style). Torch-free, so ``--help`` answers without importing torch.

A flag's default is the one in :data:`~inference_scale.defaults.DEFAULTS`; the plugin
declares its flags with ``default=None`` (given or not, so a session that passes no ``--is-*``
option costs nothing) and resolves the same default in :func:`~.measure.plan.make_plan`.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from inference_scale.defaults import DEFAULTS

__all__ = ["DEVICES", "MODEL_FLAGS", "SHARED", "Flag", "add_flags", "number"]

DEVICES: tuple[str, ...] = ("cpu", "cuda")


def number(
    kind: type, *, low: float | None = None, high: float | None = None, low_open: bool = False, high_open: bool = False
) -> Callable[[str], Any]:
    """An argparse ``type`` for a finite int or float within bounds; its error names the range."""
    lo = "-inf" if low is None else f"{low:g}"
    hi = "inf" if high is None else f"{high:g}"
    span = f"{'(' if low_open or low is None else '['}{lo}, {hi}{')' if high_open or high is None else ']'}"
    noun = "an integer" if kind is int else "a number"

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"{text!r} is not {noun}; valid: {noun} in {span}") from None
        ok = math.isfinite(value)
        if ok and low is not None:
            ok = value > low if low_open else value >= low
        if ok and high is not None:
            ok = value < high if high_open else value <= high
        if not ok:
            raise argparse.ArgumentTypeError(f"{text} is out of range; valid: {noun} in {span}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


POSITIVE_INT = number(int, low=1)
FRACTION_OPEN = number(float, low=0, high=1, low_open=True, high_open=True)


@dataclass(frozen=True)
class Flag:
    """One shared flag. ``default`` is None for a switch (``store_true``) or a flag with no
    default; ``plugin`` says whether the pytest plugin takes it too (as ``--is-NAME``)."""

    name: str
    help: str
    default: Any = None
    type: Callable[[str], Any] | None = None
    action: str | None = None
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    plugin: bool = False
    plugin_type: Callable[[str], Any] | None = None

    def kwargs(self, *, for_plugin: bool = False) -> dict[str, Any]:
        """argparse keywords. The plugin's flag keeps only a plain type: its value is checked
        by make_plan, whose error is one line (pytest prints an argparse error with its usage
        and config lines)."""
        out: dict[str, Any] = {"help": self.help}
        if self.action:
            out["action"] = self.action
        else:
            out["default"] = None if for_plugin else self.default
        checks = {"type": self.plugin_type} if for_plugin else {"type": self.type, "choices": self.choices}
        for key, value in {**checks, "metavar": self.metavar}.items():
            if value is not None:
                out[key] = value
        return out


def _shared() -> dict[str, Flag]:
    d = DEFAULTS
    flags = [
        Flag("storage", f"pytest-benchmark storage folder (default {d['storage']})", d["storage"], metavar="DIR"),
        Flag("alpha", f"significance level of every verdict, in (0, 1) (default {d['alpha']:g})", d["alpha"],
             FRACTION_OPEN),
        Flag("threshold", f"relative change that matters, >= 0 (default {d['threshold']:g})", d["threshold"],
             number(float, low=0)),
        Flag("accuracy-drop", f"accuracy points a new run may lose, 0..100 (default {d['accuracy_drop_points']:g})",
             d["accuracy_drop_points"], number(float, low=0, high=100)),
        Flag("strict", "exit 1 on an undecided verdict too", action="store_true"),
        Flag("allow-missing", "a base benchmark missing from the new run is not a failure", action="store_true"),
        Flag("device", f"device: {' or '.join(DEVICES)} (default {d['device']})", d["device"], choices=DEVICES,
             plugin=True),
        Flag("threads", f"intra-op threads, the same for every state and runtime (default {d['threads']})",
             d["threads"], POSITIVE_INT, plugin=True, plugin_type=int),
        Flag("seeds", f"states that train (kd) run once per seed; accuracy is the mean (default {d['seeds']})",
             d["seeds"], POSITIVE_INT, metavar="N", plugin=True, plugin_type=int),
        # what describes a model's inputs and data: bench, serve and the plugin (make_plan checks them)
        Flag("example", "a callable taking the batch size and returning the model's inputs: a tensor, a tuple of "
             "tensors (positional) or a dict (keyword arguments)", metavar="MODULE:FN", plugin=True),
        Flag("input-shape", "shorthand for one float input: one sample's shape, without the batch",
             metavar="C,H,W", plugin=True),
        Flag("seq-len", "tokens per input of an hf: text model (default 128)", type=POSITIVE_INT, metavar="N",
             plugin=True, plugin_type=int),
        Flag("eval", "a callable returning (inputs, targets) batches (targets may be None): accuracy in every "
             "state, agreement on its inputs", metavar="MODULE:LOADER", plugin=True),
        Flag("calibration", "a callable returning input batches for static int8 ranges (default: the eval inputs)",
             metavar="MODULE:LOADER", plugin=True),
    ]  # fmt: skip
    return {f.name: f for f in flags}


SHARED: dict[str, Flag] = _shared()
# The shared flags that describe a model's inputs and data, in the order --help lists them.
MODEL_FLAGS: tuple[str, ...] = ("example", "input-shape", "seq-len", "eval", "calibration")


def add_flags(parser: Any, *names: str, prefix: str = "--", **overrides: Any) -> None:
    """Add the shared flags ``names`` to an argparse parser (``prefix`` ``--``) or to a pytest
    option group (``prefix`` ``--is-``, plugin defaults None). ``overrides`` maps a name (with
    ``_`` for ``-``) to keyword arguments that replace the declared ones for one command."""
    for name in names:
        flag = SHARED[name]
        kwargs = flag.kwargs(for_plugin=prefix != "--")
        kwargs.update(overrides.get(name.replace("-", "_"), {}))
        if hasattr(parser, "add_argument"):
            action = parser.add_argument(f"{prefix}{name}", **kwargs)
            action.shared_flag = name  # so a test can tell a shared flag from a command's own namesake
        else:
            parser.addoption(f"{prefix}{name}", **kwargs)
