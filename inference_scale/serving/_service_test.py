"""Run by :func:`inference_scale.serving.service.time_service` in its own pytest session:
each prepared state and batch size, timed by the suite's runner (record, warm-up, timer) on
the load test's step (a fresh batch each call), each round after what the plan puts before it."""

from __future__ import annotations

from typing import Any

import pytest

from inference_scale.measure.suite import time_prepared
from inference_scale.runtime import on_fresh_stack
from inference_scale.serving.service import Timing, current_plan, session_and_options


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "timing" in metafunc.fixturenames:
        plan = current_plan()
        metafunc.parametrize("timing", plan, ids=[t.id for t in plan])


def test_service(timing: Timing, benchmark: Any) -> None:
    session, opts = session_and_options()
    served = timing.served
    subject, _, _ = session.model(served.model)
    extras = {**served.extras, "serving": True, "after": timing.after}
    # On a new thread's shallow stack, as the load test's worker calls it (runtime.on_fresh_stack)
    on_fresh_stack(
        time_prepared, benchmark, subject, served.prepared, served.x, opts, extras=extras,
        group=f"{served.model}-serve", run=served.step(), setup=timing.setup(),
    )  # fmt: skip
