"""Compact files for pruned models, written atomically and read with ``weights_only=True``.

``save_sparse`` stores each tensor in the smallest of three layouts:

* dense — the raw values;
* CSR — int32 row pointers and column indices plus the non-zero values. (A plain
  ``torch.save(t.to_sparse_csr())`` keeps int64 indices and shares a 2 x nnz buffer, about
  20 bytes a non-zero for float32: worse than dense below ~80% sparsity.)
* bitmask — one bit per element (``numpy.packbits``) plus the non-zero values, which beats
  dense above about 3% sparsity for float32.

``save_pruned``/``load_pruned`` store a channel-pruned architecture the same safe way: the
per-module sizes Torch-Pruning changed, and the state_dict. Torch-Pruning's own
``tp.state_dict`` pickles whole ``module.__dict__`` objects, which ``weights_only=True`` refuses.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from inference_scale.atomic import write_atomic
from inference_scale.errors import InferenceScaleError, MissingFileError
from inference_scale.subjects.cloning import clone
from inference_scale.techniques.prune import make_permanent

__all__ = ["SparseFileError", "load_pruned", "load_sparse", "save_pruned", "save_sparse"]

_SPARSE_FORMAT = "inference-scale-sparse"
_PRUNED_FORMAT = "inference-scale-pruned"
_VERSION = 1
# Module attributes that Torch-Pruning rewrites when it removes channels.
_SIZE_ATTRS = ("in_channels", "out_channels", "groups", "in_features", "out_features", "num_features",
               "normalized_shape", "num_channels", "num_groups", "embed_dim")  # fmt: skip


class SparseFileError(InferenceScaleError, ValueError):
    """A file that is not ours, is damaged, or belongs to another model."""


def _read(path: str | os.PathLike[str], fmt: str) -> dict[str, Any]:
    source = Path(path)
    if not source.is_file():
        raise MissingFileError(f"no such file: {source}")
    try:
        obj = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise SparseFileError(f"{source} is not a readable {fmt} file: {exc}") from exc
    if not isinstance(obj, dict) or obj.get("format") != fmt or obj.get("version") != _VERSION:
        raise SparseFileError(f"{source} is not an {fmt} v{_VERSION} file")
    return obj


def _encode(t: torch.Tensor) -> dict[str, Any]:
    flat = t.detach().cpu().contiguous()
    dense_bytes = flat.numel() * flat.element_size()
    entry: dict[str, Any] = {"shape": list(flat.shape), "dtype": str(flat.dtype).removeprefix("torch.")}
    if not flat.is_floating_point() or flat.numel() == 0:
        return {**entry, "layout": "dense", "values": flat}
    nonzero = flat != 0
    nnz = int(nonzero.sum())
    rows = flat.shape[0] if flat.dim() >= 2 else 1
    csr_bytes = (rows + 1) * 4 + nnz * (4 + flat.element_size())
    mask_bytes = math.ceil(flat.numel() / 8) + nnz * flat.element_size()
    best = min(("dense", dense_bytes), ("csr", csr_bytes), ("bitmask", mask_bytes), key=lambda kv: kv[1])[0]
    if best == "dense":
        return {**entry, "layout": "dense", "values": flat}
    if best == "bitmask":
        bits = np.packbits(nonzero.reshape(-1).numpy())
        return {**entry, "layout": "bitmask", "mask": torch.from_numpy(bits), "values": flat[nonzero]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta": we only store it
        csr = flat.reshape(rows, -1).to_sparse_csr()
    return {
        **entry,
        "layout": "csr",
        "crow": csr.crow_indices().to(torch.int32),
        "col": csr.col_indices().to(torch.int32),
        "values": csr.values(),
    }


def _decode(name: str, entry: dict[str, Any]) -> torch.Tensor:
    try:
        shape = [int(d) for d in entry["shape"]]
        dtype = getattr(torch, entry["dtype"])
        layout = entry["layout"]
        values = entry["values"]
        if layout == "dense":
            return values.reshape(shape)
        numel = math.prod(shape)
        if layout == "bitmask":
            packed = entry["mask"].numpy()
            # unpackbits(count=numel) pads a short mask with zeros: check the length, and that
            # there is one value per set bit, before trusting either.
            if packed.dtype != np.uint8 or packed.size != math.ceil(numel / 8):
                raise SparseFileError(
                    f"tensor {name!r} is damaged in the file: its bitmask has {packed.size} bytes, "
                    f"{math.ceil(numel / 8)} expected for {numel} elements"
                )
            mask = torch.from_numpy(np.unpackbits(packed, count=numel).astype(bool))
            if int(mask.sum()) != values.numel():
                raise SparseFileError(
                    f"tensor {name!r} is damaged in the file: its bitmask sets {int(mask.sum())} bits "
                    f"but {values.numel()} values are stored"
                )
            out = torch.zeros(numel, dtype=dtype)
            out[mask] = values
            return out.reshape(shape)
        if layout == "csr":
            rows = shape[0] if len(shape) >= 2 else 1
            csr = torch.sparse_csr_tensor(
                entry["crow"].long(), entry["col"].long(), values, size=(rows, numel // rows), dtype=dtype
            )
            return csr.to_dense().reshape(shape)
    except (KeyError, TypeError, RuntimeError, AttributeError) as exc:
        raise SparseFileError(f"tensor {name!r} is damaged in the file: {exc}") from exc
    raise SparseFileError(f"tensor {name!r} has an unknown layout {layout!r}")


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state_dict a dense model would have: pruning masks applied and removed."""
    return make_permanent(model).state_dict()


