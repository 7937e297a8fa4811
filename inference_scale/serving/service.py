"""Service times per batch size, measured by the suite's own runner and saved as ordinary
pytest-benchmark JSON.

:func:`prepare` is the one place a state is prepared for serving (the suite's context, as
``run_case`` builds it). :func:`time_service` then runs pytest in this process on
:mod:`._service_test`, whose one test times each prepared (state, batch size) through
``suite.time_prepared``: the same warm-up, timer, record (``BenchmarkRecord`` in
``extra_info``) and JSON as ``inference-scale bench``. Unlike re-running ``bench``, the objects
timed are the very ones the load test then serves, so each state is prepared (and compiled)
once per batch size, not twice. The JSON (with every round's time, ``--benchmark-save-data``)
is read back: the simulator draws from those times.
"""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
import time
from collections.abc import Sequence
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
from inference_scale.slugs import BASELINE
from inference_scale.states import Context, MissingInputError, Prepared, get_state

__all__ = ["Served", "ServiceTimingError", "check_state", "current_plan", "prepare", "time_service"]

_PLAN: list[Served] = []
SERVICE_MAX_TIME_S = 0.5  # pytest-benchmark's --benchmark-max-time per batch size
# Before its service times, each prepared batch size runs untimed for at least this long and
# this many calls (at most SETTLE_MAX_S). The suite's two warm-up calls do not settle every
# runtime: OpenVINO's ResNet-50 int8 at batch 8 took 64 ms a call for its first 9 calls and 35
# ms after (2026-12-02, Intel Xeon VNNI host), so 14 rounds of 0.5 s read a 54 ms median and the
# simulator, drawing from them, put the highest rate at half the load test's.
SETTLE_S, SETTLE_CALLS, SETTLE_MAX_S = 1.0, 10, 15.0


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
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.model}-{self.state}-b{self.batch}"


def check_state(session: Session, model: str, slug: str, opts: Options) -> str:
    """The canonical slug, after the suite's checks (a missing input or a skip is an error)."""
    subject, module, _ = session.model(model)
    state = get_state(slug)
    problem = missing_input(state, subject) or skip_reason(state, subject, module, opts)
    if problem:
        raise MissingInputError(f"cannot serve {slug}: {problem}")
    return state.slug


def prepare(session: Session, model: str, slug: str, batch: int, opts: Options) -> Served:
    """``model`` in state ``slug``, prepared for one static batch size as ``run_case`` does."""
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
    return Served(model=model, state=state.slug, batch=batch, prepared=prepared, x=x, extras=extras)


def current_plan() -> list[Served]:
    """What :mod:`._service_test` times (set by :func:`time_service` for its pytest run)."""
    return list(_PLAN)


def _settle(entry: Served) -> None:
    """Untimed calls of ``entry`` until :data:`SETTLE_S` and :data:`SETTLE_CALLS` are both
    passed, or :data:`SETTLE_MAX_S` is."""
    run = entry.prepared.runner(entry.x)
    start, calls = time.perf_counter(), 0
    while calls < SETTLE_CALLS or time.perf_counter() - start < SETTLE_S:
        if time.perf_counter() - start > SETTLE_MAX_S:
            break
        run()
        calls += 1


def time_service(
    served: Sequence[Served], session: Session, opts: Options, *, json_out: Path
) -> dict[tuple[str, int], list[float]]:
    """Time each prepared batch size through the suite's runner in pytest; writes its
    pytest-benchmark JSON to ``json_out`` and returns, per (state, batch size), the seconds of
    every timed call read back from it."""
    import pytest

    for entry in served:
        _settle(entry)
    test_file = Path(__file__).with_name("_service_test.py")
    _PLAN[:] = list(served)
    _SESSION[:] = [session, opts]
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            str(test_file), "--benchmark-only", "--benchmark-save-data", f"--benchmark-json={json_out}",
            f"--benchmark-max-time={SERVICE_MAX_TIME_S}", f"--rootdir={tmp}", "-p", "no:cacheprovider",
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
    data = json.loads(json_out.read_text())
    out: dict[tuple[str, int], list[float]] = {}
    for bench in data["benchmarks"]:
        info = bench["extra_info"]
        out[(info["state"], int(info["batch_size"]))] = [float(t) for t in bench["stats"]["data"]]
    return out


_SESSION: list[Any] = []  # the Session and Options of the current pytest run


def session_and_options() -> tuple[Session, Options]:
    session, opts = _SESSION
    return session, opts
