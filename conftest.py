"""Root conftest: command-line options shared by the benchmark suite (pytest only accepts
``pytest_addoption`` from the rootdir conftest or plugins) and the machine_info record."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torchvision

from benchmarks._harness import parse_batches, split_values
from inference_scale.errors import UnknownModelError
from inference_scale.models import model_info
from inference_scale.runtime import DEVICES, cpu_name


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
