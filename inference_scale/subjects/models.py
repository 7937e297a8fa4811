"""A model registry in the style of torchvision's ``models/_api.py``.

Every torchvision classification model is described from torchvision's own offline metadata
(its weights enums: ``num_params``, ``_ops``, ``_metrics``, ``_file_size`` and the eval
transform's crop size), so nothing is downloaded to list, filter or size the zoo. Three small
local digit models are registered beside them.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

import torch
import torchvision.models as tvm
from torch import nn
from torchvision.models import get_model_builder, get_model_weights

from inference_scale.errors import (
    InvalidOptionError,
    InvalidValueError,
    UnknownModelError,
    UnknownWeightsError,
    WeightsNotFoundError,
)
from inference_scale.subjects.kinds import KINDS
from inference_scale.subjects.nets import LeNet, StudentCNN, TeacherCNN

__all__ = [
    "KINDS",
    "ModelInfo",
    "get_model",
    "list_models",
    "model_info",
    "pick_architectures",
    "weights_path",
]

Kind = Literal["conv", "transformer", "mlp"]

# torchvision module name -> family. Families are torchvision's own module split (resnext and
# wide_resnet live in resnet.py, efficientnet_v2 in efficientnet.py); only the long names are
# shortened.
_FAMILY_ALIASES = {
    "swin_transformer": "swin",
    "vision_transformer": "vit",
    "mobilenetv2": "mobilenet",
    "mobilenetv3": "mobilenet",
}
_TRANSFORMER_FAMILIES = frozenset({"swin", "vit", "maxvit"})


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about a model without building it.

    ``macs`` is per sample at ``input_shape`` (torchvision's ``_ops`` is GMACs, rounded to three
    decimals); ``acc1``/``acc5`` are ImageNet-1K top-1/top-5 of the default weights, in percent.
    """

    name: str
    family: str
    kind: Kind
    source: Literal["torchvision", "local"]
    num_params: int
    macs: int
    input_shape: tuple[int, int, int]
    num_classes: int
    acc1: float | None = None
    acc5: float | None = None
    file_size_mb: float | None = None
    weights: str | None = None

    @property
    def resolution(self) -> int:
        """The eval resolution (height of ``input_shape``)."""
        return self.input_shape[1]

    @property
    def flops(self) -> int:
        """FLOPs per sample (:func:`units.flops_from_macs`)."""
        from inference_scale.units import flops_from_macs

        return flops_from_macs(self.macs)


_LOCAL_MODELS: dict[str, tuple[Callable[..., nn.Module], str]] = {
    "lenet": (LeNet, "lenet"),
    "student-cnn": (StudentCNN, "cnn"),
    "teacher-cnn": (TeacherCNN, "cnn"),
}
_DIGITS_SHAPE = (1, 28, 28)


def _torchvision_names() -> list[str]:
    return list(tvm.list_models(module=tvm))


def _family(name: str) -> str:
    module = get_model_builder(name).__module__.rsplit(".", 1)[-1]
    return _FAMILY_ALIASES.get(module, module)


def _architecture_kwargs(name: str, meta: dict[str, Any]) -> dict[str, Any]:
    """Builder arguments that give the architecture the default weights describe, so that a
    randomly initialised model matches ``meta["num_params"]`` and ``meta["_ops"]``:
    ViTs are sized for their weights' resolution (vit_h_14 runs at 518), GoogLeNet's weights
    drop the auxiliary heads, and the two Inception-style nets skip their slow scipy init."""
    if name.startswith("vit_"):
        return {"image_size": int(meta["min_size"][0])}
    if name == "googlenet":
        return {"aux_logits": False, "init_weights": False}
    if name == "inception_v3":
        return {"init_weights": False}
    return {}


def _torchvision_info(name: str) -> ModelInfo:
    weights = get_model_weights(name).DEFAULT  # type: ignore[attr-defined]
    meta = weights.meta
    crop = int(weights.transforms().crop_size[0])
    metrics = meta.get("_metrics", {}).get("ImageNet-1K", {})
    family = _family(name)
    return ModelInfo(
        name=name,
        family=family,
        kind="transformer" if family in _TRANSFORMER_FAMILIES else "conv",
        source="torchvision",
        num_params=int(meta["num_params"]),
        macs=round(float(meta["_ops"]) * 1e9),
        input_shape=(3, crop, crop),
        num_classes=len(meta["categories"]),
        acc1=metrics.get("acc@1"),
        acc5=metrics.get("acc@5"),
        file_size_mb=meta.get("_file_size"),
        weights=str(weights),
    )


def _local_info(name: str) -> ModelInfo:
    from inference_scale.sizing import count_macs, count_params  # sizing does not import models

    factory, family = _LOCAL_MODELS[name]
    model = factory()
    return ModelInfo(
        name=name,
        family=family,
        kind="conv",
        source="local",
        num_params=count_params(model).total,
        macs=count_macs(model, _DIGITS_SHAPE),
        input_shape=_DIGITS_SHAPE,
        num_classes=10,
    )


@functools.cache
def _registry() -> dict[str, ModelInfo]:
    infos = {n: _torchvision_info(n) for n in _torchvision_names()}
    infos.update({n: _local_info(n) for n in _LOCAL_MODELS})
    return infos


def model_info(name: str) -> ModelInfo:
    """Metadata of one registered model; an unknown name raises ``UnknownModelError``."""
    registry = _registry()
    if name not in registry:
        raise UnknownModelError(name, registry)
    return registry[name]


