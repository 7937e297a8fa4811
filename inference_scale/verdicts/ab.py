"""Interleaved A/B benchmarking of two commits in one invocation (``inference-scale ab``).

Two saved runs taken minutes apart differ by the machine's drift as much as by the code (10-40%
on a shared 2-core machine), and the rounds inside one run cannot see that drift: a Mann-Whitney
test over thousands of rounds turns it into "significance". So ``ab`` measures both sides in
alternation and treats the *block*, not the round, as the sample:

* side A is a git worktree of BASE (any commit-ish), side B the working tree; with ``aa`` both
  are the working tree (an A/A calibration);
* K blocks; a block is one fresh ``pytest --benchmark-only`` process per side, the two started
  together and run in lockstep (:mod:`inference_scale.verdicts.ab_sync`): each test runs on one side, then
  on the other, A first in odd blocks and B first in even ones (asv's ``continuous
  --interleave-rounds`` flips the order each round; Google benchmark's random interleaving cut
  run-to-run variance by about 40%). The two timings of a pair are a second apart, not a whole
  run apart, so they share the machine's state;
* for each benchmark, block i gives the paired log ratio d_i = log(median_B,i / median_A,i) of
  the pair; a one-sample t-test on the d_i (``scipy.stats.ttest_1samp``),
  adjusted over the benchmarks by Benjamini-Hochberg, is the significance gate, and the geometric
  mean ratio exp(mean d) against the threshold is the size gate (Chromium's Pinpoint separates
  within- and between-run noise for the same reason). The t-test can reach any level with 3 or
  more blocks when the blocks agree; with fewer the verdict is ``undecided``;
* optionally sequential: while a verdict is undecided, two more blocks (one A-B-B-A cycle) are
  added, up to ``max_runs``;
* every block's run is saved as ordinary pytest-benchmark JSON (``A-01.json``, ``B-01.json``, ...).

The A/A calibration reports each benchmark's between-block coefficient of variation (the
standard deviation of the per-block log ratio d, which is what the verdict sees) and the
threshold it supports, 3 x CV: a change smaller than that is within what this machine does by
itself between two paired runs.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from inference_scale.defaults import DEFAULTS
from inference_scale.errors import InferenceScaleError
from inference_scale.verdicts import ab_sync
from inference_scale.verdicts.ab_sync import BLOCK_TIME_ENV, PLUGIN
from inference_scale.verdicts.compare import isa_mismatch
from inference_scale.verdicts.numbers import num
from inference_scale.verdicts.rule import DEFAULT_ALPHA, DEFAULT_THRESHOLD, VERDICTS, gate_exit_code, judge
from inference_scale.verdicts.runs import BadRunError, load_run

__all__ = ["ABConfig", "ABError", "ABResult", "ABRow", "format_ab", "run_ab"]

CV_FACTOR = 3.0  # the threshold an A/A CV supports: about 3 standard deviations of block noise
MIN_BLOCKS_FOR_TEST = 3  # a t-test on fewer paired blocks has under 2 degrees of freedom
# Reference workloads measure the machine, not the code: an interleaved A/B needs none.
_ENV = {"INFERENCE_SCALE_REFERENCE_SECONDS": "0"}


class ABError(InferenceScaleError, ValueError):
    """An A/B that cannot run: not a git repository, an unknown BASE, a block that fails."""


@dataclass(frozen=True)
class ABConfig:
    """One interleaved A/B. ``runs`` is K, the blocks per side; ``max_runs`` caps the sequential
    extension (``runs`` turns it off); ``block_time`` is pytest-benchmark's max time per
    benchmark in one block (a plain run uses 1 s; K blocks of 1/K s cost about the same)."""

    base: str | None
    pytest_args: tuple[str, ...] = ()
    runs: int = 6
    max_runs: int | None = None
    alpha: float = DEFAULT_ALPHA
    threshold: float = DEFAULT_THRESHOLD
    block_time: float = DEFAULTS["ab_block_time_s"]
    out_dir: Path = Path(".benchmarks/ab")
    repo: Path = Path(".")
    cpus: tuple[int, ...] | None = field(default_factory=lambda: _default_cpus())

    def __post_init__(self) -> None:
        if isinstance(self.runs, bool) or not isinstance(self.runs, int) or self.runs < 2:
            raise ABError(f"runs must be an integer >= 2 (blocks per side), got {self.runs!r}")
        cap = self.runs if self.max_runs is None else self.max_runs
        if isinstance(cap, bool) or not isinstance(cap, int) or cap < self.runs:
            raise ABError(f"max_runs must be an integer >= runs ({self.runs}), got {self.max_runs!r}")
        if not 0 < self.alpha < 1:
            raise ABError(f"alpha must be in (0, 1), got {self.alpha!r}")
        if not (math.isfinite(self.threshold) and self.threshold >= 0):
            raise ABError(f"threshold must be a finite number >= 0, got {self.threshold!r}")
        if not (math.isfinite(self.block_time) and self.block_time > 0):
            raise ABError(f"block_time must be a positive number of seconds, got {self.block_time!r}")

        if self.cpus is not None:
            if not hasattr(os, "sched_getaffinity"):
                raise ABError("pinning to cpus needs Linux's sched_setaffinity; pass --cpus all here")
            allowed = os.sched_getaffinity(0)
            if not self.cpus or not set(self.cpus) <= allowed:
                raise ABError(f"cpus {list(self.cpus)} are not all available; this process may use {sorted(allowed)}")
        if not self.pytest_args:  # without one, pytest runs every test path, every block: hours
            raise ABError(
                "ab needs a selection of benchmarks after --, e.g. `inference-scale ab HEAD -- "
                "benchmarks/test_pruning.py -k lenet`"
            )

    @property
    def cap(self) -> int:
        return self.runs if self.max_runs is None else self.max_runs


@dataclass(frozen=True)
class ABRow:
    name: str
    verdict: str
    ratio: float  # geometric mean of the per-block B/A ratios
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    q_value: float | None
    blocks: int
    cv: float  # between-block coefficient of variation of the B/A ratio
    reason: str = ""

    @property
    def supported_threshold(self) -> float:
        return CV_FACTOR * self.cv


@dataclass
class ABResult:
    rows: list[ABRow] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    seconds: float = 0.0
    aa: bool = False
    isa: str | None = None  # the ISA flags that differ between A's and B's recorded machine, if any

    def count(self, verdict: str) -> int:
        return sum(r.verdict == verdict for r in self.rows)

    def exit_code(self, *, strict: bool = False, allow_missing: bool = False) -> int:
        return gate_exit_code(
            self.count("slower") > 0, self.missing, self.count("undecided"), strict=strict, allow_missing=allow_missing
        )


def _git(repo: Path, *args: str) -> str:
    try:
        proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=120)
    except FileNotFoundError as exc:
        raise ABError("git is not installed: ab needs it to check out BASE") from exc
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        raise ABError(f"git {' '.join(args)} failed: {last}")
    return proc.stdout.strip()


def _toplevel(repo: Path) -> Path:
    try:
        return Path(_git(repo, "rev-parse", "--show-toplevel"))
    except ABError as exc:
        raise ABError(f"{repo.resolve()} is not inside a git repository: ab compares commits") from exc


def _default_cpus() -> tuple[int, ...] | None:
    """One CPU for both sides: they never run at once, and on a shared host two CPUs can run at
    different speeds at the same moment (measured here: the two sides' alternating rounds still
    differed by 30% in a block until both were pinned to the same CPU)."""
    if not hasattr(os, "sched_getaffinity"):  # macOS and Windows: no affinity API, nothing pinned
        return None
    return (max(os.sched_getaffinity(0)),)


class _Worker:
    """One side's pytest process of a block, driven through the :mod:`ab_sync` pipes."""

    def __init__(
        self, side: Path, args: Sequence[str], out: Path, block_time: float, plugin_dir: Path, label: str = ""
    ) -> None:
        go_r, go_w = os.pipe()
        done_r, done_w = os.pipe()
        path = os.pathsep.join(filter(None, [str(side), str(plugin_dir), os.environ.get("PYTHONPATH")]))
        env = {
            **os.environ,
            **_ENV,
            "PYTHONPATH": path,
            ab_sync.ENV: f"{go_r},{done_w}",
            BLOCK_TIME_ENV: str(block_time),
            # The installed package's pytest11 plugin would be the working tree's: each side loads
            # its own (if its commit has one), explicitly.
            "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
        }
        own = ["-p", "inference_scale.measure.plugin"] if (side / "inference_scale" / "plugin.py").is_file() else []
        cmd = [
            sys.executable, "-m", "pytest", *args, "--benchmark-only", f"--benchmark-json={out}",
            f"--benchmark-max-time={block_time}", "-q", "-p", "no:cacheprovider", "-p", "pytest_benchmark.plugin",
            *own, "-p", PLUGIN,
        ]  # fmt: skip
        self.side, self.out = side, out
        self.label = label or str(side)
        self.log = tempfile.TemporaryFile("w+")  # noqa: SIM115 - lives as long as the worker; close() closes it
        self.proc = subprocess.Popen(cmd, cwd=side, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     pass_fds=(go_r, done_w))  # fmt: skip
        os.close(go_r)
        os.close(done_w)
        self.go, self.done = os.fdopen(go_w, "w"), os.fdopen(done_r, "r")
        self.remaining: list[str] = []
        self.proposed = 0
        self.pending: str | None = None
        self.finished = False

    def read(self) -> dict[str, Any] | None:
        line = self.done.readline()
        if not line:
            self.finished = True
            return None
        message: dict[str, Any] = json.loads(line)
        return message

    def tail(self) -> str:
        """pytest's last lines, with the temporary worktree's path taken out (it is removed)."""
        self.proc.wait()
        self.log.seek(0)
        lines = [line for line in self.log.read().strip().splitlines() if line.strip()]
        # pytest's own reason ("ERROR: file or directory not found: x") comes before its summary
        errors = [line for line in lines if line.startswith(("ERROR", "E "))]
        return " | ".join((errors or lines)[-3:]).replace(f"{self.side}{os.sep}", "")

    def step(self, reply: str = "go") -> str:
        """Let the worker go on until its next stop: ``rounds`` (proposing a round count, kept
        in ``self.proposed``), ``round`` (waiting at a round barrier), ``done`` (the test
        finished) or ``eof`` (the process is gone)."""
        try:
            self.go.write(reply + "\n")
            self.go.flush()
        except BrokenPipeError:
            self.finished = True
            return "eof"
        message = self.read()
        if message is None:
            return "eof"
        if "rounds" in message:
            self.proposed = int(message["rounds"])
            return "rounds"
        return "round" if "round" in message else "done"

    def finish_test(self) -> None:
        if self.pending in self.remaining:
            self.remaining.remove(self.pending)
        self.pending = None

    def close(self) -> None:
        for fh in (self.go, self.done):
            with contextlib.suppress(OSError):
                fh.close()
        self.proc.wait()
        self.log.close()


