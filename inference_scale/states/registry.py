"""The state registry: states register where they are defined (:func:`register_state`), and
slugs find them (:func:`get_state`), compounds included.

As in torchvision's ``_api.py``, a state class registers itself with a decorator in its own
module; the registry imports every module of this package the first time it is asked, so
adding a state means adding one class and nothing else. An unknown slug lists the closest
names. Slugs joined with ``+`` parse here into a :class:`~.compound.Compound`, after checking
that every part but the last hands on a float model (:class:`~.base.CompositionError` if not).
"""

from __future__ import annotations

import dataclasses
import importlib
import itertools
import pkgutil
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

from inference_scale.errors import InferenceScaleError, InvalidTypeError, InvalidValueError, did_you_mean
from inference_scale.slugs import COMPOUND_SEP, FAMILIES, canonical_slug, pattern_regex, split_compound
from inference_scale.states.base import NEEDS, CompositionError, State
from inference_scale.states.compound import Compound

__all__ = ["UnknownStateError", "get_state", "list_states", "parse_states", "register_state", "state_sort_key"]

S = TypeVar("S", bound=State)

_REGISTRY: list[type[State]] = []
_LOADED: list[bool] = []


class UnknownStateError(InferenceScaleError, ValueError):
    """A slug that names no registered state; the message lists the closest slugs."""

    def __init__(self, slug: str, reason: str = "") -> None:
        hint, near = did_you_mean(slug, [s.example().slug for s in _REGISTRY] + [c.pattern for c in _REGISTRY])
        why = f" ({reason})" if reason else ""
        super().__init__(
            f"unknown state {slug!r}{why}{hint} (`inference-scale states` lists all; join slugs with + to compose)"
        )
        self.slug = slug
        self.suggestions = near


def register_state(cls: type[S]) -> type[S]:
    """Class decorator: add a state to the registry (its pattern must be new and well formed)."""
    if cls.family not in FAMILIES:
        raise InvalidValueError(f"{cls.__name__}.family {cls.family!r} is not one of {FAMILIES}")
    if not cls.needs <= set(NEEDS):
        raise InvalidValueError(f"{cls.__name__}.needs {sorted(cls.needs)} must be within {NEEDS}")
    if cls.pattern != cls.pattern.lower() or " " in cls.pattern or COMPOUND_SEP in cls.pattern:
        raise InvalidValueError(f"state pattern {cls.pattern!r} must be lowercase, hyphenated, without '+'")
    if any(c.pattern == cls.pattern for c in _REGISTRY):
        raise InvalidValueError(f"state pattern {cls.pattern!r} is registered twice")
    _REGISTRY.append(cls)
    return cls


def _load_all() -> None:
    """Import every module of this package once, so that every built-in state is registered.
    The modules are found on disk, not listed: a new module needs no edit here."""
    if _LOADED:
        return
    _LOADED.append(True)
    package = __name__.rpartition(".")[0]
    for info in pkgutil.iter_modules([str(Path(__file__).parent)]):
        importlib.import_module(f"{package}.{info.name}")


def list_states() -> list[type[State]]:
    """Every registered state class, in display order (precision, quantize, prune, ...)."""
    _load_all()
    return sorted(_REGISTRY, key=lambda c: (FAMILIES.index(c.family), _REGISTRY.index(c)))


def _parse_one(slug: str) -> State:
    for cls in _REGISTRY:
        match = pattern_regex(cls.pattern).match(slug)
        if match is None:
            continue
        try:
            return cls(**{k: int(v) for k, v in match.groupdict().items()})
        except ValueError as exc:  # a parameter out of range
            raise UnknownStateError(slug, str(exc)) from None
    raise UnknownStateError(slug)


def _parse_compound(slug: str) -> Compound:
    names = split_compound(slug)
    if any(not n for n in names):
        raise UnknownStateError(slug, "an empty part between '+' signs")
    parts = tuple(_parse_one(n) for n in names)
    for part, after in itertools.pairwise(parts):
        if not part.chainable:
            why = getattr(part, "unchainable_reason", "hands on no float model").format(**vars(part))
            raise CompositionError(
                f"cannot compose {slug!r}: {part.slug} {why}, so it can only come last, not before {after.slug}"
            )
    return Compound(parts=parts)


def get_state(slug: str) -> State:
    """The state named by ``slug`` (old names are read through the alias table); a compound
    slug (``a+b``) gives a compound state. An unknown slug raises :class:`UnknownStateError`
    listing the closest slugs; parts that cannot follow one another raise
    :class:`~.base.CompositionError`."""
    if not isinstance(slug, str):
        raise InvalidTypeError(f"a state slug is a string, got {type(slug).__name__}")
    _load_all()
    slug = canonical_slug(slug.strip())
    if COMPOUND_SEP in slug:
        return _parse_compound(slug)
    return _parse_one(slug)


def parse_states(slugs: Sequence[str]) -> list[State]:
    """Each slug's state; the first unknown one raises."""
    return [get_state(s) for s in slugs]


def state_sort_key(slug: str) -> tuple[int, int, tuple[int, ...], str]:
    """Display order of a slug: family, then registration, then parameters; unknown last."""
    _load_all()
    try:
        state = get_state(slug)
    except (UnknownStateError, CompositionError, TypeError):
        return (len(FAMILIES), 0, (), slug)
    params = tuple(v for v in dataclasses.asdict(state).values() if isinstance(v, int))
    cls = type(state)
    index = _REGISTRY.index(cls) if cls in _REGISTRY else len(_REGISTRY)
    return (FAMILIES.index(state.family), index, params, slug)
