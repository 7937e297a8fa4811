"""Execution states, thread control and the extra_info record."""

from __future__ import annotations

import json
import threading
import traceback

import pytest
import torch

from inference_scale.errors import InvalidOptionError
from inference_scale.measure.record import REQUIRED_FIELDS, BenchmarkRecord, InvalidRecordError, validate_extra_info
from inference_scale.runtime import check_device, on_fresh_stack, threads
from inference_scale.states import Context, get_state
from inference_scale.subjects.models import get_model, model_info


@pytest.mark.parametrize("slug", ["fp32", "channels-last", "bf16"])
def test_every_precision_state_computes_the_same_function(slug: str) -> None:
    torch.manual_seed(0)
    model = get_model("lenet")
    x = torch.randn(4, 1, 28, 28)
    state = get_state(slug)
    reason = state.skip_reason(model, device="cpu")
    if reason:
        pytest.skip(reason)
    with torch.no_grad():
        reference = model(x)
    prepared = state(model, Context(example=x))
    out = prepared.runner(x)()
    # bf16 keeps 8 mantissa bits: a relative error of 2^-8 per rounding, a few roundings deep.
    tol = 5e-2 if slug == "bf16" else 1e-5
    torch.testing.assert_close(out.float(), reference, rtol=tol, atol=tol)
    assert out.dtype == (torch.bfloat16 if slug == "bf16" else torch.float32)


def test_channels_last_copies_and_lays_out_the_model_and_input() -> None:
    model = get_model("resnet18")
    x = torch.randn(2, 3, 64, 64)
    prepared = get_state("channels-last")(model, Context(example=x, macs=1))
    assert model.conv1.weight.is_contiguous()  # the input model is not changed
    assert prepared.module.conv1.weight.is_contiguous(memory_format=torch.channels_last)  # type: ignore[union-attr]
    assert prepared.layout((x,))[0].is_contiguous(memory_format=torch.channels_last) and x.is_contiguous()


def test_bad_device_lists_the_choices() -> None:
    with pytest.raises(InvalidOptionError, match="cpu, cuda"):
        get_state("fp32").skip_reason(get_model("lenet"), device="mps")
    with pytest.raises(InvalidOptionError, match="cpu, cuda"):
        check_device("tpu")


def test_cuda_reports_a_reason_when_absent() -> None:
    reason = get_state("fp32").skip_reason(get_model("lenet"), device="cuda")
    assert (reason is None) == torch.cuda.is_available()
    assert "runs on cpu only" in str(get_state("int8-static").skip_reason(get_model("lenet"), device="cuda"))


def test_threads_restores_the_previous_count() -> None:
    before = torch.get_num_threads()
    with threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="positive integer"), threads(0):
        pass


def _record(**extras: object) -> BenchmarkRecord:
    info = model_info("lenet")
    x = torch.randn(8, *info.input_shape)
    p = get_state("fp32")(get_model("lenet"), Context(example=x))
    return BenchmarkRecord(
        model=info.name, family=info.family, kind=info.kind, state=p.slug, batch_size=8, device="cpu", threads=1,
        dtype=p.dtype, params=p.params, nonzero_params=p.nonzero_params, macs=p.macs, bytes=p.bytes,
        input_shape=list(info.input_shape), extras=dict(extras),
    )  # fmt: skip


def test_required_fields_are_the_records_fields_without_defaults() -> None:
    assert list(REQUIRED_FIELDS) == [
        "model", "family", "kind", "state", "batch_size", "device", "threads", "dtype", "params",
        "nonzero_params", "macs", "bytes", "input_shape",
    ]  # fmt: skip
    assert REQUIRED_FIELDS["input_shape"] == (list, tuple) and REQUIRED_FIELDS["macs"] is int


def test_record_types_and_json_round_trip() -> None:
    info = model_info("lenet")
    record = _record(accuracy=0.98)
    extra = json.loads(json.dumps(record.to_extra_info()))
    validate_extra_info(extra)
    assert extra["params"] == info.num_params and extra["macs"] == info.macs
    assert extra["input_shape"] == [1, 28, 28] and extra["accuracy"] == 0.98
    assert extra["bytes"] > 4 * info.num_params


def test_record_rejects_bad_fields() -> None:
    good = _record().to_extra_info()
    for key, bad in [("batch_size", "1"), ("threads", True), ("input_shape", [1, 0, 28]), ("batch_size", 0)]:
        with pytest.raises(InvalidRecordError, match=key):
            validate_extra_info({**good, key: bad})
    missing = {k: v for k, v in good.items() if k != "macs"}
    with pytest.raises(InvalidRecordError, match="lacks macs"):
        validate_extra_info(missing)
    fields = {k: v for k, v in good.items() if k in BenchmarkRecord.__dataclass_fields__}
    with pytest.raises(InvalidRecordError, match="override"):
        BenchmarkRecord(**{**fields, "extras": {"model": "x"}})


def test_on_fresh_stack_runs_on_a_shallow_stack_with_the_callers_thread_count() -> None:
    def where() -> tuple[int, int, int]:
        return len(traceback.extract_stack()), torch.get_num_threads(), threading.get_ident()

    def deep(k: int) -> tuple[int, int, int]:
        return deep(k - 1) if k else on_fresh_stack(where)

    with threads(1):
        frames, n, ident = deep(300)
    assert frames < 10 and n == 1 and ident != threading.get_ident()
    with pytest.raises(KeyError, match="absent"):
        on_fresh_stack(dict.__getitem__, {}, "absent")
