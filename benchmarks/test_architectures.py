"""Architecture x precision state x batch: the course module's "choose the right architecture"
question, measured. Ids look like ``resnet50-fp32-b1``; the table is grouped by model."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from benchmarks._harness import Case, Zoo, make_cases, measure
from inference_scale.models import pick_architectures
from inference_scale.record import build_record
from inference_scale.runtime import STATES, make_runner, prepare, state_unsupported_reason

ARCHS = [*pick_architectures(), "lenet"]
STATE_NAMES = list(STATES)  # fp32, channels_last, bf16
BATCHES = [1, 8]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "case" in metafunc.fixturenames:
        metafunc.parametrize("case", make_cases(metafunc.config, archs=ARCHS, states=STATE_NAMES, batches=BATCHES))


def test_latency(benchmark: Any, case: Case, zoo: Zoo, bench_threads: int, bench_device: str) -> None:
    reason = state_unsupported_reason(case.state, bench_device)
    if reason:
        pytest.skip(reason)
    info, base, macs = zoo.get(case.arch)
    x = torch.randn((case.batch, *info.input_shape), generator=torch.Generator().manual_seed(0))
    model, x = prepare(base, x, state=case.state, device=bench_device)
    run = make_runner(model, x, state=case.state, device=bench_device)
    record = build_record(
        info, model, state=case.state, batch_size=case.batch, device=bench_device,
        threads=bench_threads, dtype=STATES[case.state].dtype, macs=macs,
    )  # fmt: skip
    out = measure(benchmark, run, record, group=case.arch)
    assert out.shape == (case.batch, info.num_classes)
    assert torch.isfinite(out.float()).all()
