"""Saved benchmark runs: find them in pytest-benchmark's storage and read any of its JSON.

pytest-benchmark has written one layout since 2.5 (2015): a ``benchmarks`` list whose entries
hold ``name``, ``group``, ``stats`` (``median``, ``iqr``, ... and, with
``--benchmark-save-data``, the raw rounds as ``stats.data``) and, from 3.0, ``fullname``,
``params`` and ``extra_info``; ``machine_info`` and ``commit_info`` beside it. This module reads
all of them into :class:`Run`. This project's record in ``extra_info`` is optional: a plain
run of anyone's benchmarks carries timings alone, and that is enough to compare.

Everything is checked on the way in, so a damaged file is one line naming the benchmark and the
field (a :class:`BadRunError`), never a traceback later: a benchmark needs a text ``name``, a
``stats`` object and a positive finite median (taken from the raw rounds where the median is
absent); raw rounds must be finite and non-negative, and so must every number of this
project's record (a NaN accuracy is a failed measurement, not a result). JSON nested deeper
than the interpreter can parse is refused in one line too.

A record's ``state`` is read through the slug alias table (``channels_last`` is
``channels-last``), and a recorded benchmark is paired across runs by what it measured (model,
state, batch, device) where that is unique in its run, so runs pair across a renamed test file.
"""

from __future__ import annotations

import errno
import json
import math
import os
import statistics
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from stat import S_ISREG as stat_is_file
from typing import Any, TypeGuard

from inference_scale.errors import InferenceScaleError
from inference_scale.measure.record import InvalidRecordError, validate_extra_info
from inference_scale.slugs import canonical_slug

__all__ = [
    "BadRunError", "Bench", "Run", "find_run", "load_run", "parse_run", "readable_files", "unreadable", "warn_once",
]  # fmt: skip


class BadRunError(InferenceScaleError, ValueError):
    """A run that cannot be read: missing, ambiguous, not JSON, not pytest-benchmark output, or
    holding a benchmark whose timing is unusable."""


@dataclass(frozen=True)
class Bench:
    """One benchmark of a run. Times are seconds. ``key`` pairs it across runs: ``fullname``
    where the file has one (3.0 and later), else ``group::name``. ``record`` is this project's
    validated ``extra_info`` record, or None for anyone else's benchmark."""

    name: str
    key: str
    group: str | None
    median: float
    iqr: float | None
    rounds: tuple[float, ...] | None
    record: dict[str, Any] | None
    extra_info: dict[str, Any]

    @property
    def func(self) -> str:
        """The test function's name: the name without its parametrization."""
        return self.name.split("[", 1)[0]


@dataclass(frozen=True)
class Run:
    path: Path
    benchmarks: tuple[Bench, ...]
    machine_info: dict[str, Any]
    version: str | None
    warnings: tuple[str, ...] = ()
    # pytest-benchmark's ``commit_info`` (id, time, dirty, ...) and the run's ``datetime``: what
    # ``history`` orders runs by. Empty or None where the file has none.
    commit_info: dict[str, Any] = field(default_factory=dict)
    datetime: str | None = None


def unreadable(path: Path) -> str | None:
    """Why ``path`` is not a readable regular file (a link loop, a dangling link, a folder), or None."""
    try:
        st = path.stat()  # follows links: a loop is ELOOP, a dangling link ENOENT
    except OSError as exc:
        kind = {errno.ELOOP: "a symbolic link loop", errno.ENOENT: "a dangling symbolic link"}.get(
            exc.errno or 0, "unreadable"
        )
        return f"{kind} ({exc.strerror})"
    if not stat_is_file(st.st_mode):
        return "a folder, not a file" if path.is_dir() else "not a regular file"
    if not os.access(path, os.R_OK):
        return "not readable"
    return None


