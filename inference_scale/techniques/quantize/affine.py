"""Affine (uniform) quantization on plain integer tensors.

    x_q = clamp(round(x / s) + z, qmin, qmax)        x' = (x_q - z) * s

(Jacob et al. 2018, "Quantization and Training of Neural Networks for Efficient
Integer-Arithmetic-Only Inference", eq. 1.) ``torch.quantize_per_tensor`` and the quantized
dtypes are deprecated, so q lives in ordinary int8/uint8/int16/int32 tensors.

How the parameters are chosen follows torch's observers and torchao's ``choose_qparams_affine``:
the range is widened to include 0 (so 0.0 is exactly representable: it quantizes to z and
back to 0.0), the asymmetric scale spreads it over all 2^bits levels, and the symmetric scale
is ``max(|min|, |max|) / ((qmax - qmin) / 2)`` with z at the middle of the range. ``round`` is
``torch.round``: half to even.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import torch

from inference_scale.errors import InvalidTypeError, InvalidValueError

__all__ = [
    "QParams",
    "choose_qparams",
    "dequantize",
    "fake_quantize",
    "quant_range",
    "quantize",
]

MIN_BITS, MAX_BITS = 2, 16
DEFAULT_EPS = float(torch.finfo(torch.float32).eps)  # torch's observers' minimum scale


def _check_bits(bits: int) -> int:
    """``bits`` as a Python int. Any integer type counts (numpy's too); bools do not."""
    if isinstance(bits, bool) or not isinstance(bits, numbers.Integral) or not MIN_BITS <= int(bits) <= MAX_BITS:
        raise InvalidValueError(f"bits must be an integer from {MIN_BITS} to {MAX_BITS}, got {bits!r}")
    return int(bits)


def quant_range(bits: int, *, signed: bool) -> tuple[int, int]:
    """(qmin, qmax) of a ``bits``-wide integer: [-2^(b-1), 2^(b-1) - 1] or [0, 2^b - 1]."""
    bits = _check_bits(bits)
    return (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)


def _storage_dtype(bits: int, signed: bool) -> torch.dtype:
    if bits <= 8:
        return torch.int8 if signed else torch.uint8
    return torch.int16 if signed else torch.int32


@dataclass(frozen=True)
class QParams:
    """Scale and zero point, per tensor (0-d tensors) or per channel along ``axis`` (1-d)."""

    scale: torch.Tensor
    zero_point: torch.Tensor
    bits: int = 8
    signed: bool = True
    symmetric: bool = False
    axis: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "bits", _check_bits(self.bits))
        if not isinstance(self.scale, torch.Tensor) or not isinstance(self.zero_point, torch.Tensor):
            raise InvalidTypeError("scale and zero_point must be tensors")
        want_dim = 0 if self.axis is None else 1
        if self.scale.dim() != want_dim or self.zero_point.shape != self.scale.shape:
            raise InvalidValueError(
                f"{'per-tensor' if self.axis is None else 'per-channel'} qparams need "
                f"{want_dim}-d scale and zero_point of one shape, got {tuple(self.scale.shape)} "
                f"and {tuple(self.zero_point.shape)}"
            )
        if not bool(torch.isfinite(self.scale).all()) or not bool((self.scale > 0).all()):
            raise InvalidValueError("scale must be finite and > 0")
        qmin, qmax = self.qrange
        if self.zero_point.is_floating_point() or not bool(
            ((self.zero_point >= qmin) & (self.zero_point <= qmax)).all()
        ):
            raise InvalidValueError(f"zero_point must be integers in [{qmin}, {qmax}]")

    @property
    def qrange(self) -> tuple[int, int]:
        return quant_range(self.bits, signed=self.signed)

    @property
    def qmin(self) -> int:
        return self.qrange[0]

    @property
    def qmax(self) -> int:
        return self.qrange[1]

    @property
    def dtype(self) -> torch.dtype:
        """The integer dtype that holds q (int8/uint8 up to 8 bits, else int16/int32)."""
        return _storage_dtype(self.bits, self.signed)

    def _broadcast(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        if self.axis is None:
            return t
        axis = _normalize_axis(self.axis, like.dim())
        if like.shape[axis] != t.numel():
            raise InvalidValueError(
                f"per-channel qparams have {t.numel()} channels but the tensor has {like.shape[axis]} along axis {axis}"
            )
        shape = [1] * like.dim()
        shape[axis] = t.numel()
        return t.reshape(shape)


def _normalize_axis(axis: int, ndim: int) -> int:
    if isinstance(axis, bool) or not isinstance(axis, int) or not -ndim <= axis < ndim:
        raise InvalidValueError(f"axis {axis!r} is out of range for a {ndim}-d tensor (valid: {-ndim} to {ndim - 1})")
    return axis % ndim


def _check_finite(x: torch.Tensor, what: str) -> None:
    if not x.is_floating_point():
        raise InvalidTypeError(f"{what} must be a floating-point tensor, got {x.dtype}")
    if x.numel() == 0:
        raise InvalidValueError(f"{what} is empty: there is no range to calibrate")
    if not bool(torch.isfinite(x).all()):
        raise InvalidValueError(f"{what} contains NaN or inf; quantization needs a finite range")


def _min_max(x: torch.Tensor, axis: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    _check_finite(x, "input")
    if axis is None:
        return x.min().float(), x.max().float()
    axis = _normalize_axis(axis, x.dim())
    flat = x.movedim(axis, 0).reshape(x.shape[axis], -1)
    return flat.amin(dim=1).float(), flat.amax(dim=1).float()


def choose_qparams(
    x: torch.Tensor | None = None,
    *,
    min_max: tuple[float | torch.Tensor, float | torch.Tensor] | None = None,
    bits: int = 8,
    signed: bool = True,
    symmetric: bool = False,
    axis: int | None = None,
    eps: float = DEFAULT_EPS,
) -> QParams:
    """Scale and zero point from a tensor ``x`` or from ``min_max=(min, max)``.

    Per channel when ``axis`` is given (one scale per index along it; with ``min_max`` the
    bounds are then 1-d tensors). A constant input (min == max) still gets a scale >= ``eps``.
    """
    bits = _check_bits(bits)
    if x is not None and min_max is None:
        lo, hi = _min_max(x, axis)
    elif min_max is not None and x is None:
        lo = torch.as_tensor(min_max[0], dtype=torch.float32)
        hi = torch.as_tensor(min_max[1], dtype=torch.float32)
        _check_finite(lo, "min")
        _check_finite(hi, "max")
        if lo.shape != hi.shape or lo.dim() != (0 if axis is None else 1):
            raise InvalidValueError(
                "min and max must be scalars per tensor, or 1-d tensors of one shape per channel, "
                f"got {tuple(lo.shape)} and {tuple(hi.shape)} with axis={axis}"
            )
        if bool((lo > hi).any()):
            raise InvalidValueError(f"empty range: min {lo.tolist()} is larger than max {hi.tolist()}")
    else:
        raise InvalidValueError("pass exactly one of a tensor x or min_max=(min, max)")
    if not math.isfinite(eps) or eps <= 0:
        raise InvalidValueError(f"eps must be a finite positive number, got {eps!r}")
    qmin, qmax = quant_range(bits, signed=signed)
    lo = torch.minimum(lo, torch.zeros_like(lo))  # include 0 so it stays representable
    hi = torch.maximum(hi, torch.zeros_like(hi))
    if symmetric:
        scale = torch.maximum(-lo, hi) / (float(qmax - qmin) / 2)
        scale = scale.clamp(min=eps)
        zero_point = torch.full_like(scale, (qmax + qmin + 1) // 2, dtype=torch.int32)
    else:
        scale = ((hi - lo) / float(qmax - qmin)).clamp(min=eps)
        zero_point = (qmin - torch.round(lo / scale)).clamp(qmin, qmax).to(torch.int32)
    return QParams(scale, zero_point, bits=bits, signed=signed, symmetric=symmetric, axis=axis)


def quantize(x: torch.Tensor, qparams: QParams) -> torch.Tensor:
    """x_q = clamp(round(x / s) + z, qmin, qmax), in ``qparams.dtype``. Values outside the
    calibrated range saturate at qmin/qmax."""
    _check_finite(x, "input")
    scale = qparams._broadcast(qparams.scale, x).to(x.device)
    zero_point = qparams._broadcast(qparams.zero_point, x).to(x.device)
    q = torch.round(x.float() / scale) + zero_point
    return q.clamp(qparams.qmin, qparams.qmax).to(qparams.dtype)


def dequantize(q: torch.Tensor, qparams: QParams) -> torch.Tensor:
    """x' = (x_q - z) * s, in float32."""
    if q.is_floating_point() or q.dtype == torch.bool:
        raise InvalidTypeError(f"dequantize needs an integer tensor, got {q.dtype}")
    scale = qparams._broadcast(qparams.scale, q).to(q.device)
    zero_point = qparams._broadcast(qparams.zero_point, q).to(q.device)
    return (q.to(torch.int32) - zero_point).float() * scale


def fake_quantize(x: torch.Tensor, qparams: QParams) -> torch.Tensor:
    """dequantize(quantize(x)): the float values int8 inference actually computes with."""
    return dequantize(quantize(x, qparams), qparams).to(x.dtype)
