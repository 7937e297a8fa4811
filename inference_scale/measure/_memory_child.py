"""The child process of :func:`inference_scale.measure.memory.probe_memory`: one state of one
model, from a fresh interpreter, with its memory and its cold start.

    python -m inference_scale.measure._memory_child --model lenet --state int8-static --batch 8 --threads 2

It imports what it needs (torch, this package, the state's runtime package), reads its
baseline resident memory, builds the model as the suite does (``subject_from_spec``, then the
suite's ``Session``, ``example_input`` and calibration), applies the state, runs one call,
and writes one JSON object to its original stdout (everything else the libraries print goes to
stderr). Memory is read from /proc/self/status (``VmRSS``, ``VmHWM``: Linux's
``Documentation/filesystems/proc.rst``), falling back to ``getrusage``'s ``ru_maxrss``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import importlib.util
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["main", "status_bytes"]

_STATUS = Path("/proc/self/status")


def status_bytes(field: str) -> int | None:
    """``field`` (``VmRSS``, ``VmHWM``) of /proc/self/status in bytes (its kB are KiB)."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _peak_bytes() -> tuple[int, str]:
    hwm = status_bytes("VmHWM")
    if hwm is not None:
        return hwm, "VmHWM"
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "getrusage ru_maxrss"  # KiB on Linux


def _rss_bytes() -> int:
    rss = status_bytes("VmRSS")
    return rss if rss is not None else _peak_bytes()[0]


def _reset_peak() -> bool:
    """Give freed heap back to the system and restart VmHWM at the current resident size
    (``echo 5 > /proc/self/clear_refs``, Linux 4.0+). It restarts ``ru_maxrss`` too."""
    import ctypes

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)  # glibc; elsewhere the freed heap simply stays
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _runtime_packages(state: Any) -> list[str]:
    """The import names of the other runtimes ``state`` (or a compound's parts) runs on."""
    parts = getattr(state, "parts", ()) or (state,)
    return [p for part in parts for p in getattr(type(part), "packages", ())]


def _tensor_bytes(module: Any) -> int:
    """Bytes of the distinct tensors in ``module.state_dict()`` (parameters, buffers and the
    packed weights that quantized modules unpack there)."""
    seen: set[tuple[int, tuple[int, ...]]] = set()
    total = 0
    for t in module.state_dict(keep_vars=True).values():
        if not hasattr(t, "element_size"):
            continue
        key = (t.data_ptr(), tuple(t.shape))
        if key not in seen:
            seen.add(key)
            total += t.numel() * t.element_size()
    return total


def _weights(prepared: Any) -> tuple[int, str]:
    """The bytes of the weights the prepared state holds, and where the figure comes from."""
    from torch import nn

    candidates = [prepared.module, getattr(prepared.module, "module", None)]
    for module in candidates:
        if isinstance(module, nn.Module):
            nbytes = _tensor_bytes(module)
            if nbytes:
                return nbytes, "state_dict tensors of the prepared torch module"
    # Another runtime's session (or a compiled graph holding its weights as constants) shows
    # no tensors: its serialized bytes (the artifact file, or the saved int8 state_dict) stand in.
    return int(prepared.bytes), "serialized bytes of the state (Prepared.bytes), not an in-memory count"


def _measure(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from inference_scale.measure.suite import (
        Options,
        Session,
        calibration_batches,
        example_input,
        missing_input,
        skip_reason,
    )
    from inference_scale.states import Context, get_state
    from inference_scale.subjects.resolve import subject_from_spec

    torch.set_num_threads(args.threads)
    state = get_state(args.state)
    for package in _runtime_packages(state):
        if importlib.util.find_spec(package) is not None:
            importlib.import_module(package)  # the runtime's own import is not the state's memory
    gc.collect()
    baseline = _rss_bytes()
    if args.hold:
        time.sleep(args.hold)  # for the parent's tests: a child to time out or kill
    opts = Options(threads=args.threads, compile=args.compile)
    start = time.perf_counter()
    subject, model, macs = Session(resolve=subject_from_spec).model(args.model)
    reason = skip_reason(state, subject, model, opts) or missing_input(state, subject)
    if reason:
        return {"skipped": reason}
    x = example_input(subject, args.batch)
    ctx = Context(
        example=x, device="cpu", calibration=calibration_batches(subject, args.batch, opts), macs=macs,
        compile=opts.compile and (subject.kind != "transformer" or opts.all_int8), training=subject.training,
        name=subject.name, kind=subject.kind, threads=args.threads, input_names=subject.input_names,
    )  # fmt: skip
    build_seconds = time.perf_counter() - start
    before_hwm = _peak_bytes()[0]
    reset = args.state_peak and _reset_peak()
    before_rss = _rss_bytes()
    prepared = state(model, ctx)
    run = prepared.runner(x)
    load_seconds = time.perf_counter() - start
    start = time.perf_counter()
    with torch.inference_mode():
        run()
    first_call_seconds = time.perf_counter() - start
    weights, source = _weights(prepared)
    after_hwm, peak_source = _peak_bytes()
    peak = max(before_hwm, after_hwm)  # VmHWM over the whole life, reset or not
    return {
        "model": args.model,
        "state": prepared.slug,
        "batch": args.batch,
        "threads": args.threads,
        "baseline_rss_bytes": baseline,
        "vmhwm_bytes": peak,
        "peak_source": peak_source,
        "peak_rss_bytes": peak - baseline,
        "rss_after_call_bytes": _rss_bytes() - baseline,
        # Before the state was applied (the model and its data loaded): the state's own share
        # of the peak is vmhwm_bytes - rss_before_state where vmhwm_bytes > hwm_before_state.
        "rss_before_state_bytes": before_rss - baseline,
        "hwm_before_state_bytes": before_hwm - baseline,
        # With --state-peak: VmHWM restarted before the state was applied, so this is the
        # peak of applying it and its first call, above the baseline, with the model loaded.
        "state_peak_rss_bytes": after_hwm - baseline if reset else None,
        "vmhwm_after_reset_bytes": after_hwm if reset else None,
        "weights_bytes_in_memory": weights,
        "weights_source": source,
        "build_seconds": build_seconds,
        "load_seconds": load_seconds,
        "first_call_seconds": first_call_seconds,
        "runtime": prepared.runtime,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m inference_scale.measure._memory_child")
    parser.add_argument("--model", required=True)
    parser.add_argument("--state", required=True)
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--no-compile", dest="compile", action="store_false")
    parser.add_argument("--state-peak", action="store_true", help="restart VmHWM before applying the state")
    parser.add_argument("--hold", type=float, default=0.0, help="seconds to sleep after the baseline (tests)")
    args = parser.parse_args(argv)
    out = os.fdopen(os.dup(1), "w")  # the result's channel; libraries that print get stderr
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        result = _measure(args)
    except Exception as exc:  # reported to the parent as a failure with its reason
        text = str(exc).strip().splitlines()
        result = {"failed": f"{type(exc).__name__}: {text[0] if text else ''}"[:500]}
    out.write(json.dumps(result) + "\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
