"""Hinton's KD loss (properties), the course module's loss (shown to fail), the teacher-logit
cache, and training with teacher logits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from torch import nn

from inference_scale.cli.main import main
from inference_scale.subjects.data import load_dataset
from inference_scale.subjects.models import get_model
from inference_scale.subjects.train import evaluate, train
from inference_scale.techniques.distill import course_module_loss, kd_loss, teacher_logits

logit_batches = st.tuples(st.integers(1, 8), st.integers(2, 10)).flatmap(
    lambda shape: arrays("float32", shape, elements=st.floats(-20, 20, width=32))
)


def _targets(logits: torch.Tensor) -> torch.Tensor:
    return torch.arange(logits.shape[0]) % logits.shape[1]


@settings(max_examples=100, deadline=None)
@given(logit_batches, st.floats(0.5, 10))
def test_equal_logits_with_alpha_one_give_zero_loss_and_gradient(values: object, temperature: float) -> None:
    t = torch.as_tensor(values)
    s = t.clone().requires_grad_(True)
    loss = kd_loss(s, t, _targets(t), temperature=temperature, alpha=1.0)
    loss.backward()
    assert abs(loss.item()) < 1e-4
    assert s.grad is not None and s.grad.abs().max().item() < 1e-4


@settings(max_examples=100, deadline=None)
@given(logit_batches, logit_batches, st.floats(-50, 50))
def test_kd_is_invariant_to_a_constant_shift_of_the_teacher(a: object, b: object, shift: float) -> None:
    s, t = torch.as_tensor(a), torch.as_tensor(b)
    if s.shape != t.shape:
        t = torch.randn(s.shape)
    y = _targets(s)
    torch.testing.assert_close(kd_loss(s, t + shift, y), kd_loss(s, t, y), rtol=1e-4, atol=1e-4)


def test_the_course_module_loss_is_not_shift_invariant() -> None:
    s, t = torch.randn(4, 10), torch.randn(4, 10)
    y = _targets(s)
    assert abs(course_module_loss(s, t + 5.0, y) - course_module_loss(s, t, y)) > 1.0


@settings(max_examples=100, deadline=None)
@given(logit_batches, st.floats(0.5, 10))
def test_alpha_zero_is_cross_entropy(values: object, temperature: float) -> None:
    s = torch.as_tensor(values)
    y = _targets(s)
    teacher = torch.randn(s.shape)
    torch.testing.assert_close(kd_loss(s, teacher, y, temperature=temperature, alpha=0.0), F.cross_entropy(s, y))


def test_t_squared_keeps_the_soft_gradient_scale_across_temperatures() -> None:
    """Hinton et al.: soft-target gradients shrink as 1/T^2; the T^2 factor undoes it. With it
    the gradient norm stays within 2x from T=2 to T=8; without it, it would fall ~16x."""
    gen = torch.Generator().manual_seed(0)
    s0, t = torch.randn(64, 10, generator=gen), torch.randn(64, 10, generator=gen)
    norms = {}
    for temperature in (2.0, 4.0, 8.0):
        s = s0.clone().requires_grad_(True)
        kd_loss(s, t, _targets(s0), temperature=temperature, alpha=1.0).backward()
        assert s.grad is not None
        norms[temperature] = s.grad.norm().item()
    assert max(norms.values()) / min(norms.values()) < 2.0, norms
    assert norms[2.0] / 4 / (norms[8.0] / 64) > 8  # the unscaled gradients would differ ~16x


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"alpha": 1.5}, "alpha must be in"), ({"temperature": 0.0}, "temperature must be > 0")],
)
def test_bad_parameters(kwargs: dict[str, float], message: str) -> None:
    s = torch.randn(3, 4)
    with pytest.raises(ValueError, match=message):
        kd_loss(s, s, _targets(s), **kwargs)


def test_bad_shapes() -> None:
    s = torch.randn(3, 4)
    with pytest.raises(ValueError, match="must match student logits"):
        kd_loss(s, torch.randn(3, 5), _targets(s))
    with pytest.raises(ValueError, match=r"targets must be \(batch,\)"):
        kd_loss(s, s, torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(batch, classes\)"):
        kd_loss(torch.randn(3), torch.randn(3), torch.zeros(3, dtype=torch.long))


def test_the_course_module_loss_collapses_the_student_and_kd_does_not() -> None:
    """Raw logits used as soft targets make -sum(t * log_softmax(s)) unbounded below (the
    teacher's negative logits reward pushing those classes' log-probabilities to -inf)."""
    data = load_dataset("digits", seed=0)
    torch.manual_seed(0)
    teacher = train(get_model("teacher-cnn"), data, epochs=3, seed=0, progress=False)
    soft = teacher_logits(teacher, data.x_train, progress=False)
    torch.manual_seed(1)
    student = get_model("lenet")
    course = train(student, data, epochs=5, seed=1, loss=course_module_loss, teacher_logits=soft, progress=False)
    hinton = train(student, data, epochs=5, seed=1, loss=kd_loss, teacher_logits=soft, progress=False)
    with torch.no_grad():
        final = course_module_loss(course(data.x_train[:256]), soft[:256], data.y_train[:256]).item()
    assert final < -100  # unbounded below: nothing stops it
    assert evaluate(course, data.x_test, data.y_test) < 0.5
    assert evaluate(hinton, data.x_test, data.y_test) > 0.85


class Counting(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.fc(x)


def test_teacher_cache_reuses_recomputes_and_survives_damage(tmp_path: Path) -> None:
    cache = tmp_path / "cache" / "logits.pt"
    teacher, x = Counting(), torch.randn(10, 4)
    first = teacher_logits(teacher, x, cache=cache, batch_size=4, progress=False)
    assert teacher.calls == 3 and cache.is_file()
    again = teacher_logits(teacher, x, cache=cache, progress=False)
    assert teacher.calls == 3 and torch.equal(again, first)  # reused: the teacher did not run
    with torch.no_grad():
        teacher.fc.weight.add_(1.0)
    changed = teacher_logits(teacher, x, cache=cache, batch_size=10, progress=False)
    assert teacher.calls == 4 and not torch.equal(changed, first)  # new weights: recomputed
    teacher_logits(teacher, x, cache=cache, transform="flip", batch_size=10, progress=False)
    assert teacher.calls == 5  # another transform: another key
    cache.write_bytes(b"garbage")
    repaired = teacher_logits(teacher, x, cache=cache, transform="flip", batch_size=10, progress=False)
    assert teacher.calls == 6 and torch.equal(repaired, teacher.fc(x).detach())
    assert sorted(p.name for p in cache.parent.iterdir()) == ["logits.pt"]  # no temp files left
    with pytest.raises(TypeError, match=r"nn\.Module"):
        teacher_logits(lambda t: t, x, progress=False)  # type: ignore[arg-type]


def test_training_checks_teacher_logit_rows() -> None:
    data = load_dataset("digits", seed=0)
    with pytest.raises(ValueError, match="rows for"):
        train(get_model("lenet"), data, epochs=1, loss=kd_loss, teacher_logits=torch.randn(3, 10), progress=False)


def test_distill_command_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "results.json"
    argv = ["distill", "--dataset", "digits", "--seeds", "2", "--epochs", "3", "--teacher-epochs", "2",
            "--train-fraction", "0.5", "--cache-dir", str(tmp_path / "cache"), "--json", str(out),
            "--quiet"]  # fmt: skip
    assert main(argv) == 0
    result = json.loads(out.read_text())
    for key in ("teacher", "student_ce", "student_kd"):
        r = result[key]
        assert set(r) >= {"accuracy_mean", "accuracy_std", "accuracies", "params", "macs"}
        assert all(0.0 <= a <= 1.0 for a in r["accuracies"])
    assert len(result["student_kd"]["accuracies"]) == 2
    assert result["teacher"]["params"] >= 10 * result["student_ce"]["params"]
    assert "KD - CE" in capsys.readouterr().out
    assert main(["distill", "--student", "lenett"]) == 2
