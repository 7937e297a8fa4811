"""Memory per state, and its cold start, measured in a fresh process.

One child process (:mod:`._memory_child`) per state: it imports what it needs, reads its
baseline resident memory, loads the model, applies the state and runs one call at the given
batch size, then reports (fields of the child's JSON):

* ``peak_rss_bytes``: the high-water mark of resident memory (``VmHWM``) above the baseline;
  ``vmhwm_bytes`` the absolute figure, which the kernel's own accounting of the child
  (``getrusage``'s ``ru_maxrss``, as ``/usr/bin/time -v`` prints it) agrees with;
* with ``state_peak=True``, ``state_peak_rss_bytes``: the peak of applying the state and its
  first call alone (VmHWM restarted once the model is loaded; see :func:`probe_memory`);
* ``weights_bytes_in_memory`` and ``weights_source`` (the prepared torch module's tensors, or
  another runtime's serialized artifact where the weights are not visible as tensors);
* ``load_seconds`` (building the model and applying the state) and ``first_call_seconds``
  (the first call after loading): the cold start, beside and never inside the warm median.

The parent bounds the child by a timeout and runs it in its own session, so on a timeout the
whole process group is killed and none is left behind; a child that dies (killed, out of
memory, a non-zero exit, no result) is reported as ``{"failed": reason}``, never raised.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

from inference_scale.errors import InferenceScaleError

__all__ = ["CHILD_MODULE", "ProbeOptionError", "child_command", "group_members", "probe_memory"]

CHILD_MODULE = "inference_scale.measure._memory_child"
_STDERR_TAIL = 2000  # characters of the child's stderr kept for a failure's reason


class ProbeOptionError(InferenceScaleError, ValueError):
    """A probe option of the wrong type or out of range (the message names it)."""


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ProbeOptionError(f"{name} must be a positive integer, got {value!r}")
    return value


def _seconds(name: str, value: object, *, allow_zero: bool) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):  # type: ignore[operator]
        raise ProbeOptionError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} number, got {value!r}")
    return float(value)  # type: ignore[arg-type]


def child_command(
    *,
    model: str,
    state: str,
    batch: int,
    threads: int,
    compile: bool = True,
    state_peak: bool = False,
    hold_s: float = 0.0,
) -> list[str]:
    """The child's command line (this interpreter), for :func:`probe_memory` and for running
    it under another tool (``/usr/bin/time -v``)."""
    for name, value in (("model", model), ("state", state)):
        if not isinstance(value, str) or not value.strip():
            raise ProbeOptionError(f"{name} must be a non-empty string, got {value!r}")
    cmd = [sys.executable, "-m", CHILD_MODULE, "--model", model, "--state", state]
    cmd += ["--batch", str(_positive_int("batch", batch)), "--threads", str(_positive_int("threads", threads))]
    if not compile:
        cmd.append("--no-compile")
    if state_peak:
        cmd.append("--state-peak")
    hold = _seconds("hold_s", hold_s, allow_zero=True)
    return [*cmd, "--hold", repr(hold)] if hold else cmd


def group_members(pgid: int) -> list[int]:
    """Pids of the live processes in process group ``pgid`` (field 5 of /proc/PID/stat)."""
    members = []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else ():
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            with open(f"/proc/{entry}/stat", encoding="utf-8", errors="replace") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()  # after "pid (comm)"
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(entry))
    return members


def _kill_group(pgid: int, *, always: bool) -> None:
    """SIGKILL the child's process group: ``always`` while the child is alive (it is the
    group's leader), else only where members are left (its helpers), since an empty group's
    id is free for the system to reuse."""
    if always or group_members(pgid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


def _tail(stderr: str) -> str:
    lines = [line.strip() for line in stderr[-_STDERR_TAIL:].splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output on stderr"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def probe_memory(
    *,
    model: str,
    state: str,
    batch: int,
    threads: int,
    timeout_s: float,
    compile: bool = True,
    state_peak: bool = False,
    hold_s: float = 0.0,
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """``state`` of ``model`` at ``batch`` on ``threads`` threads, measured in a fresh child
    process (see the module docstring) within ``timeout_s`` seconds. Returns the child's
    record, ``{"skipped": reason}`` where the state cannot run the model here, or
    ``{"failed": reason}`` where the child timed out, was killed, exited non-zero or
    reported nothing readable. ``state_peak`` restarts the child's VmHWM once the model is
    loaded, so ``state_peak_rss_bytes`` is the state's own peak (applying it, its first call)
    apart from the model's loading (for a digit model, its dataset's; the kernel's
    ``ru_maxrss`` of such a child keeps the mark of every thread that exited before the
    restart, so ``/usr/bin/time`` no longer checks it); ``hold_s`` makes the child sleep after its baseline (tests);
    ``env`` replaces the child's environment (default: this process's, with
    ``OMP_NUM_THREADS`` set to ``threads``)."""
    cmd = child_command(
        model=model, state=state, batch=batch, threads=threads, compile=compile, state_peak=state_peak, hold_s=hold_s
    )
    timeout = _seconds("timeout_s", timeout_s, allow_zero=False)
    child_env = dict(os.environ if env is None else env)
    child_env.setdefault("OMP_NUM_THREADS", str(threads))
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        env=child_env, start_new_session=True,  # its own process group, killed as one
    )  # fmt: skip
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid, always=True)
        proc.communicate()
        return {"failed": f"timed out after {timeout:g} s (the child's process group was killed)"}
    except BaseException:  # interrupted: leave nothing running
        _kill_group(proc.pid, always=True)
        proc.wait()
        raise
    finally:
        _kill_group(proc.pid, always=False)  # helpers it left (a compile worker) go with it
    if proc.returncode < 0:
        name = _signal_name(-proc.returncode)
        why = " (out of memory, or killed from outside)" if name == "SIGKILL" else ""
        return {"failed": f"killed by {name}{why}"}
    if proc.returncode != 0:
        return {"failed": f"exited with status {proc.returncode}: {_tail(stderr)}"}
    lines = [line for line in stdout.splitlines() if line.strip()]
    try:
        result = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        result = None
    if not isinstance(result, dict):
        return {"failed": f"the child reported no result: {_tail(stderr)}"}
    return result
