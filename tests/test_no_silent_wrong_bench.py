"""Issue 20's items that live in the benchmark runner, the plugin and ``bench``: a case whose
outputs are not finite fails before it is timed and is never saved; ``--json`` is written
atomically (a full disk keeps the old file) into folders the check predicted; options and
environment variables are checked once, each bad value a one-line usage error naming where it
came from; a batch too large for this machine is refused before work; a factory that exits or
prints is one line; a device that is not here is refused up front."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

# Imported before any in-process pytester run, which restores sys.modules afterwards.
from inference_scale.cli.main import main
from tests.test_full_disk import _full_disk

USER_MODULE = """
import sys
import torch
from torch import nn


def build():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 4)).eval()


def nan_eval():
    x = torch.full((8, 3, 2, 2), float("nan"))
    return [(x, torch.zeros(8, dtype=torch.long))]


def string_targets():
    return [(torch.randn(4, 3, 2, 2), ["a", "b", "c", "d"])]


def empty_batches():
    return [(torch.randn(0, 3, 2, 2), torch.zeros(0, dtype=torch.long))]


def exits():
    sys.exit(3)


def loud():
    print("usage: something\\n" * 50)
    raise SystemExit(2)
"""


@pytest.fixture
def user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    pkg = tmp_path / "nanpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "mod.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("INFERENCE_SCALE_REFERENCE_SECONDS", "0")
    return tmp_path


BASE = ["bench", "nanpkg.mod:build", "--input-shape", "3,2,2", "--batch-size", "4"]


def test_a_case_with_non_finite_outputs_fails_before_timing_and_is_not_saved(
    user: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # items 1 and 2: before, both cases were timed, saved and reported, the NaN cosine as 1.00000
    out, storage = user / "nan.json", user / "store"
    code = main([*BASE, "--states", "fp32,prune-l1-50", "--eval", "nanpkg.mod:nan_eval", "--json", str(out),
                 "--storage", str(storage)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and "2 case(s) failed and were not saved" in err and "non-finite values" in err
    assert not out.exists() and not list(storage.rglob("*.json"))


def test_json_is_atomic_on_a_full_disk(
    user: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # item 4: before, a full disk left 65,536 bytes of invalid JSON where a good out.json was
    with _full_disk(tmp_path, monkeypatch) as (folder, fill):
        out = folder / "out.json"
        out.write_text('{"benchmarks": []}\n')
        fill()
        code = main([*BASE, "--states", "fp32", "--json", str(out), "--storage", str(user / "store")])
        assert code != 0
        assert out.read_text() == '{"benchmarks": []}\n'
        assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]
    capsys.readouterr()


def test_json_parents_are_created_and_an_unwritable_target_is_refused_first(
    user: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # item 5: before, both passed the check and lost the run at the end
    out = user / "missing" / "sub" / "out.json"
    assert main([*BASE, "--states", "fp32", "--json", str(out), "--storage", str(user / "store")]) == 0
    assert json.loads(out.read_text())["benchmarks"]
    capsys.readouterr()
    assert main([*BASE, "--states", "fp32", "--json", "/proc/x.json"]) == 2
    err = capsys.readouterr().err
    assert "--json path /proc" in err and "cannot write" in err and "\n" not in err.strip()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--eval", "nanpkg.mod:string_targets"], "batch 0 targets are not integer class indices"),  # item 15
        (["--eval", "nanpkg.mod:empty_batches"], "has 0 rows"),  # item 15
        (["--batch-size", "²"], "--batch-size: batch size '²' is not valid"),  # item 14
        (["--batch-size", "10000000000"], "the largest batch that fits is about"),  # item 16
        (["--device", "cuda"], "--device: device 'cuda' is not available on this machine"),  # item 22
    ],
)
def test_bench_bad_input_is_one_line_before_work(
    user: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if "cuda" in args:
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has a GPU")
    given = dict(zip(BASE[2::2], BASE[3::2], strict=True)) | {"--states": "fp32"}
    given |= dict(zip(args[::2], args[1::2], strict=True))
    flat = [x for k, v in given.items() for x in (k, v)]
    assert main(["bench", "nanpkg.mod:build", *flat]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err


def test_a_resnet_batch_that_cannot_fit_names_the_largest_that_would(capsys: pytest.CaptureFixture[str]) -> None:
    # item 16: before, an 11 s run ended in a 60 GB allocation traceback inside pytest
    assert main(["bench", "resnet50", "--states", "fp32", "--batch-size", "100000"]) == 2
    err = capsys.readouterr().err.strip()
    assert "batch size 100000 of resnet50 needs about" in err and "largest batch that fits is about" in err


@pytest.mark.parametrize(
    ("factory", "shown"), [("nanpkg.mod:exits", "SystemExit: 3"), ("nanpkg.mod:loud", "SystemExit")]
)
def test_a_factory_that_exits_or_prints_is_one_line(
    user: Path, factory: str, shown: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # item 19: before, sys.exit(3) ended bench silently with exit 3, and a CLI as MODEL printed 197 lines
    assert main(["bench", factory, "--input-shape", "3,2,2"]) == 2
    captured = capsys.readouterr()
    assert shown in captured.err and len(captured.err.strip().splitlines()) == 1 and captured.out == ""


def test_a_bad_reference_seconds_variable_spares_unrelated_sessions(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # item 13: before, =abc broke every pytest session (exit 3), =1e9 hung, =-1 named a flag
    pytester.makepyfile(test_plain="def test_ok():\n    assert True\n")
    monkeypatch.setenv("INFERENCE_SCALE_REFERENCE_SECONDS", "abc")
    plain = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", timeout=120)
    assert plain.ret == 0, plain.stdout.str()
    for value, message in (("abc", "is not a number"), ("1e9", "must be within 0..60"), ("-1", "must be within")):
        monkeypatch.setenv("INFERENCE_SCALE_REFERENCE_SECONDS", value)
        used = pytester.runpytest_subprocess(
            "-p", "no:cacheprovider", "--is-model", "lenet", "--is-states", "fp32", "--collect-only", timeout=120
        )
        err = used.stderr.str()
        assert used.ret == pytest.ExitCode.USAGE_ERROR and "INFERENCE_SCALE_REFERENCE_SECONDS" in err and message in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--is-batch-size", "²"], "--is-batch-size: batch size '²' is not valid"),
        (["--is-eval", "nanpkg.mod:string_targets"], "targets are not integer class indices"),
        (["--is-eval", "nanpkg.mod:empty_batches"], "has 0 rows"),
    ],
)
def test_plugin_bad_values_are_usage_errors_not_internal_errors(
    user: Path, pytester: pytest.Pytester, args: list[str], message: str
) -> None:
    # item 14: before, each ended in INTERNALERROR with exit 3
    pytester.syspathinsert(user)
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "--collect-only", "--is-model", "nanpkg.mod:build", "--is-input-shape", "3,2,2",
        "--is-states", "fp32", *args,
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str() and "INTERNALERROR" not in result.stdout.str()


def test_the_cache_falls_back_when_its_folder_cannot_be_made(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # item 17: the digit models' cache beside a read-only (here: impossible) folder
    from inference_scale.subjects import trained

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setattr(trained, "CACHE_DIR", blocker / "cache")
    fallback = trained.cache_dir()
    assert fallback != blocker / "cache" and os.access(fallback.parent, os.W_OK)


def test_every_case_skipped_is_said_with_the_reasons(
    user: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # item 22: before, a run where every case skipped ended in "cannot read" a temporary run.json
    import inference_scale.measure.suite as suite

    monkeypatch.setattr(suite, "skip_reason", lambda *_args: "not on this test machine")
    out = user / "out.json"
    code = main([*BASE, "--states", "fp32", "--json", str(out), "--storage", str(user / "store")])
    err = capsys.readouterr().err
    assert code == 1 and "every case skipped" in err and "not on this test machine" in err, err
    assert "cannot read" not in err and "Traceback" not in err and not out.exists()


def test_a_run_from_a_folder_where_the_cache_cannot_be_made_still_caches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # item 17: before, a run where .cache/inference-scale cannot be made (a read-only folder;
    # here, as root, a file named .cache) trained LeNet, then failed writing its cache
    from inference_scale.subjects import trained

    monkeypatch.chdir(tmp_path)
    (tmp_path / ".cache").write_text("a file, not a folder")
    fallback = tmp_path / "tmp"
    fallback.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(fallback))
    monkeypatch.setattr(trained, "train", lambda model, *_args, **_kwargs: model)  # the write is the point
    trained.trained_model.cache_clear()
    try:
        model = trained.trained_model("lenet")
    finally:
        trained.trained_model.cache_clear()
    assert isinstance(model, torch.nn.Module)
    assert (tmp_path / ".cache").read_text() == "a file, not a folder"
    assert [p.suffix for p in fallback.rglob("*.pt")] == [".pt"]
