"""Compression states, one registry: ``list_states()``, ``get_state(slug)`` and each state's
``apply(model, ctx)``. :mod:`.base` holds the contracts (what a state declares, what it is
given, what it hands back), :mod:`.registry` finds states by slug, and :mod:`inference_scale.slugs`
is the torch-free slug grammar. A state registers by being defined in any module of this
package; a new state needs a new class in one module and nothing else."""

from __future__ import annotations

from inference_scale.slugs import ALIASES, FAMILIES, canonical_slug
from inference_scale.states.base import NEEDS, CompositionError, Context, MissingInputError, Prepared, State
from inference_scale.states.registry import (
    UnknownStateError,
    get_state,
    list_states,
    parse_states,
    register_state,
    state_sort_key,
)

__all__ = [
    "ALIASES",
    "FAMILIES",
    "NEEDS",
    "CompositionError",
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
