"""Pruning: local and global unstructured pruning on torch's own masks, sparsity reports,
structured channel pruning with Torch-Pruning, and a CSR Linear for very sparse layers.

Every function returns a new model and leaves its input untouched (``torch.nn.utils.prune``
itself works in place; we apply it to a deep copy). Sparse storage lives in
:mod:`inference_scale.techniques.sparse_io`.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import prune

from inference_scale.errors import InferenceScaleError, InvalidOptionError, InvalidTypeError, InvalidValueError
from inference_scale.subjects.cloning import clone

__all__ = [
    "METHODS",
    "PRUNABLE_TYPES",
    "InvalidAmountError",
    "LayerSparsity",
    "PruneRule",
    "SparseLinear",
    "SparsityReport",
    "make_permanent",
    "prunable_layers",
    "prune_by_type",
    "prune_channels",
    "prune_global",
    "sparse_linear",
    "sparsity_report",
]

PRUNABLE_TYPES: tuple[type[nn.Module], ...] = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
METHODS = ("l1", "random")


def _check_amount(amount: float, *, name: str = "amount", below_one: bool = False) -> float:
    """``amount`` as a float fraction. Integers are refused: ``torch.nn.utils.prune`` reads an
    int as a *count* of weights, so ``1`` would prune one weight where 1.0 prunes them all."""
    top = "1)" if below_one else "1]"
    if isinstance(amount, (bool, numbers.Integral)):
        raise InvalidAmountError(
            f"{name} must be a fraction in [0, {top} such as 0.5, got the integer {amount!r} "
            f"(torch would read it as a count of weights; write {float(amount)!r} for a fraction)"
        )
    if not isinstance(amount, numbers.Real):
        raise InvalidAmountError(f"{name} must be a fraction in [0, {top} such as 0.5, got {amount!r}")
    value = float(amount)
    if not (0.0 <= value < 1.0 if below_one else 0.0 <= value <= 1.0):
        why = " (1.0 would remove every channel)" if below_one and value == 1.0 else ""
        raise InvalidAmountError(f"{name} must be a fraction in [0, {top}, got {amount!r}{why}")
    return value


class InvalidAmountError(InferenceScaleError, ValueError):
    """A pruning amount that is not a fraction (an int, a string, out of range)."""


@dataclass(frozen=True)
class PruneRule:
    """Unstructured pruning of a layer type's weights: ``method`` 'l1' (smallest magnitudes)
    or 'random', removing ``amount`` of the remaining weights (torch rounds amount * n)."""

    method: str
    amount: float

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise InvalidOptionError("method", self.method, METHODS)
        object.__setattr__(self, "amount", _check_amount(self.amount))  # store the float torch needs


def prunable_layers(
    model: nn.Module, *, types: tuple[type[nn.Module], ...] = PRUNABLE_TYPES
) -> list[tuple[str, nn.Module]]:
    """Every Conv/Linear with a weight, found by walking the model: no hand-written tuple."""
    found = [(n, m) for n, m in model.named_modules() if isinstance(m, types) and hasattr(m, "weight")]
    if not found:
        names = ", ".join(t.__name__ for t in types)
        raise InvalidValueError(f"{type(model).__name__} has nothing to prune: no {names} layer with a weight")
    return found


def prune_by_type(model: nn.Module, rules: Mapping[type[nn.Module], PruneRule | tuple[str, float]]) -> nn.Module:
    """A copy of ``model`` whose layers of each type in ``rules`` are pruned locally (each layer
    on its own), e.g. ``{nn.Conv2d: ("l1", 0.2), nn.Linear: ("random", 0.4)}``."""
    parsed = {t: r if isinstance(r, PruneRule) else PruneRule(*r) for t, r in rules.items()}
    for layer_type in parsed:
        if not (isinstance(layer_type, type) and issubclass(layer_type, nn.Module)):
            raise InvalidTypeError(f"rules must be keyed by nn.Module subclasses, got {layer_type!r}")
    pruned = clone(model)
    layers = prunable_layers(pruned, types=tuple(parsed))
    for _, module in layers:
        rule = next(r for t, r in parsed.items() if isinstance(module, t))
        if rule.method == "l1":
            prune.l1_unstructured(module, "weight", amount=rule.amount)  # type: ignore[no-untyped-call]
        else:
            prune.random_unstructured(module, "weight", amount=rule.amount)  # type: ignore[no-untyped-call]
    return pruned


def prune_global(
    model: nn.Module, amount: float, *, method: str = "l1", layers: Iterable[str] | None = None
) -> nn.Module:
    """A copy of ``model`` with ``amount`` of all Conv/Linear weights (or of the named
    ``layers``) pruned together: the smallest magnitudes anywhere go first."""
    amount = _check_amount(amount)
    if method not in METHODS:
        raise InvalidOptionError("method", method, METHODS)
    pruned = clone(model)
    found = dict(prunable_layers(pruned))
    if layers is not None:
        wanted = list(layers)
        if not wanted:
            raise InvalidOptionError("layers", wanted, [*found, "None (every layer)"])
        unknown = [n for n in wanted if n not in found]
        if unknown:
            raise InvalidOptionError("layer", unknown[0], found)
        found = {n: found[n] for n in wanted}
    pruning_method = prune.L1Unstructured if method == "l1" else prune.RandomUnstructured
    prune.global_unstructured([(m, "weight") for m in found.values()], pruning_method=pruning_method, amount=amount)
    return pruned


def make_permanent(model: nn.Module) -> nn.Module:
    """A copy with every pruning reparametrization removed (``prune.remove``): plain weights
    holding the zeros, no ``weight_orig``/``weight_mask`` left."""
    permanent = clone(model)
    for module in permanent.modules():
        for hook in list(module._forward_pre_hooks.values()):
            if isinstance(hook, prune.BasePruningMethod):
                prune.remove(module, hook._tensor_name)  # type: ignore[no-untyped-call]
    return permanent


@dataclass(frozen=True)
class LayerSparsity:
    name: str
    zeros: int
    total: int

    @property
    def sparsity(self) -> float:
        return self.zeros / self.total if self.total else 0.0


@dataclass(frozen=True)
class SparsityReport:
    """Zeros per prunable layer's weight and over all of them."""

    layers: tuple[LayerSparsity, ...]

    @property
    def zeros(self) -> int:
        return sum(layer.zeros for layer in self.layers)

    @property
    def total(self) -> int:
        return sum(layer.total for layer in self.layers)

    @property
    def sparsity(self) -> float:
        return self.zeros / self.total if self.total else 0.0

    def __str__(self) -> str:
        width = max([len(layer.name) for layer in self.layers] + [6])
        lines = [f"{'layer':<{width}}  {'zeros':>10}  {'total':>10}  sparsity"]
        for layer in self.layers:
            lines.append(f"{layer.name:<{width}}  {layer.zeros:>10,}  {layer.total:>10,}  {layer.sparsity:8.2%}")
        lines.append(f"{'global':<{width}}  {self.zeros:>10,}  {self.total:>10,}  {self.sparsity:8.2%}")
        return "\n".join(lines)