def save_sparse(model: nn.Module, path: str | os.PathLike[str]) -> int:
    """Write ``model``'s weights compactly (see the module docstring); returns file bytes."""
    state = _state(model)
    payload = {
        "format": _SPARSE_FORMAT,
        "version": _VERSION,
        "model": type(model).__name__,
        "tensors": {name: _encode(t) for name, t in state.items()},
    }
    return write_atomic(payload, path)


def _check_matches(source: Path, saved_model: str, shapes: dict[str, list[int]], template: nn.Module) -> None:
    expected = {k: list(v.shape) for k, v in _state(template).items()}
    if saved_model != type(template).__name__ or shapes.keys() != expected.keys():
        missing = sorted(expected.keys() - shapes.keys())[:3]
        extra = sorted(shapes.keys() - expected.keys())[:3]
        raise SparseFileError(
            f"{source} holds a {saved_model}, not this {type(template).__name__} "
            f"(missing {missing or 'none'}, unexpected {extra or 'none'})"
        )
    wrong = [k for k in expected if shapes[k] != expected[k]]
    if wrong:
        raise SparseFileError(
            f"{source} is from another {saved_model}: {wrong[0]} is {shapes[wrong[0]]}, expected {expected[wrong[0]]}"
        )


def load_sparse(path: str | os.PathLike[str], *, model: nn.Module) -> nn.Module:
    """A copy of ``model`` (same architecture) holding the weights saved at ``path``."""
    obj = _read(path, _SPARSE_FORMAT)
    tensors = obj.get("tensors")
    if not isinstance(tensors, dict):
        raise SparseFileError(f"{path} has no tensor table")
    _check_matches(Path(path), str(obj.get("model")), {k: list(v.get("shape", [])) for k, v in tensors.items()}, model)
    restored = make_permanent(model)
    restored.load_state_dict({name: _decode(name, entry) for name, entry in tensors.items()})
    return restored


def save_pruned(model: nn.Module, path: str | os.PathLike[str]) -> int:
    """Write a channel-pruned model: its changed module sizes and its state_dict."""
    sizes = {}
    for name, module in model.named_modules():
        attrs = {a: getattr(module, a) for a in _SIZE_ATTRS if hasattr(module, a)}
        if attrs:
            sizes[name] = {a: list(v) if isinstance(v, tuple) else v for a, v in attrs.items()}
    payload = {
        "format": _PRUNED_FORMAT,
        "version": _VERSION,
        "model": type(model).__name__,
        "sizes": sizes,
        "state_dict": _state(model),
    }
    return write_atomic(payload, path)


def load_pruned(path: str | os.PathLike[str], *, model: nn.Module) -> nn.Module:
    """Rebuild a pruned model from an unpruned ``model`` of the same architecture."""
    obj = _read(path, _PRUNED_FORMAT)
    state, sizes = obj.get("state_dict"), obj.get("sizes")
    if not isinstance(state, dict) or not isinstance(sizes, dict):
        raise SparseFileError(f"{path} lacks its sizes or state_dict")
    rebuilt = clone(model)
    modules = dict(rebuilt.named_modules())
    if obj.get("model") != type(model).__name__ or not sizes.keys() <= modules.keys():
        raise SparseFileError(f"{path} holds a pruned {obj.get('model')}, not this {type(model).__name__}")
    for name, attrs in sizes.items():
        for attr, value in attrs.items():
            setattr(modules[name], attr, tuple(value) if isinstance(value, list) else value)
    # Resize every parameter and buffer to the saved shape before loading the values into it.
    for key, value in state.items():
        owner_name, _, leaf = key.rpartition(".")
        owner = modules.get(owner_name)
        if owner is None:
            raise SparseFileError(f"{path} has a tensor {key!r} this {type(model).__name__} lacks")
        if leaf in owner._parameters and owner._parameters[leaf] is not None:
            owner._parameters[leaf] = nn.Parameter(torch.empty_like(value), requires_grad=value.is_floating_point())
        elif leaf in owner._buffers and owner._buffers[leaf] is not None:
            owner._buffers[leaf] = torch.empty_like(value)
    try:
        rebuilt.load_state_dict(state)
    except RuntimeError as exc:
        raise SparseFileError(f"{path} does not fit this {type(model).__name__}: {exc}") from exc
    return rebuilt.eval()
