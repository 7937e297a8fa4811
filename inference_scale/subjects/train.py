"""A small, seeded, deterministic training loop for the digit models, and evaluation.

``train`` returns a trained copy and leaves its input untouched; the global RNG is forked so
that training with a seed neither depends on nor disturbs the caller's random state.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from inference_scale.errors import InferenceScaleError, InvalidValueError
from inference_scale.subjects.cloning import clone
from inference_scale.subjects.data import Split

__all__ = ["NonFiniteLossError", "evaluate", "predict", "train"]


class NonFiniteLossError(InferenceScaleError, ValueError):
    """The training loss became NaN or infinite: the model would learn nothing, silently."""


# loss(student_logits, targets) or, with teacher logits, loss(student_logits, teacher_logits, targets)
LossFn = Callable[..., torch.Tensor]


def train(
    model: nn.Module,
    data: Split,
    *,
    epochs: int = 5,
    seed: int = 0,
    lr: float = 1e-3,
    batch_size: int = 64,
    weight_decay: float = 0.0,
    loss: LossFn = F.cross_entropy,
    teacher_logits: torch.Tensor | None = None,
    progress: bool = True,
) -> nn.Module:
    """Adam on ``data``'s training split for ``epochs``; returns the trained copy in eval mode.
    With ``teacher_logits`` (one row per training image) the loss is called as
    ``loss(student_logits, teacher_logits, targets)``, the order of ``distill.kd_loss``."""
    if epochs < 1 or batch_size < 1:
        raise InvalidValueError(f"epochs and batch_size must be >= 1, got {epochs} and {batch_size}")
    if lr <= 0:
        raise InvalidValueError(f"lr must be > 0, got {lr}")
    n = len(data.y_train)
    if n == 0:
        raise InvalidValueError(f"split {data.name!r} has no training images: nothing to train on")
    trained = clone(model)
    if teacher_logits is not None and teacher_logits.shape[0] != n:
        raise InvalidValueError(f"teacher_logits has {teacher_logits.shape[0]} rows for {n} training images")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # dropout draws from the global generator
        order = torch.Generator().manual_seed(seed)
        optimizer = torch.optim.Adam(trained.parameters(), lr=lr, weight_decay=weight_decay)
        trained.train()
        bar = tqdm(range(epochs), desc=f"train {type(model).__name__}", disable=not progress, leave=False)
        for epoch in bar:
            perm = torch.randperm(n, generator=order)
            total = 0.0
            for start in range(0, n, batch_size):
                idx = perm[start : start + batch_size]
                optimizer.zero_grad(set_to_none=True)
                out = trained(data.x_train[idx])
                if teacher_logits is None:
                    batch_loss = loss(out, data.y_train[idx])
                else:
                    batch_loss = loss(out, teacher_logits[idx], data.y_train[idx])
                value = batch_loss.item()  # one sync per batch, needed for the progress bar anyway
                if not math.isfinite(value):
                    raise NonFiniteLossError(
                        f"training {type(model).__name__}: the loss is {value} at epoch {epoch + 1}, batch "
                        f"{start // batch_size + 1} (non-finite inputs or logits, or an extreme loss setting "
                        "such as the distillation temperature)"
                    )
                batch_loss.backward()  # type: ignore[no-untyped-call]
                optimizer.step()
                total += value * len(idx)
            bar.set_postfix(loss=f"{total / n:.4f}")
    return trained.eval()


@torch.inference_mode()  # as the benchmarks run: a compiled model is not recompiled
def predict(
    model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    *,
    batch_size: int = 500,
    fixed_batch: bool = False,
) -> torch.Tensor:
    """Logits of ``model`` on ``x`` in batches (float32). A module is put in eval mode for the
    call and restored; plain callables (compiled or quantized models) are called as they are.
    ``fixed_batch`` pads the last batch to ``batch_size`` (and drops the padding's outputs), for
    models exported or compiled for one static shape."""
    if batch_size < 1 or len(x) == 0:
        raise InvalidValueError(f"need batch_size >= 1 and at least one input, got {batch_size} and {len(x)}")
    was_training = isinstance(model, nn.Module) and model.training
    if isinstance(model, nn.Module):
        model.eval()
    outs = []
    try:
        for i in range(0, len(x), batch_size):
            chunk = x[i : i + batch_size]
            short = batch_size - len(chunk) if fixed_batch else 0
            if short:
                chunk = torch.cat([chunk, chunk[:1].expand(short, *chunk.shape[1:])])
            outs.append(model(chunk).float()[: len(chunk) - short])
    finally:
        if was_training and isinstance(model, nn.Module):
            model.train()
    return torch.cat(outs)


def evaluate(
    model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    batch_size: int = 500,
    fixed_batch: bool = False,
) -> float:
    """Top-1 accuracy as a fraction in [0, 1]."""
    if len(x) != len(y) or len(y) == 0:
        raise InvalidValueError(
            f"need as many labels as inputs (and at least one), got {len(x)} inputs and {len(y)} labels"
        )
    logits = predict(model, x, batch_size=batch_size, fixed_batch=fixed_batch)
    return float((logits.argmax(dim=1) == y).float().mean())
