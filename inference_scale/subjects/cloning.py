"""Deep copies of models, including models under ``torch.nn.utils.prune``.

A pruned module keeps its effective weight (``weight_orig * weight_mask``) as a plain
attribute that is not a graph leaf, and ``copy.deepcopy`` refuses such tensors. We lift those
attributes out, copy, put them back, and recompute them on the copy as torch's own pruning
hook does before each forward.
"""

from __future__ import annotations

import copy
from typing import TypeVar

from torch import nn
from torch.nn.utils import prune

__all__ = ["clone"]

M = TypeVar("M", bound=nn.Module)


def _pruning_hooks(model: nn.Module) -> list[tuple[nn.Module, prune.BasePruningMethod]]:
    return [
        (module, hook)
        for module in model.modules()
        for hook in module._forward_pre_hooks.values()
        if isinstance(hook, prune.BasePruningMethod)
    ]


def clone(model: M) -> M:
    """``copy.deepcopy`` that also works on pruned models; the input is left as it was."""
    lifted = []
    for module, hook in _pruning_hooks(model):
        name = hook._tensor_name
        if name in module.__dict__:
            lifted.append((module, name, module.__dict__.pop(name)))
    try:
        copied = copy.deepcopy(model)
    finally:
        for module, name, value in lifted:
            module.__dict__[name] = value
    for module, hook in _pruning_hooks(copied):
        setattr(module, hook._tensor_name, hook.apply_mask(module))  # type: ignore[no-untyped-call]
    return copied
