"""Pruning: exact sparsity (torch's rounding rule), magnitude order, compounding, permanence,
sparse files, channel pruning and the CSR Linear."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils import prune

from inference_scale.errors import InvalidOptionError
from inference_scale.sizing import count_macs, count_params, serialized_bytes
from inference_scale.subjects.data import load_dataset
from inference_scale.subjects.models import get_model
from inference_scale.subjects.train import evaluate, train
from inference_scale.techniques.prune import (
    PruneRule,
    make_permanent,
    prune_by_type,
    prune_channels,
    prune_global,
    sparse_linear,
    sparsity_report,
)
from inference_scale.techniques.sparse_io import SparseFileError, load_pruned, load_sparse, save_pruned, save_sparse

amounts = st.floats(0.0, 1.0, allow_nan=False)
sizes = st.tuples(st.integers(1, 12), st.integers(1, 12))


def _dense_net(seed: int, shape: tuple[int, int]) -> nn.Sequential:
    torch.manual_seed(seed)
    # randn has no exact zeros, so every zero after pruning was put there by the mask
    return nn.Sequential(nn.Linear(shape[1], shape[0]), nn.ReLU(), nn.Linear(shape[0], 5))


@settings(max_examples=60, deadline=None)
@given(sizes, amounts, st.sampled_from(["l1", "random"]), st.integers(0, 2**16))
def test_local_pruning_leaves_exactly_round_a_n_zeros(shape: tuple[int, int], a: float, method: str, seed: int) -> None:
    net = _dense_net(seed, shape)
    pruned = prune_by_type(net, {nn.Linear: (method, a)})
    for layer in (pruned[0], pruned[2]):
        n = layer.weight.numel()
        assert int((layer.weight == 0).sum()) == round(a * n)  # torch's rule: round(amount * n)
        assert torch.equal(layer.weight_mask == 0, layer.weight == 0)  # the zeros are torch's mask
    assert all(not hasattr(m, "weight_mask") for m in net)  # the input is untouched


@settings(max_examples=60, deadline=None)
@given(sizes, amounts, st.integers(0, 2**16))
def test_global_pruning_counts_over_all_layers_and_keeps_the_largest(
    shape: tuple[int, int], a: float, seed: int
) -> None:
    net = _dense_net(seed, shape)
    pruned = prune_global(net, a)
    report = sparsity_report(pruned)
    assert report.zeros == round(a * report.total)
    weights = torch.cat([pruned[0].weight.flatten(), pruned[2].weight.flatten()])
    kept, removed = (
        weights[weights != 0].abs(),
        torch.cat([net[0].weight.flatten(), net[2].weight.flatten()])[weights == 0].abs(),
    )
    if len(kept) and len(removed):
        assert kept.min() >= removed.max()


@settings(max_examples=40, deadline=None)
@given(sizes, amounts, amounts, st.integers(0, 2**16))
def test_pruning_twice_compounds_as_torch_does(shape: tuple[int, int], a: float, b: float, seed: int) -> None:
    net = _dense_net(seed, shape)
    ours = prune_by_type(prune_by_type(net, {nn.Linear: ("l1", a)}), {nn.Linear: ("l1", b)})
    reference = _dense_net(seed, shape)
    for layer in (reference[0], reference[2]):
        prune.l1_unstructured(layer, "weight", amount=a)
        prune.l1_unstructured(layer, "weight", amount=b)
    for mine, theirs in ((ours[0], reference[0]), (ours[2], reference[2])):
        assert torch.equal(mine.weight_mask, theirs.weight_mask)
        n = mine.weight.numel()
        first = round(a * n)
        assert int((mine.weight == 0).sum()) == first + round(b * (n - first))


@settings(max_examples=40, deadline=None)
@given(sizes, amounts, st.integers(0, 2**16))
def test_make_permanent_keeps_zeros_and_drops_masks(shape: tuple[int, int], a: float, seed: int) -> None:
    pruned = prune_global(_dense_net(seed, shape), a)
    permanent = make_permanent(pruned)
    names = set(permanent.state_dict())
    assert not any(k.endswith(("_orig", "_mask")) for k in names)
    for i in (0, 2):
        assert torch.equal(permanent[i].weight, pruned[i].weight)
        assert not prune.is_pruned(permanent[i])
    assert hasattr(pruned[0], "weight_mask")  # make_permanent works on a copy


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 40), cols=st.integers(1, 40), a=amounts, seed=st.integers(0, 2**16))
def test_sparse_file_round_trips_exactly_and_is_never_larger_than_dense(
    rows: int, cols: int, a: float, seed: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    torch.manual_seed(seed)
    net = prune_global(nn.Sequential(nn.Linear(cols, rows), nn.BatchNorm1d(rows)), a)
    path = tmp_path_factory.mktemp("sparse") / "model.pt"
    size = save_sparse(net, path)
    assert size == path.stat().st_size
    loaded = load_sparse(path, model=nn.Sequential(nn.Linear(cols, rows), nn.BatchNorm1d(rows)))
    expected = make_permanent(net).state_dict()
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, expected[key]) and value.dtype == expected[key].dtype, key
    # each tensor is stored in its smallest layout, so only the table of contents is extra
    assert size <= serialized_bytes(expected) + 4096


def test_sparse_file_sizes_at_the_issue_targets(tmp_path: Path) -> None:
    torch.manual_seed(0)
    dense = get_model("resnet18")
    for amount, limit in ((0.9, 0.20), (0.5, 0.60)):
        size = save_sparse(prune_global(dense, amount), tmp_path / f"r18-{amount}.pt")
        assert size <= limit * serialized_bytes(dense), (amount, size / serialized_bytes(dense))


def test_sparse_files_reject_foreign_missing_and_damaged_files(tmp_path: Path) -> None:
    lenet = get_model("lenet")
    path = tmp_path / "lenet.pt"
    save_sparse(prune_global(lenet, 0.5), path)
    with pytest.raises(SparseFileError, match="holds a LeNet, not this StudentCNN"):
        load_sparse(path, model=get_model("student-cnn"))
    with pytest.raises(FileNotFoundError):
        load_sparse(tmp_path / "missing.pt", model=lenet)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(SparseFileError, match="not a readable"):
        load_sparse(tmp_path / "junk.pt", model=lenet)
    torch.save({"format": "something-else"}, tmp_path / "other.pt")
    with pytest.raises(SparseFileError, match="is not an inference-scale-sparse"):
        load_sparse(tmp_path / "other.pt", model=lenet)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.pt", "lenet.pt", "other.pt"]  # no temp files left


def test_prune_by_type_follows_the_course_scheme() -> None:
    lenet = get_model("lenet")
    pruned = prune_by_type(lenet, {nn.Conv2d: PruneRule("l1", 0.2), nn.Linear: PruneRule("random", 0.4)})
    report = {layer.name: layer for layer in sparsity_report(pruned).layers}
    assert report["conv1"].zeros == round(0.2 * 150) and report["fc1"].zeros == round(0.4 * 256 * 120)
    assert set(dict(pruned.named_buffers())) >= {"conv1.weight_mask", "conv2.weight_mask", "fc3.weight_mask"}
    assert "global" in str(sparsity_report(pruned))
    assert count_params(pruned).nonzero < count_params(lenet).nonzero


def test_bad_pruning_inputs() -> None:
    lenet = get_model("lenet")
    with pytest.raises(ValueError, match=r"amount must be a fraction in \[0, 1\]"):
        prune_global(lenet, 1.5)
    with pytest.raises(InvalidOptionError, match="l1, random"):
        PruneRule("l2", 0.2)
    with pytest.raises(ValueError, match="nothing to prune"):
        prune_global(nn.Sequential(nn.ReLU()), 0.5)
    with pytest.raises(InvalidOptionError, match="conv1"):
        prune_global(lenet, 0.5, layers=["conv9"])
    with pytest.raises(ValueError, match="would remove every channel"):
        prune_channels(lenet, 1.0, example_inputs=torch.randn(1, 1, 28, 28))


@pytest.mark.parametrize("ratio", [0.3, 0.5])
def test_channel_pruning_shrinks_keeps_output_shape_and_saves(ratio: float, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = get_model("resnet18")
    x = torch.randn(2, 3, 64, 64)
    pruned = prune_channels(model, ratio, example_inputs=x[:1])
    assert pruned(x).shape == model(x).shape == (2, 1000)
    # channels shrink by `ratio` in both in and out dims, so MACs fall roughly as (1 - ratio)^2
    macs = count_macs(pruned, (3, 224, 224)) / count_macs(model, (3, 224, 224))
    assert macs < (1 - ratio) ** 2 * 1.3
    assert count_params(pruned).total < count_params(model).total
    save_pruned(pruned, tmp_path / "pruned.pt")
    rebuilt = load_pruned(tmp_path / "pruned.pt", model=get_model("resnet18"))
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), pruned.eval()(x))


def test_sparse_linear_matches_dense() -> None:
    torch.manual_seed(0)
    layer = prune_global(nn.Sequential(nn.Linear(64, 32)), 0.9)[0]
    csr = sparse_linear(layer)
    x = torch.randn(5, 64)
    with torch.no_grad():
        torch.testing.assert_close(csr(x), layer(x))
    assert torch.equal(csr.to_dense().weight, layer.weight.detach())
    with pytest.raises(TypeError, match=r"nn\.Linear"):
        sparse_linear(nn.Conv2d(1, 1, 1))  # type: ignore[arg-type]


def test_fine_tune_recovers_accuracy_and_keeps_the_zeros() -> None:
    data = load_dataset("digits", seed=0)
    torch.manual_seed(0)
    dense = train(get_model("lenet"), data, epochs=4, seed=0, progress=False)
    pruned = prune_global(dense, 0.9)
    # train() keeps torch's masks in force: the hook recomputes weight = weight_orig * mask
    # before every forward and the gradient through the mask is zero.
    tuned = train(pruned, data, epochs=2, seed=0, progress=False)
    assert sparsity_report(tuned).zeros == sparsity_report(pruned).zeros == round(0.9 * sparsity_report(dense).total)
    before, after = evaluate(pruned, data.x_test, data.y_test), evaluate(tuned, data.x_test, data.y_test)
    assert after > before
