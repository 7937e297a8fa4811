"""Bad input found by trying the library and the CLI as a new user would: each case is one
clean line (a ValueError/TypeError/FileNotFoundError subclass, or exit 2), checked before any
long work, and nothing is lost or left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from inference_scale.atomic import stale_temp_files
from inference_scale.cli.main import main
from inference_scale.errors import InferenceScaleError, InvalidOptionError, MacCountError
from inference_scale.sizing import count_macs
from inference_scale.subjects.data import EmptyDatasetError, Split, load_dataset
from inference_scale.subjects.models import get_model
from inference_scale.subjects.train import train
from inference_scale.techniques.prune import InvalidAmountError, PruneRule, prune_by_type, prune_channels, prune_global
from inference_scale.techniques.quantize import choose_qparams
from inference_scale.techniques.sparse_io import load_sparse, save_sparse


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def _one_line(err: str) -> bool:
    return len(err.strip().splitlines()) == 1


# --- integer pruning amounts -------------------------------------------------------------------


@pytest.fixture(scope="module")
def lenet() -> nn.Module:
    torch.manual_seed(0)
    return get_model("lenet")


def test_integer_one_is_refused_not_read_as_a_count(lenet: nn.Module) -> None:
    """torch reads amount=1 as "one weight": before, prune_global(model, 1) pruned one weight."""
    with pytest.raises(InvalidAmountError, match=r"integer 1 .* write 1\.0"):
        prune_global(lenet, 1)
    with pytest.raises(InvalidAmountError, match="integer"):
        prune_by_type(lenet, {nn.Conv2d: ("l1", 1)})
    rule = PruneRule("l1", np.float32(0.5))  # a numpy float is a fraction: stored as a Python float
    assert type(rule.amount) is float and rule.amount == 0.5


@settings(max_examples=50, deadline=None)
@given(st.one_of(st.integers(), st.integers(-(2**31), 2**31).map(np.int64)))
def test_every_integer_amount_is_refused(lenet: nn.Module, amount: int) -> None:
    for call in (
        lambda: prune_global(lenet, amount),
        lambda: prune_by_type(lenet, {nn.Linear: ("random", amount)}),
        lambda: PruneRule("l1", amount),
    ):
        with pytest.raises(InvalidAmountError):
            call()
    with pytest.raises(InvalidAmountError):
        prune_channels(lenet, amount, example_inputs=torch.zeros(1, 1, 28, 28))


@settings(max_examples=30, deadline=None)
@given(st.floats(0.0, 1.0))
def test_a_float_fraction_prunes_that_share(lenet: nn.Module, amount: float) -> None:
    pruned = prune_global(lenet, amount)
    weights = [m.weight for m in pruned.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    total = sum(w.numel() for w in weights)
    zeros = sum(int((w == 0).sum()) for w in weights)
    assert zeros == round(amount * total)  # torch's own rounding of a fraction


# --- library: empty and wrong-typed inputs ----------------------------------------------------------


def test_empty_inputs_name_the_problem(lenet: nn.Module) -> None:
    with pytest.raises(InvalidOptionError, match="layers"):
        prune_global(lenet, 0.5, layers=[])
    empty = Split("empty", torch.zeros(0, 1, 28, 28), torch.zeros(0, dtype=torch.long), torch.zeros(1, 1, 28, 28),
                  torch.zeros(1, dtype=torch.long), num_classes=10)  # fmt: skip
    with pytest.raises(ValueError, match="no training images"):
        train(lenet, empty, epochs=1, progress=False)
    with pytest.raises(TypeError, match=r"not a tensor; for a batch x pass tuple\(x.shape\[1:\]\)"):
        count_macs(lenet, torch.zeros(1, 1, 28, 28))  # type: ignore[arg-type]


def test_an_input_too_large_for_memory_is_a_mac_count_error(lenet: nn.Module) -> None:
    with pytest.raises(MacCountError, match=r"does not run on input \(1, 1000000, 1000000\)"):
        count_macs(lenet, (1, 10**6, 10**6))
    assert issubclass(MacCountError, ValueError) and issubclass(MacCountError, InferenceScaleError)


def test_numpy_integers_are_integers() -> None:
    x = torch.linspace(-1, 1, 11)
    a, b = choose_qparams(x, bits=np.int64(8)), choose_qparams(x, bits=8)
    assert a.bits == 8 and type(a.bits) is int and torch.equal(a.scale, b.scale)
    with pytest.raises(ValueError, match="bits must be an integer"):
        choose_qparams(x, bits=np.float64(8.0))  # type: ignore[arg-type]


def test_empty_hugging_face_dataset(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_dict({"img": [], "label": []}).save_to_disk(str(tmp_path / "empty"))
    with pytest.raises(EmptyDatasetError, match="no rows"):
        load_dataset("hf", root=tmp_path / "empty")
    (tmp_path / "not-a-dataset").mkdir()
    with pytest.raises(FileNotFoundError, match="not a Hugging Face dataset saved with save_to_disk"):
        load_dataset("hf", root=tmp_path / "not-a-dataset")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dataset("hf", root=tmp_path / "missing")


def test_a_train_fraction_too_small_for_the_split() -> None:
    with pytest.raises(EmptyDatasetError, match=r"use at least 0\.0031"):
        load_dataset("mnist", train_fraction=0.001)


# --- the CLI ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["size", "lenet", "--resolution", "32"], "LeNet does not run on input (1, 32, 32)"),
        (["size", "vit_b_16", "--resolution", "100", "--no-bytes"], "VisionTransformer does not run on input"),
        (["size", "resnet18", "--resolution", "1000000"], "out of range; valid: an integer in [1, 4096]"),
        (["size", "resnet18", "--resolution", "0"], "out of range"),
    ],
)
def test_size_errors_are_one_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code, err = _cli(argv, capsys)
    except SystemExit as exc:  # argparse's usage error: usage line + error line, exit 2
        code, err = int(exc.code or 0), capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err


def test_distill_checks_everything_before_training(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Each of these used to fail after minutes of training, or not at all: now in seconds."""
    regular = tmp_path / "file.txt"
    regular.write_text("x")
    cases = [
        (["--json", str(regular / "out.json")], f"{regular} is a file, not a folder"),
        (["--json", str(tmp_path)], "is a folder"),
        (["--train-fraction", "0.001"], "use at least 0.0031"),
        (["--dataset", "cifar10"], "give its root (--root DIR)"),
        (["--dataset", "cifar10", "--root", str(tmp_path / "nowhere")], "CIFAR-10 is not under"),
        (["--dataset", "hf", "--root", str(tmp_path)], "not a Hugging Face dataset"),
        (["--dataset", "mnist", "--root", str(tmp_path)], "root is only for cifar10, hf"),
        (["--student", "lenett"], "did you mean: lenet"),
        (["--cache-dir", str(regular)], "is a file, not a folder"),
    ]
    for extra, message in cases:
        code, err = _cli(["distill", "--quiet", "--seeds", "1", *extra], capsys)
        assert code == 2 and message in err and _one_line(err), (extra, err)


