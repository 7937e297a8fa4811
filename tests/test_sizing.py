"""Parameter, MAC and byte counting, checked against formulas and files, not our own numbers."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from inference_scale.errors import MacCountError
from inference_scale.sizing import (
    count_macs,
    count_params,
    gzip_bytes,
    linear_nonzero_macs_on,
    sdpa_macs,
    serialized_bytes,
    size_report,
)
from inference_scale.subjects.models import get_model
from inference_scale.units import flops_from_macs


def test_count_params_total_trainable_nonzero() -> None:
    model = nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 5))
    model[0].weight.requires_grad_(False)
    with torch.no_grad():
        model[2].weight[:2].zero_()
    counts = count_params(model)
    assert counts.total == 10 * 20 + 20 + 20 * 5 + 5
    assert counts.trainable == counts.total - 10 * 20
    expected_nonzero = sum(int((p != 0).sum()) for p in model.parameters())
    assert counts.nonzero == expected_nonzero <= counts.total - 2 * 20


def test_count_params_sees_torch_pruning_masks() -> None:
    layer = nn.Linear(50, 40)
    prune.l1_unstructured(layer, "weight", amount=0.5)
    counts = count_params(layer)
    assert counts.total == 50 * 40 + 40  # weight_orig + bias; the mask is a buffer
    assert counts.nonzero == int(torch.count_nonzero(layer.weight)) + int(torch.count_nonzero(layer.bias))
    assert counts.nonzero <= counts.total - 1000


def test_count_params_on_meta_has_no_nonzero() -> None:
    counts = count_params(get_model("resnet18", device="meta"))
    assert counts.nonzero is None and counts.total > 0


def test_linear_and_conv_macs_follow_the_formula() -> None:
    # addmm: in*out multiply-adds per sample, plus one add per output for the bias (ptflops' rule)
    assert count_macs(nn.Linear(64, 32), (64,)) == 64 * 32 + 32
    conv = nn.Conv2d(3, 8, kernel_size=3, padding=1, bias=False)
    assert count_macs(conv, (3, 16, 16)) == 8 * 3 * 3 * 3 * 16 * 16
    grouped = nn.Conv2d(8, 8, kernel_size=3, padding=1, groups=8, bias=False)
    assert count_macs(grouped, (8, 10, 10)) == 8 * 1 * 3 * 3 * 10 * 10


def test_attention_is_counted_on_the_cpu_as_on_meta() -> None:
    """On meta, SDPA decomposes into bmm, which ptflops counts itself; on the CPU it is one fused
    aten op that ptflops misses. Our formula must close that gap exactly."""
    torch.manual_seed(0)
    cpu = get_model("vit_b_32")
    meta = get_model("vit_b_32", device="meta")
    assert count_macs(cpu, (3, 224, 224)) == count_macs(meta, (3, 224, 224))


def test_sdpa_formula_matches_an_explicit_matmul_count() -> None:
    q = torch.empty(2, 4, 7, 16)
    k = torch.empty(2, 4, 9, 16)
    v = torch.empty(2, 4, 9, 8)
    qk = 2 * 4 * 7 * 16 * 9  # (7x16) @ (16x9) per batch-head
    pv = 2 * 4 * 7 * 9 * 8  # (7x9) @ (9x8) per batch-head
    assert sdpa_macs([q, k, v], []) == qk + pv


def test_count_macs_leaves_the_model_untouched() -> None:
    model = get_model("resnet18")
    model.train()
    count_macs(model, (3, 64, 64))
    assert model.training
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_count_macs_bad_input() -> None:
    with pytest.raises(ValueError, match="input_shape"):
        count_macs(nn.Linear(3, 3), (0,))
    with pytest.raises(TypeError, match=r"nn\.Module"):
        count_macs("resnet50", (3, 224, 224))  # type: ignore[arg-type]
    with pytest.raises(MacCountError, match="LeNet"):
        count_macs(get_model("lenet"), (3, 28, 28))  # wrong channel count


def test_flops_are_twice_macs() -> None:
    report = size_report(get_model("lenet"), (1, 28, 28))
    assert report.flops == flops_from_macs(report.macs) == 2 * report.macs


def test_serialized_bytes_equal_the_file_torch_writes(tmp_path: Path) -> None:
    model = get_model("lenet")
    # torch.save names the zip's folder after the file's stem ("archive" for a buffer), so a
    # file called archive.pt is byte-for-byte what serialized_bytes measures.
    path = tmp_path / "archive.pt"
    torch.save(model.state_dict(), path)
    assert serialized_bytes(model) == path.stat().st_size
    assert len(gzip.compress(path.read_bytes(), compresslevel=6)) == gzip_bytes(model)
    raw = sum(p.numel() * p.element_size() for p in model.state_dict().values())
    assert raw < serialized_bytes(model) < raw + 64 * 1024  # data plus a zip/pickle header


def test_zeros_compress_and_meta_has_no_bytes() -> None:
    dense = nn.Linear(256, 256)
    sparse = nn.Linear(256, 256)
    with torch.no_grad():
        sparse.weight.mul_(torch.rand_like(sparse.weight) < 0.1)
    assert gzip_bytes(sparse) < 0.5 * gzip_bytes(dense)
    with pytest.raises(ValueError, match="meta device"):
        serialized_bytes(get_model("resnet18", device="meta"))
    meta_report = size_report(get_model("resnet18", device="meta"), (3, 224, 224))
    assert meta_report.bytes is None and meta_report.nonzero_params is None


def test_nonzero_macs_count_each_linears_nonzeros_per_row() -> None:
    # Every Linear sees 5 rows per sample; the conv before them stays dense.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(4, 8, kernel_size=1, bias=False), nn.Flatten(0, -1), nn.Unflatten(0, (5, 8)),
                          nn.Linear(8, 16, bias=False), nn.ReLU(), nn.Linear(16, 3, bias=False))  # fmt: skip
    with torch.no_grad():
        for layer in (model[3], model[5]):
            layer.weight[layer.weight.abs() < 0.2] = 0.0
    nonzero = [int(np.count_nonzero(m.weight.detach().numpy())) for m in (model[3], model[5])]
    assert 0 < nonzero[0] < 16 * 8 and 0 < nonzero[1] < 3 * 16
    dense = 8 * 4 * 5 + 5 * 16 * 8 + 5 * 3 * 16  # by hand: the conv, then the two Linears
    assert count_macs(model, (4, 5)) == dense
    got = linear_nonzero_macs_on(model.eval(), (torch.randn(1, 4, 5),), dense_macs=dense)
    assert got == 8 * 4 * 5 + 5 * nonzero[0] + 5 * nonzero[1]
