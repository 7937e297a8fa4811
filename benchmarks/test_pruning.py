"""Where pruning pays: unstructured masks on LeNet (no speedup expected: dense kernels still
multiply the zeros), a 1024x1024 Linear run as CSR at high sparsity, and structured channel
pruning of ResNets (a smaller dense model, really faster). Pruning happens before timing."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from benchmarks._harness import ACCURACY_DATASET, Case, Zoo, digits, make_cases, measure, trained_lenet
from inference_scale.models import ModelInfo, model_info
from inference_scale.prune import make_permanent, prune_channels, prune_global, sparse_linear, sparsity_report
from inference_scale.record import build_record
from inference_scale.runtime import make_runner
from inference_scale.sizing import count_macs
from inference_scale.sparse_io import save_sparse
from inference_scale.train import evaluate

UNSTRUCTURED = ["fp32"] + [f"unstructured-{p}{suffix}" for p in (20, 50, 90) for suffix in ("-masked", "")]
CSR_STATES = ["fp32", "csr-90", "csr-95", "csr-99"]
CHANNEL_STATES = ["fp32", "channels-30", "channels-50"]
LINEAR = ModelInfo(
    name="linear-1024", family="linear", kind="mlp", source="local", num_params=1024 * 1024 + 1024,
    macs=1024 * 1024 + 1024, input_shape=(1024,), num_classes=1024,  # type: ignore[arg-type]
)  # fmt: skip


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    config = metafunc.config
    suites = {
        "lenet_case": (["lenet"], UNSTRUCTURED, [100]),
        "linear_case": (["linear-1024"], CSR_STATES, [1, 32]),
        "channel_case": (["resnet18", "resnet50"], CHANNEL_STATES, [1, 8]),
    }
    for fixture, (archs, states, batches) in suites.items():
        if fixture in metafunc.fixturenames:
            cases = make_cases(config, archs=archs, states=states, batches=batches, fixed_archs=True)
            metafunc.parametrize(fixture, cases)


def _pct(state: str) -> float:
    return int(state.split("-")[1]) / 100


def _sparse_bytes(model: nn.Module) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        return save_sparse(model, Path(tmp) / "model.pt")


def _time(
    benchmark: Any,
    info: ModelInfo,
    timed: nn.Module,
    x: torch.Tensor,
    case: Case,
    threads: int,
    *,
    recorded: nn.Module | None = None,
    **record: Any,
) -> None:
    """Time ``timed(x)``; the record describes ``recorded`` (default: the timed model)."""
    run = make_runner(timed, x, state="fp32", device="cpu")
    rec = build_record(
        info, timed if recorded is None else recorded, state=case.state, batch_size=case.batch, device="cpu",
        threads=threads, dtype="float32", **record,
    )  # fmt: skip
    out = measure(benchmark, run, rec, group=info.name)
    assert out.shape[0] == case.batch and torch.isfinite(out).all()


def test_unstructured(benchmark: Any, lenet_case: Case, bench_threads: int) -> None:
    case, dense = lenet_case, trained_lenet()
    model = dense
    if case.state != "fp32":
        model = prune_global(dense, _pct(case.state))
        if not case.state.endswith("-masked"):
            model = make_permanent(model)
    data = digits()
    extras = {
        "sparsity": sparsity_report(model).sparsity,
        "sparse_bytes": _sparse_bytes(model),
        "accuracy": evaluate(model, data.x_test, data.y_test),
        "accuracy_dataset": ACCURACY_DATASET,
    }
    x = data.x_test[: case.batch]
    _time(benchmark, model_info("lenet"), model, x, case, bench_threads, weights="trained:mnist", extras=extras)


def test_csr_linear(benchmark: Any, linear_case: Case, bench_threads: int) -> None:
    case = linear_case
    torch.manual_seed(0)
    dense = nn.Linear(1024, 1024).eval()
    layer: nn.Module = dense
    pruned = dense
    if case.state != "fp32":
        pruned = make_permanent(prune_global(nn.Sequential(dense), _pct(case.state)))[0]
        layer = sparse_linear(pruned)  # type: ignore[arg-type]
    x = torch.randn(case.batch, 1024, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(layer(x), pruned(x), rtol=1e-4, atol=1e-4)
    extras = {"sparsity": sparsity_report(pruned).sparsity, "sparse_bytes": _sparse_bytes(pruned)}
    # timed: the CSR layer; recorded: its dense twin (params, non-zeros, dense MACs and bytes)
    _time(
        benchmark,
        LINEAR,
        layer,
        x,
        case,
        bench_threads,
        recorded=pruned,
        extras=extras,
        macs=count_macs(pruned, (1024,)),
    )


def test_channels(benchmark: Any, channel_case: Case, zoo: Zoo, bench_threads: int) -> None:
    case = channel_case
    info, dense, _ = zoo.get(case.arch)
    model = dense
    if case.state != "fp32":
        example = torch.randn((1, *info.input_shape), generator=torch.Generator().manual_seed(0))
        model = prune_channels(dense, _pct(case.state), example_inputs=example)
    x = torch.randn((case.batch, *info.input_shape), generator=torch.Generator().manual_seed(0))
    removed = 1 - sum(p.numel() for p in model.parameters()) / sum(p.numel() for p in dense.parameters())
    extras = {"sparsity": sparsity_report(model).sparsity, "params_removed": removed}
    _time(benchmark, info, model, x, case, bench_threads, extras=extras)