def test_distill_reaches_on_disk_datasets_through_root(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--root reaches the library's loaders: a Hugging Face dataset saved to disk trains end to
    end, and CIFAR-10 files that fail the published md5 sums are refused by name."""
    datasets = pytest.importorskip("datasets")
    digits = load_dataset("mnist")
    raw = ((digits.x_train[:200] * digits.std + digits.mean) * 255).round().clamp(0, 255).to(torch.uint8)
    datasets.Dataset.from_dict(
        {"img": raw[:, 0].numpy().tolist(), "label": digits.y_train[:200].tolist()}
    ).save_to_disk(str(tmp_path / "hf"))
    out = tmp_path / "result.json"
    argv = ["distill", "--dataset", "hf", "--root", str(tmp_path / "hf"), "--seeds", "1", "--epochs", "1",
            "--teacher-epochs", "1", "--train-fraction", "0.5", "--no-cache", "--quiet",
            "--json", str(out)]  # fmt: skip
    code, err = _cli(argv, capsys)
    assert code == 0, err
    assert json.loads(out.read_text())["config"]["root"] == str(tmp_path / "hf")
    from tests.test_loaders import _write_cifar

    _write_cifar(tmp_path / "cifar")
    code, err = _cli(["distill", "--dataset", "cifar10", "--root", str(tmp_path / "cifar"), "--quiet"], capsys)
    assert code == 2 and "corrupted" in err and _one_line(err)


def test_compare_on_a_run_without_machine_info(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = {"machine_info": None, "benchmarks": [{"name": "t", "fullname": "t", "stats": {"median": 0.1}}]}
    path = tmp_path / "run.json"
    path.write_text(json.dumps(run))
    assert main(["compare", str(path), str(path)]) == 0
    assert "no machine_info" in capsys.readouterr().out


def test_unexpected_errors_are_one_line_with_a_hint(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A failure of ours (here: our own registry lookup made to fail) is exit 1, one line, and
    says how to see the traceback; --debug shows it."""
    import inference_scale.subjects.models as models

    def broken(name: str) -> None:
        raise RuntimeError("registry exploded")

    monkeypatch.setattr(models, "model_info", broken)
    code, err = _cli(["info", "lenet"], capsys)
    assert code == 1 and "RuntimeError: registry exploded" in err and "--debug" in err and _one_line(err)
    with pytest.raises(RuntimeError, match="registry exploded"):
        main(["info", "lenet", "--debug"])


# --- a writer killed mid-write -------------------------------------------------------------------------

WRITER = """
import sys, torch
from torch import nn
from inference_scale.techniques.sparse_io import save_sparse
torch.manual_seed(1)  # the same weights as the test's file: any whole file must equal them exactly
model = nn.Sequential(*[nn.Linear(1024, 1024) for _ in range(10)])  # 40 MB of fp32 weights
print("ready", flush=True)
while True:
    save_sparse(model, sys.argv[1])
"""


def test_sigkill_during_save_sparse_keeps_the_old_file_and_leaves_no_junk(tmp_path: Path) -> None:
    target = tmp_path / "model.sparse"
    torch.manual_seed(1)
    old = nn.Sequential(*[nn.Linear(1024, 1024) for _ in range(10)])
    save_sparse(old, target)
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    killed_mid_write = 0
    for attempt in range(3):
        proc = subprocess.Popen([sys.executable, str(script), str(target)], stdout=subprocess.PIPE)
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob(".model.sparse.*.tmp")) and time.monotonic() < deadline:
            time.sleep(0.001)
        time.sleep(0.02 * attempt)  # land the kill at different points of the write
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        leftovers = stale_temp_files(target)
        killed_mid_write += bool(leftovers)
        restored = load_sparse(target, model=old)  # the target is always a whole file, never half of one
        assert all(
            torch.equal(a, b) for a, b in zip(old.state_dict().values(), restored.state_dict().values(), strict=True)
        )
    assert killed_mid_write >= 1, "no kill landed during a write; the test proved nothing"
    save_sparse(old, target)  # the next write sweeps what the killed writers left
    assert not list(tmp_path.glob(".model.sparse.*")), list(tmp_path.iterdir())
    restored = load_sparse(target, model=old)
    for (name, a), b in zip(old.state_dict().items(), restored.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
