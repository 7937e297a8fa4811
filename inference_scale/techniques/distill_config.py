"""A distillation experiment's configuration and its checks, without torch: the CLI reads
its defaults for ``--help``, and :mod:`.distill` runs it."""

from __future__ import annotations

from dataclasses import dataclass

from inference_scale.errors import InvalidOptionError, InvalidValueError

__all__ = ["MAX_TEMPERATURE", "DistillConfig", "check_temperature"]

# Hinton et al. use T in 1..20; above 100 the soft targets are uniform to float32 precision and
# the T^2 factor (1e40 at T = 1e20) overflows the loss to inf, then NaN.
MAX_TEMPERATURE = 100.0


def check_temperature(temperature: float) -> None:
    if not (isinstance(temperature, (int, float)) and 0 < temperature <= MAX_TEMPERATURE):
        raise InvalidValueError(
            f"temperature must be > 0 and at most {MAX_TEMPERATURE:g}; valid: a number in (0, {MAX_TEMPERATURE:g}], "
            f"got {temperature!r}"
        )


@dataclass(frozen=True)
class DistillConfig:
    """One distillation experiment: a teacher trained on the full training split, then for
    each seed a student trained on ``train_fraction`` of it with CE alone and with KD."""

    dataset: str = "mnist"
    student: str = "lenet"
    teacher: str = "teacher-cnn"
    train_fraction: float = 0.1
    seeds: int = 5
    temperature: float = 4.0
    alpha: float = 0.5
    student_epochs: int = 60
    teacher_epochs: int = 15
    cache_dir: str | None = ".cache/inference-scale"
    root: str | None = None  # the folder of an on-disk dataset (cifar10, hf)

    def __post_init__(self) -> None:
        from inference_scale.subjects.data import DATASETS, ON_DISK

        if self.dataset not in DATASETS and self.dataset not in ON_DISK:
            raise InvalidOptionError("dataset", self.dataset, [*DATASETS, *ON_DISK])
        if self.dataset in ON_DISK and self.root is None:
            raise InvalidValueError(f"dataset {self.dataset!r} is read from a folder: give its root (--root DIR)")
        if self.dataset not in ON_DISK and self.root is not None:
            raise InvalidValueError(
                f"dataset {self.dataset!r} ships inside a package: root is only for {', '.join(ON_DISK)}"
            )
        if not 0.0 < self.train_fraction <= 1.0:
            raise InvalidValueError(f"train_fraction must be in (0, 1], got {self.train_fraction}")
        if self.seeds < 1 or self.student_epochs < 1 or self.teacher_epochs < 1:
            raise InvalidValueError("seeds and epochs must be >= 1")
        if not 0.0 <= self.alpha <= 1.0:
            raise InvalidValueError(f"need alpha in [0, 1], got {self.alpha}")
        check_temperature(self.temperature)