def _run_block(
    workers: dict[str, _Worker], order: tuple[str, str], cpus: tuple[int, ...] | None
) -> dict[str, dict[str, float]]:
    """Run both sides' tests in lockstep, ``order[0]`` first in each pair; their medians by key.
    Both start on every CPU (imports and collection in parallel); once ready, each is pinned
    to ``cpus`` (threads it starts later inherit the mask)."""
    for w in workers.values():
        ready = w.read()
        if ready is None or "ready" not in ready:
            raise ABError(f"pytest on side {w.label} stopped before running a test (exit {w.proc.wait()}): {w.tail()}")
        if not ready["ready"]:
            w.go.close()  # pytest has nothing to run: let it finish, then quote its own reason
            raise ABError(f"pytest selected no benchmark on side {w.label} (exit {w.proc.wait()}): {w.tail()}")
        w.remaining = list(ready["ready"])
        if cpus is not None:
            os.sched_setaffinity(w.proc.pid, cpus)
    ordered = [workers[side] for side in order]
    while True:
        for w in ordered:
            if not w.finished and w.pending is None:
                message = w.read()
                if message is not None:
                    w.pending = message.get("next")
        live = [w for w in ordered if w.pending is not None]
        if not live:
            break
        if len(live) == 2 and live[0].pending == live[1].pending:
            pair = live  # one test, both sides: each runs up to its first round barrier, or to the end
        else:  # a test only one side has (added or removed): it runs alone
            pair = [next((w for w in live if all(w.pending not in o.remaining for o in live if o is not w)), live[0])]
        stops = {id(w): w.step() for w in pair}  # each side to its first stop, one after the other
        proposing = [w for w in pair if stops[id(w)] == "rounds"]
        agreed = min((w.proposed for w in proposing), default=0)
        for w in proposing:  # both run the same number of rounds: every round has a partner
            stops[id(w)] = w.step(f"go {agreed}")
        at_barrier = [w for w in pair if stops[id(w)] == "round"]
        while at_barrier:  # rounds alternate, in this block's order, until each side is done
            at_barrier = [w for w in at_barrier if w.step() == "round"]
        for w in pair:
            w.finish_test()
    medians = {}
    for name, w in workers.items():
        w.proc.wait()
        if not w.out.is_file():
            raise ABError(f"a block on {w.side} saved no results (pytest exit {w.proc.returncode}): {w.tail()}")
        try:
            run = load_run(w.out)
        except BadRunError as exc:
            raise ABError(f"a block on {w.side}: {exc}") from exc
        medians[name] = {b.key: b.median for b in run.benchmarks}
    return medians


