"""Where and how a model runs: devices, synchronization, thread counts, the CPU's name.
The ways to run a model (states) are in :mod:`inference_scale.states`."""

from __future__ import annotations

import contextlib
import platform
from collections.abc import Iterator

import torch

from inference_scale.errors import InvalidOptionError, InvalidValueError
from inference_scale.options import DEVICES

__all__ = ["DEVICES", "check_device", "cpu_name", "device_available", "synchronize", "threads"]


def check_device(device: str) -> torch.device:
    """``device`` as a torch.device, or an :class:`InvalidOptionError` listing :data:`DEVICES`."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise InvalidOptionError("device", device, DEVICES) from None
    if dev.type not in DEVICES:
        raise InvalidOptionError("device", device, DEVICES)
    return dev


def device_available(device: str) -> bool:
    """Whether ``device`` ('cpu' or 'cuda') can run here."""
    dev = check_device(device)
    return dev.type == "cpu" or torch.cuda.is_available()


def synchronize(device: str | torch.device) -> None:
    """Wait for queued kernels on ``device`` (a no-op on the CPU)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def threads(n: int) -> Iterator[None]:
    """Run with ``n`` intra-op threads, restoring the previous count afterwards."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise InvalidValueError(f"thread count must be a positive integer, got {n!r}")
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
