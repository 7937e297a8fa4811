"""The Python API: :func:`bench` measures a model in each state, the same cases, runner and
record as ``pytest --is-model ...`` and ``inference-scale bench``, and returns its rows::

    import inference_scale
    result = inference_scale.bench("mypkg.nets:build", input_shape=(3, 224, 224),
                                   states=["fp32", "int8-static"], batch_sizes=[1, 8])
    print(result.table())
    result.rows[1].speedup, result.json_path

The plan is checked once (:func:`~inference_scale.measure.plan.make_plan`), then handed to pytest as a
plugin object: pytest-benchmark times the cases in this process. Its JSON is written in a
temporary folder and moved into place atomically, so a failed write never destroys an earlier
file.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inference_scale.defaults import DEFAULTS
from inference_scale.errors import InferenceScaleError

__all__ = ["DEFAULT_STORAGE", "BenchError", "BenchResult", "bench", "check_paths", "run_plan"]

DEFAULT_STORAGE: str = DEFAULTS["storage"]  # pytest-benchmark's own default storage folder


class BenchError(InferenceScaleError, RuntimeError):
    """The benchmark run did not complete: a case failed, or every case was skipped."""

    def __init__(self, message: str, *, exit_code: int, usage: bool = False) -> None:
        super().__init__(message)
        self.exit_code, self.usage = exit_code, usage


@dataclass(frozen=True)
class BenchResult:
    """The rows of a run (:class:`inference_scale.reporting.report.Row`: median and IQR in seconds,
    speedup vs fp32, bytes, MACs, params, accuracy, cosine and agreement), the saved JSON (the
    ``json`` path asked for, else the storage copy) and the skipped cases with their reasons."""

    rows: list[Any]
    json_path: Path | None
    storage_path: Path | None
    skipped: dict[str, str] = field(default_factory=dict)

    def table(self, fmt: str = "table") -> str:
        """The rows as the report's table (``table``), Markdown (``md``) or CSV (``csv``)."""
        from inference_scale.reporting.report import format_rows

        return format_rows(self.rows, fmt)

    def row(self, model: str, state: str, batch: int) -> Any:
        """The row of one case; a KeyError lists the cases."""
        for r in self.rows:
            if (r.model, r.state, r.batch) == (model, state, batch):
                return r
        raise KeyError(f"no case {model}-{state}-b{batch}; cases: {', '.join(r.name for r in self.rows)}")


class _Outcomes:
    """Collects skipped and failed cases (a plugin object), so an empty run says why."""

    def __init__(self) -> None:
        self.skipped: dict[str, str] = {}
        self.failed: dict[str, str] = {}

    def pytest_runtest_logreport(self, report: Any) -> None:
        name = report.nodeid.rpartition("::")[2]
        if report.skipped and isinstance(report.longrepr, tuple):
            self.skipped[name] = str(report.longrepr[2]).removeprefix("Skipped: ")
        elif report.failed:
            text = getattr(report, "longreprtext", "") or ""
            lines = [ln for ln in text.splitlines() if ln.strip()]
            self.failed[name] = lines[-1].strip() if lines else "failed"


@contextlib.contextmanager
def _quiet_pytest_warnings() -> Iterator[None]:
    # pytest warns that modules imported before it (anyio, by a dependency) cannot be rewritten:
    # nothing of the user's is asserted in our suite, so the warning says nothing to them.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Module already imported so cannot be rewritten")
        yield


def _saved(storage: Path, before: set[Path]) -> Path | None:
    new = sorted(set(storage.rglob("*.json")) - before, key=lambda p: p.stat().st_mtime)
    return new[-1] if new else None


def run_plan(
    plan: Any,
    *,
    json: str | os.PathLike[str] | None = None,
    storage: str | os.PathLike[str] = DEFAULT_STORAGE,
    quiet: bool = False,
) -> BenchResult:
    """Run a checked plan (:func:`~inference_scale.measure.plan.make_plan`) through pytest-benchmark in
    this process, save it under ``storage`` (and ``json``), and read its rows back."""
    import pytest

    from inference_scale.atomic import write_bytes_atomic
    from inference_scale.measure.plugin import SUITE_FILE, PlanCarrier
    from inference_scale.reporting.report import rows_from_run
    from inference_scale.verdicts.runs import load_run

    json_target, store = check_paths(json=json, storage=storage)
    outcomes = _Outcomes()
    with tempfile.TemporaryDirectory(prefix="inference-scale-bench-") as tmp:
        tmp_json, ini = Path(tmp) / "run.json", Path(tmp) / "pytest.ini"
        ini.write_text("[pytest]\n")  # our own, empty config: never the user's project's pyproject
        stage = Path(tmp) / "storage"
        args = [
            str(SUITE_FILE), "-c", str(ini), f"--rootdir={Path.cwd()}", "-p", "no:cacheprovider",
            "--benchmark-only", "--benchmark-autosave", "--benchmark-save-data", f"--benchmark-storage={stage}",
            f"--benchmark-json={tmp_json}", "--benchmark-quiet", "-W", "ignore::pytest.PytestAssertRewriteWarning",
        ]  # fmt: skip
        # --benchmark-quiet: pytest-benchmark would name the temporary files it writes here
        # (deleted right after) and print its table; the caller prints the report and the saved paths.
        if quiet:
            args.append("-q")
        with _quiet_pytest_warnings():
            code = int(pytest.main(args, plugins=[PlanCarrier(plan), outcomes]))
        if code == pytest.ExitCode.USAGE_ERROR:
            raise BenchError("pytest refused the plan (usage error); see its output above", exit_code=code, usage=True)
        if outcomes.failed:
            listed = "; ".join(f"{k}: {v}" for k, v in list(outcomes.failed.items())[:5])
            raise BenchError(f"{len(outcomes.failed)} case(s) failed and were not saved: {listed}", exit_code=code)
        if not tmp_json.is_file() or code == pytest.ExitCode.NO_TESTS_COLLECTED or not _benchmarks_in(tmp_json):
            why = "; ".join(f"{k}: {v}" for k, v in outcomes.skipped.items()) or "no case was collected"
            raise BenchError(f"every case skipped, nothing was measured ({why})", exit_code=code or 5)
        if code != 0:
            raise BenchError(f"pytest exited {code}; see its output above", exit_code=code)
        rows = rows_from_run(load_run(tmp_json))
        storage_path = None
        for path in sorted(stage.rglob("*.json")):  # the autosaved run, moved into the real storage atomically
            target = _next_name(store / path.relative_to(stage))
            write_bytes_atomic(path.read_bytes(), target)
            storage_path = target
        if json_target is not None:
            write_bytes_atomic(tmp_json.read_bytes(), json_target)
    return BenchResult(rows, json_target or storage_path, storage_path, dict(outcomes.skipped))


