"""Root conftest: command-line options shared by the benchmark suite (pytest only accepts
``pytest_addoption`` from the rootdir conftest or plugins) and the machine_info record."""

from __future__ import annotations

import math
import os
from typing import Any

import pytest
import torch
import torchvision

from benchmarks._harness import parse_batches, split_values
from inference_scale.errors import UnknownModelError
from inference_scale.models import model_info
from inference_scale.reference import KEY as REFERENCE_KEY
from inference_scale.reference import measure_reference
from inference_scale.runtime import DEVICES, cpu_name

pytest_plugins = ("pytester",)  # tests/ run plain pytest-benchmark suites through it


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("inference-scale", "inference-scale benchmark options")
    group.addoption("--threads", type=int, default=1, help="intra-op threads for benchmarks (default 1)")
    group.addoption("--device", default="cpu", help=f"device to benchmark on: {', '.join(DEVICES)} (default cpu)")
    group.addoption(
        "--arch", action="append", default=None, metavar="NAME[,NAME]",
        help="benchmark only these registered models (repeatable or comma-separated)",
    )  # fmt: skip
    group.addoption(
        "--all-int8", action="store_true",
        help="compile int8 on transformers too (int8-static and int8-dynamic): minutes of inductor compile each",
    )  # fmt: skip
    group.addoption(
        "--batch-size", action="append", default=None, metavar="N[,N]",
        help="benchmark only these batch sizes (repeatable or comma-separated)",
    )  # fmt: skip
    group.addoption(
        "--reference-seconds", type=float, default=float(os.environ.get("INFERENCE_SCALE_REFERENCE_SECONDS", 0.5)),
        metavar="S",
        help="seconds per reference workload (GEMM, conv) at the start and end of a timed run; 0 turns it off",
    )  # fmt: skip


_REFERENCE_START = pytest.StashKey[dict[str, float]]()


def _reference_seconds(config: pytest.Config) -> float:
    """0 under --benchmark-disable (a smoke run times nothing), else the option's value."""
    if config.getoption("benchmark_disable", False) or config.getoption("collectonly", False):
        return 0.0
    return float(config.getoption("--reference-seconds"))


def pytest_sessionstart(session: pytest.Session) -> None:
    seconds = _reference_seconds(session.config)
    if seconds > 0:
        session.config.stash[_REFERENCE_START] = measure_reference(seconds=seconds)


def pytest_configure(config: pytest.Config) -> None:
    """Validate the options once, as usage errors that list the valid choices."""
    threads = config.getoption("--threads")
    if threads < 1:
        raise pytest.UsageError(f"--threads must be >= 1, got {threads}")
    device = config.getoption("--device")
    if device not in DEVICES:
        raise pytest.UsageError(f"--device {device!r} is not valid; choices: {', '.join(DEVICES)}")
    for name in split_values(config.getoption("--arch")):
        try:
            model_info(name)
        except UnknownModelError as exc:
            raise pytest.UsageError(f"--arch: {exc}") from None
    parse_batches(config.getoption("--batch-size"))
    seconds = config.getoption("--reference-seconds")
    if not math.isfinite(seconds) or seconds < 0:
        raise pytest.UsageError(f"--reference-seconds must be >= 0, got {seconds}")


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    """Record what a saved run measured on, so compare can tell like from unlike."""
    device = config.getoption("--device")
    machine_info["inference_scale"] = {
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "cpu_name": cpu_name(),
        "threads": config.getoption("--threads"),
        "device": device,
        "cuda_device": torch.cuda.get_device_name() if device == "cuda" and torch.cuda.is_available() else None,
    }
    start = config.stash.get(_REFERENCE_START, None)
    if start is not None:
        # The machine's own speed at the start and end of the run: compare reads drift from it.
        end = measure_reference(seconds=_reference_seconds(config))
        machine_info["inference_scale"][REFERENCE_KEY] = {"start": start, "end": end}
