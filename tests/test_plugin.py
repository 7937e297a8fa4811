"""The pytest plugin from a user's side: a temporary repo holding only a small model and an
eval loader, benchmarked through ``--is-*`` options (pytester, in a subprocess, as a user runs
it), and each kind of bad input as a one-line usage error before any work."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

# Imported before any in-process pytester run, which restores sys.modules afterwards: torch's
# extensions and operator libraries cannot be loaded a second time in one process.
from inference_scale.measure.record import validate_extra_info

USER_MODULE = """
import torch
from torch import nn


def build():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 4),
    ).eval()


def val():
    # Labels the model itself gives, then a quarter of them changed: fp32 accuracy is 0.75.
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 3, 16, 16, generator=g)
    with torch.no_grad():
        y = build()(x).argmax(1)
    y[::4] = (y[::4] + 1) % 4
    return [(x[i : i + 16], y[i : i + 16]) for i in range(0, 64, 16)]


def wrong_shape():
    return [(torch.randn(4, 3, 20, 20), torch.zeros(4, dtype=torch.long))]


def too_many_classes():
    return [(torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 9]))]


not_a_function = 3


def not_a_model():
    return "a model"
"""

STATES = "fp32,channels-last,int8-static,prune-channels-50,prune-l1-50"


@pytest.fixture
def user_repo(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    pkg = pytester.mkpydir("mypkg")
    (pkg / "mod.py").write_text(USER_MODULE)
    monkeypatch.setenv("PYTHONPATH", str(pytester.path))
    return pytester


def _run(repo: pytest.Pytester, *args: str) -> pytest.RunResult:
    return repo.runpytest_subprocess("-p", "no:cacheprovider", "--is-reference-seconds=0", *args, timeout=600)


def test_a_users_model_is_benchmarked_in_each_state(user_repo: pytest.Pytester, tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    result = _run(
        user_repo, "--benchmark-only", "--is-model", "mypkg.mod:build", "--is-input-shape", "3,16,16",
        "--is-states", STATES, "--is-eval", "mypkg.mod:val", "--is-batch-size", "4", "--is-no-compile",
        f"--benchmark-json={out}", "--benchmark-min-rounds=2", "--benchmark-max-time=0.001",
    )  # fmt: skip
    assert result.ret == 0, result.stdout.str()[-3000:]
    data: dict[str, Any] = json.loads(out.read_text())
    records = {b["extra_info"]["state"]: validate_extra_info(b["extra_info"]) for b in data["benchmarks"]}
    assert list(records) == STATES.split(",")  # fp32 first, then the states in the order asked
    for state, rec in records.items():
        assert rec["model"] == "mypkg.mod:build" and rec["batch_size"] == 4 and rec["weights"] == "user"
        assert 0.0 <= rec["accuracy"] <= 1.0 and rec["accuracy_images"] == 64, state
        if state == "fp32":
            assert rec["accuracy"] == 0.75 and "cosine_vs_fp32" not in rec
        else:
            assert -1.0 <= rec["cosine_vs_fp32"] <= 1.0 and 0.0 <= rec["top1_agreement"] <= 1.0, state
    assert records["channels-last"]["top1_agreement"] == 1.0
    assert records["int8-static"]["dtype"] == "int8" and records["int8-static"]["compiled"] is False
    assert records["int8-static"]["bytes"] < records["fp32"]["bytes"] / 2
    assert records["prune-channels-50"]["macs"] < records["fp32"]["macs"] / 2
    assert records["prune-l1-50"]["nonzero_params"] < 0.6 * records["fp32"]["params"]
    info = data["machine_info"]["inference_scale"]
    assert info["threads"] == 1 and info["device"] == "cpu"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--is-states", "fp32,int8-statc"], "unknown state 'int8-statc'; did you mean: int8-static"),
        (["--is-states", "int8-static"], "needs calibration data for mypkg.mod:build"),
        (["--is-model", "mypkg.nope:build"], "no module named 'mypkg.nope'"),
        (["--is-model", "mypkg.mod:buidl"], "has no attribute 'buidl'; its callables: build"),
        (["--is-model", "mypkg.mod:not_a_function"], "is a int, not a callable"),
        (["--is-model", "mypkg.mod:not_a_model"], "returned a str, not an nn.Module"),
        (["--is-input-shape", "3,16,sixteen"], "input shape '3,16,sixteen' is not valid"),
        (["--is-eval", "mypkg.mod:wrong_shape"], "inputs are (4, 3, 20, 20), the model takes"),
        (["--is-eval", "mypkg.mod:too_many_classes"], "targets span 0..9, but the model gives 4 classes"),
    ],
)
def test_bad_input_is_a_one_line_usage_error(user_repo: pytest.Pytester, args: list[str], message: str) -> None:
    base = {"--is-model": "mypkg.mod:build", "--is-input-shape": "3,16,16", "--is-states": "fp32"}
    given = dict(zip(args[::2], args[1::2], strict=True))
    flat = [x for k, v in {**base, **given}.items() for x in (k, v)]
    # In process (a subprocess would cost seconds of imports per case); the full run above is
    # the subprocess one.
    user_repo.syspathinsert()
    result = user_repo.runpytest_inprocess("-p", "no:cacheprovider", "--collect-only", *flat)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert message in err, err
    assert "Traceback" not in err and len([ln for ln in err.splitlines() if ln.strip()]) == 1
