"""Which state should I deploy? Saved runs turned into a recommendation under the user's budgets.

For each model (at one batch size) the candidates are its states with their median latency,
bytes and quality: accuracy where the run measured it, else top-1 agreement with fp32. The
Pareto front is every candidate that no other beats on all three at once (lower latency, fewer
bytes, higher quality, strictly better on one). The pick is the fastest candidate inside the
budgets (ties: fewer bytes, then higher quality); when none fits, the binding budget is named.

An accuracy drop is in percentage points against the same model's fp32 row of the same run.
Where only agreement exists, the drop is the top-1 disagreement with fp32, in points. The
command line budgets a drop of :data:`DEFAULT_MAX_DROP` points unless told otherwise: the
fastest state of a random-weight model is often one that no longer computes the same function
(channel pruning without fine-tuning), and a pick should never be that by default.

Two more budgets read what the run measured beside the median: ``max_p99_ms``, the p99 of the
raw rounds (:mod:`inference_scale.verdicts.tails`), and ``max_memory_mb``, the peak resident
memory above the process's baseline (``peak_rss_bytes``, MB of 10^6 bytes). A state whose p99
cannot be estimated (no raw rounds, or fewer than the early-stopping rule asks for) or whose
memory was not measured does not pass that budget, and the reason says which.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from inference_scale.errors import InferenceScaleError
from inference_scale.reporting.report import Row
from inference_scale.slugs import BASELINE
from inference_scale.verdicts import tails

__all__ = [
    "DEFAULT_MAX_DROP",
    "Advice",
    "AdviceError",
    "BudgetError",
    "Budgets",
    "Candidate",
    "advise",
    "dominates",
    "format_advice",
    "non_dominated",
    "pareto_front",
]


DEFAULT_MAX_DROP = 1.0  # points of accuracy (or top-1 agreement) below fp32


class AdviceError(InferenceScaleError, ValueError):
    """Runs that cannot be advised on: no timings, no rows at the asked batch size."""


class BudgetError(InferenceScaleError, ValueError):
    """A budget that is not a finite number in its range: >= 0 for latency, bytes and drop,
    > 0 for the p99, >= 1 MB for memory."""


# Each budget's field, its flag, the least value it takes and whether that value is allowed.
_FLAGS = {"max_latency_ms": "--max-latency-ms", "max_bytes": "--max-bytes", "max_accuracy_drop": "--max-accuracy-drop",
          "max_p99_ms": "--p99-ms", "max_memory_mb": "--max-memory-mb"}  # fmt: skip
_LOW: dict[str, tuple[float, bool]] = {"max_p99_ms": (0.0, False), "max_memory_mb": (1.0, True)}
_BINDING_ORDER: tuple[str, ...] = tuple(_FLAGS.values())


@dataclass(frozen=True)
class Budgets:
    """Upper bounds; None means no bound. ``max_accuracy_drop`` is in points against fp32;
    ``max_p99_ms`` bounds the p99 of the raw rounds; ``max_memory_mb`` the peak resident
    memory (``peak_rss_bytes`` / 10^6)."""

    max_latency_ms: float | None = None
    max_bytes: float | None = None
    max_accuracy_drop: float | None = None
    max_p99_ms: float | None = None
    max_memory_mb: float | None = None

    def __post_init__(self) -> None:
        for name, flag in _FLAGS.items():
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise BudgetError(f"{flag} must be a number, got {value!r}")
            low, closed = _LOW.get(name, (0.0, True))
            if not math.isfinite(value) or (value < low if closed else value <= low):
                where = f">= {low:g}" if closed else f"> {low:g}"
                unit = {"max_p99_ms": " ms", "max_memory_mb": " MB"}.get(name, "")
                raise BudgetError(f"{flag} must be a finite number {where}{unit}, got {value}")


@dataclass(frozen=True)
class Candidate:
    """One state of one model at one batch size, as the advice sees it. ``quality`` is a
    fraction (accuracy, or top-1 agreement with fp32 when ``quality_kind`` says so);
    ``drop`` is the loss against fp32 in points (None when unknown)."""

    model: str
    state: str
    batch: int
    latency_ms: float
    bytes: int
    quality: float | None
    quality_kind: str  # "accuracy", "agreement" or "none"
    drop: float | None
    speedup: float | None = None
    runtime: str | None = None
    p99_ms: float | None = None  # from the raw rounds; None: not estimable (see p99_why)
    p99_why: str = ""  # why p99_ms is None: "p99 needs 662 rounds, have 40", or no raw rounds
    ram_bytes: int | None = None  # peak_rss_bytes; None: not measured (see ram_why)
    ram_why: str = ""

    def key(self) -> tuple[float, float, float]:
        """The three objectives, all to minimize (quality negated; unknown quality is worst)."""
        return (self.latency_ms, float(self.bytes), -(self.quality if self.quality is not None else -math.inf))


def _dominates_key(ka: Sequence[float], kb: Sequence[float]) -> bool:
    return all(x <= y for x, y in zip(ka, kb, strict=True)) and tuple(ka) != tuple(kb)


def dominates(a: Candidate, b: Candidate) -> bool:
    """``a`` is no worse than ``b`` on latency, bytes and quality, and better on one."""
    return _dominates_key(a.key(), b.key())


def non_dominated(keys: Sequence[Sequence[float]]) -> list[int]:
    """Indices of the objective vectors (all to minimize) that no other one dominates: the one
    Pareto rule, used by :func:`pareto_front` and by the plots. O(n^2): n is a model's states."""
    return [i for i, k in enumerate(keys) if not any(_dominates_key(o, k) for o in keys)]


