"""Find the first commit between GOOD and BAD at which a benchmark got slower
(``inference-scale bisect GOOD BAD -- PYTEST_ARGS``).

Each probe is one interleaved A/B (:func:`inference_scale.verdicts.ab.run_ab`): side A is GOOD, side B a
git worktree of the probed commit, the blocks are the samples, and ``ab``'s verdict decides:
``slower`` makes the commit bad, ``no change`` or ``faster`` good. BAD is probed first: if it is
not slower than GOOD there is nothing to look for. The candidates are ``git rev-list
--ancestry-path GOOD..BAD``; a commit where the benchmark fails, is missing or stays undecided is
skipped (as ``git bisect skip`` does) and its nearest neighbour towards the middle is probed
instead. ``no change`` counts as good only when the 95% interval of the ratio stays under
``1 + threshold``; otherwise the commit is skipped too, so a noisy probe narrows less rather
than naming a wrong commit. Probes are bounded (``max_probes``); the result is the first bad commit (its parent
tested good), or the narrowed range and why it could not be narrowed further.

The user's work tree is never touched: every probe runs in a worktree of its own, removed
afterwards, also on Ctrl-C (which prints the range narrowed so far). A dirty work tree is refused
anyway, rather than stashed: a user bisecting with uncommitted changes expects them to count,
and they would not.
"""

from __future__ import annotations

import fnmatch
import math
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from inference_scale.errors import InferenceScaleError
from inference_scale.verdicts.ab import ABConfig, ABError, ABRow, _git, _toplevel, run_ab

__all__ = ["BisectError", "BisectResult", "Probe", "default_max_probes", "format_bisect", "run_bisect"]


class BisectError(InferenceScaleError, ValueError):
    """A bisect that cannot start: not a repository, unknown or unrelated commits, a dirty tree."""


@dataclass(frozen=True)
class Probe:
    commit: str
    outcome: str  # bad, good or skip
    ratio: float | None = None
    q_value: float | None = None
    reason: str = ""


@dataclass
class BisectResult:
    good: str
    bad: str
    first_bad: str | None  # None: undecided
    range: tuple[str, str]  # the last known good and first known bad commit
    probes: list[Probe] = field(default_factory=list)
    reason: str = ""
    subject: str = ""
    ratio: float | None = None
    q_value: float | None = None

    @property
    def found(self) -> bool:
        return self.first_bad is not None


def default_max_probes(n: int) -> int:
    """Bisection needs ceil(log2(n + 1)) probes of n candidates; twice that plus BAD's own probe
    leaves room for skips."""
    return 2 * math.ceil(math.log2(n + 1)) + 1


def _short(top: Path, sha: str) -> str:
    return _git(top, "rev-parse", "--short", sha)


def _subject(top: Path, sha: str) -> str:
    return _git(top, "log", "-1", "--format=%s", sha)


def _chosen(rows: list[ABRow], missing: list[str], pattern: str | None) -> tuple[list[ABRow], list[str]]:
    if pattern is None:
        return rows, missing
    pick = [r for r in rows if fnmatch.fnmatchcase(r.name, pattern) or pattern in r.name]
    gone = [m for m in missing if fnmatch.fnmatchcase(m, pattern) or pattern in m]
    return pick, gone


def _probe(top: Path, sha: str, cfg: ABConfig, pattern: str | None, say: Callable[[str], None]) -> Probe:
    """``sha`` against GOOD (``cfg.base``) in interleaved blocks, in a worktree of its own."""
    holder = Path(tempfile.mkdtemp(prefix="inference-scale-bisect-"))
    side = holder / "probe"
    try:
        _git(top, "worktree", "add", "--detach", str(side), sha)
        try:
            result = run_ab(replace(cfg, repo=side, out_dir=holder / "ab"), log=lambda line: say(f"  {line}"))
        except ABError as exc:  # the benchmark fails to run at this commit
            return Probe(sha, "skip", reason=f"the benchmark did not run: {exc}")
        rows, missing = _chosen(result.rows, result.missing, pattern)
        if missing:
            return Probe(sha, "skip", reason=f"missing at this commit: {', '.join(missing)}")
        if not rows:
            return Probe(sha, "skip", reason=f"no benchmark matches {pattern!r} at this commit")
        worst = max(rows, key=lambda r: r.ratio)
        slower = [r for r in rows if r.verdict == "slower"]
        if slower:
            hit = max(slower, key=lambda r: r.ratio)
            return Probe(sha, "bad", hit.ratio, hit.q_value, f"{hit.name} slower")
        undecided = [r for r in rows if r.verdict == "undecided"]
        if undecided:
            return Probe(sha, "skip", worst.ratio, worst.q_value, f"undecided: {undecided[0].reason}")
        # "no change" is not proof of "as fast": on a noisy host a slow commit can miss
        # significance. Good needs the interval of every ratio to stay under the threshold.
        wide = [r for r in rows if r.ci_high is None or r.ci_high > 1 + cfg.threshold]
        if wide:
            top_ci = "-" if wide[0].ci_high is None else f"{wide[0].ci_high:.3f}"
            return Probe(
                sha,
                "skip",
                worst.ratio,
                worst.q_value,
                f"no change, but the 95% interval of {wide[0].name} reaches {top_ci}",
            )
        return Probe(
            sha, "good", worst.ratio, worst.q_value, "no benchmark slower (every interval under the threshold)"
        )
    finally:
        subprocess.run(["git", "-C", str(top), "worktree", "remove", "--force", str(side)], capture_output=True)
        shutil.rmtree(holder, ignore_errors=True)
        subprocess.run(["git", "-C", str(top), "worktree", "prune"], capture_output=True)


