"""Exceptions raised on bad input. Each subclasses ValueError, TypeError or FileNotFoundError so
callers can catch the builtin, and :class:`InferenceScaleError` so the command line can tell a
user's mistake (one line, exit 2) from a failure of ours (exit 1). Each message names the
problem and the valid choices."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "InferenceScaleError",
    "InvalidOptionError",
    "InvalidTypeError",
    "InvalidValueError",
    "MacCountError",
    "MissingFileError",
    "OutputPathError",
    "UnknownModelError",
    "UnknownWeightsError",
    "WeightsNotFoundError",
    "close_matches",
    "did_you_mean",
]


def close_matches(name: str, choices: Iterable[str], *, n: int = 5) -> list[str]:
    """The choices closest to ``name``: difflib's ratio first, then prefix matches."""
    pool = sorted(set(choices))
    found = difflib.get_close_matches(name, pool, n=n, cutoff=0.5)
    for choice in pool:
        if len(found) >= n:
            break
        if choice not in found and (choice.startswith(name) or name.startswith(choice)):
            found.append(choice)
    return found


def did_you_mean(name: str, choices: Iterable[str]) -> tuple[str, list[str]]:
    """``"; did you mean: a, b?"`` (or ``""``) for an unknown ``name``, and the matches."""
    near = close_matches(name, choices)
    return (f"; did you mean: {', '.join(near)}?" if near else ""), near


class InferenceScaleError(Exception):
    """Base of every error this package raises for bad input; always mixed with a builtin."""


class InvalidValueError(InferenceScaleError, ValueError):
    """A value outside its valid range or set; the message names both."""


class InvalidTypeError(InferenceScaleError, TypeError):
    """A value of the wrong type; the message names the type expected."""


class MissingFileError(InferenceScaleError, FileNotFoundError):
    """A file or folder the user named does not exist."""


class InvalidOptionError(InferenceScaleError, ValueError):
    """An option value outside its valid set; the message lists the valid choices."""

    def __init__(self, option: str, value: object, choices: Iterable[object]) -> None:
        listed = ", ".join(str(c) for c in choices)
        super().__init__(f"invalid {option} {value!r}; valid choices: {listed}")
        self.option = option
        self.value = value


class UnknownModelError(InferenceScaleError, ValueError):
    """A model name that is not in the registry; the message lists the closest names."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        known = list(known)
        hint, near = did_you_mean(name, known)
        super().__init__(
            f"unknown model {name!r}{hint} ({len(known)} models are registered; `inference-scale models` lists them)"
        )
        self.name = name
        self.suggestions = near


class UnknownWeightsError(InferenceScaleError, ValueError):
    """A weights name that the model does not publish; the message lists the valid ones."""

    def __init__(self, model: str, weights: str, choices: Iterable[str]) -> None:
        listed = ", ".join(choices) or "none (this model has no published weights)"
        super().__init__(f"model {model!r} has no weights {weights!r}; valid choices: {listed}")


class WeightsNotFoundError(InferenceScaleError, FileNotFoundError):
    """Pretrained weights are not in torchvision's cache and downloading is off."""

    def __init__(self, model: str, url: str, path: str) -> None:
        super().__init__(
            f"weights for {model!r} are not cached: place the file from {url} at {path} "
            "(the folder follows $TORCH_HOME/hub/checkpoints), or pass allow_download=True "
            "where a network is reachable"
        )
        self.url = url
        self.path = path


class MacCountError(InferenceScaleError, ValueError):
    """The MAC counter could not run the model's forward pass on that input shape: almost
    always an input the model does not accept (a fixed-size classifier, a patch grid)."""


class OutputPathError(InferenceScaleError, ValueError):
    """An output path that cannot be written: a folder, under a regular file, or read-only."""