def pareto_front(cands: Sequence[Candidate]) -> list[Candidate]:
    """The candidates no other candidate dominates, fastest first."""
    keys = [c.key() for c in cands]
    return sorted((cands[i] for i in non_dominated(keys)), key=Candidate.key)


@dataclass(frozen=True)
class Advice:
    model: str
    batch: int
    front: list[Candidate]
    pick: Candidate | None
    reason: str
    binding: tuple[str, ...] = ()  # the budgets that exclude every candidate (nothing fits)
    candidates: tuple[Candidate, ...] = ()


def _candidates(rows: Sequence[Row], batch: int, model: str) -> list[Candidate]:
    mine = [r for r in rows if r.model == model and r.batch == batch and r.bytes is not None]
    base = next((r for r in mine if r.state == BASELINE), None)
    out = []
    for r in mine:
        quality, kind = r.score
        if kind == "accuracy":
            drop = None if base is None or base.accuracy is None else (base.accuracy - (quality or 0.0)) * 100
        else:
            drop = None if quality is None else (1.0 - quality) * 100  # disagreement with fp32, in points
        out.append(
            Candidate(
                model, r.state, batch, r.median_s * 1e3, int(r.bytes or 0), quality, kind, drop, r.speedup, r.runtime,
                p99_ms=None if r.p99_s is None else r.p99_s * 1e3, p99_why=_p99_why(r), ram_bytes=r.peak_rss_bytes,
                ram_why=_ram_why(r),
            )
        )  # fmt: skip
    return out


def _p99_why(r: Row) -> str:
    if r.p99_s is not None:
        return ""
    if r.rounds is None:
        return "no raw rounds (run with --benchmark-save-data)"
    return tails.reason(99, r.rounds)


def _ram_why(r: Row) -> str:
    if r.peak_rss_bytes is not None:
        return ""
    return f"memory probe failed: {r.memory_failed}" if r.memory_failed else "memory not measured (--is-memory)"


def _fits(c: Candidate, b: Budgets) -> list[str]:
    """The budgets ``c`` breaks, as the flags that set them."""
    broken = []
    if b.max_latency_ms is not None and c.latency_ms > b.max_latency_ms:
        broken.append("--max-latency-ms")
    if b.max_bytes is not None and c.bytes > b.max_bytes:
        broken.append("--max-bytes")
    # ``not drop <= budget``: a NaN drop compares False with everything, so it must break the budget
    if b.max_accuracy_drop is not None and (c.drop is None or not c.drop <= b.max_accuracy_drop):
        broken.append("--max-accuracy-drop")
    if b.max_p99_ms is not None and (c.p99_ms is None or not c.p99_ms <= b.max_p99_ms):
        broken.append("--p99-ms")  # a p99 that cannot be estimated never passes a tail budget
    if b.max_memory_mb is not None and (c.ram_bytes is None or not c.ram_bytes / 1e6 <= b.max_memory_mb):
        broken.append("--max-memory-mb")
    return broken


