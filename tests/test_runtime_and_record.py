"""Execution states, thread control and the extra_info record."""

from __future__ import annotations

import json

import pytest
import torch

from inference_scale.errors import InvalidOptionError
from inference_scale.models import get_model, model_info
from inference_scale.record import BenchmarkRecord, InvalidRecordError, build_record, validate_extra_info
from inference_scale.runtime import STATES, make_runner, prepare, state_unsupported_reason, threads


def test_prepare_copies_and_lays_out_channels_last() -> None:
    model = get_model("resnet18")
    x = torch.randn(2, 3, 64, 64)
    before = model.conv1.weight.data_ptr()
    prepared, px = prepare(model, x, state="channels_last")
    assert prepared is not model and model.conv1.weight.data_ptr() == before
    assert model.conv1.weight.is_contiguous()  # the input model is not changed
    assert prepared.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert px.is_contiguous(memory_format=torch.channels_last) and x.is_contiguous()


@pytest.mark.parametrize("state", list(STATES))
def test_every_state_computes_the_same_function(state: str) -> None:
    reason = state_unsupported_reason(state, "cpu")
    if reason:
        pytest.skip(reason)
    torch.manual_seed(0)
    model = get_model("lenet")
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        reference = model(x)
    out = make_runner(*prepare(model, x, state=state), state=state)()
    # bf16 keeps 8 mantissa bits: a relative error of 2^-8 per rounding, a few roundings deep.
    tol = 5e-2 if STATES[state].autocast is torch.bfloat16 else 1e-5
    torch.testing.assert_close(out.float(), reference, rtol=tol, atol=tol)
    if STATES[state].autocast is torch.bfloat16:
        assert out.dtype == torch.bfloat16


def test_bad_state_and_device_list_the_choices() -> None:
    with pytest.raises(InvalidOptionError, match="fp32, channels_last, bf16"):
        state_unsupported_reason("int4", "cpu")
    with pytest.raises(InvalidOptionError, match="cpu, cuda"):
        prepare(get_model("lenet"), torch.randn(1, 1, 28, 28), state="fp32", device="mps")


def test_cuda_reports_a_reason_when_absent() -> None:
    reason = state_unsupported_reason("fp32", "cuda")
    assert (reason is None) == torch.cuda.is_available()


def test_threads_restores_the_previous_count() -> None:
    before = torch.get_num_threads()
    with threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="positive integer"), threads(0):
        pass


def test_record_types_and_json_round_trip() -> None:
    info = model_info("lenet")
    model = get_model("lenet")
    record = build_record(
        info, model, state="fp32", batch_size=8, device="cpu", threads=1, dtype="float32",
        extras={"accuracy": 0.98},
    )  # fmt: skip
    extra = json.loads(json.dumps(record.to_extra_info()))
    validate_extra_info(extra)
    assert extra["params"] == info.num_params and extra["macs"] == info.macs
    assert extra["input_shape"] == [1, 28, 28] and extra["accuracy"] == 0.98
    assert extra["bytes"] > 4 * info.num_params


def test_record_rejects_bad_fields() -> None:
    good = build_record(
        model_info("lenet"), get_model("lenet"), state="fp32", batch_size=1, device="cpu", threads=1, dtype="float32"
    ).to_extra_info()
    for key, bad in [("batch_size", "1"), ("threads", True), ("input_shape", [1, 0, 28]), ("batch_size", 0)]:
        with pytest.raises(InvalidRecordError, match=key):
            validate_extra_info({**good, key: bad})
    missing = {k: v for k, v in good.items() if k != "macs"}
    with pytest.raises(InvalidRecordError, match="lacks macs"):
        validate_extra_info(missing)
    fields = {k: v for k, v in good.items() if k in BenchmarkRecord.__dataclass_fields__}
    with pytest.raises(InvalidRecordError, match="override"):
        BenchmarkRecord(**{**fields, "extras": {"model": "x"}})
    with pytest.raises(ValueError, match="meta device"):
        build_record(
            model_info("lenet"), get_model("lenet", device="meta"), state="fp32", batch_size=1,
            device="cpu", threads=1, dtype="float32",
        )  # fmt: skip
