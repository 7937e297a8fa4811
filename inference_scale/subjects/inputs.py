"""Inputs and outputs of any structure, declared once.

A user's model takes a tensor, a tuple of tensors (positional arguments) or a dict of tensors
(keyword arguments, as every Hugging Face model does), and returns a tensor, a tuple, a dict or
a ``ModelOutput``. Inside the tool every model is seen through :class:`ModelAdapter`: positional
tensors in, one tensor out. So every state, the MAC counter, every export (PT2E, ONNX,
OpenVINO) and the timed call take one form, a :data:`Batch` (a tuple of tensors sharing their
first, batch, dimension), and the rule that picks the tensor to compare lives here alone
(:func:`primary_output`).

Integer tensors (token ids, masks) keep their dtype: only floating tensors are cast or laid
out (:func:`map_floating`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from inference_scale.errors import InferenceScaleError

__all__ = [
    "OUTPUT_KEYS",
    "Batch",
    "InputError",
    "ModelAdapter",
    "OutputError",
    "as_batch",
    "batch_len",
    "call_adapted",
    "chunks",
    "concat",
    "describe",
    "input_spec",
    "map_floating",
    "map_tensors",
    "primary_output",
    "repeat_to",
    "seeded_like",
    "take",
]

Batch = tuple[torch.Tensor, ...]
# A dict or ModelOutput is compared on the first of these it holds, else its first tensor:
# class logits where the model has a head, the encoder's hidden states where it has none.
OUTPUT_KEYS: tuple[str, ...] = ("logits", "last_hidden_state")


class InputError(InferenceScaleError, TypeError):
    """Inputs that are not a tensor, a tuple of tensors or a dict of tensors, or whose batch
    dimension is not the one asked for."""


class OutputError(InferenceScaleError, TypeError):
    """A model output that none of the output rules fits."""


def _kind(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"tensor {tuple(value.shape)} {str(value.dtype).removeprefix('torch.')}"
    return type(value).__name__


def as_batch(inputs: object, *, what: str, names: Sequence[str] | None = None) -> tuple[Batch, tuple[str, ...] | None]:
    """``inputs`` (a tensor, a tuple/list of tensors or a dict of tensors) as a :data:`Batch`
    and, for a dict, its keys in order. ``names`` (from an earlier batch) fixes the keys a
    dict must have. Raises :class:`InputError` naming what was given."""
    if isinstance(inputs, torch.Tensor):
        tensors: tuple[object, ...] = (inputs,)
        keys = None
    elif isinstance(inputs, (tuple, list)):
        tensors, keys = tuple(inputs), None
    elif isinstance(inputs, Mapping):
        keys = tuple(str(k) for k in inputs)
        tensors = tuple(inputs.values())
        if names is not None and set(keys) != set(names):
            raise InputError(f"{what} has keys {sorted(keys)}, but earlier batches had {sorted(names)}")
        if names is not None:
            tensors, keys = tuple(inputs[k] for k in names), tuple(names)
    else:
        raise InputError(f"{what} is a {type(inputs).__name__}: give a tensor, a tuple of tensors or a dict of tensors")
    if not tensors:
        raise InputError(f"{what} holds no tensor: give a tensor, a tuple of tensors or a dict of tensors")
    bad = [f"{i}: {_kind(t)}" for i, t in enumerate(tensors) if not isinstance(t, torch.Tensor)]
    if bad:
        raise InputError(f"{what} holds something other than tensors ({', '.join(bad)})")
    batch = tuple(t for t in tensors if isinstance(t, torch.Tensor))
    if any(t.dim() == 0 for t in batch):
        raise InputError(f"{what} holds a 0-d tensor: every input needs a batch dimension first")
    sizes = {int(t.shape[0]) for t in batch}
    if len(sizes) > 1:
        raise InputError(f"{what} has tensors of different batch sizes {sorted(sizes)}: {describe(batch, keys)}")
    if names is not None and keys is None and len(batch) != len(names):
        raise InputError(f"{what} has {len(batch)} tensors, but earlier batches had {len(names)} ({', '.join(names)})")
    return batch, keys


def batch_len(batch: Batch) -> int:
    return int(batch[0].shape[0])


def describe(batch: Batch, names: Sequence[str] | None = None) -> str:
    """``input_ids (8, 128) int64, attention_mask (8, 128) int64`` (positions without names)."""
    labels = names or [str(i) for i in range(len(batch))]
    return ", ".join(f"{n} {_kind(t).removeprefix('tensor ')}" for n, t in zip(labels, batch, strict=True))


def input_spec(batch: Batch, names: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Each input's name, per-sample shape and dtype, for the record."""
    labels = names or [str(i) for i in range(len(batch))]
    return [
        {"name": n, "shape": list(t.shape[1:]), "dtype": str(t.dtype).removeprefix("torch.")}
        for n, t in zip(labels, batch, strict=True)
    ]