def _check(top: Path, good: str, bad: str) -> tuple[str, str]:
    dirty = _git(top, "status", "--porcelain", "--untracked-files=no")
    if dirty:
        raise BisectError(
            f"the work tree of {top} has uncommitted changes ({len(dirty.splitlines())} files): "
            "commit or stash them first; bisect refuses rather than stash them itself"
        )
    shas = []
    for label, rev in (("GOOD", good), ("BAD", bad)):
        try:
            shas.append(_git(top, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"))
        except ABError:
            raise BisectError(f"{label} {rev!r} is not a commit of {top}") from None
    g, b = shas
    if g == b:
        raise BisectError(f"GOOD and BAD are the same commit ({g[:10]}): give an older GOOD")
    proc = subprocess.run(["git", "-C", str(top), "merge-base", "--is-ancestor", g, b], capture_output=True)
    if proc.returncode != 0:
        raise BisectError(
            f"GOOD {good} is not an ancestor of BAD {bad}: bisect looks along the history from "
            "GOOD to BAD (swap them, or pick a GOOD that BAD descends from)"
        )
    return g, b


def _pick(candidates: list[str], lo: int, hi: int, skipped: set[str]) -> int | None:
    """An unskipped index strictly between lo and hi, nearest the middle."""
    mid = (lo + hi) // 2
    for offset in range(hi - lo):
        for i in (mid - offset, mid + offset):
            if lo < i < hi and candidates[i] not in skipped:
                return i
    return None


def run_bisect(
    good: str,
    bad: str,
    cfg: ABConfig,
    *,
    benchmark: str | None = None,
    max_probes: int | None = None,
    log: Callable[[str], None] | None = None,
) -> BisectResult:
    """Bisect GOOD..BAD (see the module docstring); ``cfg`` sets each probe's A/B (its
    ``base`` and ``repo`` are replaced); ``log`` gets the progress lines."""
    say = log or (lambda _line: None)
    top = _toplevel(cfg.repo)
    g, b = _check(top, good, bad)
    listed = _git(top, "rev-list", "--ancestry-path", "--reverse", f"{g}..{b}").split()
    candidates = [g, *listed]  # index 0 is GOOD, the last is BAD
    bound = default_max_probes(len(listed)) if max_probes is None else max_probes
    if isinstance(bound, bool) or not isinstance(bound, int) or bound < 1:
        raise BisectError(f"max_probes must be an integer >= 1, got {max_probes!r}")
    probe_cfg = replace(cfg, base=g, repo=top)
    result = BisectResult(_short(top, g), _short(top, b), None, (_short(top, g), _short(top, b)))
    lo, hi = 0, len(candidates) - 1
    skipped: set[str] = set()
    say(f"bisect: {len(listed)} commits after GOOD {result.good} up to BAD {result.bad}, at most {bound} probes")
    try:
        order: int | None = hi  # BAD first: is there a slowdown at all?
        while order is not None:
            if len(result.probes) >= bound:
                result.reason = f"stopped after {bound} probes (--max-probes)"
                break
            sha = candidates[order]
            say(f"probe {len(result.probes) + 1}/{bound}: {_short(top, sha)} {_subject(top, sha)!r} against GOOD")
            probe = _probe(top, sha, probe_cfg, benchmark, say)
            result.probes.append(probe)
            ratio = "-" if probe.ratio is None else f"{probe.ratio:.3f}"
            q = "-" if probe.q_value is None else f"{probe.q_value:.2g}"
            say(f"  {probe.outcome}: ratio {ratio}, q {q} ({probe.reason})")
            if order == len(candidates) - 1 and probe.outcome != "bad":
                result.reason = f"BAD {result.bad} is not slower than GOOD ({probe.outcome}: {probe.reason})"
                return result
            if probe.outcome == "bad":
                hi = order
            elif probe.outcome == "good":
                lo = order
            else:
                skipped.add(sha)
            result.range = (_short(top, candidates[lo]), _short(top, candidates[hi]))
            left = sum(1 for c in candidates[lo + 1 : hi] if c not in skipped)
            say(f"  range now {result.range[0]}..{result.range[1]}: {left} commits left to probe")
            order = _pick(candidates, lo, hi, skipped)
        else:
            if hi - lo == 1:
                result.first_bad = _short(top, candidates[hi])
                result.subject = _subject(top, candidates[hi])
                hit = next(p for p in reversed(result.probes) if p.commit == candidates[hi])
                result.ratio, result.q_value = hit.ratio, hit.q_value
                result.reason = f"its parent {result.range[0]} is as fast as GOOD"
            else:
                why = [f"{_short(top, p.commit)}: {p.reason}" for p in result.probes if p.outcome == "skip"]
                result.reason = f"every commit between was skipped ({'; '.join(why)})"
    except KeyboardInterrupt:
        say(f"interrupted: the first slower commit is after {result.range[0]} and at or before {result.range[1]}")
        raise
    return result


def format_bisect(result: BisectResult) -> str:
    if result.found:
        ratio = "-" if result.ratio is None else f"{result.ratio:.3f}"
        q = "-" if result.q_value is None else f"{result.q_value:.2g}"
        return (
            f"first slower commit: {result.first_bad} {result.subject!r}: {ratio}x GOOD {result.good} "
            f"(q {q}); {result.reason}; {len(result.probes)} probes"
        )
    return (
        f"undecided: the first slower commit is after {result.range[0]} and at or before {result.range[1]}: "
        f"{result.reason}; {len(result.probes)} probes"
    )
