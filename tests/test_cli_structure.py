"""The command line's shape (issue 21): one module per command, shared flags declared once with
one default and help text everywhere (the CLI and the plugin), one error rule under both, and a
quiet, torch-free ``--help``."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from _pytest.config.argparsing import Parser

import inference_scale.cli
from inference_scale.cli.main import COMMANDS, build_parser, main
from inference_scale.errors import InferenceScaleError
from inference_scale.measure import plugin
from inference_scale.options import SHARED
from inference_scale.states import CompositionError, UnknownStateError

CLI_DIR = Path(inference_scale.cli.__file__).parent


def _subparsers() -> dict[str, object]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return dict(action.choices)  # type: ignore[attr-defined]


def test_every_command_lives_in_its_own_module() -> None:
    subs = _subparsers()
    assert set(subs) == set(COMMANDS)
    for name in COMMANDS:
        module = importlib.import_module(f"inference_scale.cli.{name}")
        assert Path(module.__file__ or "").parent == CLI_DIR
        assert callable(module.add) and callable(module.run), name
        assert subs[name].get_default("func") is module.run, name  # type: ignore[attr-defined]


def _option(parser: object, flag: str) -> object | None:
    return next((a for a in parser._actions if flag in a.option_strings), None)  # type: ignore[attr-defined]


# A command's own flag that shares a name with a shared one, and why it is not the shared one.
OWN_NAMESAKES = {
    ("distill", "alpha"): "the weight of the soft (teacher) term of the KD loss, not a significance level",
    ("distill", "seeds"): "seeds of the distillation experiment (its own default), not of a bench state",
}


def test_shared_flags_have_one_default_and_one_help_everywhere() -> None:
    seen: dict[str, list[str]] = {}
    for name, sub in _subparsers().items():
        for flag in SHARED.values():
            action = _option(sub, f"--{flag.name}")
            if action is None:
                continue
            if getattr(action, "shared_flag", None) != flag.name:
                assert (name, flag.name) in OWN_NAMESAKES, f"{name} declares --{flag.name} itself"
                continue
            seen.setdefault(flag.name, []).append(name)
            assert action.help == flag.help, (name, flag.name)  # type: ignore[attr-defined]
            default = action.default  # type: ignore[attr-defined]
            assert default == (False if flag.action == "store_true" else flag.default), (name, flag.name)
    pytest_parser = Parser(_ispytest=True)
    plugin.pytest_addoption(pytest_parser)
    options = {o.names()[0]: o for g in pytest_parser._groups for o in g.options}
    from inference_scale.measure.plan import Plan

    plan_defaults = Plan().options  # None: make_plan's defaults are the DEFAULTS themselves
    assert plan_defaults is None
    for flag in SHARED.values():
        if flag.plugin:
            option = options[f"--is-{flag.name}"]
            assert option.attrs()["help"] == flag.help, flag.name
            assert option.attrs()["default"] is None  # given or not; make_plan resolves the default
            seen.setdefault(flag.name, []).append("plugin")
        assert seen.get(flag.name), f"--{flag.name} is declared but no command uses it"


def _fresh(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.parametrize("argv", [["--help"], ["bench", "--help"], ["compare", "--help"], ["distill", "--help"]])
def test_help_loads_no_torch(argv: list[str]) -> None:
    done = _fresh(
        "import sys\nfrom inference_scale.cli.main import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "NO-TORCH"


def _warning_lines(text: str) -> list[str]:
    """Lines that are warnings: Python's (``...Warning:``), pytest's summary, torch's logging."""
    pattern = re.compile(r"Warning\b|warnings summary|^[WE]\d{4} \d\d:\d\d")
    return [line for line in text.splitlines() if pattern.search(line)]


def _cli(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("inference-scale")
    return subprocess.run([str(exe), *argv], capture_output=True, text=True, cwd=cwd, timeout=900, check=False)


def test_states_bench_with_int8_report_and_compare_print_no_warning(tmp_path: Path) -> None:
    states = _cli("states", cwd=tmp_path)
    assert states.returncode == 0 and not _warning_lines(states.stdout + states.stderr), states.stderr
    bench = _cli(
        "bench", "lenet", "--states", "fp32,int8-static", "--batch-size", "1", "--json", "run.json", cwd=tmp_path
    )
    assert bench.returncode == 0, bench.stderr
    assert not _warning_lines(bench.stdout + bench.stderr), bench.stdout + bench.stderr
    assert "Wrote benchmark data" not in bench.stderr and "inference-scale-bench-" not in bench.stderr
    assert "configfile: pyproject.toml" not in bench.stdout  # never the project's own pytest config
    data = json.loads((tmp_path / "run.json").read_text())
    assert {b["extra_info"]["state"] for b in data["benchmarks"]} == {"fp32", "int8-static"}
    (tmp_path / "again.json").write_text((tmp_path / "run.json").read_text())
    # report and compare on saved runs: no warning, and no torch in the process
    for argv in (["report", "run.json"], ["compare", "run.json", "again.json"]):
        done = _fresh(
            "import sys, os\nos.chdir(sys.argv[-1]) if False else None\n"
            f"os.chdir({str(tmp_path)!r})\nfrom inference_scale.cli.main import main\n"
            f"code = main({argv!r})\nprint('TORCH' if 'torch' in sys.modules else 'NO-TORCH', code)"
        )
        assert done.stdout.strip().splitlines()[-1].startswith("NO-TORCH"), (argv, done.stdout, done.stderr)
        assert not _warning_lines(done.stdout + done.stderr), (argv, done.stderr)


# One bad option of each error class, through the CLI and through the plugin: the same one line.
ERROR_CASES = [
    (UnknownStateError, ["--states", "fp32,int8-statc"], ["--is-states", "fp32,int8-statc"], "unknown state"),
    (CompositionError, ["--states", "int8-static+prune-channels-50"], ["--is-states", "int8-static+prune-channels-50"],
     "can only come last"),
    (InferenceScaleError, ["--batch-size", "0"], ["--is-batch-size", "0"], "batch size 0 is not valid"),
]  # fmt: skip


@pytest.mark.parametrize(("error", "cli_args", "plugin_args", "message"), ERROR_CASES)
def test_a_bad_option_is_the_same_one_line_under_the_cli_and_pytest(
    error: type[Exception],
    cli_args: list[str],
    plugin_args: list[str],
    message: str,
    pytester: pytest.Pytester,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(error, match=message):  # --debug re-raises the usage error itself
        main(["bench", "lenet", *cli_args, "--debug"])
    assert issubclass(error, InferenceScaleError)
    assert main(["bench", "lenet", *cli_args]) == 2
    cli_err = capsys.readouterr().err.strip()
    assert len(cli_err.splitlines()) == 1 and message in cli_err and "Traceback" not in cli_err
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--collect-only", "--is-model", "lenet",
                                          *plugin_args)  # fmt: skip
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    lines = [ln for ln in result.stderr.str().splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0], lines
    # the same message but for the flag's spelling
    strip = re.compile(r"--(is-)?[a-z-]+|MODEL|^ERROR: |^inference-scale bench: error: ")
    assert strip.sub("", lines[0]).strip() == strip.sub("", cli_err).strip()
