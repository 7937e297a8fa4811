"""Knowledge distillation: the Hinton et al. loss, a teacher-logit cache, and a distill run
that compares a student trained on labels alone with one trained on the teacher's logits.

Hinton, Vinyals and Dean (2015), "Distilling the Knowledge in a Neural Network", eq. (and
the T^2 note in section 2): with temperature T the soft-target gradients scale as 1/T^2, so
the soft term is multiplied by T^2 to keep its weight comparable across temperatures.

    loss = alpha * T^2 * KL(softmax(t / T) || softmax(s / T)) + (1 - alpha) * CE(s, y)
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from inference_scale.atomic import write_atomic
from inference_scale.errors import InvalidTypeError, InvalidValueError, MissingFileError
from inference_scale.subjects.data import Split
from inference_scale.techniques.distill_config import MAX_TEMPERATURE, DistillConfig, check_temperature

__all__ = [
    "MAX_TEMPERATURE",
    "DistillConfig",
    "HFTeacher",
    "check_distillation",
    "course_module_loss",
    "fingerprint",
    "kd_loss",
    "run_distillation",
    "teacher_logits",
    "train_students",
    "train_teacher",
]


class HFTeacher(nn.Module):
    """A Hugging Face ``AutoModelForImageClassification`` from a local folder, fed our
    tensors: they are un-normalized with the data's training statistics to [0, 1], given three
    channels, resized to the processor's size and normalized as the processor says."""

    def __init__(self, path: str | os.PathLike[str], *, data: Split) -> None:
        super().__init__()
        try:
            from transformers import AutoImageProcessor, AutoModelForImageClassification
        except ImportError as exc:  # pragma: no cover - depends on the optional extra
            raise ImportError(
                "Hugging Face teachers need the optional extra: pip install 'inference-scale[hf]'"
            ) from exc
        if not Path(path).is_dir():
            raise MissingFileError(f"no Hugging Face model folder at {path}")
        self.model = AutoModelForImageClassification.from_pretrained(str(path)).eval()
        processor = AutoImageProcessor.from_pretrained(str(path))  # type: ignore[no-untyped-call]
        size = processor.size
        self.size = (int(size["height"]), int(size["width"]))
        self.pixel_mean: torch.Tensor
        self.pixel_std: torch.Tensor
        self.register_buffer("pixel_mean", torch.tensor(processor.image_mean).view(1, -1, 1, 1))
        self.register_buffer("pixel_std", torch.tensor(processor.image_std).view(1, -1, 1, 1))
        self.data_mean, self.data_std = data.mean, data.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raw = (x * self.data_std + self.data_mean).clamp(0, 1)
        if raw.shape[1] == 1:
            raw = raw.expand(-1, 3, -1, -1)
        raw = F.interpolate(raw, size=self.size, mode="bilinear", align_corners=False)
        return self.model(pixel_values=(raw - self.pixel_mean) / self.pixel_std).logits


def _check_logits(student: torch.Tensor, teacher: torch.Tensor | None, targets: torch.Tensor | None) -> None:
    if student.dim() != 2:
        raise InvalidValueError(f"student logits must be (batch, classes), got shape {tuple(student.shape)}")
    if teacher is not None and teacher.shape != student.shape:
        raise InvalidValueError(
            f"teacher logits {tuple(teacher.shape)} must match student logits {tuple(student.shape)}"
        )
    if targets is not None and (targets.dim() != 1 or targets.shape[0] != student.shape[0]):
        raise InvalidValueError(f"targets must be (batch,) = ({student.shape[0]},), got {tuple(targets.shape)}")


def kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    temperature: float = 4.0,
    alpha: float = 0.5,
) -> torch.Tensor:
    """Hinton's distillation loss (module docstring), averaged over the batch. ``alpha`` in
    [0, 1] weighs the soft term; ``alpha = 0`` is plain cross-entropy."""
    if not 0.0 <= alpha <= 1.0:
        raise InvalidValueError(f"alpha must be in [0, 1], got {alpha}")
    check_temperature(temperature)
    _check_logits(student_logits, teacher_logits, targets)
    t = float(temperature)
    soft = F.kl_div(
        F.log_softmax(student_logits / t, dim=1),
        F.log_softmax(teacher_logits.detach() / t, dim=1),
        reduction="batchmean",
        log_target=True,
    )
    hard = F.cross_entropy(student_logits, targets)
    return alpha * t * t * soft + (1.0 - alpha) * hard


