"""The model under test, whoever wrote it: a registry name or a user's ``module:factory``, with
its input shape and, optionally, eval and calibration loaders (``module:callable``).

A factory is a callable with no arguments that returns an ``nn.Module``; a loader is a callable
with no arguments that returns an iterable of ``(inputs, targets)`` batches (eval) or of input
tensors or ``(inputs, ...)`` tuples (calibration). Everything is checked before any work, each
failure is a :class:`SubjectError` of one line that says what is wrong and what would be valid.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .errors import InferenceScaleError, UnknownModelError

__all__ = [
    "EvalData",
    "Subject",
    "SubjectError",
    "load_eval",
    "load_inputs",
    "model_kind",
    "parse_input_shape",
    "resolve_object",
    "subject_from_spec",
]

MAX_DIM = 1 << 16


class SubjectError(InferenceScaleError, ValueError):
    """A model, loader or input shape that cannot be used; the message says why."""


@dataclass(frozen=True)
class EvalData:
    """Eval inputs and integer targets, concatenated from a loader's batches."""

    x: torch.Tensor
    y: torch.Tensor


@dataclass(frozen=True, eq=False)
class Subject:
    """A model to benchmark. ``build`` returns its fp32 nn.Module (called once per session);
    ``eval_data`` and ``calibration`` return data or None; ``random_calibration`` says whether
    seeded random images are an honest calibration set (true only for random weights)."""

    name: str
    family: str
    kind: str
    input_shape: tuple[int, ...]
    build: Callable[[], nn.Module]
    weights: str = "random"
    eval_data: Callable[[], EvalData | None] = lambda: None
    calibration: Callable[[], torch.Tensor | None] = lambda: None
    random_calibration: bool = True
    accuracy_dataset: str | None = None
    training: Any = None  # a data.Split, for states that train (kd)


def parse_input_shape(text: str) -> tuple[int, ...]:
    """``"3,224,224"`` (or ``3x224x224``) -> (3, 224, 224): one sample, without the batch."""
    compact = re.sub(r"\s+", "", text)
    parts = re.split(r"[,x]", compact) if re.fullmatch(r"\d+([,x]\d+)*", compact) else []
    if not parts or not all(0 < int(p) <= MAX_DIM for p in parts):
        raise SubjectError(
            f"input shape {text!r} is not valid: give one sample's sizes without the batch, as positive "
            f"integers up to {MAX_DIM} separated by commas, e.g. 3,224,224"
        )
    return tuple(int(p) for p in parts)


