"""The model under test, whoever wrote it: a registry name or a user's ``module:factory``, with
its input shape and, optionally, eval and calibration loaders (``module:callable``).

A factory is a callable with no arguments that returns an ``nn.Module``; an example factory
takes the batch size and returns the model's inputs (a tensor, a tuple of tensors for
positional arguments, or a dict for keyword arguments); a loader is a callable with no
arguments that returns an iterable of ``(inputs, targets)`` batches (eval; targets may be None)
or of inputs (calibration), ``inputs`` of the example's structure. Everything is checked before any work, each
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

from inference_scale.errors import InferenceScaleError, InvalidTypeError
from inference_scale.subjects.inputs import Batch, InputError, as_batch, batch_len, concat, describe, input_spec, take

__all__ = [
    "EvalData",
    "Subject",
    "SubjectError",
    "call_factory",
    "check_token_ids",
    "example_from_factory",
    "load_eval",
    "load_inputs",
    "model_kind",
    "parse_input_shape",
    "resolve_object",
]

MAX_DIM = 1 << 16


class SubjectError(InferenceScaleError, ValueError):
    """A model, loader or input shape that cannot be used; the message says why."""


@dataclass(frozen=True)
class EvalData:
    """Eval inputs (a :data:`~inference_scale.subjects.inputs.Batch`; a tensor is taken as one input)
    and, where accuracy can be measured, integer class targets, concatenated from a loader's
    batches."""

    x: Batch
    y: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if isinstance(self.x, torch.Tensor):
            object.__setattr__(self, "x", (self.x,))

    def __len__(self) -> int:
        return batch_len(self.x)


def _no_data() -> None:
    return None


@dataclass(frozen=True, eq=False)
class Subject:
    """A model to benchmark. ``build`` returns its fp32 nn.Module as the tool runs it
    (``forward(*tensors) -> tensor``, see :class:`~inference_scale.subjects.inputs.ModelAdapter`),
    called once per session; ``example_fn(batch)`` returns one batch of inputs of the model's
    structure (None: a float tensor of ``input_shape``); ``eval_data`` and ``calibration``
    return data or None; ``random_calibration`` says whether seeded random inputs are an
    honest calibration set (true only for random weights). ``quality`` is how agreement with
    fp32 is read: ``logits`` (per-sample cosine, top-1 agreement) or ``embedding`` (per-sample
    cosine of the pooled embedding, and nearest-neighbour agreement across the eval set)."""

    name: str
    family: str
    kind: str
    input_shape: tuple[int, ...]  # of the first input, per sample (the record's input_shape)
    build: Callable[[], nn.Module]
    weights: str = "random"
    eval_data: Callable[[], EvalData | None] = _no_data
    calibration: Callable[[], Batch | torch.Tensor | None] = _no_data
    random_calibration: bool = True
    accuracy_dataset: str | None = None
    training: Any = None  # a data.Split, for states that train (kd)
    example_fn: Callable[[int], Batch] | None = None
    input_names: tuple[str, ...] | None = None
    quality: str = "logits"
    sample_bytes: int = 0  # estimated memory one sample needs in a forward pass (0: unknown)

    def example(self, batch: int, *, seed: int = 0) -> Batch:
        """``batch`` rows of seeded example inputs: the model's own example factory under a
        fixed seed, else N(0, 1) noise of ``input_shape``."""
        if self.example_fn is None:
            return (torch.randn((batch, *self.input_shape), generator=torch.Generator().manual_seed(seed)),)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.example_fn(batch)

    def calibration_batch(self) -> Batch | None:
        data = self.calibration()
        return (data,) if isinstance(data, torch.Tensor) else data

    def spec(self) -> list[dict[str, Any]]:
        """Each input's name, per-sample shape and dtype (for the record)."""
        return input_spec(self.example(1), self.input_names)


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
    except (Exception, SystemExit) as exc:  # a module that exits on import is bad input, not our exit
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


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def call_factory(factory: Callable[[], Any], spec: str) -> nn.Module:
    """``factory()``, checked to return an nn.Module. Whatever the factory raises, SystemExit
    and recursion included, is the user's: one line naming the factory."""
    import contextlib
    import io

    captured = io.StringIO()
    try:
        # What a factory prints (a CLI's usage text, say) is captured: one line says what went wrong.
        with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
            model = factory()
    except (Exception, SystemExit) as exc:  # a factory that calls sys.exit() is a bad factory, not our exit
        raise SubjectError(f"model {spec!r}: calling it failed: {type(exc).__name__}: {_one_line(exc)}") from None
    if not isinstance(model, nn.Module):
        raise SubjectError(f"model {spec!r} returned a {type(model).__name__}, not an nn.Module")
    return model.eval()


