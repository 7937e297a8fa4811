"""How a model is run for timing: devices, thread counts and precision states.

A *state* is a way to execute the same weights (``fp32`` eager, ``channels_last`` memory
format, ``bf16`` autocast). :func:`prepare` returns a new model and input for a state and
:func:`make_runner` the zero-argument callable that pytest-benchmark times: it runs under
``torch.inference_mode()`` and, on CUDA, synchronizes *inside* the call so that the timer sees
the kernels finish rather than just their launch.
"""

from __future__ import annotations

import contextlib
import functools
import platform
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from .cloning import clone
from .errors import InvalidOptionError

__all__ = [
    "DEVICES",
    "STATES",
    "PrecisionState",
    "cpu_name",
    "device_available",
    "make_runner",
    "prepare",
    "state_unsupported_reason",
    "synchronize",
    "threads",
]

DEVICES: tuple[str, ...] = ("cpu", "cuda")


@dataclass(frozen=True)
class PrecisionState:
    """A non-quantized execution state. ``autocast`` is the autocast dtype, or None."""

    name: str
    channels_last: bool = False
    autocast: torch.dtype | None = None

    @property
    def dtype(self) -> str:
        """The dtype the matmuls and convolutions run in, as a string for records."""
        return str(self.autocast or torch.float32).removeprefix("torch.")


STATES: dict[str, PrecisionState] = {
    s.name: s
    for s in (
        PrecisionState("fp32"),
        PrecisionState("channels_last", channels_last=True),
        PrecisionState("bf16", autocast=torch.bfloat16),
    )
}


def _state(name: str) -> PrecisionState:
    if name not in STATES:
        raise InvalidOptionError("state", name, STATES)
    return STATES[name]


def _check_device(device: str) -> torch.device:
    dev = torch.device(device)
    if dev.type not in DEVICES:
        raise InvalidOptionError("device", device, DEVICES)
    return dev


def device_available(device: str) -> bool:
    """Whether ``device`` ('cpu' or 'cuda') can run here."""
    dev = _check_device(device)
    return dev.type == "cpu" or torch.cuda.is_available()


def state_unsupported_reason(state: str, device: str) -> str | None:
    """None when ``state`` runs on ``device``, else the reason it is skipped."""
    spec = _state(state)
    dev = _check_device(device)
    if not device_available(device):
        return f"{dev.type} is not available on this machine"
    if spec.autocast is torch.bfloat16:
        if dev.type == "cpu" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return "this CPU has no native bf16 support (oneDNN reports none)"
        if dev.type == "cuda" and not torch.cuda.is_bf16_supported():
            return "this GPU does not support bf16"
    return None


def prepare(
    model: nn.Module,
    example: torch.Tensor,
    *,
    state: str,
    device: str = "cpu",
) -> tuple[nn.Module, torch.Tensor]:
    """A copy of ``model`` and ``example`` laid out for ``state`` on ``device`` (the inputs
    are not changed). ``channels_last`` applies to 4-D tensors only; a transformer keeps its
    token tensors as they are and only its patch-embedding convolution sees NHWC."""
    spec = _state(state)
    dev = _check_device(device)
    prepared = clone(model).to(dev).eval()
    x = example.to(dev)
    if spec.channels_last:
        prepared = prepared.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        if x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
    return prepared, x


def synchronize(device: str | torch.device) -> None:
    """Wait for queued kernels on ``device`` (a no-op on the CPU)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def make_runner(
    model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    *,
    state: str,
    device: str = "cpu",
) -> Callable[[], torch.Tensor]:
    """The zero-argument callable to time: one forward pass of ``model(x)`` in ``state``."""
    spec = _state(state)
    dev = _check_device(device)

    # Built once, outside the timed call; an fp32 state enters no autocast context at all.
    autocast = (
        functools.partial(torch.autocast, dev.type, dtype=spec.autocast)
        if spec.autocast is not None
        else contextlib.nullcontext
    )

    def run() -> torch.Tensor:
        with torch.inference_mode(), autocast():
            out = model(x)
        synchronize(dev)
        return out

    return run


@contextlib.contextmanager
def threads(n: int) -> Iterator[None]:
    """Run with ``n`` intra-op threads, restoring the previous count afterwards."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"thread count must be a positive integer, got {n!r}")
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo, falling back to ``platform.processor()``."""
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()
