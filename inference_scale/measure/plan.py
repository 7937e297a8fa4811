"""One plan behind every way in: the Python API (:func:`inference_scale.bench`), the
``inference-scale bench`` command and the pytest plugin's ``--is-*`` options all build a
:class:`Plan` through :func:`make_plan`, which checks every option once, with one default
each, before any model is prepared. The plugin then runs the plan's cases; nothing is parsed a
second time.

Messages name the problem and the valid values, not a flag: each adapter knows its own flag
names and adds them (:func:`flag_error`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inference_scale.defaults import DEFAULTS
from inference_scale.errors import InferenceScaleError

__all__ = [
    "DEFAULTS",
    "MAX_REFERENCE_SECONDS",
    "Plan",
    "PlanError",
    "flagged",
    "make_plan",
    "parse_batches",
    "split_values",
]

MAX_REFERENCE_SECONDS = 60.0  # a drift check, not a benchmark: more only delays the run
MAX_THREADS = 1024


class PlanError(InferenceScaleError, ValueError):
    """An option of a benchmark plan that cannot be used; the message names the valid values.
    ``option`` is make_plan's keyword for it, so an adapter can name its own flag."""

    def __init__(self, message: str, *, option: str | None = None) -> None:
        super().__init__(message)
        self.option = option


def flagged(exc: BaseException, flags: dict[str, str]) -> str:
    """``exc``'s message, led by the adapter's flag for the option it concerns (if any)."""
    option = getattr(exc, "option", None)
    return f"{flags[option]}: {exc}" if option in flags else str(exc)


def split_values(values: Sequence[str] | str | None) -> list[str]:
    """Values of a repeatable, comma-separated option (``["a,b", "c"]`` -> ``[a, b, c]``)."""
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    return [v.strip() for raw in values for v in str(raw).split(",") if v.strip()]


def parse_batches(values: Sequence[str] | str | Sequence[int] | None) -> tuple[int, ...]:
    """Batch sizes from ints or comma-separated text; each a positive integer."""
    if values is None:
        return ()
    items: list[Any] = list(values) if not isinstance(values, str) else [values]
    if items and all(isinstance(v, int) and not isinstance(v, bool) for v in items):
        out = [int(v) for v in items]
    else:
        texts = split_values([str(v) for v in items])
        if not texts:
            raise PlanError(
                f"batch sizes {values!r} name no batch size; valid: positive integers such as 1, 8",
                option="batch_sizes",
            )
        out = []
        for raw in texts:
            if not (raw.isascii() and raw.isdigit()):
                raise PlanError(
                    f"batch size {raw!r} is not valid; valid: positive integers such as 1, 8", option="batch_sizes"
                )
            out.append(int(raw))
    for n in out:
        if n < 1:
            raise PlanError(f"batch size {n} is not valid; valid: positive integers such as 1, 8", option="batch_sizes")
    return tuple(dict.fromkeys(out))


@dataclass(frozen=True)
class Plan:
    """What a benchmark run will do, checked: the models (specs, with their checked
    :class:`~inference_scale.subjects.subject.Subject` in ``subjects``), the states and batch sizes
    (empty: the suite's grids, or the defaults for a model no grid names), and the run's
    options (:class:`~inference_scale.measure.suite.Options`)."""

    models: tuple[str, ...] = ()
    states: tuple[str, ...] = ()
    batches: tuple[int, ...] = ()
    options: Any = None  # suite.Options (typed loosely: importing suite imports torch)
    reference_seconds: float = DEFAULTS["reference_seconds"]
    subjects: dict[str, Any] = field(default_factory=dict)


