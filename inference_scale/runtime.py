"""Where and how a model runs: devices, synchronization, thread counts, the CPU's name.
The ways to run a model (states) are in :mod:`inference_scale.states`."""

from __future__ import annotations

import contextlib
import platform
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import torch

from inference_scale.errors import InvalidOptionError, InvalidValueError
from inference_scale.options import DEVICES

__all__ = ["DEVICES", "check_device", "cpu_name", "device_available", "on_fresh_stack", "synchronize", "threads"]

T = TypeVar("T")


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


def on_fresh_stack(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` in a new thread, under this thread's intra-op thread count, and
    its result or exception here.

    Why: CPython 3.11 keeps Python frames in 16 KiB chunks and frees a chunk as soon as the
    frame that needed it returns, so a call made from a depth near a chunk's end maps and
    unmaps one on every call (CPython gh-142183; the fix, one cached chunk, went to 3.13 and 3.14
    in 2026-03, not to 3.11). Timed from a nested pytest session, LeNet's batch of 8 took
    0.51 ms, 30% of it in mmap and munmap; the same call took 0.37 ms from a new thread's
    shallow stack, where the load test's worker runs it (2026-12-03, Xeon VNNI host).
    The caller waits for it; Ctrl-C there waits for the thread too."""
    out: list[T] = []
    raised: list[BaseException] = []
    n = torch.get_num_threads()

    def target() -> None:
        try:
            torch.set_num_threads(n)  # OpenMP's count is per thread: the caller's, here too
            out.append(fn(*args, **kwargs))
        except BaseException as exc:  # re-raised in the caller's thread
            raised.append(exc)

    worker = threading.Thread(target=target, name="fresh-stack", daemon=True)
    worker.start()
    try:
        worker.join()
    except BaseException:
        worker.join()  # never leave it running behind an interrupt: it ends by itself
        raise
    if raised:
        raise raised[0]
    return out[0]


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo, falling back to ``platform.processor()``."""
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()
