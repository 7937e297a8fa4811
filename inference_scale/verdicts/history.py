"""Every saved run of one machine as a history per benchmark, and the steps in it
(``inference-scale history``).

Runs are read by :mod:`inference_scale.verdicts.runs` (anyone's pytest-benchmark JSON) and ordered by the
commit time in ``commit_info`` (pytest-benchmark records the committer date as ``time``), else
by the run's ``datetime``, else by the file's name. Each benchmark becomes a series with one
point per run: its median (or ``min``) with a bootstrap 95% interval from the raw rounds where
they were saved. Where every run carries the reference workload (:mod:`.reference`), each run's
timings are multiplied by its reference speed over the first run's, as ``compare --normalize``
does for two runs.

Steps, in the manner of asv's ``step_detect`` (a penalized piecewise-constant fit, then a
minimum size), but with a well-kept library for the fit:

0. a run far off both its neighbours on either side (a Hampel filter, :func:`_hampel`) is
   set aside: on a shared host single runs land 1.5-1.8x slow, and one such run would otherwise
   pull a boundary towards it or form a segment with its neighbour;
1. ``ruptures.Pelt`` with the ``l1`` cost (a piecewise-constant *median*, so one slow run does
   not pull a segment) on the log of the series, every index a candidate (``jump=1``), no segment
   shorter than :data:`MIN_SEGMENT` runs. Its penalty is ``log(n)`` (BIC's) times the larger of
   the series' robust noise (MAD of successive differences / sqrt 2) and half the threshold in
   log units, so a clean series is not cut at every wiggle;
2. a boundary stays only if the ratio of the medians of the segments' points passes the
   threshold (smallest first; segments merge and are measured again), and the segments differ
   significantly: ``compare``'s Mann-Whitney U on their pooled rounds (on the points where a run
   lacks rounds), Benjamini-Hochberg over every boundary of every benchmark, and ``compare``'s
   verdict rule. The ratio's bootstrap interval resamples the segments' points (runs). What
   fails either gate is merged away and the rest is judged again.

The exit status is 1 when the latest step of any benchmark is ``slower``: its latest segment is
a regression on the one before.

Rounds pooled over several runs are not independent samples (the machine drifts between runs,
see :mod:`inference_scale.verdicts.ab`), so the size gate, not the p-value, is what keeps a noisy host
from flagging: ``inference-scale bisect`` then settles a flagged step with interleaved blocks.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import itertools
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from inference_scale.errors import InferenceScaleError, InvalidValueError
from inference_scale.verdicts.compare import rank_test, samples_verdict
from inference_scale.verdicts.drift import reference_speed
from inference_scale.verdicts.numbers import num
from inference_scale.verdicts.rule import DEFAULT_ALPHA, DEFAULT_THRESHOLD, check_gates
from inference_scale.verdicts.runs import Run, load_run, readable_files

__all__ = [
    "HAMPEL_HALF",
    "MIN_SEGMENT",
    "STATS",
    "History",
    "HistoryError",
    "Point",
    "Series",
    "Step",
    "format_history",
    "load_history",
    "machines",
]

MIN_SEGMENT = 2  # runs: one run alone is never a segment (nor a step)
HAMPEL_HALF = 2  # runs either side of a point in the outlier filter's window
STATS: dict[str, Callable[..., Any]] = {"median": np.median, "min": np.min}
_THIN = 4000  # rounds a side kept for the test and bootstrap (quantile-preserving thinning)


class HistoryError(InferenceScaleError, ValueError):
    """A history that cannot be built: no runs, several machines, a pattern matching nothing."""


@dataclass(frozen=True)
class Point:
    """One run's value of one benchmark, seconds (normalized where the history is)."""

    index: int  # the run's position in the history
    value: float
    ci_low: float | None
    ci_high: float | None
    rounds: tuple[float, ...] | None
    commit: str
    state: str | None  # this project's record's state, else None
    outlier: bool = False  # set aside by the Hampel filter: shown, not used to find or judge steps