def course_module_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    """The course module's ``CE(s, y) + cross_entropy(s, teacher_logits)``, kept to show why
    it fails: it feeds raw logits where probabilities belong. ``-sum(t * log_softmax(s))`` is
    linear in t, so with negative logits in t it is unbounded below: training drives the
    student's logits apart without limit and the student collapses to chance."""
    _check_logits(student_logits, teacher_logits, targets)
    return F.cross_entropy(student_logits, targets) + F.cross_entropy(student_logits, teacher_logits)


def fingerprint(model: nn.Module, data: torch.Tensor, *, transform: str = "") -> str:
    """SHA-256 over the teacher's weights (names, dtypes, shapes, bytes), the inputs and a
    description of the transform: any change to one of them gives another key."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(str(tensor.dtype).encode())
        h.update(str(tuple(tensor.shape)).encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    h.update(str(tuple(data.shape)).encode())
    h.update(data.detach().cpu().contiguous().numpy().tobytes())
    h.update(transform.encode())
    return h.hexdigest()


def teacher_logits(
    teacher: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    inputs: torch.Tensor,
    *,
    cache: str | os.PathLike[str] | None = None,
    transform: str = "",
    batch_size: int = 256,
    progress: bool = True,
) -> torch.Tensor:
    """Run ``inputs`` through the teacher once (with a progress bar) and return the logits.

    With ``cache``, the logits are stored there atomically under a fingerprint of the teacher,
    the inputs and ``transform``; a later call reuses them when the fingerprint matches and
    recomputes (and rewrites) them when it does not. A damaged file is recomputed too."""
    if not isinstance(teacher, nn.Module):
        raise InvalidTypeError("teacher_logits needs an nn.Module to fingerprint")
    key = fingerprint(teacher, inputs, transform=transform)
    path = Path(cache) if cache is not None else None
    if path is not None and path.is_file():
        cached = _read_cache(path)
        if cached is not None and cached[0] == key and cached[1].shape[0] == inputs.shape[0]:
            return cached[1]
    was_training = teacher.training
    teacher.eval()
    outs = []
    try:
        with torch.inference_mode():
            for i in tqdm(range(0, len(inputs), batch_size), desc="teacher logits", disable=not progress, leave=False):
                outs.append(teacher(inputs[i : i + batch_size]).float())
    finally:
        teacher.train(was_training)
    logits = torch.cat(outs).clone()
    if path is not None:
        write_atomic({"format": "inference-scale-teacher-logits", "key": key, "logits": logits}, path)
    return logits


def _read_cache(path: Path) -> tuple[str, torch.Tensor] | None:
    """(key, logits) from a cache file, or None when it is unreadable or not ours: the
    caller then recomputes, so a damaged cache can cost time but never give wrong logits."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        return None
    if (
        not isinstance(obj, dict)
        or obj.get("format") != "inference-scale-teacher-logits"
        or not isinstance(obj.get("key"), str)
        or not isinstance(obj.get("logits"), torch.Tensor)
    ):
        return None
    return obj["key"], obj["logits"]


def check_distillation(config: DistillConfig) -> None:
    """Everything :func:`run_distillation` could fail on, checked in seconds before it trains:
    the model names, the cache folder, the dataset (its folder, its contents, the train
    fraction against its size) and that both models accept its images."""
    from inference_scale.atomic import check_output_path
    from inference_scale.sizing import count_macs
    from inference_scale.subjects.data import load_dataset
    from inference_scale.subjects.models import get_model, model_info

    for name in (config.student, config.teacher):
        model_info(name)  # an unknown name fails here, with close matches
    if config.cache_dir is not None:
        check_output_path(Path(config.cache_dir) / "teacher.pt", what="cache folder")
    split = load_dataset(config.dataset, seed=0, train_fraction=config.train_fraction, root=config.root)
    for name in (config.student, config.teacher):
        count_macs(get_model(name, device="meta"), split.input_shape)  # MacCountError names the shape