def _row(name: str, a: list[float], b: list[float], cfg: ABConfig) -> tuple[ABRow, float | None]:
    d = np.log(np.asarray(b)) - np.log(np.asarray(a))
    ratio = float(math.exp(d.mean()))
    cv = float(np.std(d, ddof=1)) if len(d) > 1 else 0.0  # how far one block's B/A ratio scatters
    if len(d) < MIN_BLOCKS_FOR_TEST:
        return ABRow(name, "undecided", ratio, None, None, None, None, len(d), cv, "too few blocks"), None
    if float(np.ptp(d)) == 0.0:
        p = 0.0 if d[0] != 0 else 1.0  # identical blocks: the t statistic is undefined
        lo = hi = ratio
    else:
        res = stats.ttest_1samp(d, 0.0)
        p = float(res.pvalue)
        ci = res.confidence_interval(0.95)
        lo, hi = math.exp(ci.low), math.exp(ci.high)
    return ABRow(name, "", ratio, lo, hi, p, None, len(d), cv), p


def _judge(blocks_a: list[dict[str, float]], blocks_b: list[dict[str, float]], cfg: ABConfig) -> ABResult:
    keys_a = set.intersection(*(set(x) for x in blocks_a))
    keys_b = set.intersection(*(set(x) for x in blocks_b))
    result = ABResult(missing=sorted(keys_a - keys_b), added=sorted(keys_b - keys_a))
    rows: list[tuple[ABRow, float | None]] = [
        _row(k, [x[k] for x in blocks_a], [x[k] for x in blocks_b], cfg) for k in sorted(keys_a & keys_b)
    ]
    ps = [p for _, p in rows if p is not None]
    qs = iter(stats.false_discovery_control(ps, method="bh") if ps else [])
    for row, p in rows:
        if p is None:
            result.rows.append(row)
            continue
        q = float(next(qs))
        verdict, reason = judge(row.ratio, q, alpha=cfg.alpha, threshold=cfg.threshold, unconfirmed=": try --max-runs")
        result.rows.append(
            ABRow(row.name, verdict, row.ratio, row.ci_low, row.ci_high, p, q, row.blocks, row.cv, reason)
        )
    return result


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _term_as_interrupt() -> Any:
    """Treat SIGTERM (a CI cancel, ``timeout``) as Ctrl-C for the rest of the run, so the same
    ``finally`` removes the worktree and the temporary folders; the old handler, or None where
    no handler can be set (not the main thread)."""
    try:
        return signal.signal(signal.SIGTERM, _raise_interrupt)
    except ValueError:  # signal only works in the main thread
        return None