def sparsity_report(model: nn.Module) -> SparsityReport:
    """Sparsity of every prunable layer's effective weight (masked or permanent)."""
    return SparsityReport(
        tuple(
            LayerSparsity(name, int((m.weight == 0).sum()), m.weight.numel())  # type: ignore[operator, union-attr]
            for name, m in prunable_layers(model)
        )
    )


def prune_channels(
    model: nn.Module,
    ratio: float,
    *,
    example_inputs: torch.Tensor,
    ignored_layers: Iterable[nn.Module] | None = None,
) -> nn.Module:
    """A smaller dense copy of ``model`` with ``ratio`` of the channels of every prunable layer
    removed by L1 magnitude, dependencies (residual adds, batch norms, concatenations) kept
    consistent by Torch-Pruning's DependencyGraph. The final classifier is kept whole unless
    ``ignored_layers`` says otherwise, so the output shape does not change. Every layer keeps at
    least one channel, so a higher ratio never gives a bigger model; pruning masks on the input
    (:func:`prune_global`) are made permanent first."""
    import torch_pruning as tp

    ratio = _check_amount(ratio, name="ratio", below_one=True)
    # Pruning masks are made permanent first: Torch-Pruning would otherwise prune ``weight_orig``
    # and leave the mask at its old size (a model that grows, and fails when called).
    pruned = make_permanent(model).eval()
    layers = prunable_layers(pruned)
    if ignored_layers is None:
        # The last Linear (or conv) produces the classes: pruning it would change the output.
        ignored = [layers[-1][1]]
    else:
        index = {id(m): n for n, m in model.named_modules()}
        by_name = dict(pruned.named_modules())
        ignored = []
        for module in ignored_layers:
            if id(module) not in index:
                raise InvalidValueError(f"ignored layer {type(module).__name__} is not a module of the model")
            ignored.append(by_name[index[id(module)]])
    pruner = tp.pruner.MetaPruner(
        pruned,
        example_inputs,
        importance=tp.importance.MagnitudeImportance(p=1),
        pruning_ratio=float(ratio),
        pruning_ratio_dict=_keep_one_channel(layers, ratio, ignored),
        ignored_layers=ignored,
    )
    pruner.step()
    return pruned


def _keep_one_channel(
    layers: list[tuple[str, nn.Module]], ratio: float, ignored: list[nn.Module]
) -> dict[nn.Module, float]:
    """Per-layer ratios for the layers whose ``ratio`` would remove every output channel.
    Torch-Pruning keeps ``int(n * (1 - ratio))`` of a layer's n channels, and when that is 0 it
    leaves the layer *whole* (LeNet: 680 params at 90%, 4,192 at 95%). Capping such a layer's
    ratio just under (n - 1) / n keeps exactly one channel (int(n * (1 - r)) = 1), so the
    parameter count never grows with the ratio; layers with room keep ``ratio`` itself."""
    out: dict[nn.Module, float] = {}
    skip = {id(m) for m in ignored}
    for _, module in layers:
        n = getattr(module, "out_channels", getattr(module, "out_features", 0))
        if id(module) in skip or not isinstance(n, int) or n < 1 or int(n * (1 - ratio)) >= 1:
            continue
        out[module] = max(0.0, (n - 1) / n - 1e-9)
    return out


class SparseLinear(nn.Module):
    """A Linear whose weight is stored in CSR; ``y = x W^T + b`` via ``torch.sparse.mm``.
    Pays off only at high sparsity (the benchmarks show where)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        self.in_features = weight.shape[1]
        self.out_features = weight.shape[0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
            self.weight_csr = weight.detach().to_sparse_csr()
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features)
        out = torch.sparse.mm(self.weight_csr, flat.t()).t()
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(*x.shape[:-1], self.out_features)

    def to_dense(self) -> nn.Linear:
        dense = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None)
        with torch.no_grad():
            dense.weight.copy_(self.weight_csr.to_dense())
            if self.bias is not None:
                dense.bias.copy_(self.bias)
        return dense


def sparse_linear(linear: nn.Linear) -> SparseLinear:
    """A CSR copy of a (pruned) Linear; masks are applied first, the input is untouched."""
    if not isinstance(linear, nn.Linear):
        raise InvalidTypeError(f"sparse_linear needs an nn.Linear, got {type(linear).__name__}")
    return SparseLinear(linear.weight, linear.bias)
