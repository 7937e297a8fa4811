"""The distillation state: the model (fine-)trained with Hinton's loss to match a teacher."""

from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from inference_scale.runtime import threads
from inference_scale.states.base import Context, MissingInputError, Prepared, State
from inference_scale.states.precision import _eager
from inference_scale.states.registry import register_state
from inference_scale.subjects.data import Split
from inference_scale.subjects.train import train
from inference_scale.techniques.distill import DistillConfig, kd_loss, teacher_logits

__all__ = ["KD"]


@register_state
@dataclass(frozen=True)
class KD(State):
    """Knowledge distillation: the model trained from its current weights on the context's
    training split with Hinton's loss (temperature and alpha from :class:`DistillConfig`)
    against the teacher's logits. In a compound (``prune-channels-50+kd``) the teacher is the
    model as it was before the compound: distillation repairs what pruning took."""

    pattern: ClassVar[str] = "kd"
    family: ClassVar[str] = "distill"
    chainable: ClassVar[bool] = True
    needs: ClassVar[frozenset[str]] = frozenset({"training_data", "teacher"})
    epochs: ClassVar[int] = 8  # fine-tuning from trained or pruned weights settles within 8 on the digits

    def _inputs(self, ctx: Context) -> tuple[nn.Module, Split]:
        """The teacher and the training split, or a :class:`MissingInputError` naming what lacks."""
        super().check_context(ctx)  # the training data
        if ctx.teacher is None:
            raise MissingInputError(f"state {self.slug!r} needs a teacher model (in a compound, the source model)")
        return ctx.teacher, ctx.training

    def check_context(self, ctx: Context) -> None:
        self._inputs(ctx)

    def apply(self, model: nn.Module, ctx: Context) -> Prepared:
        teacher, training = self._inputs(ctx)
        defaults = DistillConfig(cache_dir=None)
        soft = teacher_logits(teacher, training.x_train, progress=ctx.progress)
        loss = functools.partial(kd_loss, temperature=defaults.temperature, alpha=defaults.alpha)
        with threads(os.cpu_count() or 1):  # training is never timed: every core, whatever the run's threads
            student = train(
                model, training, epochs=self.epochs, seed=ctx.seed, loss=loss, teacher_logits=soft,
                progress=ctx.progress,
            )  # fmt: skip
        prepared = _eager(self, student, ctx)
        return dataclasses.replace(prepared, extras={**prepared.extras, "kd_seed": ctx.seed, "kd_epochs": self.epochs})
