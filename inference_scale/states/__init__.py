"""Compression states, one registry: ``list_states()``, ``get_state(slug)`` and each state's
``apply(model, ctx)``. See :mod:`.base` for what a state declares and :mod:`.slugs` for the
slug grammar. Every module of this package is imported here, so a state registers by being
defined in any of them; a new state needs a new class in one module and nothing else."""

from __future__ import annotations

import importlib
import pkgutil

from .base import (
    FAMILIES,
    NEEDS,
    Context,
    MissingInputError,
    Prepared,
    State,
    UnknownStateError,
    get_state,
    list_states,
    parse_states,
    register_state,
    state_sort_key,
)
from .slugs import ALIASES, canonical_slug

__all__ = [
    "ALIASES",
    "FAMILIES",
    "NEEDS",
    "Context",
    "MissingInputError",
    "Prepared",
    "State",
    "UnknownStateError",
    "canonical_slug",
    "get_state",
    "list_states",
    "parse_states",
    "register_state",
    "state_sort_key",
]

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