def _probe(folder: Path, what: str) -> None:
    """Create and remove a file in the nearest existing folder of ``folder``: the writer that
    will run must be able to write there (``os.access`` says yes for root on /proc)."""
    from inference_scale.errors import OutputPathError

    existing = folder
    while not existing.exists():
        existing = existing.parent
    try:
        fd, name = tempfile.mkstemp(dir=existing, prefix=".inference-scale-probe.", suffix=".tmp")
    except OSError as exc:
        raise OutputPathError(f"{what} path {folder}: cannot write in {existing}: {exc.strerror}") from None
    os.close(fd)
    os.unlink(name)


def check_paths(
    *,
    json: str | os.PathLike[str] | None,
    storage: str | os.PathLike[str],
    names: tuple[str, str] = ("json", "storage"),
) -> tuple[Path | None, Path]:
    """The JSON target and the storage folder, checked before any work (see :func:`_probe`);
    ``names`` are what the caller calls them (the CLI's flags)."""
    from inference_scale.atomic import check_output_path

    json_target = check_output_path(json, what=names[0]) if json is not None else None
    if json_target is not None:
        _probe(json_target.parent, names[0])
    store = Path(storage).resolve()
    check_output_path(store / "run.json", what=names[1])
    _probe(store, names[1])
    return json_target, store


_COUNTER = re.compile(r"^(\d{4})_")


def _next_name(target: Path) -> Path:
    """pytest-benchmark numbers saved runs NNNN_ within their machine folder; the run was
    saved in an empty stage, so it takes the next free number of the real folder."""
    taken = [int(m.group(1)) for p in target.parent.glob("*.json") if (m := _COUNTER.match(p.name))]
    counter = max(taken, default=0) + 1
    return target.with_name(_COUNTER.sub(f"{counter:04d}_", target.name, count=1))


def _benchmarks_in(path: Path) -> bool:
    import json as _json

    try:
        return bool(_json.loads(path.read_text()).get("benchmarks"))
    except (OSError, ValueError):
        return False


def bench(
    model: str | Sequence[str],
    *,
    example: str | None = None,
    input_shape: str | Sequence[int] | None = None,
    states: Sequence[str] | str | None = None,
    batch_sizes: Sequence[int] | str | None = None,
    eval: str | None = None,
    calibration: str | None = None,
    seq_len: int | None = None,
    device: str | None = None,
    threads: int | None = None,
    seeds: int | None = None,
    compile: bool | None = None,
    all_int8: bool | None = None,
    reference_seconds: float | None = None,
    json: str | os.PathLike[str] | None = None,
    storage: str | os.PathLike[str] = DEFAULT_STORAGE,
    quiet: bool = False,
) -> BenchResult:
    """Benchmark ``model`` (a registry name, ``hf:DIR``, ``timm:NAME`` or ``module:factory``)
    in each state at each batch size against its fp32 baseline timed in the same run; see the
    module docstring. Options left None take :data:`inference_scale.measure.plan.DEFAULTS`. Raises an
    :class:`~inference_scale.errors.InferenceScaleError` of one line for bad input (before
    any work) and :class:`BenchError` when the run fails or measures nothing."""
    from inference_scale.measure.plan import make_plan

    check_paths(json=json, storage=storage)
    given: dict[str, Any] = {
        "device": device, "threads": threads, "seeds": seeds, "compile": compile, "all_int8": all_int8,
        "reference_seconds": reference_seconds,
    }  # fmt: skip
    plan = make_plan(
        model, example=example, input_shape=input_shape, states=states, batch_sizes=batch_sizes, eval=eval,
        calibration=calibration, seq_len=seq_len, **{k: v for k, v in given.items() if v is not None},
    )  # fmt: skip
    return run_plan(plan, json=json, storage=storage, quiet=quiet)