@dataclass(frozen=True)
class Step:
    benchmark: str
    verdict: str  # slower or faster
    at: int  # the index of the first point of the new segment
    commit_before: str
    commit_after: str
    before: float  # segment medians, seconds
    after: float
    ratio: float
    p_value: float | None
    q_value: float | None
    ci_low: float | None
    ci_high: float | None


@dataclass
class Series:
    key: str
    name: str
    points: list[Point]
    steps: list[Step] = field(default_factory=list)

    @property
    def regressed(self) -> bool:
        return bool(self.steps) and self.steps[-1].verdict == "slower"


@dataclass(frozen=True)
class RunInfo:
    path: Path
    commit: str  # short id, or the file's stem where the run has no commit_info
    when: str  # ISO time it is ordered by
    subject: str


@dataclass
class History:
    machine: str
    runs: list[RunInfo]
    series: list[Series]
    normalized: bool
    stat: str
    threshold: float
    alpha: float
    warnings: list[str] = field(default_factory=list)

    @property
    def steps(self) -> list[Step]:
        return sorted((s for x in self.series for s in x.steps), key=lambda s: (s.at, s.benchmark))

    @property
    def regressed(self) -> list[str]:
        return [s.name for s in self.series if s.regressed]

    def exit_code(self) -> int:
        return 1 if self.regressed else 0


def machines(storage: Path, warn: Callable[[str], None] = lambda _: None) -> dict[str, list[Path]]:
    """The saved runs under ``storage`` by machine folder (pytest-benchmark's layout,
    ``STORAGE/<machine>/NNNN_*.json``); JSON files directly in ``storage`` count as one
    machine named after the folder. Entries that are not readable files (link loops, dangling
    links, folders named ``*.json``) are skipped, each with one line to ``warn``."""
    if not storage.is_dir():
        raise HistoryError(f"storage {storage} is not a folder (give the --benchmark-storage folder, e.g. .benchmarks)")

    def readable(folder: Path) -> list[Path]:
        return readable_files(sorted(folder.glob("*.json")), warn)

    found = {p.name: readable(p) for p in sorted(storage.iterdir()) if p.is_dir()}
    found = {k: v for k, v in found.items() if v}
    direct = readable(storage)
    if direct:
        found[storage.name or "."] = direct
    return found


def _when(run: Run) -> datetime | None:
    for text in (run.commit_info.get("time"), run.datetime):
        if isinstance(text, str):
            try:
                stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                continue
            return stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)
    return None


def _commit(run: Run) -> str:
    cid = run.commit_info.get("id")
    return cid[:10] if isinstance(cid, str) and cid else run.path.stem


def _since(runs: list[tuple[Run, datetime | None]], since: str) -> list[tuple[Run, datetime | None]]:
    """Runs from ``since`` on: an ISO date or time, else a commit id (prefix) of a run."""
    try:
        start = datetime.fromisoformat(since)
    except ValueError:
        ids = [i for i, (r, _) in enumerate(runs) if str(r.commit_info.get("id", "")).startswith(since)]
        if not ids:
            raise HistoryError(
                f"--since {since!r} is neither an ISO date (2026-01-31) nor the commit of a run; "
                f"commits: {', '.join(_commit(r) for r, _ in runs[:8])}{' ...' if len(runs) > 8 else ''}"
            ) from None
        return runs[ids[0] :]
    start = start if start.tzinfo else start.replace(tzinfo=timezone.utc)
    return [(r, w) for r, w in runs if w is not None and w >= start]


def _thin(x: np.ndarray) -> np.ndarray:
    """At most ``_THIN`` values, evenly spaced over the sorted sample: its quantiles (and so
    its median and the rank test's picture) survive, the bootstrap's memory stays bounded."""
    if len(x) <= _THIN:
        return x
    return np.sort(x)[np.linspace(0, len(x) - 1, _THIN).round().astype(int)]


