"""The state registry: every state's declared facts, the slug grammar and aliases, and each
state applied to LeNet, checked against outside references (torch's pruning and FLOP counter)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn.utils import prune as torch_prune
from torch.utils.flop_counter import FlopCounterMode

from inference_scale.runtime import DEVICES
from inference_scale.states import (
    ALIASES,
    FAMILIES,
    NEEDS,
    CompositionError,
    Context,
    MissingInputError,
    UnknownStateError,
    canonical_slug,
    get_state,
    list_states,
    state_sort_key,
)
from inference_scale.subjects.data import load_dataset
from inference_scale.subjects.models import get_model

SLUG = re.compile(r"^[a-z0-9]+(-([a-z0-9]+|\{[a-z]+\}))*$")


def _lenet() -> nn.Module:
    torch.manual_seed(0)
    return get_model("lenet").eval()


def _ctx(**kw: object) -> Context:
    x = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    return Context(example=x, calibration=(x,), compile=False, **kw)  # type: ignore[arg-type]


def test_the_registry_declares_each_state_once_with_well_formed_facts() -> None:
    classes = list_states()
    patterns = [c.pattern for c in classes]
    assert len(patterns) == len(set(patterns))
    expected = {"fp32", "channels-last", "bf16", "int8-static", "int8-dynamic", "int8-static-fx",
                "prune-l1-{pct}", "prune-l1-{pct}-masked", "csr-{pct}", "prune-channels-{pct}", "kd"}  # fmt: skip
    assert expected <= set(patterns)
    for cls in classes:
        assert SLUG.match(cls.pattern), cls.pattern
        assert cls.family in FAMILIES and cls.family != "compound"
        assert cls.needs <= set(NEEDS), cls.needs
        assert cls.devices and set(cls.devices) <= set(DEVICES)
        assert cls.summary(), f"{cls.__name__} has no docstring"
        example = cls.example()
        assert SLUG.match(example.slug) and "{" not in example.slug
        assert get_state(example.slug) == example  # the slug reads back as the same state
        if cls.family == "quantize":
            assert "example_input" in cls.needs and cls.devices == ("cpu",)
    # display order follows the families' order
    assert [FAMILIES.index(c.family) for c in classes] == sorted(FAMILIES.index(c.family) for c in classes)


@pytest.mark.parametrize("cls", list_states(), ids=lambda c: c.pattern)
def test_each_state_applies_to_lenet_as_declared(cls: type) -> None:
    state = cls.example()
    model = _lenet()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    reason = state.skip_reason(model, device="cpu", kind="conv")
    if reason:
        pytest.skip(reason)
    training = load_dataset("mnist", seed=0, train_fraction=0.05) if "training_data" in cls.needs else None
    # Whatever the state needs is missing: a one-line MissingInputError, not a crash inside it.
    if cls.needs & {"calibration", "training_data", "teacher"}:
        with pytest.raises(MissingInputError, match=state.slug):
            state(model, Context(example=_ctx().example, compile=False))
    ctx = _ctx(training=training, teacher=_lenet() if "teacher" in cls.needs else None)
    prepared = state(model, ctx)
    assert prepared.slug == state.slug
    x = ctx.example
    out = prepared(x)
    assert out.shape == (4, 10) and out.dtype == torch.float32 and torch.isfinite(out).all()
    assert prepared.runner(x)().shape == (4, 10)
    assert 0 < prepared.nonzero_params <= prepared.params and prepared.macs > 0 and prepared.bytes > 0
    assert prepared.dtype in ("float32", "bfloat16", "float16", "int8")
    for k, v in model.state_dict().items():  # the input model is never changed
        assert torch.equal(v, before[k]), k


def test_unknown_and_malformed_slugs_list_close_matches() -> None:
    with pytest.raises(UnknownStateError, match=r"did you mean: .*int8-static"):
        get_state("int8-statc")
    with pytest.raises(UnknownStateError, match=r"percent must be 1\.\.99"):
        get_state("prune-l1-100")
    with pytest.raises(UnknownStateError, match="did you mean: fp32"):
        get_state("FP32")
    with pytest.raises(CompositionError, match="can only come last"):
        get_state("int8-static+prune-channels-50")
    with pytest.raises(UnknownStateError, match="empty part"):
        get_state("fp32++int8-static")
    with pytest.raises(TypeError):
        get_state(8)  # type: ignore[arg-type]


def test_old_slugs_read_through_the_alias_table() -> None:
    assert canonical_slug("channels_last") == "channels-last"
    assert canonical_slug("unstructured-20-masked") == "prune-l1-20-masked"
    assert canonical_slug("unstructured-90") == "prune-l1-90"
    assert canonical_slug("channels-50") == "prune-channels-50"
    assert canonical_slug("student-kd") == "kd"
    assert canonical_slug("channels-50+int8-static") == "prune-channels-50+int8-static"
    for old in ALIASES:
        new = canonical_slug(old.format(pct=30))
        assert get_state(new).slug == new  # every alias lands on a registered state
    assert get_state("channels_last").slug == "channels-last"


def test_sort_key_orders_by_family_then_parameter() -> None:
    slugs = ["prune-channels-50", "int8-static", "prune-l1-90", "fp32", "prune-l1-20", "bogus", "bf16"]
    assert sorted(slugs, key=state_sort_key) == [
        "fp32", "bf16", "int8-static", "prune-l1-20", "prune-l1-90", "prune-channels-50", "bogus",
    ]  # fmt: skip


def test_prune_l1_keeps_the_weights_torchs_global_l1_pruning_keeps() -> None:
    model = _lenet()
    prepared = get_state("prune-l1-50")(model, _ctx())
    oracle = _lenet()
    layers = [(m, "weight") for m in oracle.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    torch_prune.global_unstructured(layers, pruning_method=torch_prune.L1Unstructured, amount=0.5)
    ours = dict(prepared.module.named_modules())  # type: ignore[union-attr]
    for name, m in oracle.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            assert torch.equal(ours[name].weight, m.weight), name
    kept = sum(int(m.weight.count_nonzero()) for m, _ in layers)
    biases = sum(m.bias.numel() for m, _ in layers)
    assert prepared.nonzero_params == kept + biases


def test_csr_records_the_macs_its_kernels_execute_from_torchs_pruning_masks() -> None:
    # LeNet's Linears see one row per sample: CSR skips exactly the weights torch's global L1
    # pruning zeroes in them; its convs stay dense and multiply every weight.
    prepared = get_state("csr-90")(_lenet(), _ctx())
    oracle = _lenet()
    layers = [(m, "weight") for m in oracle.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    torch_prune.global_unstructured(layers, pruning_method=torch_prune.L1Unstructured, amount=0.9)
    skipped = sum(int((m.weight == 0).sum()) for m, _ in layers if isinstance(m, nn.Linear))
    assert 0 < skipped < prepared.macs
    assert prepared.extras["nonzero_macs"] == prepared.macs - skipped


def test_prune_channels_macs_match_torchs_flop_counter() -> None:
    prepared = get_state("prune-channels-50")(_lenet(), _ctx(macs=123))  # a stale count is not reused
    pruned = prepared.module
    assert isinstance(pruned, nn.Module)
    counter = FlopCounterMode(display=False)
    with counter:
        pruned(torch.zeros(1, 1, 28, 28))
    # torch's counter leaves out bias adds, which ours counts (one per output element; see
    # test_models): conv1's outputs are 24x24, conv2's 8x8.
    biases = pruned.conv1.out_channels * 24 * 24 + pruned.conv2.out_channels * 8 * 8
    biases += sum(m.out_features for m in pruned.modules() if isinstance(m, nn.Linear))
    assert prepared.macs == counter.get_total_flops() // 2 + biases
    assert pruned.conv1.out_channels == 3 and pruned.conv2.out_channels == 8  # half of 6 and 16
    assert prepared.params == sum(p.numel() for p in pruned.parameters())


def test_a_compound_applies_its_parts_in_order() -> None:
    model = _lenet()
    pruned = get_state("prune-channels-50")(model, _ctx())
    both = get_state("prune-channels-50+int8-static")(model, _ctx())
    assert both.slug == "prune-channels-50+int8-static" and both.dtype == "int8"
    assert both.params == pruned.params and both.macs == pruned.macs
    assert both.bytes < pruned.bytes / 2
    assert both.extras["parts"] == ["prune-channels-50", "int8-static"]
    assert both.extras["quantized_modules"] == 5
    cos = torch.nn.functional.cosine_similarity(both(_ctx().example).flatten(), pruned(_ctx().example).flatten(), 0)
    assert cos > 0.99


def test_fp16_halves_the_bytes_and_keeps_the_function() -> None:
    # Applied directly: on a CPU without native fp16 the state is skipped in suites, but its
    # arithmetic still runs (emulated), which is enough to check what it produces.
    model, x = _lenet(), _ctx().example
    fp32 = get_state("fp32")(model, _ctx())
    fp16 = get_state("fp16").apply(model, _ctx())
    assert fp16.dtype == "float16" and fp16.params == fp32.params and fp16.macs == fp32.macs
    # the weights are half the bytes; torch.save adds the same keys and headers to both files
    assert 0.45 < fp16.bytes / fp32.bytes < 0.6
    assert fp16.runner(x)().dtype == torch.float16
    torch.testing.assert_close(fp16(x), fp32(x), rtol=1e-2, atol=1e-2)
    on_cpu = get_state("fp16").skip_reason(model, device="cpu")
    assert (on_cpu is None) == bool(torch.ops.mkldnn._is_mkldnn_fp16_supported())


def test_compile_runs_the_same_function_through_inductor() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 10)).eval()
    x = torch.randn(4, 32)
    ctx = Context(example=x, macs=32 * 64 + 64 + 64 * 10 + 10)
    compiled = get_state("compile")(model, ctx)
    assert compiled.extras["compiled"] is True and compiled.extras["compile_s"] > 0
    assert type(compiled.module).__name__ == "OptimizedModule"
    torch.testing.assert_close(compiled(x), model(x).detach(), rtol=1e-5, atol=1e-5)
    assert compiled.bytes == get_state("fp32")(model, ctx).bytes  # the same weights
    eager = get_state("compile")(model, Context(example=x, compile=False))
    assert eager.extras == {"compiled": False} and isinstance(eager.module, nn.Sequential)


# --- other runtimes ------------------------------------------------------------------------

_PEER_FP32 = ("ort-fp32", "ov-fp32")


@pytest.mark.parametrize("slug", _PEER_FP32)
def test_peer_fp32_computes_what_torch_computes_and_records_its_runtime(slug: str) -> None:
    import importlib.metadata

    state = get_state(slug)
    if state.unavailable():
        pytest.skip(state.unavailable())
    model, x = _lenet(), _ctx().example[0]
    prepared = state(model, Context(example=x, threads=2, name="lenet"))
    # the runtime itself is the reference here: its fp32 output must be torch's, to rounding
    torch.testing.assert_close(prepared(x), model(x).detach(), rtol=1e-4, atol=1e-4)
    dist = {"onnxruntime": "onnxruntime", "openvino": "openvino"}[prepared.runtime]
    assert prepared.runtime_version == importlib.metadata.version(dist)
    # The artifact holds the fp32 weights: at least 4 bytes per parameter, little else.
    params = sum(p.numel() for p in model.parameters())
    assert 4 * params <= prepared.bytes < 4 * params * 1.25
    assert prepared.extras["artifact_bytes"] == prepared.bytes
    threads = prepared.extras["runtime_config"]
    assert threads.get("intra_op_num_threads", threads.get("INFERENCE_NUM_THREADS")) == 2


@pytest.mark.parametrize("slug", ["ort-int8", "ov-int8"])
def test_peer_int8_shrinks_the_artifact_and_agrees_with_fp32(slug: str) -> None:
    state = get_state(slug)
    if state.unavailable():
        pytest.skip(state.unavailable())
    model = _lenet()
    x = torch.randn(16, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    prepared = state(model, Context(example=x[:4], calibration=(x[:4], x[4:8], x[8:12], x[12:]), name="lenet"))
    fp32 = get_state(_PEER_FP32[slug.startswith("ov")])(model, Context(example=x[:4], name="lenet"))
    # int8 weights; the graph description (the IR .xml) is a fixed cost that matters on LeNet
    assert prepared.dtype == "int8" and prepared.bytes < fp32.bytes / 2
    cos = torch.nn.functional.cosine_similarity(prepared(x[:4]).flatten(), model(x[:4]).detach().flatten(), 0)
    assert cos > 0.99


def test_an_export_failure_names_the_model_the_runtime_and_the_step() -> None:
    from inference_scale.states.peers import PeerError

    class Branchy(nn.Module):  # data-dependent control flow: torch.export cannot trace it
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x) if x.sum() > 0 else self.fc(-x)

    state = get_state("ort-fp32")
    if state.unavailable():
        pytest.skip(state.unavailable())
    with pytest.raises(PeerError, match=r"^branchy: onnx failed at export \(torch\.onnx\.export.*\): \w+") as info:
        state(Branchy().eval(), Context(example=torch.randn(2, 4), name="branchy"))
    assert "\n" not in str(info.value) and "\x1b" not in str(info.value)


def test_a_runtime_that_refuses_the_graph_is_one_line(tmp_path: Path) -> None:
    from inference_scale.states.onnxrt import ort_session
    from inference_scale.states.peers import PeerError

    if get_state("ort-fp32").unavailable():
        pytest.skip("onnxruntime is not installed")
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"not a protobuf graph")
    with pytest.raises(PeerError, match=r"^lenet: onnxruntime 1\S* failed at creating the inference session: "):
        ort_session(bad, Context(example=torch.zeros(1), name="lenet"), "onnxruntime 1.x")


def test_a_missing_runtime_package_skips_in_a_grid_and_is_an_error_by_name() -> None:
    from dataclasses import dataclass
    from typing import ClassVar

    from inference_scale.measure.suite import missing_input
    from inference_scale.states.peers import PeerState
    from inference_scale.subjects.resolve import subject_from_spec

    @dataclass(frozen=True)
    class Absent(PeerState):  # not registered: a runtime whose package is not installed
        pattern: ClassVar[str] = "absent-fp32"
        runtime: ClassVar[str] = "absentrt"
        packages: ClassVar[tuple[str, ...]] = ("inference_scale_no_such_runtime",)
        distribution: ClassVar[str] = "absentrt"

    reason = Absent().skip_reason(_lenet(), device="cpu")
    assert reason is not None and "inference_scale_no_such_runtime" in reason and "[peers]" in reason
    problem = missing_input(Absent(), subject_from_spec("lenet"))
    assert problem is not None and problem.startswith("lenet: absent-fp32 runs on absentrt")