def _breaks(c: Candidate, b: Budgets) -> str:
    """The budgets ``c`` breaks, each with its figure: ``--p99-ms (p99 12.3 ms)``."""
    detail = {
        "--max-latency-ms": f"median {c.latency_ms:.3g} ms",
        "--max-bytes": f"{c.bytes / 1e6:.3g} MB",
        "--max-accuracy-drop": "drop unknown" if c.drop is None else f"drop {c.drop:.2f} points",
        "--p99-ms": c.p99_why if c.p99_ms is None else f"p99 {c.p99_ms:.3g} ms",
        "--max-memory-mb": c.ram_why if c.ram_bytes is None else f"RAM {c.ram_bytes / 1e6:.3g} MB",
    }
    return ", ".join(f"{flag} ({detail[flag]})" for flag in _fits(c, b))


def _measured(c: Candidate) -> bool:
    """A candidate whose numbers are all finite: a NaN quality or latency is a failed
    measurement, and a failed measurement is never a pick, whatever the budgets."""
    numbers = [c.latency_ms, *(v for v in (c.quality, c.drop) if v is not None)]
    return all(math.isfinite(v) for v in numbers)


def _describe(c: Candidate) -> str:
    speed = "" if c.speedup is None else f", {c.speedup:.2f}x vs fp32"
    if c.quality_kind == "accuracy" and c.quality is not None:
        quality = f", accuracy {c.quality:.2%}" + ("" if c.drop is None else f" ({-c.drop:+.2f} points vs fp32)")
    elif c.quality_kind == "agreement" and c.quality is not None:
        quality = f", top-1 agreement {c.quality:.2%}"
    else:
        quality = ", quality not measured"
    return f"{c.latency_ms:.3g} ms{speed}, {c.bytes / 1e6:.3g} MB{quality}"


def _advise_model(cands: list[Candidate], budgets: Budgets) -> Advice:
    model, batch = cands[0].model, cands[0].batch
    front = pareto_front(cands)
    fitting = sorted((c for c in cands if _measured(c) and not _fits(c, budgets)), key=Candidate.key)
    if fitting:
        pick = fitting[0]
        faster = [c for c in cands if c.latency_ms < pick.latency_ms]
        why = "fastest state" + (" within the budgets" if budgets != Budgets() else "")
        if faster:  # the faster states, quickest first, each with the budgets it breaks (three at most)
            ranked = sorted(faster, key=Candidate.key)
            why += "; the faster " + "; ".join(f"{c.state} breaks {_breaks(c, budgets)}" for c in ranked[:3])
            why += f"; {len(ranked) - 3} more" if len(ranked) > 3 else ""
        return Advice(model, batch, front, pick, f"{pick.state}: {why} ({_describe(pick)})", (), tuple(cands))
    unmeasured = [c.state for c in cands if not _measured(c)]
    cands = [c for c in cands if _measured(c)]
    if not cands:
        reason = f"no state has finite measurements ({', '.join(unmeasured)} recorded NaN or infinity)"
        return Advice(model, batch, front, None, reason, (), ())
    # Nothing fits: a budget binds if every candidate breaks it; else the budgets bind together.
    breaks = [set(_fits(c, budgets)) for c in cands]
    binding = tuple(f for f in _BINDING_ORDER if all(f in b for b in breaks))
    if not binding:
        binding = tuple(sorted(set().union(*breaks)))
        reason = f"no state meets {' and '.join(binding)} together"
    else:
        reason = f"no state meets {' or '.join(binding)}"
    best = {
        "--max-latency-ms": f"fastest is {min(c.latency_ms for c in cands):.3g} ms",
        "--max-bytes": f"smallest is {min(c.bytes for c in cands) / 1e6:.3g} MB",
        "--max-accuracy-drop": "smallest drop is "
        + (f"{min(c.drop for c in cands if c.drop is not None and math.isfinite(c.drop)):.2f} points"
           if any(c.drop is not None and math.isfinite(c.drop) for c in cands)
           else "unknown (no accuracy or agreement recorded)"),
        "--p99-ms": _least(cands, "p99"),
        "--max-memory-mb": _least(cands, "ram"),
    }  # fmt: skip
    reason += " (" + "; ".join(best[f] for f in binding) + ")"
    return Advice(model, batch, front, None, reason, binding, tuple(cands))


