"""Whole-model int8: one verb, :func:`quantize_model`, and a frozen config per method.

* :class:`StaticInt8` — torchao's PT2E flow: ``torch.export`` (strict), the
  ``X86InductorQuantizer``, calibration, ``convert_pt2e``, then inductor with freezing, which
  fuses the quantize/dequantize pairs into oneDNN int8 kernels. The fast CPU path for conv nets.
* :class:`DynamicInt8` — torchao's ``Int8DynamicActivationInt8WeightConfig``: int8 weights and
  per-token int8 activations computed at run time, for ``nn.Linear`` only (transformers).
* :class:`StaticInt8FX` — torch.ao's FX graph mode (``prepare_fx``/``convert_fx``), the course
  module's tutorial path, kept for comparison. torch.ao.quantization is deprecated in favour of
  torchao; its warnings are silenced only around its own calls.

The input model is never changed: each handler works on a deep copy.
"""

from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from inference_scale.errors import InferenceScaleError, InvalidOptionError, InvalidTypeError, InvalidValueError
from inference_scale.sizing import serialized_bytes
from inference_scale.subjects.cloning import clone

__all__ = [
    "DynamicInt8",
    "QuantizationError",
    "QuantizationReport",
    "QuantizedModel",
    "StaticInt8",
    "StaticInt8FX",
    "StaticShapeError",
    "quantize_model",
]

_FX_BACKENDS = ("x86", "fbgemm", "onednn", "qnnpack")
_COMPUTE_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


class _EnumPytreeNotice(logging.Filter):
    """Drops torch's notice that torchao's Enum types need no pytree registration (torchao
    0.18 still registers them on import, and torch 2.14 logs two lines about it): that notice
    alone; every other record of the logger passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "is an Enum subclass and is now natively supported" not in record.getMessage()


def _quiet_torchao_import() -> None:
    """Install :class:`_EnumPytreeNotice` once, before torchao is first imported."""
    logger = logging.getLogger("torch.utils._pytree")
    if not any(isinstance(f, _EnumPytreeNotice) for f in logger.filters):
        logger.addFilter(_EnumPytreeNotice())


@dataclass(frozen=True)
class StaticInt8:
    """Static int8 through torchao PT2E and the X86 inductor quantizer.

    ``reduce_range`` uses 7-bit activations, for CPUs without VNNI where u8 x s8 products can
    saturate; ``compile=False`` leaves the reference (quantize/dequantize) graph, which is slow
    and only useful to inspect numerics."""

    compile: bool = True
    reduce_range: bool = False

    def __post_init__(self) -> None:
        _check_bools(self, "compile", "reduce_range")


@dataclass(frozen=True)
class DynamicInt8:
    """Dynamic int8 activations and int8 weights for every ``nn.Linear`` (torchao)."""

    compile: bool = True

    def __post_init__(self) -> None:
        _check_bools(self, "compile")


@dataclass(frozen=True)
class StaticInt8FX:
    """torch.ao FX graph mode static int8 with the default qconfig mapping of ``backend``."""

    backend: str = "x86"

    def __post_init__(self) -> None:
        if self.backend not in _FX_BACKENDS:
            raise InvalidOptionError("backend", self.backend, _FX_BACKENDS)


Config = StaticInt8 | DynamicInt8 | StaticInt8FX


def _check_bools(config: object, *names: str) -> None:
    for name in names:
        if not isinstance(getattr(config, name), bool):
            raise InvalidTypeError(f"{type(config).__name__}.{name} must be a bool, got {getattr(config, name)!r}")


class QuantizationError(InferenceScaleError, ValueError):
    """A model that a config cannot quantize; names the model, the config and the step."""

    def __init__(self, model: nn.Module, config: Config, step: str, cause: BaseException) -> None:
        super().__init__(f"{config!r} could not quantize {type(model).__name__}: {step} failed: {cause}")
        self.step = step


@dataclass(frozen=True)
class QuantizationReport:
    """What was quantized, what stayed float and why, and the model's bytes before and after
    (serialized tensors the model actually uses)."""

    config: str
    quantized: tuple[str, ...]
    kept_float: dict[str, str] = field(default_factory=dict)
    bytes_before: int = 0
    bytes_after: int = 0

    @property
    def compression(self) -> float:
        return self.bytes_before / self.bytes_after if self.bytes_after else float("nan")


@dataclass(frozen=True)
class QuantizedModel:
    """A ready-to-run quantized model (compiled already, when the config compiles), called
    with the model's positional inputs."""

    module: Callable[..., torch.Tensor]
    report: QuantizationReport
    example_shape: tuple[int, ...]  # of the first input

    def __call__(self, *x: torch.Tensor) -> torch.Tensor:
        return self.module(*x)


