"""From a name to a :class:`~inference_scale.subjects.subject.Subject`: the one resolver above the
subject, the hubs and the trained digit models, so none of them imports another's shortcut.

A spec is a registry name (torchvision's models with random seeded weights; the digit models,
trained here on real digits; ``minilm-l6``), ``hf:DIR``, ``timm:NAME`` or ``module:factory``.
Everything is checked once, before any work: the model is built and run on its example inputs,
its output read through the one output rule, and the loaders checked against its inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from inference_scale.errors import UnknownModelError
from inference_scale.subjects.inputs import Batch, ModelAdapter, OutputError, as_batch, describe, primary_output
from inference_scale.subjects.subject import (
    Subject,
    SubjectError,
    call_factory,
    check_token_ids,
    example_from_factory,
    load_eval,
    load_inputs,
    model_kind,
    resolve_object,
)

__all__ = ["HUB_PREFIXES", "check_subject", "sample_bytes", "subject_from_spec"]

HUB_PREFIXES: tuple[str, ...] = ("hf:", "timm:")
PROBE_BATCH = 2  # an example factory that ignores its batch size shows it at 2


def _probe(model: nn.Module, batch: Batch, names: tuple[str, ...] | None, spec: str) -> object:
    """Run ``model`` once on ``batch``; any failure is one line naming the inputs."""
    check_token_ids(model, batch, names, what=f"model {spec!r}")
    try:
        with torch.inference_mode():
            return model(*batch) if names is None else model(**dict(zip(names, batch, strict=True)))
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SubjectError(
            f"model {spec!r} does not run on its example inputs ({describe(batch, names)}): {first}"
        ) from None


def _factory_subject(spec: str, input_shape: tuple[int, ...] | None, example_spec: str | None) -> Subject:
    factory = resolve_object(spec, what="model")
    if input_shape is None and example_spec is None:
        raise SubjectError(
            f"model {spec!r} is a factory: give its example inputs (a module:callable taking the batch size) "
            "or, for one float tensor, its input shape (e.g. 3,224,224)"
        )
    model = call_factory(factory, spec)
    if example_spec is not None:
        batch, names = example_from_factory(example_spec, PROBE_BATCH)
        example_factory = resolve_object(example_spec, what="example factory")
        if names is not None:
            names = tuple(names)

        def example_fn(n: int) -> Batch:
            return as_batch(example_factory(n), what=f"example factory {example_spec!r}", names=names)[0]

        shape = tuple(int(d) for d in batch[0].shape[1:]) or (1,)
    elif input_shape is not None:
        shape, names, example_fn = input_shape, None, None  # type: ignore[assignment]
        batch = (torch.randn((PROBE_BATCH, *shape)),)
    else:  # unreachable: checked above, kept explicit for the type checker
        raise SubjectError(f"model {spec!r} is a factory: give its example inputs or its input shape")
    out = _probe(model, batch, names, spec)
    try:
        primary_output(out, what=f"model {spec!r}")
    except OutputError as exc:
        raise SubjectError(str(exc)) from None
    adapt = names is not None or not isinstance(out, torch.Tensor)

    def build() -> nn.Module:
        torch.manual_seed(0)  # a factory that draws random weights draws the same ones
        built = call_factory(factory, spec)
        return ModelAdapter(built, names=names).eval() if adapt else built

    return Subject(
        name=spec, family=spec.split(".")[0].split(":")[0], kind=model_kind(model), input_shape=shape,
        build=build, weights="user", example_fn=example_fn, input_names=names, random_calibration=False,
    )  # fmt: skip


def _registry_subject(spec: str, *, plain: bool) -> Subject:
    """A registry model; ``plain``: torchvision's random seeded weights even for a digit model
    (the user's loaders or shape replace the digits')."""
    from inference_scale.subjects.hub import HUB_SUBJECTS
    from inference_scale.subjects.models import get_model, list_models, model_info
    from inference_scale.subjects.trained import TRAINING_EPOCHS, digits_subject

    if spec in HUB_SUBJECTS:
        return HUB_SUBJECTS[spec]()
    if spec in TRAINING_EPOCHS and not plain:
        return digits_subject(spec)  # trained here on real digits, so its records carry accuracy
    try:
        info = model_info(spec)
    except UnknownModelError:
        known = [*(i.name for i in list_models()), *HUB_SUBJECTS]
        raise SubjectError(
            f"{UnknownModelError(spec, known)}; or give hf:DIR, timm:NAME or module:factory for your own model"
        ) from None

    def build() -> nn.Module:
        torch.manual_seed(0)
        return get_model(spec).eval()

    return Subject(name=spec, family=info.family, kind=info.kind, input_shape=info.input_shape, build=build)


def sample_bytes(model: nn.Module, sample: Batch) -> int:
    """Memory one sample needs in an eager forward pass, estimated from shapes alone: its
    inputs plus twice the largest output of any leaf module (an op's input and output are
    alive together; inference mode frees the rest as it goes). Runs ``model`` once on
    ``sample`` (one row; on the meta device nothing is computed)."""
    largest = 0

    def hook(_: nn.Module, __: object, out: object) -> None:
        nonlocal largest
        if isinstance(out, torch.Tensor):
            largest = max(largest, out.numel() * out.element_size())

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        with torch.inference_mode():
            model(*sample)
    finally:
        for h in handles:
            h.remove()
    return sum(t.numel() * t.element_size() for t in sample) + 2 * largest


def check_subject(subject: Subject, *, meta: nn.Module | None = None) -> Subject:
    """The subject's model takes its example inputs: MACs are counted on one sample (on the
    meta device where ``meta`` is given, so a large model is not built twice). Returns the
    subject with its per-sample memory estimate."""
    import dataclasses

    from inference_scale.sizing import count_macs_on

    example = subject.example(1)
    model = meta if meta is not None else subject.build()
    if meta is not None:
        example = tuple(t.to("meta") for t in example)
    count_macs_on(model, example)  # a shape the model cannot take fails here, with its message
    return dataclasses.replace(subject, sample_bytes=sample_bytes(model, example))


def subject_from_spec(
    spec: str,
    *,
    input_shape: tuple[int, ...] | None = None,
    example_spec: str | None = None,
    eval_spec: str | None = None,
    calibration_spec: str | None = None,
    seq_len: int | None = None,
) -> Subject:
    """A checked :class:`Subject` for ``spec`` (see the module docstring), with the eval and
    calibration loaders (``module:callable``) read and checked against its inputs."""
    import dataclasses

    from inference_scale.subjects.hub import HUB_SUBJECTS, hf_subject, timm_subject

    if not isinstance(spec, str) or not spec.strip():
        raise SubjectError(f"a model is a name, hf:DIR, timm:NAME or module:factory, got {spec!r}")
    loaders = (eval_spec, calibration_spec)
    meta: nn.Module | None = None
    if spec.startswith("hf:"):
        subject = hf_subject(spec[3:]) if seq_len is None else hf_subject(spec[3:], seq_len=seq_len)
    elif spec.startswith("timm:"):
        subject = timm_subject(spec[5:])
    elif ":" in spec:
        subject = _factory_subject(spec, input_shape, example_spec)
    else:
        plain = (input_shape, eval_spec, calibration_spec) != (None, None, None)
        subject = _registry_subject(spec, plain=plain)
        if input_shape is not None:  # a registry model at another input shape (a resolution sweep)
            subject = dataclasses.replace(subject, input_shape=input_shape)
        if spec not in HUB_SUBJECTS:
            from inference_scale.subjects.models import get_model

            meta = get_model(spec, device="meta")
    subject = check_subject(subject, meta=meta)
    if loaders == (None, None):
        return subject
    example = subject.example(PROBE_BATCH)
    model = subject.build()
    data = load_eval(eval_spec, example, subject.input_names, model) if eval_spec is not None else None
    calib = load_inputs(calibration_spec, example, subject.input_names) if calibration_spec is not None else None
    return dataclasses.replace(
        subject,
        eval_data=_const(data),
        calibration=_const(calib),
        random_calibration=subject.weights == "random",
        accuracy_dataset=eval_spec,
    )


def _const(value: Any) -> Callable[[], Any]:
    return lambda: value