def check_token_ids(model: nn.Module, batch: Batch, names: tuple[str, ...] | None, *, what: str) -> None:
    """Integer inputs that index the model's input embedding must lie in its range: outside it
    torch fails deep inside ``F.embedding`` with an index error that names no input."""
    get = getattr(model, "get_input_embeddings", None)
    embedding = get() if callable(get) else None
    if not isinstance(embedding, nn.Embedding):
        embedding = next((m for m in model.modules() if isinstance(m, nn.Embedding)), None)
    if embedding is None:
        return
    vocab = embedding.num_embeddings
    labels = names or tuple(str(i) for i in range(len(batch)))
    for name, t in zip(labels, batch, strict=True):
        if t.is_floating_point() or t.dtype == torch.bool or t.numel() == 0:
            continue
        if "mask" in name or "type" in name:  # masks and segment ids index no vocabulary
            continue
        low, high = int(t.min()), int(t.max())
        if low < 0 or high >= vocab:
            raise SubjectError(
                f"{what}: token ids in {name!r} span {low}..{high}, outside the input embedding's range 0..{vocab - 1}"
            )


def _batches(spec: str, what: str) -> list[Any]:
    loader = resolve_object(spec, what=what)
    try:
        batches = loader()
        if not isinstance(batches, Iterable):
            raise InvalidTypeError(f"it returned a {type(batches).__name__}, not an iterable of batches")
        out = list(batches)
    except (Exception, SystemExit) as exc:
        raise SubjectError(f"{what} {spec!r} failed: {type(exc).__name__}: {_one_line(exc)}") from None
    if not out:
        raise SubjectError(f"{what} {spec!r} gave no batches")
    return out


def _fits(x: Batch, example: Batch, *, what: str) -> None:
    """``x`` has the example's structure: as many inputs, each of the same per-sample shape and
    kind (floating or integer)."""
    if len(x) != len(example):
        raise SubjectError(f"{what} holds {len(x)} inputs, the model takes {len(example)}")
    for i, (got, want) in enumerate(zip(x, example, strict=True)):
        if tuple(got.shape[1:]) != tuple(want.shape[1:]) or got.is_floating_point() != want.is_floating_point():
            takes = f"(batch, {', '.join(map(str, want.shape[1:]))})"
            if len(x) == 1 and got.is_floating_point() == want.is_floating_point():
                raise SubjectError(f"{what} are {tuple(got.shape)}, the model takes {takes}")
            raise SubjectError(
                f"{what}: input {i} is {tuple(got.shape)} {str(got.dtype).removeprefix('torch.')}, "
                f"the model takes {takes} {str(want.dtype).removeprefix('torch.')}"
            )
    if batch_len(x) == 0:
        raise SubjectError(f"{what} has 0 rows: every batch needs at least one input")


def load_inputs(spec: str, example: Batch, names: tuple[str, ...] | None, *, what: str = "calibration loader") -> Batch:
    """Calibration inputs: the loader's batches (inputs of the model's structure, or tuples
    whose first item is that), concatenated, each checked against ``example``."""
    parts = []
    for i, item in enumerate(_batches(spec, what)):
        first = item
        if isinstance(item, (tuple, list)) and item and (len(example) == 1 or not isinstance(item[0], torch.Tensor)):
            first = item[0]  # (inputs, targets, ...) as a DataLoader yields
        x, _ = as_batch(first, what=f"{what} {spec!r}: batch {i}", names=names)
        _fits(x, example, what=f"{what} {spec!r}: batch {i}")
        parts.append(x)
    return concat(parts)