Batch = tuple[torch.Tensor, ...]


def _batches(calibration: Iterable[Any]) -> Iterator[Batch]:
    """Accept plain tensors or (input, target, ...) tuples, as a DataLoader yields."""
    for item in calibration:
        x = item[0] if isinstance(item, (tuple, list)) else item
        if not isinstance(x, torch.Tensor):
            raise InvalidTypeError(
                f"calibration batches must be tensors or (tensor, ...) tuples, got {type(x).__name__}"
            )
        yield (x,)


def _structured(batches: Iterable[Any]) -> Iterator[Batch]:
    """Batches of a multi-input model: each a tuple of tensors, its positional inputs."""
    for item in batches:
        if not isinstance(item, (tuple, list)) or not item or not all(isinstance(t, torch.Tensor) for t in item):
            raise InvalidTypeError(f"calibration_inputs must be tuples of tensors, got {type(item).__name__}")
        yield tuple(item)


def _step(model: nn.Module, config: Config, step: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Run one step and turn any failure into a QuantizationError that names it."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except QuantizationError:
                raise
            except Exception as exc:
                raise QuantizationError(model, config, step, exc) from exc

        return run

    return wrap


def _calibrate(run: Callable[..., Any], batches: list[Batch], progress: bool) -> None:
    with torch.no_grad():
        for x in tqdm(batches, desc="calibrate", disable=not progress, leave=False):
            run(*x)


def _compile_now(module: Callable[..., Any], example: Batch) -> Callable[..., Any]:
    """torch.compile with inductor freezing (weights become constants so int8 weight packing
    and conv+bn folding happen at compile time), compiled here on ``example`` rather than
    inside anybody's timed call. The first call runs under inference_mode, as benchmarks do.
    Dynamic int8 needs it (torchao's weight subclasses go through dynamo); a later strict
    export can drop its compiled code (see :class:`_CompiledGraph`), so time it right after."""
    import torch._inductor.config as inductor_config

    compiled = torch.compile(module)
    with inductor_config.patch(freezing=True), torch.inference_mode():
        compiled(*example)
    return compiled


class StaticShapeError(InferenceScaleError, ValueError):
    """An input whose shape is not the one the int8 graph was compiled for."""


class _CompiledGraph:
    """The converted int8 graph compiled by inductor itself (``torch._inductor.compile``, with
    freezing), for the example's shape only.

    Why not ``torch.compile``: dynamo keeps compiled code in a cache on the code object, and a
    strict ``torch.export`` later in the process can drop that entry (``torch/_dynamo/eval_frame.py``
    ``remove_from_cache``). The next call then recompiled outside the freezing patch, with the
    int8 weights folded back to fp32 convolutions: a pruned int8 teacher-cnn at batch 100 went
    from 12.4 to 26.3 ms once the unpruned model had been quantized after it (measured here,
    torch 2.14.1). Compiled here, nothing global can undo it."""

    def __init__(self, graph: torch.fx.GraphModule, example: Batch) -> None:
        import torch._inductor

        self.shapes = tuple(tuple(t.shape) for t in example)
        with torch.inference_mode():  # as benchmarks call it
            self._run = torch._inductor.compile(graph, list(example), options={"freezing": True})

    def __call__(self, *x: torch.Tensor) -> torch.Tensor:
        shapes = tuple(tuple(t.shape) for t in x)
        if shapes != self.shapes:  # inductor's own check is an assert deep in generated code
            shown = ", ".join(map(str, self.shapes)) if len(self.shapes) > 1 else str(self.shapes[0])
            got = ", ".join(map(str, shapes)) if len(shapes) > 1 else str(shapes[0] if shapes else ())
            raise StaticShapeError(
                f"this int8 model was compiled for inputs of shape {shown}, got {got}: "
                "pad the last batch (train.predict(..., fixed_batch=True)) or quantize for that shape"
            )
        out: torch.Tensor = self._run(*x)
        return out


def _graph_tensors(gm: torch.fx.GraphModule) -> dict[str, torch.Tensor]:
    """Tensors the graph reads: an exported module keeps its original float parameters
    registered after ``convert_pt2e`` although the graph now reads int8 copies."""
    out: dict[str, torch.Tensor] = {}
    for node in gm.graph.nodes:
        if node.op == "get_attr":
            value = functools.reduce(getattr, str(node.target).split("."), gm)
            if isinstance(value, torch.Tensor):
                out[str(node.target)] = value
    return out


def _compute_modules(model: nn.Module) -> dict[str, nn.Module]:
    return {name: m for name, m in model.named_modules() if isinstance(m, _COMPUTE_TYPES)}


def _pt2e_report(model: nn.Module, converted: torch.fx.GraphModule, config: Config, before: int) -> QuantizationReport:
    dq_weights = {"dequantize_per_channel", "dequantize_per_tensor"}
    quantized, seen = [], set()
    for node in converted.graph.nodes:
        if node.op != "call_function" or str(node.target).split(".")[1] not in ("conv2d", "conv1d", "linear"):
            continue
        stack = node.meta.get("nn_module_stack") or {}
        name = next(reversed(stack.values()))[0] if stack else node.name
        seen.add(name)
        weight = node.args[1]
        if isinstance(weight, torch.fx.Node) and any(d in str(weight.target) for d in dq_weights):
            quantized.append(name)
    kept = {
        name: "not annotated by X86InductorQuantizer (no int8 pattern for it)"
        for name in _compute_modules(model)
        if name not in quantized
    }
    return QuantizationReport(repr(config), tuple(quantized), kept, before, serialized_bytes(_graph_tensors(converted)))


def _static_pt2e(model: nn.Module, config: StaticInt8, batches: list[Batch], progress: bool) -> QuantizedModel:
    _quiet_torchao_import()
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as xiq

    example = batches[0]
    # strict=True: non-strict export fails in prepare_pt2e on torch 2.14 with "Input partition
    # has more than one output node". The batch dimension stays static on purpose: a dynamic
    # one made the compiled int8 ResNet-50 1.7x slower at batch 8.
    exported = _step(model, config, "torch.export.export (strict)")(
        lambda: torch.export.export(model, example, strict=True).module()
    )()
    quantizer = xiq.X86InductorQuantizer()
    quantizer.set_global(xiq.get_default_x86_inductor_quantization_config(reduce_range=config.reduce_range))
    prepared = _step(model, config, "prepare_pt2e")(prepare_pt2e)(exported, quantizer)
    _step(model, config, "calibration")(_calibrate)(prepared, batches, progress)
    converted = _step(model, config, "convert_pt2e")(convert_pt2e)(prepared)
    report = _pt2e_report(model, converted, config, serialized_bytes(model))
    module: Callable[..., Any] = converted
    if config.compile:
        module = _step(model, config, "inductor compile (freezing)")(_CompiledGraph)(converted, example)
    return QuantizedModel(module, report, tuple(example[0].shape))


def _dynamic(model: nn.Module, config: DynamicInt8, batches: list[Batch], progress: bool) -> QuantizedModel:
    _quiet_torchao_import()
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise QuantizationError(model, config, "finding nn.Linear layers", ValueError("the model has none"))
    before = serialized_bytes(model)
    # torchao swaps each Linear's weight for an Int8Tensor subclass and keeps F.linear, unlike
    # torch.ao's quantize_dynamic, whose module swap breaks swin_t (it calls F.linear itself).
    _step(model, config, "torchao quantize_")(quantize_)(model, Int8DynamicActivationInt8WeightConfig())
    kept = {n: "dynamic int8 covers nn.Linear only" for n in _compute_modules(model) if n not in linears}
    report = QuantizationReport(repr(config), tuple(linears), kept, before, serialized_bytes(model))
    example = batches[0]
    module: Callable[..., Any] = model
    if config.compile:
        # Importing torchao's x86 inductor quantizer registers its inductor passes, among them
        # the one that turns torchao's int8 matmul (aten._int_mm) into oneDNN's int8 linear.
        # Without it the compiled model kept _int_mm, a reference kernel on a CPU without VNNI:
        # two 3136x96x384 linears took 233 ms against 9 ms in fp32 (11 ms with the pass),
        # measured here. The import used to happen only if static int8 had run first.
        from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer  # noqa: F401

        module = _step(model, config, "torch.compile (inductor, freezing)")(_compile_now)(model, example)
    return QuantizedModel(module, report, tuple(example[0].shape))


def _static_fx(model: nn.Module, config: StaticInt8FX, batches: list[Batch], progress: bool) -> QuantizedModel:
    with warnings.catch_warnings():
        # torch.ao.quantization announces its deprecation on import and on each call; the
        # replacement is torchao (StaticInt8). Silenced here only, where we call it knowingly.
        warnings.simplefilter("ignore")
        from torch.ao.quantization import get_default_qconfig_mapping
        from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

        example = batches[0]
        before = serialized_bytes(model)
        prepared = _step(model, config, "prepare_fx (symbolic trace)")(prepare_fx)(
            model, get_default_qconfig_mapping(config.backend), example_inputs=example
        )
        _step(model, config, "calibration")(_calibrate)(prepared, batches, progress)
        converted = _step(model, config, "convert_fx")(convert_fx)(prepared)
        after = serialized_bytes(converted)
    float_names = {n for n, m in converted.named_modules() if isinstance(m, _COMPUTE_TYPES)}
    original = _compute_modules(model)
    quantized = tuple(n for n in original if n not in float_names)
    kept = {n: f"no int8 module pattern in the {config.backend} qconfig mapping" for n in original if n in float_names}
    return QuantizedModel(
        converted, QuantizationReport(repr(config), quantized, kept, before, after), tuple(example[0].shape)
    )


_HANDLERS: dict[type, Callable[..., QuantizedModel]] = {
    StaticInt8: _static_pt2e,
    DynamicInt8: _dynamic,
    StaticInt8FX: _static_fx,
}


def quantize_model(
    model: nn.Module,
    config: Config,
    *,
    calibration: Iterable[Any] | None = None,
    example_input: torch.Tensor | None = None,
    calibration_inputs: Iterable[Batch] | None = None,
    example_inputs: Batch | None = None,
    progress: bool = True,
) -> QuantizedModel:
    """Quantize a copy of ``model`` to int8 as ``config`` says.

    ``calibration``: batches (tensors, or tuples whose first item is the input) that set the
    static activation ranges; static configs need it. Every batch must have the shape of the
    first, which is also the shape the model is exported and compiled for. ``example_input``
    stands in for it where no calibration is needed (``DynamicInt8``). A model of several
    inputs (token ids and a mask, an image and a table) takes ``calibration_inputs`` and
    ``example_inputs`` instead: tuples of tensors, its positional arguments.
    """
    if not isinstance(model, nn.Module):
        raise InvalidTypeError(f"quantize_model needs an nn.Module, got {type(model).__name__}")
    handler = _HANDLERS.get(type(config))
    if handler is None:
        raise InvalidTypeError(f"config must be one of {', '.join(c.__name__ for c in _HANDLERS)}, got {config!r}")
    batches = list(_batches(calibration)) if calibration is not None else []
    if calibration_inputs is not None:
        batches += list(_structured(calibration_inputs))
    example = (example_input,) if example_input is not None else example_inputs
    if not batches:
        if isinstance(config, DynamicInt8) and example is not None:
            batches = [example]
        else:
            need = "calibration batches" if not isinstance(config, DynamicInt8) else "calibration or example_input"
            raise InvalidValueError(f"{type(config).__name__} needs {need}")
    shapes = {tuple(tuple(t.shape) for t in b) if len(b) > 1 else tuple(b[0].shape) for b in batches}
    if len(shapes) > 1:
        raise InvalidValueError(f"calibration batches must share one shape (the export shape), got {sorted(shapes)}")
    work = clone(model).eval()
    return handler(work, config, batches, progress)