def _point_ci(rounds: np.ndarray, stat: str) -> tuple[float | None, float | None]:
    if len(rounds) < 3 or np.ptp(rounds) == 0:
        return None, None
    fn = STATS[stat]
    res = stats.bootstrap(
        (_thin(rounds),),
        lambda x, axis: fn(x, axis=axis),
        n_resamples=999,
        method="percentile",
        vectorized=True,
        batch=100,
        rng=np.random.default_rng(0),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _pelt(values: np.ndarray, threshold: float) -> list[int]:
    """Change points of ``log(values)``: indices where a new segment starts."""
    import ruptures as rpt

    n = len(values)
    if n < 2 * MIN_SEGMENT:
        return []
    signal = np.log(values).reshape(-1, 1)
    diffs = np.diff(signal[:, 0])
    # MAD of successive differences (a step moves one of them, noise all): sigma of one point
    noise = 1.4826 * float(np.median(np.abs(diffs - np.median(diffs)))) / math.sqrt(2)
    pen = max(noise, math.log1p(threshold) / 2) * math.log(n)
    ends = rpt.Pelt(model="l1", min_size=MIN_SEGMENT, jump=1).fit(signal).predict(pen=pen)
    return [int(e) for e in ends[:-1]]  # ruptures ends each segment; the last end is n


def _segments(n: int, cuts: Sequence[int]) -> list[tuple[int, int]]:
    edges = [0, *cuts, n]
    return list(itertools.pairwise(edges))


def _size_pruned(values: np.ndarray, cuts: list[int], threshold: float) -> list[int]:
    """Drop the smallest boundary under the threshold until every one passes it."""
    cuts = list(cuts)
    while cuts:
        segs = _segments(len(values), cuts)
        sizes = [
            abs(math.log(np.median(values[b0:b1]) / np.median(values[a0:a1])))
            for (a0, a1), (b0, b1) in itertools.pairwise(segs)
        ]
        worst = int(np.argmin(sizes))
        if sizes[worst] > math.log1p(threshold):
            break
        del cuts[worst]
    return cuts


def _sample(points: Sequence[Point]) -> np.ndarray:
    if all(p.rounds is not None for p in points):
        return _thin(np.concatenate([np.asarray(p.rounds) for p in points]))
    return np.asarray([p.value for p in points])


def _hampel(values: np.ndarray, threshold: float) -> np.ndarray:
    """Which points are outliers by a Hampel filter (Hampel 1974; Pearson 2002) on the log
    series: farther from the median of the +-``HAMPEL_HALF`` window around them than 3 robust
    sigmas (1.4826 MAD) and than twice the threshold. A shared host puts single runs 1.5-1.8x
    slow; a step of the threshold's size never qualifies (a window around one of its points
    holds a majority of that point's own side once segments have 3 points)."""
    logs = np.log(values)
    out = np.zeros(len(values), dtype=bool)
    floor = 2 * math.log1p(threshold)
    for i in range(len(values)):
        window = logs[max(0, i - HAMPEL_HALF) : i + HAMPEL_HALF + 1]
        if len(window) < 3:
            continue
        centre = float(np.median(window))
        sigma = 1.4826 * float(np.median(np.abs(window - centre)))
        out[i] = abs(logs[i] - centre) > max(3 * sigma, floor)
    return out


def _kept(s: Series) -> list[Point]:
    return [p for p in s.points if not p.outlier]


def _detect(series: list[Series], *, threshold: float, alpha: float) -> None:
    cuts: dict[str, list[int]] = {}
    for s in series:
        values = np.asarray([p.value for p in _kept(s)])
        cuts[s.key] = _size_pruned(values, _pelt(values, threshold), threshold)
    for _ in range(20):  # each pass only removes boundaries, so this ends; 20 is never reached
        tested = []
        for s in series:
            kept = _kept(s)
            values = np.asarray([p.value for p in kept])
            segs = _segments(len(values), cuts[s.key])
            for cut, (a0, a1), (b0, b1) in zip(cuts[s.key], segs[:-1], segs[1:], strict=True):
                before, after = kept[a0:a1], kept[b0:b1]
                xa, xb = _sample(before), _sample(after)
                _, p, _, _ = rank_test(xa.tolist(), xb.tolist())
                # The ratio and its interval resample runs, not rounds: the run is the unit that drifts.
                _, _, lo, hi = rank_test(values[a0:a1].tolist(), values[b0:b1].tolist())
                med_a, med_b = float(np.median(values[a0:a1])), float(np.median(values[b0:b1]))
                tested.append((s, cut, before, after, med_a, med_b, p, lo, hi, len(xa), len(xb)))
        ps = [t[6] for t in tested if t[6] is not None]
        qs = iter(stats.false_discovery_control(ps, method="bh") if ps else [])
        keep: dict[str, list[int]] = {s.key: [] for s in series}
        steps: dict[str, list[Step]] = {s.key: [] for s in series}
        for s, cut, before, after, med_a, med_b, p, lo, hi, n, m in tested:
            q = None if p is None else float(next(qs))
            ratio = med_b / med_a
            verdict, _ = samples_verdict(ratio, p, q, n, m, alpha=alpha, threshold=threshold)
            if verdict in ("slower", "faster"):
                keep[s.key].append(cut)
                steps[s.key].append(
                    Step(
                        s.name,
                        verdict,
                        after[0].index,
                        before[-1].commit,
                        after[0].commit,
                        med_a,
                        med_b,
                        ratio,
                        p,
                        q,
                        lo,
                        hi,
                    )
                )
        if all(keep[k] == cuts[k] for k in cuts):
            for s in series:
                s.steps = steps[s.key]
            return
        for s in series:  # merged segments are measured again before they are tested again
            values = np.asarray([p.value for p in _kept(s)])
            cuts[s.key] = _size_pruned(values, keep[s.key], threshold)


def _matches(pattern: str, *names: str) -> bool:
    if any(c in pattern for c in "*?["):
        return any(fnmatch.fnmatchcase(n, pattern) for n in names)
    return any(pattern in n for n in names)


def load_history(
    storage: str | os.PathLike[str],
    *,
    machine: str | None = None,
    since: str | None = None,
    benchmark: str | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    alpha: float = DEFAULT_ALPHA,
    normalize: bool = True,
    stat: str = "median",
    outliers: bool = True,
) -> History:
    """Read, order, normalize and judge one machine's saved runs (see the module docstring)."""
    if not (isinstance(threshold, (int, float)) and math.isfinite(threshold) and threshold > 0):
        raise HistoryError(f"threshold must be a number > 0 (0.10 is 10%), got {threshold!r}")
    check_gates(alpha, threshold)
    if stat not in STATS:
        raise HistoryError(f"stat must be one of {', '.join(STATS)}, got {stat!r}")
    folder = Path(storage)
    skipped: list[str] = []
    found = machines(folder, skipped.append)
    if not found:
        raise HistoryError(f"no saved runs under {folder}/ (save them with --benchmark-autosave --benchmark-save-data)")
    if machine is None and len(found) > 1:
        raise HistoryError(
            f"runs from {len(found)} machines under {folder}/: pick one with --machine ({', '.join(found)})"
        )
    if machine is not None and machine not in found:
        raise HistoryError(f"no machine {machine!r} under {folder}/; valid choices: {', '.join(found)}")
    name = machine or next(iter(found))
    loaded = [load_run(p) for p in found[name]]
    ordered = sorted(
        ((r, _when(r)) for r in loaded),
        key=lambda rw: (rw[1] or datetime.min.replace(tzinfo=timezone.utc), rw[0].datetime or "", rw[0].path.name),
    )
    if since is not None:
        ordered = _since(ordered, since)
        if not ordered:
            raise HistoryError(f"no run of {name} is from {since} or later")
    runs = [r for r, _ in ordered]
    history = History(name, [], [], False, stat, threshold, alpha)
    history.warnings += skipped
    history.runs = [
        RunInfo(r.path, _commit(r), (w.isoformat() if w else "-"), str(r.commit_info.get("subject", "")))
        for r, w in ordered
    ]
    refs = [reference_speed(r.machine_info) for r in runs]
    scales = [1.0] * len(runs)
    if normalize and refs and all(x is not None for x in refs):
        # A run whose machine ran the reference at 0.9x the first run's speed took 1/0.9 as long.
        scales = [x.speed / refs[0].speed for x in refs]  # type: ignore[union-attr]
        history.normalized = True
    elif normalize and any(x is not None for x in refs):
        history.warnings.append(
            f"{sum(x is None for x in refs)} of {len(refs)} runs have no reference workload: timings are not normalized"
        )
    fn = STATS[stat]
    by_key: dict[str, Series] = {}
    for i, (run, scale) in enumerate(zip(runs, scales, strict=True)):
        for b in run.benchmarks:
            if benchmark is not None and not _matches(benchmark, b.name, b.key):
                continue
            rounds = None if b.rounds is None else np.asarray(b.rounds) * scale
            value = b.median * scale if rounds is None or stat == "median" else float(fn(rounds))
            lo, hi = (None, None) if rounds is None else _point_ci(rounds, stat)
            s = by_key.setdefault(b.key, Series(b.key, b.name, []))
            s.points.append(
                Point(
                    i,
                    value,
                    lo,
                    hi,
                    None if rounds is None else tuple(rounds),
                    _commit(run),
                    None if b.record is None else str(b.record["state"]),
                )
            )
    if benchmark is not None and not by_key:
        names = sorted({b.name for r in runs for b in r.benchmarks})
        raise HistoryError(
            f"--benchmark {benchmark!r} matches no benchmark; there are {len(names)}: "
            f"{', '.join(names[:8])}{' ...' if len(names) > 8 else ''}"
        )
    history.series = sorted(by_key.values(), key=lambda s: s.name)
    if outliers:
        for s in history.series:
            mask = _hampel(np.asarray([p.value for p in s.points]), threshold)
            s.points = [dataclasses.replace(p, outlier=bool(m)) for p, m in zip(s.points, mask, strict=True)]
    if len(runs) < 2 * MIN_SEGMENT:
        history.warnings.append(f"{len(runs)} runs: a step needs {MIN_SEGMENT} runs on each side")
    if any(p.rounds is None for s in history.series for p in s.points):
        history.warnings.append(
            "some runs have no raw rounds (--benchmark-save-data): their steps are tested on the runs' medians"
        )
    _detect(history.series, threshold=threshold, alpha=alpha)
    return history


def format_history(history: History, *, fmt: str = "table") -> str:
    """Each step (benchmark, commit range, segment medians, ratio, interval, q), then the summary."""
    if fmt not in ("table", "md"):
        raise InvalidValueError(f"format must be table or md, got {fmt!r}")
    head = ("benchmark", "step", "commits", "before ms", "after ms", "ratio", "95% CI", "q (BH)")
    rows = [
        (
            s.benchmark,
            s.verdict,
            f"{s.commit_before}..{s.commit_after}",
            f"{s.before * 1e3:.4g}",
            f"{s.after * 1e3:.4g}",
            f"{s.ratio:.3f}",
            f"{num(s.ci_low, '.3f')}..{num(s.ci_high, '.3f')}",
            num(s.q_value, ".2g"),
        )
        for s in history.steps
    ]
    first, last = history.runs[0], history.runs[-1]
    lines = [
        f"history of {history.machine}: {len(history.runs)} runs ({first.commit} {first.when} .. {last.commit} "
        f"{last.when}), {len(history.series)} benchmarks, {history.stat}"
        f"{', normalized by the reference workload' if history.normalized else ''}"
    ]
    if fmt == "md":
        lines += ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        lines.append("")
    elif rows:
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
        lines.append("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip())
        lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines += [f"warning: {w}" for w in history.warnings]
    slower = sum(s.verdict == "slower" for s in history.steps)
    summary = (
        f"{len(history.steps)} steps ({slower} slower, {len(history.steps) - slower} faster) over "
        f"{history.threshold:.0%} at alpha {history.alpha:g}"
    )
    if history.regressed:
        summary += f"; the latest segment regressed: {', '.join(history.regressed)}"
    lines.append(summary)
    return "\n".join(lines)