def _positive_int(value: object, what: str, option: str, *, low: int = 1, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PlanError(f"{what} must be an integer, got {value!r}", option=option)
    if value < low or (high is not None and value > high):
        span = f"{low}..{high}" if high is not None else f">= {low}"
        raise PlanError(f"{what} must be {span}, got {value}", option=option)
    return value


def check_reference_seconds(value: object, *, what: str = "reference seconds") -> float:
    """Seconds of the machine-drift workload: a finite number in [0, MAX_REFERENCE_SECONDS]."""
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise PlanError(
            f"{what} {value!r} is not a number; valid: 0..{MAX_REFERENCE_SECONDS:g} seconds", option="reference_seconds"
        ) from None
    if not math.isfinite(seconds) or not 0 <= seconds <= MAX_REFERENCE_SECONDS:
        raise PlanError(
            f"{what} must be within 0..{MAX_REFERENCE_SECONDS:g} seconds, got {value}", option="reference_seconds"
        )
    return seconds


def make_plan(
    models: Sequence[str] | str = (),
    *,
    example: str | None = None,
    input_shape: str | Sequence[int] | None = None,
    states: Sequence[str] | str | None = None,
    batch_sizes: Sequence[int] | Sequence[str] | str | None = None,
    eval: str | None = None,
    calibration: str | None = None,
    seq_len: int | None = None,
    device: str = DEFAULTS["device"],
    threads: int = DEFAULTS["threads"],
    seeds: int = DEFAULTS["seeds"],
    cuda_events: int = DEFAULTS["cuda_events"],
    compile: bool = DEFAULTS["compile"],
    all_int8: bool = DEFAULTS["all_int8"],
    reference_seconds: float = DEFAULTS["reference_seconds"],
    memory: bool = DEFAULTS["memory"],
    tail: bool = DEFAULTS["tail"],
    smoke: bool = False,
) -> Plan:
    """Check every option, then resolve and check each model (built once, its loaders run and
    checked against its inputs) and each state against it. Raises an
    :class:`~inference_scale.errors.InferenceScaleError` of one line for the first problem."""
    from inference_scale.defaults import DEFAULT_STATES
    from inference_scale.measure.suite import Options, missing_input
    from inference_scale.runtime import DEVICES, device_available
    from inference_scale.states import get_state
    from inference_scale.subjects.subject import parse_input_shape

    specs = split_values(models)
    if device not in DEVICES:
        raise PlanError(f"device {device!r} is not valid; valid: {', '.join(DEVICES)}", option="device")
    if not device_available(device):
        raise PlanError(
            f"device {device!r} is not available on this machine (no {device} device is visible to torch)",
            option="device",
        )
    threads = _positive_int(threads, "threads", "threads", high=MAX_THREADS)
    seeds = _positive_int(seeds, "seeds", "seeds", high=100)
    cuda_events = _positive_int(cuda_events, "CUDA-event calls", "cuda_events", low=0, high=100_000)
    seconds = check_reference_seconds(reference_seconds)
    if seq_len is not None:
        seq_len = _positive_int(seq_len, "sequence length", "seq_len", high=1 << 16)
    batches = parse_batches(batch_sizes)
    slugs = split_values(states)
    if states is not None and not slugs:
        raise PlanError(f"states {states!r} name no state; `inference-scale states` lists them", option="states")
    parsed = [get_state(s) for s in slugs]
    try:  # an adapter leads the message with its own flag for the option
        if isinstance(input_shape, str):
            shape: tuple[int, ...] | None = parse_input_shape(input_shape)
        elif input_shape is not None:
            shape = parse_input_shape(",".join(str(d) for d in input_shape))
        else:
            shape = None
    except InferenceScaleError as exc:
        raise PlanError(str(exc), option="input_shape") from None
    if (example, eval, calibration, shape, seq_len) != (None,) * 5 and not specs:
        raise PlanError(
            "an input shape, example factory, sequence length or loader describes a model: name the model",
            option="models",
        )
    options = Options(
        device=device, threads=threads, smoke=smoke, compile=bool(compile), all_int8=bool(all_int8),
        cuda_events=cuda_events, seeds=seeds, memory=bool(memory), tail=bool(tail),
    )  # fmt: skip
    subjects = {}
    if specs:
        from inference_scale.subjects.resolve import subject_from_spec

        for spec in dict.fromkeys(specs):
            subject = subject_from_spec(
                spec, input_shape=shape, example_spec=example, eval_spec=eval, calibration_spec=calibration,
                seq_len=seq_len,
            )  # fmt: skip
            for state in parsed or [get_state(s) for s in DEFAULT_STATES]:
                problem = missing_input(state, subject)
                if problem:
                    raise PlanError(problem)
            _check_memory(subject, batches)
            subjects[spec] = subject
    return Plan(
        models=tuple(dict.fromkeys(specs)), states=tuple(s.slug for s in parsed), batches=batches,
        options=options, reference_seconds=seconds, subjects=subjects,
    )  # fmt: skip


def available_memory() -> int | None:
    """Bytes the kernel says can be allocated without swapping (``MemAvailable`` in
    /proc/meminfo), or None where there is no such file."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


# A state may hold a few copies of a batch's activations (the fp32 reference, a runtime's own
# buffers, agreement outputs): what one eager pass needs, times this, must fit.
MEMORY_FACTOR = 4


def _check_memory(subject: Any, batches: tuple[int, ...]) -> None:
    available = available_memory()
    per = int(getattr(subject, "sample_bytes", 0))
    if not available or not per or not batches:
        return
    largest = max(batches)
    if largest * per * MEMORY_FACTOR > available:
        fits = max(1, available // (per * MEMORY_FACTOR))
        raise PlanError(
            f"batch size {largest} of {subject.name} needs about {largest * per * MEMORY_FACTOR / 2**30:.1f} GiB "
            f"({per / 2**20:.1f} MiB of activations per sample, x{MEMORY_FACTOR} for copies), more than the "
            f"{available / 2**30:.1f} GiB this machine has available; the largest batch that fits is about {fits}"
        )


def with_smoke(plan: Plan, smoke: bool) -> Plan:
    """The plan for a smoke run (one call, nothing compiled) or a timed one."""
    return dataclasses.replace(plan, options=dataclasses.replace(plan.options, smoke=smoke))
