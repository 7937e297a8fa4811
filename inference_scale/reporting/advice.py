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
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from inference_scale.errors import InferenceScaleError
from inference_scale.reporting.report import Row
from inference_scale.slugs import BASELINE

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
    """A budget that is not a finite, non-negative number."""


@dataclass(frozen=True)
class Budgets:
    """Upper bounds; None means no bound. ``max_accuracy_drop`` is in points against fp32."""

    max_latency_ms: float | None = None
    max_bytes: float | None = None
    max_accuracy_drop: float | None = None

    def __post_init__(self) -> None:
        for name in ("max_latency_ms", "max_bytes", "max_accuracy_drop"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise BudgetError(f"--{name.replace('_', '-')} must be a number, got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise BudgetError(f"--{name.replace('_', '-')} must be a finite number >= 0, got {value}")


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
                model, r.state, batch, r.median_s * 1e3, int(r.bytes or 0), quality, kind, drop, r.speedup, r.runtime
            )
        )
    return out


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
    return broken


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
        if faster:
            quickest = min(faster, key=Candidate.key)
            why += f"; the faster {quickest.state} breaks {', '.join(_fits(quickest, budgets))}"
        return Advice(model, batch, front, pick, f"{pick.state}: {why} ({_describe(pick)})", (), tuple(cands))
    unmeasured = [c.state for c in cands if not _measured(c)]
    cands = [c for c in cands if _measured(c)]
    if not cands:
        reason = f"no state has finite measurements ({', '.join(unmeasured)} recorded NaN or infinity)"
        return Advice(model, batch, front, None, reason, (), ())
    # Nothing fits: a budget binds if every candidate breaks it; else the budgets bind together.
    breaks = [set(_fits(c, budgets)) for c in cands]
    binding = tuple(
        f for f in ("--max-latency-ms", "--max-bytes", "--max-accuracy-drop") if all(f in b for b in breaks)
    )
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
    }  # fmt: skip
    reason += " (" + "; ".join(best[f] for f in binding) + ")"
    return Advice(model, batch, front, None, reason, binding, tuple(cands))


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


def format_advice(advice: Sequence[Advice], *, fmt: str = "table") -> str:
    """Each model's front as a table, then its pick (or what binds) in one line."""
    from inference_scale.reporting.table import render

    columns = ("model", "batch", "state", "runtime", "median ms", "speedup", "MB", "quality", "drop (points)")
    blocks = []
    for a in advice:
        rows = [
            [a.model, str(a.batch), c.state + (" <- pick" if c == a.pick else ""), c.runtime or "-",
             f"{c.latency_ms:.4g}", "-" if c.speedup is None else f"{c.speedup:.2f}x", f"{c.bytes / 1e6:.4g}",
             "-" if c.quality is None else f"{c.quality_kind} {c.quality:.2%}",
             "-" if c.drop is None else f"{c.drop:.2f}"]
            for c in a.front
        ]  # fmt: skip
        title = f"Pareto front: {a.model} at batch {a.batch} (latency, bytes, quality)"
        blocks.append(render(columns, rows, fmt=fmt, title=title, left=("model", "state", "runtime")))
        verdict = (
            f"pick for {a.model} b{a.batch}: {a.reason}" if a.pick else f"nothing fits {a.model} b{a.batch}: {a.reason}"
        )
        blocks.append(f"**{verdict}**" if fmt == "md" else verdict)
    return "\n\n".join(blocks)