def readable_files(paths: Iterable[Path], warn: Callable[[str], None]) -> list[Path]:
    """``paths`` that are readable files, in order; every other entry is skipped with a warning."""
    out = []
    for path in paths:
        why = unreadable(path)
        if why is None:
            out.append(path)
        else:
            warn(f"skipping {path}: {why}")
    return out


def _saved_runs(storage: Path, warn: Callable[[str], None]) -> list[Path]:
    """The readable JSON files under ``storage/*/``; every other entry is skipped with a warning."""
    return readable_files(sorted(storage.glob("*/*.json"), key=lambda p: (p.name, str(p))), warn)


def _stderr(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def warn_once(warn: Callable[[str], None] = _stderr) -> Callable[[str], None]:
    """``warn``, saying each message once: a command that finds two runs in one storage folder
    (compare's base and new) scans it twice, and an unreadable file there is one problem."""
    said: set[str] = set()

    def once(message: str) -> None:
        if message not in said:
            said.add(message)
            warn(message)

    return once


def find_run(
    spec: str | os.PathLike[str] | None,
    *,
    storage: Path = Path(".benchmarks"),
    warn: Callable[[str], None] = _stderr,
) -> Path:
    """A JSON file: ``spec`` itself if it is a file, else the saved run whose id is ``spec``
    (``0001``, or the file's stem), else (``spec`` None) the newest saved run. An id saved in
    two machine folders is ambiguous: both paths are listed and neither is picked. Entries of
    the storage that are not readable files (link loops, dangling links, folders named
    ``*.json``) are skipped, each with one line to ``warn``."""
    if spec is not None and Path(spec).is_file():
        return Path(spec)
    if spec is not None and (Path(spec).suffix == ".json" or os.sep in str(spec)):
        raise BadRunError(f"no such run file: {spec}")
    saved = _saved_runs(storage, warn)
    if spec is None:
        if not saved:
            raise BadRunError(f"no saved runs under {storage}/ (run the benchmarks with --benchmark-autosave)")
        newest = max(saved, key=lambda p: (p.stat().st_mtime, p.name))
        return newest
    spec = str(spec)
    matches = [p for p in saved if p.name.split("_", 1)[0] == spec or p.stem == spec]
    if not matches:
        ids = ", ".join(sorted({p.name.split("_", 1)[0] for p in saved})) or "none"
        raise BadRunError(f"no run {spec!r}: not a file, and the saved ids under {storage}/ are: {ids}")
    if len(matches) > 1:
        listed = ", ".join(str(p) for p in matches)
        raise BadRunError(f"run id {spec!r} is ambiguous: {len(matches)} saved runs match ({listed}); pass a path")
    return matches[0]


def load_run(path: str | os.PathLike[str]) -> Run:
    """Read and check the pytest-benchmark JSON at ``path``."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadRunError(f"cannot read {source}: {exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadRunError(f"{source} is not JSON: {exc}") from exc
    except RecursionError:  # json's decoder recurses once per nesting level
        raise BadRunError(
            f"{source} is nested too deeply to read (more than {sys.getrecursionlimit()} levels); "
            "pytest-benchmark output is a few levels deep"
        ) from None
    return parse_run(data, path=source)


def _finite(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _non_finite(value: Any, key: str = "extra_info", depth: int = 0) -> tuple[str, float] | None:
    """The first NaN or infinite number inside a record (its key path and value), or None. A
    record is a few levels deep; below 20 nothing is looked at (json already bounded the depth)."""
    if isinstance(value, float) and not math.isfinite(value):
        return key, value
    if depth < 20 and isinstance(value, dict):
        items = value.items()
    elif depth < 20 and isinstance(value, list):
        items = enumerate(value)  # type: ignore[assignment]
    else:
        return None
    for k, v in items:
        found = _non_finite(v, f"{key}[{k!r}]" if depth else str(k), depth + 1)
        if found is not None:
            return found
    return None


def _bench(entry: Any, index: int, where: str) -> Bench:
    if not isinstance(entry, dict):
        raise BadRunError(f"{where}: benchmark #{index} is a {type(entry).__name__}, not an object")
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise BadRunError(f"{where}: benchmark #{index} has no text name (got {name!r})")
    stats = entry.get("stats")
    if not isinstance(stats, dict):
        raise BadRunError(f"{where}: benchmark {name} has no stats object (got {type(stats).__name__})")
    rounds = stats.get("data")
    if rounds is not None:
        if not isinstance(rounds, list) or not rounds:
            raise BadRunError(f"{where}: benchmark {name} has raw rounds that are not a non-empty list")
        bad = [r for r in rounds if not _finite(r) or r < 0]
        if bad:
            raise BadRunError(
                f"{where}: benchmark {name} has {len(bad)} raw round(s) that are not finite non-negative "
                f"seconds (first: {bad[0]!r})"
            )
    median = stats.get("median")
    if median is None and rounds is not None:
        median = statistics.median(rounds)
    if not _finite(median) or median <= 0:
        raise BadRunError(
            f"{where}: benchmark {name} has median {median!r}: a timing must be a positive finite number of seconds"
        )
    iqr = stats.get("iqr")
    group = entry.get("group")
    group = group if isinstance(group, str) else None
    fullname = entry.get("fullname")
    extra = entry.get("extra_info")
    extra = extra if isinstance(extra, dict) else {}
    try:
        record: dict[str, Any] | None = validate_extra_info(extra)
    except InvalidRecordError:
        record = None
    if record is not None:
        bad_value = _non_finite(record)
        if bad_value is not None:
            raise BadRunError(
                f"{where}: benchmark {name} records {bad_value[0]} = {bad_value[1]!r}: "
                "a recorded number must be finite (a failed measurement is not a result)"
            )
        record = {**record, "state": canonical_slug(record["state"])}
    return Bench(
        name=name,
        key=fullname if isinstance(fullname, str) and fullname else f"{group or ''}::{name}",
        group=group,
        median=float(median),
        iqr=float(iqr) if _finite(iqr) and iqr >= 0 else None,
        rounds=None if rounds is None else tuple(float(r) for r in rounds),
        record=record,
        extra_info=extra,
    )


def _identity(bench: Bench) -> str | None:
    r = bench.record
    return None if r is None else f"{r['model']}/{r['state']}/b{r['batch_size']}/{r['device']}"


def _record_keys(benches: tuple[Bench, ...]) -> tuple[Bench, ...]:
    """Key each recorded benchmark by what it measured where no other in the run shares that."""
    counts = Counter(_identity(b) for b in benches)
    return tuple(
        replace(b, key=f"record:{ident}") if (ident := _identity(b)) is not None and counts[ident] == 1 else b
        for b in benches
    )


def parse_run(data: Any, *, path: Path = Path("<run>")) -> Run:
    """A :class:`Run` from parsed JSON (see the module docstring for what is checked)."""
    where = str(path)
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise BadRunError(f"{where} is not pytest-benchmark output (no 'benchmarks' list)")
    warnings = []
    machine = data.get("machine_info")
    if not isinstance(machine, dict):
        warnings.append(f"{where} has no machine_info object: whether runs compare like with like is unchecked")
        machine = {}
    benches = _record_keys(tuple(_bench(entry, i, where) for i, entry in enumerate(data["benchmarks"])))
    seen: dict[str, str] = {}
    for b in benches:
        if b.key in seen:
            raise BadRunError(f"{where}: two benchmarks share the name {b.key!r}; pairing them would be a guess")
        seen[b.key] = b.name
    version = data.get("version")
    commit, stamp = data.get("commit_info"), data.get("datetime")
    return Run(
        path=path,
        benchmarks=benches,
        machine_info=machine,
        version=version if isinstance(version, str) else None,
        warnings=tuple(warnings),
        commit_info=commit if isinstance(commit, dict) else {},
        datetime=stamp if isinstance(stamp, str) else None,
    )
