"""Run by :func:`inference_scale.serving.service.time_service` in its own pytest session:
each prepared state and batch size, timed by the suite's runner (record, warm-up, timer)."""

from __future__ import annotations

from typing import Any

import pytest

from inference_scale.measure.suite import time_prepared
from inference_scale.serving.service import Served, current_plan, session_and_options


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "served" in metafunc.fixturenames:
        plan = current_plan()
        metafunc.parametrize("served", plan, ids=[s.id for s in plan])


def test_service(served: Served, benchmark: Any) -> None:
    session, opts = session_and_options()
    subject, _, _ = session.model(served.model)
    extras = {**served.extras, "serving": True}
    time_prepared(benchmark, subject, served.prepared, served.x, opts, extras=extras, group=f"{served.model}-serve")