def list_models(
    *,
    family: str | None = None,
    kind: str | None = None,
    min_params: float | None = None,
    max_params: float | None = None,
    source: str | None = None,
) -> list[ModelInfo]:
    """Registered models, filtered; bounds on ``num_params`` are inclusive. Sorted by name."""
    registry = _registry()
    families = sorted({i.family for i in registry.values()})
    if family is not None and family not in families:
        raise InvalidOptionError("family", family, families)
    if kind is not None and kind not in KINDS:
        raise InvalidOptionError("kind", kind, KINDS)
    if source is not None and source not in ("torchvision", "local"):
        raise InvalidOptionError("source", source, ("torchvision", "local"))
    if min_params is not None and max_params is not None and min_params > max_params:
        raise InvalidValueError(f"min_params ({min_params:g}) is larger than max_params ({max_params:g})")
    return [
        info
        for name, info in sorted(registry.items())
        if (family is None or info.family == family)
        and (kind is None or info.kind == kind)
        and (source is None or info.source == source)
        and (min_params is None or info.num_params >= min_params)
        and (max_params is None or info.num_params <= max_params)
    ]


def pick_architectures(*, min_params: float = 20e6, max_params: float = 30e6) -> list[str]:
    """One EfficientNet, one ResNet and one transformer with ``min_params..max_params``
    parameters (the course module's first exercise).

    Within each group the canonical variant wins: the shortest name, i.e. no ``v2``,
    ``resnext`` or ``wide_`` derivative, and then the largest parameter count inside the budget
    (today: efficientnet_v2_s, resnet50, swin_t)."""
    candidates = list_models(min_params=min_params, max_params=max_params, source="torchvision")
    groups: dict[str, Callable[[ModelInfo], bool]] = {
        "efficientnet": lambda i: i.family == "efficientnet",
        "resnet": lambda i: i.family == "resnet",
        "transformer": lambda i: i.kind == "transformer",
    }
    picked = []
    for group, belongs in groups.items():
        members = [i for i in candidates if belongs(i)]
        if not members:
            raise InvalidValueError(
                f"no {group} model has between {min_params:,.0f} and {max_params:,.0f} parameters; "
                "widen the range (`inference-scale models` lists parameter counts)"
            )
        picked.append(min(members, key=lambda i: (len(i.name), -i.num_params, i.name)).name)
    return picked


def weights_path(url: str) -> Path:
    """Where torchvision's loader looks for a checkpoint: ``$TORCH_HOME/hub/checkpoints``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


@contextlib.contextmanager
def _parameters_on_meta() -> Iterator[None]:
    """Build modules with every parameter and buffer moved to the meta device as it is
    registered, so initialisation runs on shapes only (the pattern of accelerate's
    ``init_empty_weights``). ``with torch.device("meta")`` is not enough: RegNet's builder
    computes its block widths with real tensors and ``.tolist()``, which fails on meta."""
    register_parameter = nn.Module.register_parameter
    register_buffer = nn.Module.register_buffer

    def to_meta_parameter(self: nn.Module, name: str, param: nn.Parameter | None) -> None:
        if param is not None and not param.is_meta:
            param = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
        register_parameter(self, name, param)

    def to_meta_buffer(self: nn.Module, name: str, tensor: torch.Tensor | None, persistent: bool = True) -> None:
        if tensor is not None:
            tensor = tensor.to("meta")
        register_buffer(self, name, tensor, persistent=persistent)

    nn.Module.register_parameter = to_meta_parameter  # type: ignore[method-assign]
    nn.Module.register_buffer = to_meta_buffer  # type: ignore[method-assign]
    try:
        yield
    finally:
        nn.Module.register_parameter = register_parameter  # type: ignore[method-assign]
        nn.Module.register_buffer = register_buffer  # type: ignore[method-assign]


def _resolve_weights(name: str, weights: str) -> Any:
    enum = get_model_weights(name)
    choices = ["DEFAULT", *(w.name for w in enum)]
    short = weights.split(".", 1)[1] if weights.startswith(enum.__name__ + ".") else weights
    if short not in choices:
        raise UnknownWeightsError(name, weights, choices)
    return enum[short]  # type: ignore[index]


def get_model(
    name: str,
    weights: str | None = None,
    *,
    device: str | torch.device | None = None,
    allow_download: bool = False,
) -> nn.Module:
    """Build a registered model in eval mode.

    ``weights=None`` gives random weights; ``"DEFAULT"`` or a weights name (``"IMAGENET1K_V1"``)
    loads torchvision's checkpoint from its own cache. With ``allow_download=False`` (the
    default) nothing is fetched: a missing file raises ``WeightsNotFoundError`` naming the file
    and where to put it. ``device="meta"`` builds shapes only, for sizing without memory.
    """
    info = model_info(name)
    target = torch.device(device) if device is not None else torch.device("cpu")
    if info.source == "local":
        if weights is not None:
            raise UnknownWeightsError(name, weights, [])
        factory = _LOCAL_MODELS[name][0]
        build: Callable[[], nn.Module] = factory
    else:
        builder = get_model_builder(name)
        if weights is None:
            kwargs = _architecture_kwargs(name, get_model_weights(name).DEFAULT.meta)  # type: ignore[attr-defined]
            build = functools.partial(builder, weights=None, **kwargs)
        else:
            if target.type == "meta":
                raise InvalidValueError("weights cannot be loaded onto the meta device; use weights=None")
            resolved = _resolve_weights(name, weights)
            path = weights_path(resolved.url)
            if not allow_download and not path.is_file():
                raise WeightsNotFoundError(name, resolved.url, str(path))
            build = functools.partial(builder, weights=resolved)
    if target.type == "meta":
        with _parameters_on_meta():
            model = build()
    else:
        model = build().to(target)
    return model.eval()
