"""The console script: help on every subcommand, real output, and one-line errors (exit 2)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from inference_scale.cli.main import build_parser, main

SUBCOMMANDS = sorted(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]


@pytest.mark.parametrize("argv", [["--help"], *[[c, "--help"] for c in SUBCOMMANDS]])
def test_every_subcommand_has_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 0
    assert "usage: inference-scale" in capsys.readouterr().out


def test_pick_and_info(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pick"]) == 0
    names = [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()]
    assert names == ["efficientnet_v2_s", "resnet50", "swin_t"]
    assert main(["info", "swin_t"]) == 0
    assert json.loads(capsys.readouterr().out)["kind"] == "transformer"


def test_size_reports_params_macs_bytes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["size", "lenet"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["macs"] == out["macs_metadata"] and out["flops"] == 2 * out["macs"]
    assert out["bytes"] > 4 * out["params"]


def test_models_table_lists_filtered_models(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--family", "swin", "--json"]) == 0
    names = {m["name"] for m in json.loads(capsys.readouterr().out)}
    assert names == {"swin_t", "swin_s", "swin_b", "swin_v2_t", "swin_v2_s", "swin_v2_b"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["info", "resnt50"], "did you mean: resnet50"),
        (["models", "--family", "resnets"], "valid choices:"),
        (["pick", "--min-params", "1", "--max-params", "2"], "widen the range"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_module_entry_point_runs() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "inference_scale.cli.main", "info", "nope"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2 and "unknown model 'nope'" in proc.stderr