def _summary(model: nn.Module, accuracies: list[float], input_shape: tuple[int, ...]) -> dict[str, Any]:
    from inference_scale.sizing import count_macs, count_params

    return {
        "accuracy_mean": float(statistics.fmean(accuracies)),
        "accuracy_std": float(statistics.stdev(accuracies)) if len(accuracies) > 1 else 0.0,
        "accuracies": [float(a) for a in accuracies],
        "params": count_params(model).total,
        "macs": count_macs(model, input_shape),
        "latency_ms_b1": _latency_ms(model, input_shape),
    }


def _latency_ms(model: nn.Module, input_shape: tuple[int, ...], *, calls: int = 50) -> float:
    """Median single-image latency, a quick indication for the table; the benchmark suite
    (benchmarks/test_distillation.py) is where latency is measured properly."""
    x = torch.randn(1, *input_shape)
    times = []
    with torch.inference_mode():
        for _ in range(5):
            model(x)
        for _ in range(calls):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def train_teacher(config: DistillConfig, *, progress: bool = True) -> tuple[nn.Module, Split]:
    """The teacher, trained (seed 0) on the full training split, and that split."""
    from inference_scale.subjects.data import load_dataset
    from inference_scale.subjects.models import get_model
    from inference_scale.subjects.train import train

    full = load_dataset(config.dataset, seed=0, root=config.root)
    torch.manual_seed(0)
    return train(get_model(config.teacher), full, epochs=config.teacher_epochs, seed=0, progress=progress), full


def train_students(
    config: DistillConfig, teacher: nn.Module, seed: int, *, progress: bool = False
) -> tuple[nn.Module, nn.Module, Split]:
    """(CE student, KD student, their data) for one seed: both start from the same weights
    and see the same ``train_fraction`` of the training split in the same order."""
    from inference_scale.subjects.data import load_dataset
    from inference_scale.subjects.models import get_model
    from inference_scale.subjects.train import train

    few = load_dataset(config.dataset, seed=0, train_fraction=config.train_fraction, root=config.root)
    cache = None
    if config.cache_dir is not None:
        cache = Path(config.cache_dir) / f"teacher-{config.teacher}-{config.dataset}-{config.train_fraction}.pt"
    soft = teacher_logits(
        teacher, few.x_train, cache=cache, transform=f"{config.dataset}:normalized", progress=progress
    )
    kd = functools.partial(kd_loss, temperature=config.temperature, alpha=config.alpha)
    torch.manual_seed(seed)
    init = get_model(config.student)
    ce_student = train(init, few, epochs=config.student_epochs, seed=seed, progress=False)
    kd_student = train(init, few, epochs=config.student_epochs, seed=seed, loss=kd, teacher_logits=soft, progress=False)
    return ce_student, kd_student, few


def run_distillation(config: DistillConfig, *, progress: bool = True) -> dict[str, Any]:
    """Teacher, student-CE and student-KD results (JSON-ready); see :class:`DistillConfig`."""
    from inference_scale.subjects.train import evaluate

    teacher, full = train_teacher(config, progress=progress)
    teacher_acc = evaluate(teacher, full.x_test, full.y_test)
    ce_acc, kd_acc = [], []
    for seed in tqdm(range(config.seeds), desc="seeds", disable=not progress):
        ce_student, kd_student, few = train_students(config, teacher, seed)
        ce_acc.append(evaluate(ce_student, few.x_test, few.y_test))
        kd_acc.append(evaluate(kd_student, few.x_test, few.y_test))
    shape = full.input_shape
    wins = sum(k > c for k, c in zip(kd_acc, ce_acc, strict=True))
    return {
        "config": dataclasses.asdict(config),
        "teacher": _summary(teacher, [teacher_acc], shape),
        "student_ce": _summary(ce_student, ce_acc, shape),
        "student_kd": {**_summary(kd_student, kd_acc, shape), "wins": wins},
    }
