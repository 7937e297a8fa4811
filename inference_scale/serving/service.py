"""Service times per batch size, measured by the suite's own runner and saved as ordinary
pytest-benchmark JSON.

:func:`prepare` is the one place a state is prepared for serving (the suite's context, as
``run_case`` builds it). :func:`time_service` then runs pytest in this process on
:mod:`._service_test`, whose one test times each prepared (state, batch size) through
``suite.time_prepared``: the same warm-up, timer, record (``BenchmarkRecord`` in
``extra_info``) and JSON as ``inference-scale bench``. What it times is the load test's own
step on a fresh batch (:func:`~.loadgen.serving_step`), and the objects timed are the very ones
the load test then serves, so each state is prepared (and compiled) once per batch size, not
twice. ``serve`` times each state just before its load test, so that the host's speed, which
drifts by several percent over minutes on a shared VM, is the same for both. The JSON (with
every round's time, ``--benchmark-save-data``) is read back: the simulator draws from those
times.
"""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from inference_scale.errors import InferenceScaleError
from inference_scale.measure.suite import (
    Options,
    Session,
    calibration_batches,
    example_input,
    missing_input,
    quality,
    skip_reason,
)
from inference_scale.serving.loadgen import serving_step, wait_until
from inference_scale.serving.times import SAME, WAITS
from inference_scale.slugs import BASELINE
from inference_scale.states import Context, MissingInputError, Prepared, get_state

__all__ = [
    "Served",
    "ServiceTimingError",
    "Timing",
    "after_others",
    "back_to_back",
    "check_state",
    "current_plan",
    "merge_benchmark_json",
    "prepare",
    "time_service",
]

_PLAN: list[Timing] = []
SERVICE_MAX_TIME_S = 0.5  # pytest-benchmark's --benchmark-max-time per batch size, by default
# Before its service times, each prepared batch size runs untimed for at least this long and
# this many calls (at most SETTLE_MAX_S). The suite's two warm-up calls do not settle every
# runtime: OpenVINO's ResNet-50 int8 at batch 8 took 64 ms a call for its first 9 calls and 35
# ms after (2026-12-02, Intel Xeon VNNI host), so 14 rounds of 0.5 s read a 54 ms median and the
# simulator, drawing from them, put the highest rate at half the load test's.
SETTLE_S, SETTLE_CALLS, SETTLE_MAX_S = 1.0, 10, 15.0
_NEVER = threading.Event()


def _idle(gap_ms: float) -> Callable[[], None]:
    """The worker's wait (:func:`~.loadgen.wait_until`) for ``gap_ms``: a sleep, then a spin
    (a spin alone, up to :data:`~.search.SPIN_S`)."""

    def wait() -> None:
        wait_until(time.perf_counter() + gap_ms / 1e3, _NEVER)

    return wait


class ServiceTimingError(InferenceScaleError, ValueError):
    """The service-time benchmark could not run (pytest's exit code is in the message)."""


@dataclass
class Served:
    """One state prepared at one batch size, what it is timed on, and its quality extras."""

    model: str
    state: str
    batch: int
    prepared: Prepared
    x: tuple[torch.Tensor, ...]  # the model's inputs at this batch size
    pool: tuple[torch.Tensor, ...]  # the requests: the load test's inputs, one request a row
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.model}-{self.state}-b{self.batch}"

    def step(self) -> Callable[[], object]:
        """What is timed and served: a fresh full batch from :attr:`pool` each call."""
        return serving_step(self.prepared.runner, self.pool, self.batch)


@dataclass(frozen=True)
class Timing:
    """One service-time benchmark: ``served``'s step, each round right after ``before``: the
    same step (:data:`~.times.SAME`, back to back), one of the worker's waits (a key of
    :data:`~.times.WAITS`: a spin or a sleep) or another prepared size's step."""

    served: Served
    before: Served | str = SAME

    @property
    def after(self) -> str:
        return self.before if isinstance(self.before, str) else f"b{self.before.batch}"

    @property
    def id(self) -> str:
        return f"{self.served.id}-after-{self.after}"

    def setup(self) -> Callable[[], None] | None:
        """What runs untimed before each round (None: nothing, back to back)."""
        if isinstance(self.before, str):
            return None if self.before == SAME else _idle(WAITS[self.before])
        step = self.before.step()

        def before() -> None:  # pytest-benchmark takes a setup's return value as arguments
            step()

        return before


def back_to_back(served: Sequence[Served]) -> list[Timing]:
    """Each size timed back to back: the simulator's first answer rests on these."""
    return [Timing(entry) for entry in served]


