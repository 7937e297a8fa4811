"""Hypothesis drives every subcommand with generated bad arguments: wrong types, out-of-range
numbers, missing and unwritable paths, unknown names. Each must end in a usage error (exit 2:
one line from us, or argparse's usage + error) and never in a traceback. The arguments are
bad before any long work starts, so each example takes milliseconds."""

from __future__ import annotations

import contextlib
import io
import json
import math
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# Imported before any in-process pytester run, which restores sys.modules afterwards.
import inference_scale.measure.plan  # noqa: F401
from inference_scale.cli.main import build_parser, main
from inference_scale.errors import InferenceScaleError
from inference_scale.measure.plugin import REFERENCE_ENV
from inference_scale.states import get_state
from inference_scale.subjects.models import KINDS, list_models

SUBCOMMANDS = sorted(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
# Names the registry knows, as models, families or kinds: generated "unknown" names avoid them.
KNOWN = {m.name for m in list_models()} | {m.family for m in list_models()} | set(KINDS)

EXAMPLES = 50

# --- building blocks ----------------------------------------------------------------------------

words = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=12)
unknown_names = words.filter(lambda w: w not in KNOWN and not w.startswith("-"))
not_numbers = st.sampled_from(["abc", "", "1e", "--", "0x", "one", "1,5", "[]", "None"]) | words.filter(
    lambda w: not _is_number(w) and not w.startswith("-")
)
nan_inf = st.sampled_from(["nan", "inf", "-inf", "NaN", "Infinity"])


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def negative() -> st.SearchStrategy[str]:
    return st.floats(max_value=-1e-9, allow_nan=False, allow_infinity=False).map(repr)


def ints_outside(low: int, high: int | None = None) -> st.SearchStrategy[str]:
    below = st.integers(max_value=low - 1).map(str)
    return below if high is None else below | st.integers(min_value=high + 1).map(str)