def run_ab(cfg: ABConfig, *, aa: bool = False, log: Callable[[str], None] | None = None) -> ABResult:
    """Run the interleaved A/B (see the module docstring); ``log`` gets one line per block."""
    say = log or (lambda _line: None)
    top = _toplevel(cfg.repo)
    base_sha = None if aa else _git(top, "rev-parse", "--verify", f"{cfg.base}^{{commit}}")
    stamp = time.strftime("%Y%m%d_%H%M%S")
    out = (cfg.out_dir / stamp).resolve()  # blocks run in their side's folder
    out.mkdir(parents=True, exist_ok=False)
    worktree = None
    start = time.perf_counter()
    done = False
    previous = _term_as_interrupt()
    try:
        if base_sha is None:
            side_a = top
        else:
            worktree = Path(tempfile.mkdtemp(prefix="inference-scale-ab-"))
            _git(top, "worktree", "add", "--detach", str(worktree / "base"), base_sha)
            side_a = worktree / "base"
        sides = {"A": side_a, "B": top}
        labels = {"A": f"A ({cfg.base or 'the working tree'})", "B": "B (the working tree)"}
        plugin_dir = Path(tempfile.mkdtemp(prefix="inference-scale-ab-plugin-"))
        shutil.copy(ab_sync.__file__, plugin_dir / f"{PLUGIN}.py")  # importable from BASE's tree too
        blocks: dict[str, list[dict[str, float]]] = {"A": [], "B": []}
        result = ABResult()
        block = 0
        try:
            while True:
                order: tuple[str, str] = ("A", "B") if block % 2 == 0 else ("B", "A")
                paths = {side: out / f"{side}-{block + 1:02d}.json" for side in sides}
                t0 = time.perf_counter()
                workers = {side: _Worker(sides[side], cfg.pytest_args, paths[side], cfg.block_time, plugin_dir,
                                         labels[side])
                           for side in sides}  # fmt: skip
                try:
                    medians = _run_block(workers, order, cfg.cpus)
                finally:
                    for w in workers.values():
                        w.close()
                for side in sides:
                    blocks[side].append(medians[side])
                    result.files.append(paths[side])
                block += 1
                took = time.perf_counter() - t0
                say(f"block {block} ({'-'.join(order)}): {len(medians['B'])} benchmarks a side, {took:.1f} s")
                if block < cfg.runs:
                    continue
                judged = _judge(blocks["A"], blocks["B"], cfg)
                if block + 2 > cfg.cap or not judged.count("undecided"):
                    break
                say(f"{judged.count('undecided')} undecided after {block} blocks: adding two more (cap {cfg.cap})")
        finally:
            shutil.rmtree(plugin_dir, ignore_errors=True)
        judged.files, judged.aa = result.files, aa
        judged.isa = _isa_between(result.files)
        judged.seconds = time.perf_counter() - start
        done = True
        return judged
    finally:
        if not done:  # a failed or interrupted ab leaves the blocks it saved, never an empty folder
            with contextlib.suppress(OSError):
                out.rmdir()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if worktree is not None:
            subprocess.run(["git", "-C", str(top), "worktree", "remove", "--force", str(worktree / "base")],
                           capture_output=True)  # fmt: skip
            shutil.rmtree(worktree, ignore_errors=True)