def _targets(y: Any, n: int, spec: str, i: int) -> torch.Tensor:
    try:
        t = torch.as_tensor(y)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise SubjectError(
            f"eval loader {spec!r}: batch {i} targets are not integer class indices ({type(y).__name__}: "
            f"{_one_line(exc)})"
        ) from None
    if t.dtype.is_floating_point or t.dtype == torch.bool or t.dtype.is_complex or t.shape != (n,):
        raise SubjectError(
            f"eval loader {spec!r}: batch {i} targets should be {n} integer class indices, "
            f"got {str(t.dtype).removeprefix('torch.')} {tuple(t.shape)}"
        )
    return t.long()


def load_eval(spec: str, example: Batch, names: tuple[str, ...] | None, model: nn.Module) -> EvalData:
    """Eval inputs (and targets, where the loader gives them) from ``spec``'s batches, checked
    to fit: each batch is ``(inputs, targets)`` (``None`` targets: agreement only); inputs of
    the example's structure, integer targets, and (``model`` is run on the first rows here)
    logits with a class for every target."""
    xs, ys = [], []
    for i, batch in enumerate(_batches(spec, "eval loader")):
        where = f"eval loader {spec!r}: batch {i}"
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            raise SubjectError(f"{where} is not an (inputs, targets) pair (targets may be None: agreement only)")
        inputs, y = batch
        x, _ = as_batch(inputs, what=f"{where} inputs", names=names)
        _fits(x, example, what=f"{where} inputs")
        xs.append(x)
        ys.append(None if y is None else _targets(y, batch_len(x), spec, i))
    if any(y is None for y in ys) and not all(y is None for y in ys):
        raise SubjectError(f"eval loader {spec!r}: some batches have targets and some do not")
    data = EvalData(concat(xs), None if ys[0] is None else torch.cat([y for y in ys if y is not None]))
    check_token_ids(model, data.x, names, what=f"eval loader {spec!r}")
    try:
        with torch.inference_mode():
            out = model(*take(data.x, 0, min(len(data), 8)))
    except Exception as exc:
        raise SubjectError(f"eval loader {spec!r}: the model does not run on its inputs: {_one_line(exc)}") from None
    if data.y is None:
        return data
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise SubjectError(f"eval loader {spec!r}: accuracy needs (batch, classes) logits from the model, got {got}")
    if int(data.y.min()) < 0 or int(data.y.max()) >= out.shape[1]:
        raise SubjectError(
            f"eval loader {spec!r}: targets span {int(data.y.min())}..{int(data.y.max())}, "
            f"but the model gives {out.shape[1]} classes"
        )
    return data


def example_from_factory(spec: str, batch: int) -> tuple[Batch, tuple[str, ...] | None]:
    """The user's example-inputs factory ``spec`` called with ``batch``, checked: a tensor, a
    tuple or a dict of tensors whose batch dimension is ``batch``."""
    factory = resolve_object(spec, what="example factory")
    try:
        inputs = factory(batch)
    except (Exception, SystemExit) as exc:
        raise SubjectError(
            f"example factory {spec!r}: calling it with batch size {batch} failed: {type(exc).__name__}: "
            f"{_one_line(exc)}"
        ) from None
    try:
        x, names = as_batch(inputs, what=f"example factory {spec!r} (batch size {batch})")
    except InputError as exc:
        raise SubjectError(str(exc)) from None
    if batch_len(x) != batch:
        raise SubjectError(
            f"example factory {spec!r} was asked for batch size {batch} and returned {batch_len(x)} rows "
            f"({describe(x, names)}): the first dimension of every input is the batch"
        )
    return x, names