def after_others(served: Sequence[Served]) -> list[Timing]:
    """Each size timed after each of the worker's waits and after every other size's step."""
    return [Timing(e, key) for e in served for key in WAITS] + [
        Timing(e, o) for e in served for o in served if o is not e
    ]


def check_state(session: Session, model: str, slug: str, opts: Options) -> str:
    """The canonical slug, after the suite's checks (a missing input or a skip is an error)."""
    subject, module, _ = session.model(model)
    state = get_state(slug)
    problem = missing_input(state, subject) or skip_reason(state, subject, module, opts)
    if problem:
        raise MissingInputError(f"cannot serve {slug}: {problem}")
    return state.slug


def prepare(
    session: Session, model: str, slug: str, batch: int, opts: Options, *, pool: tuple[torch.Tensor, ...]
) -> Served:
    """``model`` in state ``slug``, prepared for one static batch size as ``run_case`` does,
    to serve requests drawn from ``pool``."""
    subject, module, macs = session.model(model)
    x = example_input(subject, batch)
    ctx = Context(
        example=x, device=opts.device, calibration=calibration_batches(subject, batch, opts), macs=macs,
        compile=opts.compile and (subject.kind != "transformer" or opts.all_int8), training=subject.training,
        name=subject.name, kind=subject.kind, threads=opts.threads,
    )  # fmt: skip
    state = get_state(slug)
    prepared = state(module, ctx)
    extras = quality(prepared, session, subject, batch, opts, baseline=state.slug == BASELINE) if batch == 1 else {}
    return Served(model=model, state=state.slug, batch=batch, prepared=prepared, x=x, pool=pool, extras=extras)


def current_plan() -> list[Timing]:
    """What :mod:`._service_test` times (set by :func:`time_service` for its pytest run)."""
    return list(_PLAN)


def _settle(entry: Served) -> None:
    """Untimed calls of ``entry`` until :data:`SETTLE_S` and :data:`SETTLE_CALLS` are both
    passed, or :data:`SETTLE_MAX_S` is."""
    run = entry.step()
    start, calls = time.perf_counter(), 0
    while calls < SETTLE_CALLS or time.perf_counter() - start < SETTLE_S:
        if time.perf_counter() - start > SETTLE_MAX_S:
            break
        run()
        calls += 1


def time_service(
    plan: Sequence[Timing],
    session: Session,
    opts: Options,
    *,
    json_out: Path,
    settle: bool = True,
    max_time_s: float = SERVICE_MAX_TIME_S,
) -> dict[tuple[int, str], list[float]]:
    """Time each of ``plan`` (one state's) through the suite's runner in pytest, for about
    ``max_time_s`` each (at least 5 rounds); writes its pytest-benchmark JSON to ``json_out``
    and returns, per (batch size, what ran before), the seconds of every timed call read back
    from it. With ``settle``, each size first runs untimed (:func:`_settle`)."""
    import pytest

    if settle:
        for served in {t.served.id: t.served for t in plan}.values():
            _settle(served)
    test_file = Path(__file__).with_name("_service_test.py")
    _PLAN[:] = list(plan)
    _SESSION[:] = [session, opts]
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            str(test_file), "--benchmark-only", "--benchmark-save-data", f"--benchmark-json={json_out}",
            f"--benchmark-max-time={max_time_s}", f"--rootdir={tmp}", "-p", "no:cacheprovider",
            "-o", "addopts=", "-q", "--benchmark-columns=median,iqr,rounds", "--benchmark-sort=name",
        ]  # fmt: skip
        try:  # its table is progress, on stderr: stdout is the command's answer
            with contextlib.redirect_stdout(sys.stderr):
                code = int(pytest.main(args))
        finally:
            _PLAN.clear()
            _SESSION.clear()
    if code == int(pytest.ExitCode.INTERRUPTED):
        raise KeyboardInterrupt
    if code != 0:
        raise ServiceTimingError(f"timing the service times failed (pytest exited {code}); see its output above")
    out: dict[tuple[int, str], list[float]] = {}
    for bench in json.loads(json_out.read_text())["benchmarks"]:
        info = bench["extra_info"]
        out[(int(info["batch_size"]), info["after"])] = [float(t) for t in bench["stats"]["data"]]
    return out


def merge_benchmark_json(paths: Sequence[Path]) -> dict[str, Any]:
    """One pytest-benchmark JSON from several runs of :func:`time_service` in this process
    (one per state): the first run's machine and commit info, every run's benchmarks."""
    runs = [json.loads(Path(p).read_text()) for p in paths]
    return {**runs[0], "benchmarks": [b for run in runs for b in run["benchmarks"]]}


_SESSION: list[Any] = []  # the Session and Options of the current pytest run


def session_and_options() -> tuple[Session, Options]:
    session, opts = _SESSION
    return session, opts