def floats_outside(low: float, high: float) -> st.SearchStrategy[str]:
    return (
        st.floats(max_value=low, exclude_max=True, allow_nan=False, allow_infinity=False)
        | st.floats(min_value=high, exclude_min=True, allow_nan=False, allow_infinity=False)
    ).map(repr)


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A regular file (paths under it cannot be written), a folder, files that are not runs."""
    root = tmp_path_factory.mktemp("fuzz")
    regular = root / "regular.txt"
    regular.write_text("not a folder")
    (root / "notjson.json").write_text("{ nope")
    (root / "nobench.json").write_text(json.dumps({"machine_info": {}}))
    nan_run = {"machine_info": {}, "benchmarks": [{"name": "t", "stats": {"median": 0.1, "data": [0.1, math.nan]}}]}
    (root / "nan.json").write_text(json.dumps(nan_run, allow_nan=True))
    empty = {"machine_info": {}, "benchmarks": []}
    (root / "empty.json").write_text(json.dumps(empty))
    return {
        "regular": str(regular),
        "under_file": str(regular / "sub" / "out.json"),
        "folder": str(root),
        "missing": str(root / "missing" / "run.json"),
        "notjson": str(root / "notjson.json"),
        "nobench": str(root / "nobench.json"),
        "nan": str(root / "nan.json"),
        "empty": str(root / "empty.json"),
    }


def _run(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse: usage line + one error line
            code = int(exc.code) if isinstance(exc.code, int) else 2
    return code, err.getvalue()


def _check(argv: list[str]) -> None:
    code, err = _run(argv)
    assert "Traceback" not in err, (argv, err)
    assert code == 2, (argv, code, err)
    assert err.strip(), argv
    if not err.startswith("usage:"):
        assert len(err.strip().splitlines()) == 1, (argv, err)
        # the one error rule: exit 2 past argparse is an InferenceScaleError and nothing else
        # (--debug re-raises what main caught)
        quiet = (contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()))
        with quiet[0], quiet[1], pytest.raises(InferenceScaleError):
            main(["--debug", *argv])


FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# --- one strategy per subcommand ------------------------------------------------------------------


def test_every_subcommand_is_fuzzed() -> None:
    fuzzed = {name.removeprefix("test_fuzz_") for name in globals() if name.startswith("test_fuzz_")}
    assert fuzzed == set(SUBCOMMANDS)


@FUZZ
@given(
    st.one_of(
        unknown_names.map(lambda w: ["--family", w]),
        unknown_names.map(lambda w: ["--kind", w]),
        st.sampled_from(["--min-params", "--max-params"]).flatmap(
            lambda flag: st.one_of(not_numbers, nan_inf, negative()).map(lambda v: [flag, v])
        ),
        st.tuples(st.floats(1e3, 1e9), st.floats(0, 0.99)).map(
            lambda t: ["--min-params", repr(t[0]), "--max-params", repr(t[0] * t[1])]
        ),
        words.map(lambda w: [f"--{w.strip('-') or 'x'}-bogus"]),
    )
)
def test_fuzz_models(extra: list[str]) -> None:
    _check(["models", *extra])


@FUZZ
@given(unknown_names)
def test_fuzz_info(name: str) -> None:
    _check(["info", name])


@FUZZ
@given(
    st.one_of(
        unknown_names.map(lambda w: [w]),
        st.sampled_from(["resnet18", "lenet", "teacher-cnn"]).flatmap(
            lambda m: st.one_of(ints_outside(1, 4096), not_numbers, nan_inf).map(lambda r: [m, "--resolution", r])
        ),
        # within range, but the model refuses the input: fixed-size heads and patch grids
        st.integers(1, 27).map(lambda r: ["lenet", "--resolution", str(r)]),
        st.integers(1, 223).map(lambda r: ["vit_b_16", "--no-bytes", "--resolution", str(r)]),
    )
)
def test_fuzz_size(extra: list[str]) -> None:
    _check(["size", *extra])


@FUZZ
@given(
    st.one_of(
        st.sampled_from(["--min-params", "--max-params"]).flatmap(
            lambda flag: st.one_of(not_numbers, nan_inf, negative()).map(lambda v: [flag, v])
        ),
        st.floats(0, 1e3).map(lambda lo: ["--min-params", repr(lo), "--max-params", repr(lo + 10)]),  # nothing fits
    )
)
def test_fuzz_pick(extra: list[str]) -> None:
    _check(["pick", *extra])


def _run_args(paths: dict[str, str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from([paths[k] for k in ("missing", "notjson", "nobench", "nan", "empty", "regular")]),
        st.integers(0, 9999).map(lambda i: f"{i:04d}"),
        unknown_names,
    )


@FUZZ
@given(data=st.data())
def test_fuzz_advise(paths: dict[str, str], data: st.DataObject) -> None:
    storage = ["--storage", paths["folder"]]
    budget = st.sampled_from(["--max-latency-ms", "--max-bytes", "--max-accuracy-drop"])
    extra = data.draw(
        st.one_of(
            _run_args(paths).map(lambda r: [r]),  # missing, damaged, empty, record-less runs
            st.tuples(budget, st.one_of(not_numbers, nan_inf, negative())).map(lambda t: [paths["nan"], *t]),
            ints_outside(1).map(lambda v: [paths["nan"], "--batch-size", v]),
            unknown_names.map(lambda f: [paths["nan"], "--format", f]),
            st.just([paths["nan"], "--plot", paths["under_file"]]),
        )
    )
    _check(["advise", *extra, *storage])


@FUZZ
@given(data=st.data())
def test_fuzz_report(paths: dict[str, str], data: st.DataObject) -> None:
    storage = ["--storage", paths["folder"]]
    extra = data.draw(
        st.one_of(
            _run_args(paths).map(lambda r: [r]),
            unknown_names.map(lambda f: [paths["nan"], "--format", f]),
            st.just([paths["nan"], "--plot", paths["under_file"]]),
            st.just([paths["empty"], "--plot", paths["folder"] + "/plots"]),
        )
    )
    _check(["report", *extra, *storage])


@FUZZ
@given(data=st.data())
def test_fuzz_compare(paths: dict[str, str], data: st.DataObject) -> None:
    good = paths["nobench"]  # read fine, but has nothing to pair
    extra = data.draw(
        st.one_of(
            st.tuples(_run_args(paths), _run_args(paths)).map(list),
            st.one_of(floats_outside(0, 1), st.sampled_from(["0", "1"]), not_numbers, nan_inf).map(
                lambda a: [good, good, "--alpha", a]
            ),
            st.one_of(negative(), not_numbers, nan_inf).map(lambda t: [good, good, "--threshold", t]),
            st.one_of(floats_outside(0, 100), not_numbers, nan_inf).map(lambda a: [good, good, "--accuracy-drop", a]),
            st.just([good, good]),
        )
    )
    _check(["compare", *extra, "--storage", paths["folder"]])


@FUZZ
@given(data=st.data())
def test_fuzz_distill(paths: dict[str, str], data: st.DataObject) -> None:
    extra = data.draw(
        st.one_of(
            st.one_of(floats_outside(0, 1), st.just("0"), not_numbers, nan_inf).map(lambda f: ["--train-fraction", f]),
            st.floats(1e-6, 0.0028).map(lambda f: ["--train-fraction", repr(f)]),  # under one image per class
            st.sampled_from(["--seeds", "--epochs", "--teacher-epochs"]).flatmap(
                lambda flag: st.one_of(ints_outside(1), not_numbers, st.just("2.5")).map(lambda v: [flag, v])
            ),
            st.one_of(negative(), st.just("0"), not_numbers, nan_inf).map(lambda t: ["--temperature", t]),
            st.one_of(floats_outside(0, 1), not_numbers, nan_inf).map(lambda a: ["--alpha", a]),
            st.sampled_from(["--student", "--teacher"]).flatmap(lambda f: unknown_names.map(lambda n: [f, n])),
            unknown_names.map(lambda d: ["--dataset", d]),
            st.sampled_from(["cifar10", "hf"]).flatmap(
                lambda d: st.sampled_from([[], ["--root", paths["missing"]], ["--root", paths["regular"]]]).map(
                    lambda r: ["--dataset", d, *r]
                )
            ),
            st.just(["--root", paths["folder"]]),  # root given for a packaged dataset
            st.sampled_from([paths["under_file"], paths["folder"]]).map(lambda p: ["--json", p]),
            st.just(["--cache-dir", paths["regular"]]),
        )
    )
    _check(["distill", "--quiet", *extra])


@FUZZ
@given(
    st.one_of(
        st.just([]),  # neither BASE nor --aa
        st.just(["HEAD", "--aa"]),  # both
        unknown_names.map(lambda w: [f"no-such-ref-{w}"]),
        st.one_of(ints_outside(2), not_numbers).map(lambda k: ["--aa", "--runs", k]),
        st.one_of(ints_outside(2), not_numbers).map(lambda k: ["--aa", "--max-runs", k]),
        st.one_of(floats_outside(0, 60), st.just("0"), not_numbers, nan_inf).map(lambda t: ["--aa", "--block-time", t]),
        st.one_of(negative(), not_numbers, nan_inf).map(lambda t: ["--aa", "--threshold", t]),
        st.just(["--aa", "--runs", "4", "--max-runs", "3"]),
        st.one_of(st.sampled_from(["x", "", "0,a", "99999", "-1", "1.5"]), unknown_names).map(
            lambda c: ["--aa", "--cpus", c]
        ),
    )
)
def test_fuzz_ab(extra: list[str]) -> None:
    _check(["ab", *extra, "--", "tests/does_not_exist.py"])


def _not_a_state(word: str) -> bool:
    try:
        get_state(word)
    except (ValueError, TypeError):
        return True
    return False


@FUZZ
@given(data=st.data())
def test_fuzz_bench(paths: dict[str, str], data: st.DataObject) -> None:
    # Every example holds at least one bad value, so none of them starts a benchmark. Generated
    # names never contain ':', which would import whatever module they happened to name.
    plain = unknown_names.filter(lambda w: ":" not in w)
    extra = data.draw(
        st.one_of(
            plain.map(lambda w: [w]),
            plain.map(lambda w: [f"no_such_module_{w}:build", "--input-shape", "3,8,8"]),
            st.just(["tests.test_plugin:USER_MODULE", "--input-shape", "3,8,8"]),  # a str, not a callable
            words.filter(lambda w: _not_a_state(w) and "," not in w and w.strip() != "").map(
                lambda w: ["lenet", "--states", f"fp32,{w}"]
            ),
            # no list of positive integers can hide in these (a digit-free word, or a number <= 0)
            st.one_of(ints_outside(1), words.filter(lambda w: not any(c.isdigit() for c in w))).map(
                lambda b: ["lenet", "--batch-size", b]
            ),
            st.one_of(ints_outside(1), not_numbers).map(lambda t: ["lenet", "--threads", t]),
            unknown_names.filter(lambda d: d not in ("cpu", "cuda")).map(lambda d: ["lenet", "--device", d]),
            st.one_of(not_numbers, st.sampled_from(["3,", ",3", "0,28,28", "1x-28", "1,28,28,"])).map(
                lambda shape: ["lenet", "--input-shape", shape]
            ),
            st.integers(1, 27).map(lambda h: ["lenet", "--input-shape", f"1,{h},{h}"]),  # LeNet needs 28x28
            st.sampled_from(["--eval", "--calibration"]).flatmap(
                lambda f: st.one_of(plain, plain.map(lambda w: f"no_such_module_{w}:fn")).map(lambda v: ["lenet", f, v])
            ),
            st.sampled_from([paths["under_file"], paths["folder"]]).map(lambda p: ["lenet", "--json", p]),
            st.just(["lenet", "--storage", paths["regular"]]),
        )
    )
    _check(["bench", *extra])


@FUZZ
@given(st.one_of(words.map(lambda w: [f"--{w.strip('-') or 'x'}-bogus"]), unknown_names.map(lambda w: [w])))
def test_fuzz_states(extra: list[str]) -> None:
    _check(["states", *extra])


def test_ab_refuses_an_unwritable_out(paths: dict[str, str]) -> None:
    _check(["ab", "--aa", "--out", paths["regular"], "--", "tests/does_not_exist.py"])


def test_non_ab_commands_refuse_passthrough() -> None:
    _check(["info", "lenet", "--", "-k", "x"])


def test_fuzzing_left_nothing_behind(paths: dict[str, str]) -> None:
    """Nothing the fuzzing did wrote into the folder (no plots, no runs, no temp files)."""
    names = sorted(p.name for p in Path(paths["folder"]).iterdir())
    assert names == ["empty.json", "nan.json", "nobench.json", "notjson.json", "regular.txt"]


# --- storage folders holding links and folders (issue 20) ----------------------------------------

_RECORD = dict(family="f", kind="cnn", batch_size=1, device="cpu", threads=1, dtype="float32", params=10,
               nonzero_params=10, macs=10, bytes=400, input_shape=[4])  # fmt: skip
_BAD_ENTRIES = ("loop", "dangling", "folder", "notjson", "deep")


def _storage(root: Path, entries: list[str], good: bool) -> None:
    machine = root / "Linux-CPython-3.11-64bit"
    machine.mkdir(parents=True)
    if good:
        benches = [{"name": f"t_{s}", "stats": {"median": ms}, "extra_info": {**_RECORD, "model": "m", "state": s}}
                   for s, ms in (("fp32", 0.01), ("int8-static", 0.005))]  # fmt: skip
        (machine / "0001_good.json").write_text(json.dumps({"machine_info": {}, "benchmarks": benches}))
    for i, kind in enumerate(entries, start=2):
        path = machine / f"{i:04d}_{kind}.json"
        if kind == "loop":
            path.symlink_to(path)
        elif kind == "dangling":
            path.symlink_to(root / "nowhere.json")
        elif kind == "folder":
            path.mkdir()
        elif kind == "notjson":
            path.write_text("{ nope")
        else:
            path.write_text("[" * 50_000 + "]" * 50_000)


@settings(max_examples=20, deadline=None)
@given(
    st.lists(st.sampled_from(_BAD_ENTRIES), min_size=1, max_size=4),
    st.booleans(),
    st.sampled_from(["report", "advise"]),
)
def test_storage_with_links_and_folders(
    tmp_path_factory: pytest.TempPathFactory, entries: list[str], good: bool, command: str
) -> None:
    """No RUN given: entries that are not readable files are skipped with a warning; the newest
    readable file is read (a damaged one is exit 2); no traceback in any case."""
    root = tmp_path_factory.mktemp("storage")
    _storage(root, entries, good)
    code, err = _run([command, "--storage", str(root), "--max-accuracy-drop", "100"] if command == "advise"
                     else [command, "--storage", str(root)])  # fmt: skip
    assert "Traceback" not in err, err
    readable = [e for e in entries if e in ("notjson", "deep")]
    skipped = len(entries) - len(readable)
    warnings = [line for line in err.splitlines() if line.startswith("warning: skipping")]
    assert len(warnings) == skipped, err
    if readable:  # the newest readable entry is a damaged file: one line, exit 2
        assert code == 2 and len(err.splitlines()) == skipped + 1, err
    else:
        assert code == (0 if good else 2), err


@pytest.mark.parametrize("command", ["compare", "report"])
def test_two_runs_from_one_storage_warn_once_per_skipped_entry(tmp_path: Path, command: str) -> None:
    """compare (base and new) and report (several runs) look each run up in the same folder:
    each unreadable entry there is one warning, not one per lookup."""
    _storage(tmp_path, ["loop", "folder"], good=True)
    machine = next(tmp_path.iterdir())
    (machine / "0004_again.json").write_text((machine / "0001_good.json").read_text())
    code, err = _run([command, "0001", "0004", "--storage", str(tmp_path)])
    warnings = [line for line in err.splitlines() if line.startswith("warning: skipping")]
    assert code == 0 and len(warnings) == 2 and len(set(warnings)) == 2, err


def test_history_skips_what_is_not_a_readable_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``history`` reads a storage folder too: its links and folders are skipped, one warning
    each in its report (before: exit 2 on the first, "Is a directory" or a raw errno)."""
    _storage(tmp_path, ["loop", "dangling", "folder"], good=True)
    code = main(["history", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 0 and "Traceback" not in err, err
    warnings = [line for line in out.splitlines() if line.startswith("warning: skipping")]
    assert len(warnings) == 3, out


@FUZZ
@given(data=st.data())
def test_fuzz_history(paths: dict[str, str], data: st.DataObject) -> None:
    folder = paths["folder"]  # its JSON files are not runs: each is one line naming the file
    extra = data.draw(
        st.one_of(
            st.sampled_from([paths["regular"], paths["missing"], folder]).map(lambda p: [p]),
            # the shared --threshold: a finite number >= 0 (0 is valid, as in compare and ab)
            st.one_of(negative(), not_numbers, nan_inf).map(lambda t: [folder, "--threshold", t]),
            st.one_of(floats_outside(0, 1), st.sampled_from(["0", "1"]), not_numbers, nan_inf).map(
                lambda a: [folder, "--alpha", a]
            ),
            unknown_names.map(lambda w: [folder, "--stat", w]),
            unknown_names.map(lambda w: [folder, "--machine", w]),
        )
    )
    _check(["history", *extra])


@FUZZ
@given(data=st.data())
def test_fuzz_bisect(data: st.DataObject) -> None:
    revs = words.map(lambda w: f"no-such-rev-{w}")  # never a commit of this repository
    extra = data.draw(
        st.one_of(
            st.tuples(revs, revs).map(lambda t: [t[0], t[1], "--", "benchmarks"]),
            st.tuples(revs, revs).map(lambda t: [t[0], t[1]]),  # no pytest arguments after --
            st.one_of(ints_outside(3), not_numbers).map(lambda v: ["HEAD~1", "HEAD", "--runs", v, "--", "x"]),
            st.one_of(ints_outside(1), not_numbers).map(lambda v: ["HEAD~1", "HEAD", "--max-probes", v, "--", "x"]),
            st.one_of(negative(), not_numbers, nan_inf).map(lambda t: ["HEAD~1", "HEAD", "--threshold", t, "--", "x"]),
        )
    )
    _check(["bisect", *extra])


@FUZZ
@given(data=st.data())
def test_fuzz_serve(data: st.DataObject) -> None:
    # Every value is refused before a model is built: budgets, batch and delay bounds.
    base = ["serve", "lenet", "--states", "fp32"]
    extra = data.draw(
        st.one_of(
            st.one_of(negative(), st.sampled_from(["0", "0.0"]), not_numbers, nan_inf).map(lambda v: ["--p99-ms", v]),
            st.one_of(ints_outside(1), not_numbers).map(lambda v: ["--p99-ms", "10", "--max-batch", v]),
            st.one_of(negative(), not_numbers, nan_inf).map(lambda v: ["--p99-ms", "10", "--max-delay-ms", v]),
            st.one_of(negative(), st.just("0"), not_numbers, nan_inf).map(lambda v: ["--p99-ms", "10", "--qps", v]),
        )
    )
    _check([*base, *extra])


# --- environment variables (issue 20) ------------------------------------------------------------


def _valid_seconds(text: str) -> bool:
    return _is_number(text) and 0 <= float(text) <= 60  # -0.0 is 0: a valid value would start a run


bad_seconds = st.one_of(
    not_numbers, nan_inf, negative(), floats_outside(0, 60), st.sampled_from(["1e9", "-1", ""])
).filter(lambda v: not _valid_seconds(v))


@FUZZ
@given(bad_seconds)
def test_bench_refuses_a_bad_reference_seconds_variable(value: str) -> None:
    """bench reads $INFERENCE_SCALE_REFERENCE_SECONDS as the plugin does: a bad value is one line
    naming the variable (not a flag bench does not have), before any model is built."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(REFERENCE_ENV, value)
        code, err = _run(["bench", "lenet", "--states", "fp32", "--batch-size", "1"])
    assert "Traceback" not in err and code == 2, (value, code, err)
    assert len(err.strip().splitlines()) == 1 and REFERENCE_ENV in err and "reference-seconds" not in err, (value, err)


@pytest.mark.parametrize("value", ["abc", "-1", "nan", "inf", "1e9"])
def test_reference_seconds_variable_in_pytest_sessions(
    value: str, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unrelated session is unaffected by a bad value; a session that runs the plugin's
    benchmarks is a usage error (exit 4) naming the variable, and the flag's own value is named
    as the flag. No traceback, no INTERNALERROR."""
    pytester.makepyfile(test_plain="def test_ok():\n    assert True\n")
    monkeypatch.setenv(REFERENCE_ENV, value)
    runs = {
        "plain": ([], pytest.ExitCode.OK, None),
        "plugin": (["--is-model", "lenet", "--is-states", "fp32", "--collect-only"], pytest.ExitCode.USAGE_ERROR,
                   REFERENCE_ENV),
        "flag": (["--is-reference-seconds", value, "--is-model", "lenet", "--collect-only"],
                 pytest.ExitCode.USAGE_ERROR, "--is-reference-seconds"),
    }  # fmt: skip
    for what, (args, want, named) in runs.items():
        if what == "flag":
            monkeypatch.delenv(REFERENCE_ENV)
        result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-q", *args)
        text = result.stdout.str() + result.stderr.str()
        assert result.ret == want, (what, value, text)
        assert "Traceback" not in text and "INTERNALERROR" not in text, (what, value, text)
        if named:
            assert named in result.stderr.str(), (what, value, text)
            assert what == "flag" or "--is-reference-seconds" not in result.stderr.str(), (what, text)


# --- factories that exit, recurse or are a CLI (issue 20) ----------------------------------------

FACTORIES = """
import sys

import torch


def build(*_):
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 4)).eval()


def exits(*_):
    sys.exit(3)


def exits_zero(*_):
    sys.exit(0)


def gives_up(*_):
    raise SystemExit("factory gave up")


def bare(*_):
    raise SystemExit


def recurse(*_):
    return recurse()


def loud(*_):
    print("usage: something\\n" * 100, file=sys.stderr)
    sys.exit(2)
"""


@pytest.fixture(scope="module")
def factories(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("factories")
    (root / "fuzz_factories.py").write_text(FACTORIES)
    (root / "fuzz_exits_on_import.py").write_text("import sys\n\nsys.exit(3)\n\n\ndef build():\n    pass\n")
    return root


BAD_FACTORIES = [f"fuzz_factories:{f}" for f in ("exits", "exits_zero", "gives_up", "bare", "recurse", "loud")]
BAD_FACTORIES += ["fuzz_exits_on_import:build", "inference_scale.cli.main:main"]
GOOD = ["fuzz_factories:build", "--input-shape", "3,2,2"]


@pytest.mark.parametrize(
    "argv",
    [[spec, "--input-shape", "3,2,2"] for spec in BAD_FACTORIES]
    + [[*GOOD, "--eval", spec] for spec in BAD_FACTORIES[:5]]
    + [[*GOOD, "--calibration", spec, "--states", "int8-static"] for spec in BAD_FACTORIES[:5:2]]
    + [["fuzz_factories:build", "--example", spec] for spec in BAD_FACTORIES[:5:2]],
    ids=lambda argv: "-".join(a.lstrip("-") for a in argv if ":" in a or a in ("--eval", "--calibration", "--example")),
)
def test_a_factory_that_exits_is_one_line(
    argv: list[str], factories: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A user's callable (MODEL, --eval, --calibration, --example) that exits (any code, 0
    included), recurses without end, or is a CLI's main: exit 2, one line naming it, nothing
    on stdout (b2f5f3a: sys.exit(3) ended bench with exit 3 and no word; the CLI as MODEL
    printed 190 lines)."""
    monkeypatch.syspath_prepend(str(factories))
    # main() with no argv reads sys.argv: the user's own command line, as from a shell
    monkeypatch.setattr(sys, "argv", ["inference-scale", "bench", *argv])
    stdout = sys.stdout
    try:
        code = main(["bench", *argv])
    except SystemExit as exc:  # what the old code let through
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    assert "Traceback" not in err and code == 2, (argv, code, err)
    spec = next(a for a in argv[1:] + argv[:1] if a in BAD_FACTORIES)
    assert len(err.strip().splitlines()) == 1 and spec in err, (argv, err)
    assert out == "" and sys.stdout is stdout, (argv, out)  # nothing printed, no redirect left behind


@pytest.mark.parametrize("spec", ["fuzz_factories:exits", "fuzz_factories:recurse", "fuzz_exits_on_import:build"])
def test_a_factory_that_exits_is_a_usage_error_under_pytest(
    spec: str, factories: Path, pytester: pytest.Pytester
) -> None:
    pytester.syspathinsert(factories)
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "--collect-only", "--is-model", spec, "--is-input-shape", "3,2,2",
        "--is-states", "fp32", "--is-reference-seconds", "0",
    )  # fmt: skip
    text = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR, text
    assert spec in result.stderr.str() and "Traceback" not in text and "INTERNALERROR" not in text, text
