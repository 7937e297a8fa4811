"""Affine quantization: Hypothesis properties and agreement with torchao and torch's quantizer."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from torchao.quantization.quant_primitives import (
    MappingType,
    choose_qparams_affine,
    dequantize_affine,
    quantize_affine,
)

from inference_scale.techniques.quantize import (
    QParams,
    choose_qparams,
    dequantize,
    fake_quantize,
    quant_range,
    quantize,
)

F32_EPS = float(torch.finfo(torch.float32).eps)

finite = st.floats(min_value=-1e4, max_value=1e4, allow_nan=False, allow_infinity=False, width=32)
vectors = arrays(np.float32, st.integers(1, 64), elements=finite)
bits = st.integers(2, 16)
flags = st.booleans()


def _slack(x: torch.Tensor, qp: QParams) -> float:
    """Float rounding slack for |x' - x| <= s/2: x / s and (q - z) * s each round once in
    float32 (relative error 2^-24 of a value bounded by the range's largest magnitude, which is
    at most (qmax - qmin) * s), so a few ulps of that magnitude cover both roundings."""
    span = float(qp.scale.max()) * (qp.qmax - qp.qmin) + float(x.abs().max())
    return 4 * F32_EPS * span


@settings(max_examples=300, deadline=None)
@given(vectors, bits, flags, flags)
def test_round_trip_error_is_at_most_half_a_step(values: np.ndarray, b: int, signed: bool, symmetric: bool) -> None:
    x = torch.from_numpy(values)
    qp = choose_qparams(x, bits=b, signed=signed, symmetric=symmetric)
    err = (dequantize(quantize(x, qp), qp) - x).abs().max().item()
    assert err <= float(qp.scale) / 2 + _slack(x, qp)


@settings(max_examples=200, deadline=None)
@given(vectors, bits, flags, flags, st.floats(1.5, 100.0))
def test_values_outside_the_range_clamp_to_its_ends(
    values: np.ndarray, b: int, signed: bool, symmetric: bool, factor: float
) -> None:
    x = torch.from_numpy(values)
    qp = choose_qparams(x, bits=b, signed=signed, symmetric=symmetric)
    # the representable range [(qmin - z) s, (qmax - z) s] holds [min(x, 0), max(x, 0)]
    s, z = float(qp.scale), int(qp.zero_point)
    lo, hi = (qp.qmin - z) * s, (qp.qmax - z) * s
    slack = _slack(x, qp)
    assert lo <= min(float(x.min()), 0.0) + s / 2 + slack and hi >= max(float(x.max()), 0.0) - s / 2 - slack
    outside = torch.tensor([lo - factor * (s + abs(lo)), hi + factor * (s + abs(hi))])
    q = quantize(outside, qp)
    assert q.tolist() == [qp.qmin, qp.qmax]


@settings(max_examples=200, deadline=None)
@given(vectors, bits, flags, flags)
def test_zero_round_trips_exactly_and_q_stays_in_range(values: np.ndarray, b: int, signed: bool, sym: bool) -> None:
    x = torch.from_numpy(values)
    qp = choose_qparams(x, bits=b, signed=signed, symmetric=sym)
    zero = torch.zeros(1)
    assert dequantize(quantize(zero, qp), qp).item() == 0.0
    q = quantize(x, qp)
    assert q.dtype == qp.dtype
    assert qp.qmin <= int(q.min()) and int(q.max()) <= qp.qmax
    assert (qp.qmin, qp.qmax) == quant_range(b, signed=signed)


@settings(max_examples=200, deadline=None)
@given(vectors, bits, flags, flags, st.data())
def test_quantize_of_dequantize_is_identity(
    values: np.ndarray, b: int, signed: bool, sym: bool, data: st.DataObject
) -> None:
    qp = choose_qparams(torch.from_numpy(values), bits=b, signed=signed, symmetric=sym)
    ints = data.draw(arrays(np.int64, st.integers(1, 32), elements=st.integers(qp.qmin, qp.qmax)))
    q = torch.from_numpy(ints).to(qp.dtype)
    assert torch.equal(quantize(dequantize(q, qp), qp), q)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 5), st.integers(1, 6), st.integers(0, 1), bits, flags, flags, st.data())
def test_per_channel_equals_per_tensor_on_each_slice(
    rows: int, cols: int, axis: int, b: int, signed: bool, sym: bool, data: st.DataObject
) -> None:
    values = data.draw(arrays(np.float32, (rows, cols), elements=finite))
    x = torch.from_numpy(values)
    qp = choose_qparams(x, bits=b, signed=signed, symmetric=sym, axis=axis)
    q = quantize(x, qp)
    for i in range(x.shape[axis]):
        piece = x.select(axis, i)
        qp_i = choose_qparams(piece, bits=b, signed=signed, symmetric=sym)
        assert torch.equal(qp_i.scale, qp.scale[i]) and torch.equal(qp_i.zero_point, qp.zero_point[i])
        assert torch.equal(quantize(piece, qp_i), q.select(axis, i))
        assert torch.equal(dequantize(q.select(axis, i), qp_i), dequantize(q, qp).select(axis, i))


def test_constant_and_zero_tensors_get_a_valid_scale() -> None:
    for value in (0.0, 3.5, -2.0):
        x = torch.full((10,), value)
        qp = choose_qparams(x)
        assert float(qp.scale) > 0
        assert torch.allclose(fake_quantize(x, qp), x, atol=float(qp.scale) / 2)


def _ao_mapping(symmetric: bool) -> MappingType:
    return MappingType.SYMMETRIC if symmetric else MappingType.ASYMMETRIC


@settings(max_examples=300, deadline=None)
@given(vectors, st.sampled_from([(8, True), (8, False), (4, True), (2, False), (16, True)]), flags)
def test_agrees_with_torchao(values: np.ndarray, width: tuple[int, bool], symmetric: bool) -> None:
    """Same qparams bit for bit. q may differ only where torchao's x * (1 / s) and our x / s
    fall on different sides of a rounding tie: by one step, and only within float rounding of
    a .5 boundary."""
    b, signed = width
    x = torch.from_numpy(values)
    qmin, qmax = quant_range(b, signed=signed)
    target = torch.int8 if signed and b <= 8 else torch.uint8 if b <= 8 else torch.int16
    scale, zp = choose_qparams_affine(
        x, _ao_mapping(symmetric), tuple(x.shape), target, qmin, qmax, eps=F32_EPS, scale_dtype=torch.float32
    )
    qp = choose_qparams(x, bits=b, signed=signed, symmetric=symmetric)
    assert torch.equal(qp.scale, scale.reshape(()))
    assert torch.equal(qp.zero_point, zp.reshape(()).to(torch.int32))
    ours = quantize(x, qp).to(torch.int32)
    theirs = quantize_affine(x, tuple(x.shape), scale, zp, target, qmin, qmax).to(torch.int32)
    differ = ours != theirs
    assert int((ours - theirs).abs().max()) <= 1
    if differ.any():
        ratio = (x[differ] / qp.scale).double()
        assert ((ratio - ratio.floor() - 0.5).abs() < 1e-5 * (1 + ratio.abs())).all()
    back = dequantize_affine(theirs.to(target), tuple(x.shape), scale, zp, target, qmin, qmax)
    assert torch.equal(dequantize(theirs.to(qp.dtype), qp), back)


@settings(max_examples=200, deadline=None)
@given(vectors, flags)
def test_agrees_with_torch_quantize_per_tensor(values: np.ndarray, signed: bool) -> None:
    """torch.quantize_per_tensor (deprecated, still the reference CPU kernel) multiplies by the
    reciprocal of the scale too: the same one-step-at-a-tie rule applies."""
    x = torch.from_numpy(values)
    qp = choose_qparams(x, bits=8, signed=signed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its deprecation notice is a UserWarning
        dtype = torch.qint8 if signed else torch.quint8
        ref = torch.quantize_per_tensor(x, float(qp.scale), int(qp.zero_point), dtype)
    theirs = ref.int_repr().to(torch.int32)
    ours = quantize(x, qp).to(torch.int32)
    assert int((ours - theirs).abs().max()) <= 1
    differ = ours != theirs
    if differ.any():
        ratio = (x[differ] / qp.scale).double()
        assert ((ratio - ratio.floor() - 0.5).abs() < 1e-5 * (1 + ratio.abs())).all()
    assert torch.equal(ref.dequantize(), dequantize(theirs.to(qp.dtype), qp))


def test_quantized_dot_product_error_shrinks_relative_to_its_magnitude() -> None:
    """The course module's question: rounding errors are zero-mean and independent, so over n
    terms they grow like sqrt(n) (central limit theorem) while the sum of |x_i w_i| grows like
    n. The relative error should fall about as 1/sqrt(n): 8x from n=64 to n=4096."""
    gen = torch.Generator().manual_seed(0)
    rel = {}
    for n in (64, 4096):
        errs = []
        for _ in range(200):
            x, w = torch.randn(n, generator=gen), torch.randn(n, generator=gen)
            xq = fake_quantize(x, choose_qparams(x))
            wq = fake_quantize(w, choose_qparams(w, symmetric=True))
            exact = torch.dot(x.double(), w.double())
            errs.append(float((torch.dot(xq.double(), wq.double()) - exact).abs() / (x * w).abs().double().sum()))
        rel[n] = float(np.mean(errs))
    ratio = rel[64] / rel[4096]
    assert 4 < ratio < 16, rel  # ~8 = sqrt(4096 / 64); a linear accumulation would give ~1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bits": 1}, "bits must be an integer from 2 to 16"),
        ({"bits": 17}, "bits must be an integer from 2 to 16"),
        ({"axis": 2}, "axis 2 is out of range"),
    ],
)
def test_bad_parameters_raise_value_error(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        choose_qparams(torch.randn(3, 4), **kwargs)


def test_bad_inputs_raise_value_error() -> None:
    with pytest.raises(ValueError, match="NaN or inf"):
        choose_qparams(torch.tensor([1.0, float("nan")]))
    with pytest.raises(ValueError, match="NaN or inf"):
        quantize(torch.tensor([float("inf")]), choose_qparams(torch.ones(2)))
    with pytest.raises(ValueError, match="empty range"):
        choose_qparams(min_max=(2.0, 1.0))
    with pytest.raises(ValueError, match="is empty"):
        choose_qparams(torch.empty(0))
    with pytest.raises(ValueError, match="exactly one"):
        choose_qparams(torch.ones(2), min_max=(0.0, 1.0))
    with pytest.raises(ValueError, match="3 channels but the tensor has 4"):
        quantize(torch.randn(4, 2), choose_qparams(torch.randn(3, 2), axis=0))
    with pytest.raises(ValueError, match="scale must be finite and > 0"):
        QParams(torch.tensor(0.0), torch.tensor(0))
    with pytest.raises(TypeError, match="integer tensor"):
        dequantize(torch.ones(2), choose_qparams(torch.ones(2)))


def test_min_max_form_matches_the_tensor_form() -> None:
    x = torch.randn(5, 7)
    per_channel = choose_qparams(min_max=(x.amin(dim=1), x.amax(dim=1)), axis=0, bits=6)
    assert torch.equal(per_channel.scale, choose_qparams(x, axis=0, bits=6).scale)
    per_tensor = choose_qparams(min_max=(float(x.min()), float(x.max())))
    assert torch.equal(per_tensor.zero_point, choose_qparams(x).zero_point)