def _least(cands: Sequence[Candidate], what: str) -> str:
    """The lowest p99 (``what`` "p99") or RAM ("ram") among ``cands``, or why none is known."""
    if what == "p99":
        known = [c.p99_ms for c in cands if c.p99_ms is not None]
        if known:
            return f"lowest p99 is {min(known):.3g} ms"
        whys = sorted({c.p99_why for c in cands})
        return f"no state's p99 can be estimated: {'; '.join(whys)}"
    ram = [c.ram_bytes for c in cands if c.ram_bytes is not None]
    if ram:
        return f"least RAM is {min(ram) / 1e6:.3g} MB"
    return f"no state's memory is known: {'; '.join(sorted({c.ram_why for c in cands}))}"


def advise(rows: Sequence[Row], *, budgets: Budgets, batch: int | None = None) -> list[Advice]:
    """Per model (and batch size: ``batch``, else each one in the rows), its front and pick."""
    timed = [r for r in rows if r.batch is not None and r.bytes is not None and r.median_s > 0]
    if not timed:
        raise AdviceError("the run holds no timed inference-scale benchmarks (was it run with --benchmark-disable?)")
    batches = sorted({r.batch for r in timed if r.batch is not None})
    if batch is not None and batch not in batches:
        raise AdviceError(f"the run has no benchmarks at batch size {batch}; its batch sizes: {batches}")
    out = []
    for b in [batch] if batch is not None else batches:
        for model in sorted({r.model for r in timed if r.batch == b}):
            out.append(_advise_model(_candidates(timed, b, model), budgets))
    return out


def _pick_mark(c: Candidate, a: Advice) -> str:
    return " <- pick" if c in a.front else " <- pick (off the front: p99 or memory)"


def format_advice(advice: Sequence[Advice], *, fmt: str = "table") -> str:
    """Each model's front as a table, then its pick (or what binds) in one line."""
    from inference_scale.reporting.table import render

    columns = ("model", "batch", "state", "runtime", "median ms", "p99 ms", "speedup", "MB", "RAM MB", "quality",
               "drop (points)")  # fmt: skip
    blocks = []
    for a in advice:
        # The pick is on the front unless a budget off its axes (p99, memory) moved it there.
        shown = [*a.front, *([a.pick] if a.pick is not None and a.pick not in a.front else [])]
        rows = [
            [a.model, str(a.batch), c.state + (_pick_mark(c, a) if c == a.pick else ""), c.runtime or "-",
             f"{c.latency_ms:.4g}", "-" if c.p99_ms is None else f"{c.p99_ms:.4g}",
             "-" if c.speedup is None else f"{c.speedup:.2f}x", f"{c.bytes / 1e6:.4g}",
             "-" if c.ram_bytes is None else f"{c.ram_bytes / 1e6:.4g}",
             "-" if c.quality is None else f"{c.quality_kind} {c.quality:.2%}",
             "-" if c.drop is None else f"{c.drop:.2f}"]
            for c in shown
        ]  # fmt: skip
        title = f"Pareto front: {a.model} at batch {a.batch} (latency, bytes, quality)"
        blocks.append(render(columns, rows, fmt=fmt, title=title, left=("model", "state", "runtime")))
        verdict = (
            f"pick for {a.model} b{a.batch}: {a.reason}" if a.pick else f"nothing fits {a.model} b{a.batch}: {a.reason}"
        )
        blocks.append(f"**{verdict}**" if fmt == "md" else verdict)
    return "\n\n".join(blocks)