def resolve_object(spec: str, *, what: str) -> Any:
    """The object ``module:attr`` (``attr`` may be dotted) names, imported."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise SubjectError(f"{what} {spec!r} is not valid: write module:callable, e.g. mypkg.nets:build")
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise SubjectError(
            f"{what} {spec!r}: no module named {exc.name!r} (is its folder on PYTHONPATH, or the package installed?)"
        ) from None
    except Exception as exc:
        raise SubjectError(f"{what} {spec!r}: importing {module_name} failed: {type(exc).__name__}: {exc}") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            public = sorted(n for n in dir(obj) if not n.startswith("_") and callable(getattr(obj, n, None)))
            listed = ", ".join(public) or "none"
            raise SubjectError(f"{what} {spec!r}: {module_name} has no attribute {attr!r}; its callables: {listed}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise SubjectError(f"{what} {spec!r} is a {type(obj).__name__}, not a callable")
    return obj


def model_kind(model: nn.Module) -> str:
    """``transformer`` (any attention module), ``conv`` (any convolution) or ``mlp``."""
    names = {type(m).__name__.lower() for m in model.modules()}
    if any("attention" in n for n in names):
        return "transformer"
    if any(isinstance(m, nn.modules.conv._ConvNd) for m in model.modules()):
        return "conv"
    return "mlp"


def _call_factory(factory: Callable[[], Any], spec: str) -> nn.Module:
    try:
        model = factory()
    except Exception as exc:
        raise SubjectError(f"model {spec!r}: calling it failed: {type(exc).__name__}: {exc}") from None
    if not isinstance(model, nn.Module):
        raise SubjectError(f"model {spec!r} returned a {type(model).__name__}, not an nn.Module")
    return model.eval()


def _first(batch: Any) -> Any:
    return batch[0] if isinstance(batch, (tuple, list)) else batch


def _batches(spec: str, what: str) -> list[Any]:
    loader = resolve_object(spec, what=what)
    try:
        batches = loader()
        if not isinstance(batches, Iterable):
            raise TypeError(f"it returned a {type(batches).__name__}, not an iterable of batches")
        out = list(batches)
    except Exception as exc:
        raise SubjectError(f"{what} {spec!r} failed: {type(exc).__name__}: {exc}") from None
    if not out:
        raise SubjectError(f"{what} {spec!r} gave no batches")
    return out


def load_inputs(spec: str, input_shape: tuple[int, ...], *, what: str = "calibration loader") -> torch.Tensor:
    """Calibration inputs: the loader's batches (tensors, or tuples whose first item is the
    input) concatenated, each checked against ``input_shape``."""
    xs = []
    for i, batch in enumerate(_batches(spec, what)):
        x = _first(batch)
        if not isinstance(x, torch.Tensor) or tuple(x.shape[1:]) != input_shape:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise SubjectError(f"{what} {spec!r}: batch {i} is {got}, expected a tensor (batch, {input_shape})")
        xs.append(x.float())
    return torch.cat(xs)


def load_eval(spec: str, input_shape: tuple[int, ...], model: nn.Module) -> EvalData:
    """Eval inputs and targets from ``spec``'s ``(inputs, targets)`` batches, checked to fit:
    inputs of ``input_shape``, integer targets, and logits from ``model`` with a class for
    every target (the first batch is run through the model here)."""
    xs, ys = [], []
    for i, batch in enumerate(_batches(spec, "eval loader")):
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise SubjectError(f"eval loader {spec!r}: batch {i} is not an (inputs, targets) pair")
        x, y = batch[0], batch[1]
        if not isinstance(x, torch.Tensor) or tuple(x.shape[1:]) != input_shape:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise SubjectError(
                f"eval loader {spec!r}: batch {i} inputs are {got}, the model takes (batch, {input_shape})"
            )
        y = torch.as_tensor(y)
        if y.dtype.is_floating_point or y.dtype == torch.bool or y.shape != (len(x),):
            raise SubjectError(
                f"eval loader {spec!r}: batch {i} targets should be {len(x)} integer class indices, "
                f"got {y.dtype} {tuple(y.shape)}"
            )
        xs.append(x.float())
        ys.append(y.long())
    data = EvalData(torch.cat(xs), torch.cat(ys))
    try:
        with torch.inference_mode():
            out = model(data.x[: min(len(data.x), 8)])
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SubjectError(f"eval loader {spec!r}: the model does not run on its inputs: {first}") from None
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise SubjectError(f"eval loader {spec!r}: accuracy needs (batch, classes) logits from the model, got {got}")
    if int(data.y.min()) < 0 or int(data.y.max()) >= out.shape[1]:
        raise SubjectError(
            f"eval loader {spec!r}: targets span {int(data.y.min())}..{int(data.y.max())}, "
            f"but the model gives {out.shape[1]} classes"
        )
    return data


def subject_from_spec(
    spec: str,
    *,
    input_shape: tuple[int, ...] | None = None,
    eval_spec: str | None = None,
    calibration_spec: str | None = None,
) -> Subject:
    """A :class:`Subject` for a registry name (random weights, seed 0; the digit models of
    :mod:`.trained` come trained on MNIST digits, with their test split as eval data, unless
    loaders or a shape are given) or ``module:factory``. Builds the model once to check it
    (and the loaders against it)."""
    from .models import get_model, model_info
    from .sizing import check_shape, count_macs

    if ":" in spec:
        factory = resolve_object(spec, what="model")
        if input_shape is None:
            raise SubjectError(f"model {spec!r} is a factory: give its input shape (e.g. --input-shape 3,224,224)")
        model = _call_factory(factory, spec)
        name, family, kind, weights = spec, spec.split(".")[0].split(":")[0], model_kind(model), "user"

        def build() -> nn.Module:
            torch.manual_seed(0)  # a factory that draws random weights draws the same ones
            return _call_factory(factory, spec)
    else:
        from .trained import TRAINING_EPOCHS, digits_subject

        if spec in TRAINING_EPOCHS and (input_shape, eval_spec, calibration_spec) == (None, None, None):
            return digits_subject(spec)  # trained here on real digits, so its records carry accuracy
        try:
            info = model_info(spec)
        except UnknownModelError as exc:
            raise SubjectError(f"{exc}; or give module:factory for your own model") from None
        shape = input_shape or info.input_shape

        def build() -> nn.Module:
            torch.manual_seed(0)
            return get_model(spec).eval()

        model = get_model(spec, device="meta")
        name, family, kind, weights, input_shape = spec, info.family, info.kind, "random", shape
    shape = check_shape(input_shape)
    count_macs(model, shape)  # a shape the model cannot take fails here, with its message
    data = load_eval(eval_spec, shape, build() if ":" not in spec else model) if eval_spec is not None else None
    calib = load_inputs(calibration_spec, shape) if calibration_spec is not None else None
    return Subject(
        name=name,
        family=family,
        kind=kind,
        input_shape=shape,
        build=build,
        weights=weights,
        eval_data=lambda: data,
        calibration=lambda: calib,
        random_calibration=weights == "random",
        accuracy_dataset=eval_spec,
    )
