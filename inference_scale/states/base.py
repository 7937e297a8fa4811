"""The contracts of a state: what a state is, what it is given and what it hands back.
The registry that finds states by slug is :mod:`.registry`.

A state is one way to deploy the same model: a precision, an int8 scheme, a pruning, another
runtime, or a composition of those. Each is a frozen dataclass declared once, where its code
lives, with :func:`register_state` (the way torchao pairs a config with its handler and
torchvision registers a builder where it is defined). Its class attributes are its facts:

* ``pattern``: its slug, with ``{name}`` for each integer field (``prune-l1-{pct}``);
* ``family``: one of :data:`FAMILIES`;
* ``needs``: what :meth:`State.apply` needs from the :class:`Context`, from :data:`NEEDS`;
* ``devices`` and ``kinds``: where it runs; :meth:`State.skip_reason` says why not elsewhere.

``apply(model, ctx)`` never changes ``model``; it returns a :class:`Prepared`: the runnable
model in that state and its facts as deployed (bytes, parameters, non-zeros, MACs, dtype,
extras).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypedDict

import torch
from torch import nn

from inference_scale.errors import InferenceScaleError, InvalidValueError
from inference_scale.runtime import DEVICES, check_device, device_available, synchronize
from inference_scale.sizing import count_macs_on, count_params, serialized_bytes
from inference_scale.slugs import FAMILIES
from inference_scale.subjects.inputs import Batch, call_adapted, map_tensors

__all__ = [
    "FAMILIES",
    "NEEDS",
    "CompositionError",
    "Context",
    "Facts",
    "MissingInputError",
    "Prepared",
    "State",
    "check_pct",
    "cpu_example",
    "dense_facts",
]

NEEDS: tuple[str, ...] = ("calibration", "example_input", "training_data", "teacher")


class MissingInputError(InferenceScaleError, ValueError):
    """A state was asked to apply without something it needs (calibration data, a teacher)."""


class CompositionError(InferenceScaleError, ValueError):
    """States joined with ``+`` that cannot follow one another (the message says why)."""


@dataclass(frozen=True)
class Context:
    """What a state may use besides the model. ``example`` is one input batch (a tuple of
    tensors, the model's positional inputs, on the CPU: float images, or token ids and masks):
    its batch size is the one static exports and compiled graphs are specialized to.
    ``calibration`` batches must have the example's structure and shapes. ``macs`` is the model's fp32 MACs
    per sample when already known (counting a big model takes seconds). ``compile=False``
    runs compiled states eager (the smoke run); their records say so. ``name`` is the model's,
    for error messages; ``threads`` is the intra-op thread count other runtimes are given (0:
    torch's current one, which the suite has set)."""

    example: Batch
    device: str = "cpu"
    calibration: tuple[Batch, ...] = ()
    macs: int | None = None
    compile: bool = True
    training: Any = None  # a data.Split for states that train (kd)
    teacher: nn.Module | None = None
    progress: bool = False
    name: str = "model"
    kind: str | None = None  # conv, transformer, mlp: some quantizers treat them differently
    threads: int = 0
    seed: int = 0  # of the states that train (kd): the suite repeats them over seeds
    input_names: tuple[str, ...] | None = None  # the inputs' names, for exports (None: input, input_1, ...)

    def __post_init__(self) -> None:
        if isinstance(self.example, torch.Tensor):  # one tensor is one input
            object.__setattr__(self, "example", (self.example,))
        if any(isinstance(b, torch.Tensor) for b in self.calibration):
            calibration = tuple((b,) if isinstance(b, torch.Tensor) else b for b in self.calibration)
            object.__setattr__(self, "calibration", calibration)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The first input's per-sample shape."""
        return tuple(self.example[0].shape[1:])

    @property
    def names(self) -> tuple[str, ...]:
        """One name per input: the model's keyword names, else ``input``, ``input_1``, ..."""
        if self.input_names is not None:
            return self.input_names
        return tuple("input" if i == 0 else f"input_{i}" for i in range(len(self.example)))

    @property
    def intra_threads(self) -> int:
        return self.threads or torch.get_num_threads()


def _identity(x: Batch) -> Batch:
    return x


@dataclass(frozen=True)
class Prepared:
    """A model in a state, ready to run, with its facts as deployed. ``module`` is what runs
    (an nn.Module, a compiled or exported callable, another runtime's session); ``layout``
    turns a CPU batch (a tuple of tensors) into the inputs it takes (device, memory format,
    dtype of the floating ones);
    ``autocast`` is the autocast dtype it runs under, or None. ``float_module`` is the float
    nn.Module the state produced (a pruned copy, say) for a later state of a compound to take,
    or None where the state's output is not one (int8, another runtime). ``runtime`` and
    ``runtime_version`` name what executes it."""

    slug: str
    module: Callable[..., Any]  # called as module(*inputs)
    device: str
    dtype: str
    bytes: int
    params: int
    nonzero_params: int
    macs: int
    extras: dict[str, Any] = field(default_factory=dict)
    layout: Callable[[Batch], Batch] = _identity
    autocast: torch.dtype | None = None
    float_module: nn.Module | None = None
    runtime: str = "torch"
    runtime_version: str = torch.__version__

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(torch.device(self.device).type, dtype=self.autocast)

    def __call__(self, *x: torch.Tensor | Batch) -> torch.Tensor:
        """Outputs for one CPU batch (the model's inputs, or one tuple of them), as float32 on
        the CPU (for accuracy and agreement)."""
        first = x[0] if len(x) == 1 else None
        batch: Batch = first if isinstance(first, tuple) else tuple(t for t in x if isinstance(t, torch.Tensor))
        with torch.inference_mode(), self._autocast():
            out = call_adapted(self.module, self.layout(batch))
        return torch.as_tensor(out).float().cpu()

    def runner(self, x: Batch | torch.Tensor) -> Callable[[], torch.Tensor]:
        """The zero-argument callable to time: one forward pass on ``x`` (laid out here, once,
        outside the timed call). On CUDA it synchronizes inside the call, so the timer sees the
        kernels finish rather than their launch."""
        batch = (x,) if isinstance(x, torch.Tensor) else x
        xin, device, module = self.layout(batch), self.device, self.module

        def run() -> torch.Tensor:
            with torch.inference_mode(), self._autocast():
                out = module(*xin)
            synchronize(device)
            return out

        return run


@dataclass(frozen=True)
class State:
    """Base of every state. Subclasses set the class attributes and implement :meth:`apply`."""

    pattern: ClassVar[str]
    family: ClassVar[str]
    needs: ClassVar[frozenset[str]] = frozenset()
    devices: ClassVar[tuple[str, ...]] = DEVICES
    kinds: ClassVar[tuple[str, ...] | None] = None  # model kinds it supports; None: any
    defaults: ClassVar[dict[str, int]] = {}  # parameters of the example instance
    # Whether it hands on a float nn.Module that another state can take (see compound.py).
    chainable: ClassVar[bool] = False
    # Whether apply() runs inductor (where the context allows compiling). Inductor needs
    # minutes per graph and batch size for a transformer on a small CPU, so such a state skips
    # transformers unless the run asks for slow compiles (compile_reason).
    compiles: ClassVar[bool] = False
    compile_skip: ClassVar[str] = "inductor needs minutes per batch size to compile a transformer on a small CPU"

    @property
    def slug(self) -> str:
        return self.pattern.format(**dataclasses.asdict(self))

    @classmethod
    def example(cls) -> State:
        """An instance with the default parameters (for listings and registry checks)."""
        return cls(**cls.defaults)

    @classmethod
    def summary(cls) -> str:
        return " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())

    def unavailable(self) -> str | None:
        """Why this state cannot run on this machine at all (a package it needs is missing),
        else None. Where it was asked for by name this is an error; in a grid, a skip."""
        return None

    def skip_reason(self, model: nn.Module, *, device: str, kind: str | None = None) -> str | None:
        """None when this state can run ``model`` on ``device``, else why it cannot."""
        reason = self.unavailable()
        if reason:
            return reason
        dev = check_device(device).type
        if dev not in self.devices:
            return f"{self.slug} runs on {', '.join(self.devices)} only, not {dev}"
        if not device_available(device):
            return f"{dev} is not available on this machine"
        if self.kinds is not None and kind is not None and kind not in self.kinds:
            return f"{self.slug} supports {', '.join(self.kinds)} models, not {kind}"
        return None

    def compile_reason(self, kind: str | None, *, slow_compile: bool) -> str | None:
        """Why this state skips a ``kind`` model in a run that does not allow slow compiles."""
        if self.compiles and kind == "transformer" and not slow_compile:
            return self.compile_skip
        return None

    def check_context(self, ctx: Context) -> None:
        """Raise :class:`MissingInputError` when ``ctx`` lacks what this state needs."""
        if "calibration" in self.needs and not ctx.calibration:
            raise MissingInputError(
                f"state {self.slug!r} needs calibration batches; give a calibration loader (or eval data)"
            )
        if "training_data" in self.needs and ctx.training is None:
            raise MissingInputError(f"state {self.slug!r} needs training data")

    def apply(self, model: nn.Module, ctx: Context) -> Prepared:
        raise NotImplementedError

    def __call__(self, model: nn.Module, ctx: Context) -> Prepared:
        """Check ``ctx``, then :meth:`apply`."""
        self.check_context(ctx)
        return self.apply(model, ctx)


def check_pct(pct: int) -> None:
    """Percent parameters are integers in [1, 99]."""
    if not 1 <= pct <= 99:
        raise InvalidValueError(f"percent must be 1..99, got {pct}")


class Facts(TypedDict):
    """The numbers every :class:`Prepared` carries, as keyword arguments."""

    params: int
    nonzero_params: int
    macs: int
    bytes: int


def dense_facts(model: nn.Module, ctx: Context, *, recount: bool = False) -> Facts:
    """params, non-zeros, MACs per sample and serialized bytes of a float ``model``. MACs are
    taken from ``ctx`` unless the state changed the architecture (``recount``)."""
    counts = count_params(model)
    macs = ctx.macs if ctx.macs is not None and not recount else count_macs_on(model, cpu_example(ctx.example))
    return {
        "params": counts.total,
        "nonzero_params": counts.nonzero if counts.nonzero is not None else counts.total,
        "macs": int(macs),
        "bytes": serialized_bytes(model),
    }


def cpu_example(batch: Batch) -> Batch:
    """``batch`` with every tensor on the CPU, where MACs are counted."""
    return map_tensors(batch, lambda t: t.cpu())