def _isa_between(files: Sequence[Path]) -> str | None:
    """The ISA flags that differ between the first A and B blocks' ``machine_info`` (one host
    runs both, so a difference means a side recorded its machine wrongly); None otherwise."""
    if len(files) < 2:
        return None
    try:
        a, b = load_run(files[0]), load_run(files[1])
    except BadRunError:
        return None
    return isa_mismatch(a.machine_info, b.machine_info, base="A", new="B")


def format_ab(result: ABResult) -> str:
    """The verdict table; for an A/A, the CV and the threshold it supports."""
    head = ["benchmark", "verdict", "B/A", "95% CI", "q (BH)", "blocks", "CV", "3xCV", "note"]
    rows = [
        [r.name, r.verdict, f"{r.ratio:.3f}", f"{num(r.ci_low, '.3f')}..{num(r.ci_high, '.3f')}",
         num(r.q_value, ".2g"), str(r.blocks), f"{r.cv:.2%}", f"{r.supported_threshold:.1%}", r.reason or "-"]
        for r in result.rows
    ]  # fmt: skip
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in [head, *rows]]
    lines += [f"missing in B: {k}" for k in result.missing]
    lines += [f"added in B: {k}" for k in result.added]
    if result.aa and result.rows:
        worst = max(result.rows, key=lambda r: r.cv)
        lines.append(
            f"A/A: between-block CV up to {worst.cv:.2%} ({worst.name}); a threshold below "
            f"{worst.supported_threshold:.1%} (3 x CV) would flag this machine's own noise"
        )
    if result.isa:
        lines.append(
            f"warning: ISA flags differ between A and B: {result.isa}; different kernels ran (--strict refuses)"
        )
    counts = ", ".join(f"{result.count(v)} {v}" for v in VERDICTS)
    blocks = len(result.files) // 2
    lines.append(f"{counts}, {len(result.missing)} missing; {blocks} blocks in {result.seconds:.0f} s")
    return "\n".join(lines)