def map_tensors(batch: Batch, fn: Callable[[torch.Tensor], torch.Tensor]) -> Batch:
    return tuple(fn(t) for t in batch)


def map_floating(batch: Batch, fn: Callable[[torch.Tensor], torch.Tensor]) -> Batch:
    """``fn`` on the floating tensors only: token ids and masks keep their dtype and layout."""
    return tuple(fn(t) if t.is_floating_point() else t for t in batch)


def take(batch: Batch, start: int, stop: int) -> Batch:
    return tuple(t[start:stop] for t in batch)


def concat(batches: Iterable[Batch]) -> Batch:
    listed = list(batches)
    return tuple(torch.cat(parts) for parts in zip(*listed, strict=True))


def repeat_to(batch: Batch, n: int) -> Batch:
    """At least ``n`` rows, the rows repeated in order where there are fewer."""
    have = batch_len(batch)
    if have >= n:
        return batch
    reps = (n + have - 1) // have
    return tuple(t.repeat(reps, *[1] * (t.dim() - 1)) for t in batch)


def chunks(batch: Batch, size: int, limit: int) -> tuple[Batch, ...]:
    """Batches of exactly ``size`` rows (static exports are specialized to it), at most
    ``limit`` rows in all and at least one batch (repeating rows if there are too few)."""
    batch = repeat_to(batch, size)
    n = max(1, min(batch_len(batch), limit) // size)
    return tuple(take(batch, i * size, (i + 1) * size) for i in range(n))


def seeded_like(batch: Batch, n: int, seed: int) -> Batch:
    """``n`` rows of seeded random data shaped like ``batch``'s: floats from N(0, 1), integers
    drawn within each tensor's own observed range (token ids stay valid ids, masks stay 0/1)."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for t in batch:
        shape = (n, *t.shape[1:])
        if t.is_floating_point():
            out.append(torch.randn(shape, generator=gen, dtype=t.dtype))
        else:
            low, high = int(t.min()), int(t.max())
            out.append(torch.randint(low, high + 1, shape, generator=gen, dtype=t.dtype))
    return tuple(out)


def primary_output(out: object, *, what: str = "the model") -> torch.Tensor:
    """The one tensor to compare, by one rule: a tensor as is; a tuple's or list's first
    tensor; a dict's or ``ModelOutput``'s ``logits``, else ``last_hidden_state``, else its first
    tensor. Anything else is an :class:`OutputError` naming what the model returned."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, Mapping):  # transformers' ModelOutput is an OrderedDict
        for key in OUTPUT_KEYS:
            value = out.get(key)
            if isinstance(value, torch.Tensor):
                return value
        values = list(out.values())
    elif isinstance(out, (tuple, list)):
        values = list(out)
    else:
        values = []
    for value in values:
        if isinstance(value, torch.Tensor):
            return value
    raise OutputError(
        f"{what} returned {_describe_output(out)}: give a model that returns a tensor, a tuple whose first item is "
        f"a tensor, or a dict/ModelOutput with {' or '.join(OUTPUT_KEYS)} (or any tensor)"
    )


def _describe_output(out: object) -> str:
    if isinstance(out, Mapping):
        return f"a {type(out).__name__} with keys {list(out)[:6]} and no tensor"
    if isinstance(out, (tuple, list)):
        return f"a {type(out).__name__} of {[type(v).__name__ for v in out][:6]}"
    return f"a {type(out).__name__}"


class ModelAdapter(nn.Module):
    """The user's model as the tool runs it: ``forward(*tensors) -> tensor``. ``names`` are the
    keyword names of a model that takes a dict (``None``: positional). ``pool`` reduces the
    primary output with the inputs (mean pooling of a sentence encoder); it is part of the
    model, so every state runs and times it."""

    def __init__(
        self,
        model: nn.Module,
        *,
        names: Sequence[str] | None = None,
        pool: Callable[[torch.Tensor, Batch], torch.Tensor] | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.names = tuple(names) if names is not None else None
        self.pool = pool

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        names = self.names
        out = self.model(*inputs) if names is None else self.model(**dict(zip(names, inputs, strict=True)))
        tensor = primary_output(out, what=type(self.model).__name__)
        return tensor if self.pool is None else self.pool(tensor, inputs)


def call_adapted(fn: Callable[..., Any], batch: Batch) -> Any:
    """``fn(*batch)``: how every prepared model is called."""
    return fn(*batch)
