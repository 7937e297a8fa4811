"""``inference-scale bench`` and ``inference-scale states`` from the shell: a user's model in
chosen states, saved and tabled; bad input is one line and exit 2, before any benchmark."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from inference_scale.cli.main import main
from inference_scale.measure.record import validate_extra_info
from tests.test_plugin import USER_MODULE


@pytest.fixture(scope="module")
def user_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("user")
    (root / "benchpkg").mkdir()
    (root / "benchpkg" / "__init__.py").write_text("")
    (root / "benchpkg" / "mod.py").write_text(USER_MODULE)
    return root


def test_bench_help_shows_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "PYTHONPATH=. inference-scale bench mypkg.mod:build --input-shape 3,32,32" in out
    for flag in ("--states", "--batch-size", "--input-shape", "--eval", "--calibration", "--device", "--threads"):
        assert flag in out


def test_states_lists_the_registry(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["states", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    slugs = [s["slug"] for s in listed]
    assert slugs[0] == "fp32" and "prune-channels-{pct}" in slugs and "int8-static" in slugs
    assert all(s["summary"] and s["family"] for s in listed)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--states", "fp32,prune-chanels-50"], "did you mean: prune-channels-50"),
        (["--states", "fp32,int8-static"], "needs calibration data for benchpkg.mod:build"),
        (["--input-shape", "3,,x"], "input shape '3,,x' is not valid"),
        (["--input-shape", "1,16,16"], "does not run on its example inputs (0 (2, 1, 16, 16) float32)"),
        (["--eval", "benchpkg.mod:wrong_shape"], "inputs are (4, 3, 20, 20), the model takes (batch, 3, 16, 16)"),
        (["--eval", "benchpkg.mod"], "write module:callable"),
        (["--batch-size", "0"], "--batch-size: batch size 0 is not valid"),
    ],
)
def test_bad_input_exits_2_in_one_line(
    user_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    monkeypatch.syspath_prepend(str(user_dir))
    base = {"--input-shape": "3,16,16", "--states": "fp32"}
    given = dict(zip(args[::2], args[1::2], strict=True))
    flat = [x for k, v in {**base, **given}.items() for x in (k, v)]
    assert main(["bench", "benchpkg.mod:build", *flat]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err


def test_bench_a_factory_without_its_shape_or_with_an_unwritable_json(
    user_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.syspath_prepend(str(user_dir))
    assert main(["bench", "benchpkg.mod:build"]) == 2
    assert "give its example inputs" in capsys.readouterr().err
    blocker = user_dir / "a-file"
    blocker.write_text("")
    assert main(["bench", "lenet", "--json", str(blocker / "out.json")]) == 2
    assert "--json" in capsys.readouterr().err
    assert main(["bench", "lenett"]) == 2
    assert "did you mean: lenet" in capsys.readouterr().err


@pytest.mark.slow
def test_bench_runs_a_users_model_from_the_shell(user_dir: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(user_dir), "INFERENCE_SCALE_REFERENCE_SECONDS": "0"}
    cmd = [
        sys.executable, "-m", "inference_scale.cli.main", "bench", "benchpkg.mod:build", "--input-shape", "3,16,16",
        "--states", "fp32,bf16,int8-static,prune-channels-50", "--eval", "benchpkg.mod:val", "--json", "out.json",
        "--batch-size", "4", "--no-compile", "--storage", str(tmp_path / "storage"),
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads((tmp_path / "out.json").read_text())
    records = [validate_extra_info(b["extra_info"]) for b in data["benchmarks"]]
    states = [r["state"] for r in records]
    assert states[0] == "fp32" and {"int8-static", "prune-channels-50"} <= set(states)
    assert all("accuracy" in r for r in records)
    assert all("cosine_vs_fp32" in r for r in records if r["state"] != "fp32")
    assert list((tmp_path / "storage").rglob("0001_*.json")), "the run is saved like the main job's"
    assert "prune-channels-50" in proc.stdout and "speedup" in proc.stdout  # the report table


@pytest.mark.slow
def test_bench_runs_peers_and_a_compound_with_seeds(tmp_path: Path) -> None:
    """LeNet from the registry comes trained on the digits: every state has accuracy; the other
    runtimes record their name, version and artifact; kd trains once per seed."""
    env = {**os.environ, "INFERENCE_SCALE_REFERENCE_SECONDS": "0"}
    cmd = [
        sys.executable, "-m", "inference_scale.cli.main", "bench", "lenet", "--states",
        "fp32,prune-channels-50+kd,ort-fp32,ov-int8", "--batch-size", "50", "--seeds", "2", "--no-compile",
        "--json", "out.json", "--storage", str(tmp_path / "storage"),
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    records = {
        b["extra_info"]["state"]: b["extra_info"] for b in json.loads((tmp_path / "out.json").read_text())["benchmarks"]
    }
    assert set(records) == {"fp32", "prune-channels-50+kd", "ort-fp32", "ov-int8"}
    assert records["fp32"]["weights"] == "trained:mnist" and records["fp32"]["accuracy"] > 0.9
    assert records["fp32"]["runtime"] == "torch"
    for slug, runtime in (("ort-fp32", "onnxruntime"), ("ov-int8", "openvino")):
        rec = records[slug]
        assert rec["runtime"] == runtime and rec["runtime_version"] and rec["artifact_bytes"] == rec["bytes"] > 0
        assert rec["accuracy"] > 0.9 and rec["cosine_vs_fp32"] > 0.99
    kd = records["prune-channels-50+kd"]
    assert len(kd["accuracy_seeds"]) == 2 and kd["accuracy"] == pytest.approx(sum(kd["accuracy_seeds"]) / 2)
    assert [s["state"] for s in kd["steps"]] == ["prune-channels-50", "kd"]
    assert kd["steps"][0]["params"] < records["fp32"]["params"] and kd["steps"][1]["params"] == kd["params"]
    assert "fastest lenet b50:" in proc.stdout
