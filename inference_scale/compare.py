"""Compare two saved benchmark runs and tell a real change from noise.

Timing: with raw rounds (``--benchmark-save-data``) a benchmark has changed only when the
two samples differ significantly (two-sided Mann-Whitney U, ``scipy.stats.mannwhitneyu``)
*and* the ratio of medians passes the threshold: slower when new/base > 1 + t, faster when
new/base < 1 / (1 + t), so swapping the runs swaps slower and faster exactly. A bootstrap
confidence interval of the median ratio (``scipy.stats.bootstrap``) is reported beside it.
Without raw rounds only the threshold on medians is left, and a warning says so.
pytest-benchmark's own ``--benchmark-compare-fail`` is that bare threshold.

Metrics from ``extra_info`` are gated by direction: ``bytes`` or ``macs`` up, or ``accuracy``
down by more than ``accuracy_drop`` (a fraction: 0.005 is half a point), is a regression.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

__all__ = ["Change", "Comparison", "compare_runs", "compare_samples", "format_comparison"]

VERDICTS = ("slower", "faster", "no significant change")


@dataclass(frozen=True)
class Change:
    """The timing verdict for one benchmark, and any metric regressions."""

    name: str
    verdict: str
    ratio: float
    p_value: float | None
    ci_low: float | None
    ci_high: float | None
    metric_regressions: tuple[str, ...] = ()

    @property
    def regressed(self) -> bool:
        return self.verdict == "slower" or bool(self.metric_regressions)


@dataclass
class Comparison:
    changes: list[Change] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def regressed(self) -> bool:
        return any(c.regressed for c in self.changes)


def compare_samples(
    base: Sequence[float],
    new: Sequence[float],
    *,
    alpha: float = 0.01,
    threshold: float = 0.10,
    n_resamples: int = 2000,
    seed: int = 0,
) -> tuple[str, float, float | None, float | None, float | None]:
    """(verdict, new/base median ratio, p-value, CI low, CI high) for two raw samples."""
    if not 0 < alpha < 1 or threshold < 0:
        raise ValueError(f"need 0 < alpha < 1 and threshold >= 0, got {alpha} and {threshold}")
    b, n = np.asarray(base, dtype=float), np.asarray(new, dtype=float)
    if len(b) == 0 or len(n) == 0 or (b <= 0).any() or (n <= 0).any():
        raise ValueError("timing samples must be non-empty and positive")
    ratio = float(np.median(n) / np.median(b))
    if len(b) < 2 or len(n) < 2:
        return _by_threshold(ratio, threshold), ratio, None, None, None
    p = float(stats.mannwhitneyu(b, n, alternative="two-sided").pvalue)
    ci_low = ci_high = None
    if len(b) >= 3 and len(n) >= 3 and (np.ptp(b) > 0 or np.ptp(n) > 0):
        res = stats.bootstrap(
            (b, n), lambda x, y: np.median(y) / np.median(x), n_resamples=n_resamples, method="percentile",
            vectorized=False, random_state=seed,
        )  # fmt: skip
        ci_low, ci_high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    verdict = _by_threshold(ratio, threshold) if p < alpha else "no significant change"
    return verdict, ratio, p, ci_low, ci_high


def _by_threshold(ratio: float, threshold: float) -> str:
    if ratio > 1 + threshold:
        return "slower"
    if ratio < 1 / (1 + threshold):
        return "faster"
    return "no significant change"


def _metric_regressions(base: dict[str, Any], new: dict[str, Any], accuracy_drop: float) -> tuple[str, ...]:
    found = []
    for key in ("bytes", "macs"):
        if isinstance(base.get(key), int) and isinstance(new.get(key), int) and new[key] > base[key]:
            found.append(f"{key} {base[key]:,} -> {new[key]:,}")
    acc_b, acc_n = base.get("accuracy"), new.get("accuracy")
    if isinstance(acc_b, (int, float)) and isinstance(acc_n, (int, float)) and acc_b - acc_n > accuracy_drop:
        found.append(f"accuracy {acc_b:.2%} -> {acc_n:.2%}")
    return tuple(found)


_MACHINE_KEYS = (("cpu", "brand_raw"), ("inference_scale", "cpu_name"), ("inference_scale", "torch"),
                 ("inference_scale", "threads"), ("inference_scale", "device"))  # fmt: skip


def _machine_warnings(base: dict[str, Any], new: dict[str, Any]) -> list[str]:
    out = []
    for section, key in _MACHINE_KEYS:
        a = (base.get("machine_info", {}).get(section) or {}).get(key)
        b = (new.get("machine_info", {}).get(section) or {}).get(key)
        if a != b:
            out.append(f"machine_info {section}.{key} differs: {a!r} vs {b!r}; timings may not be comparable")
    return out


def compare_runs(
    base: dict[str, Any],
    new: dict[str, Any],
    *,
    alpha: float = 0.01,
    threshold: float = 0.10,
    accuracy_drop: float = 0.005,
) -> Comparison:
    """Pair two runs' benchmarks by full name and judge each pair."""
    if accuracy_drop < 0:
        raise ValueError(f"accuracy_drop must be >= 0, got {accuracy_drop}")
    b_by = {x.get("fullname", x["name"]): x for x in base["benchmarks"]}
    n_by = {x.get("fullname", x["name"]): x for x in new["benchmarks"]}
    result = Comparison(
        added=sorted(set(n_by) - set(b_by)), missing=sorted(set(b_by) - set(n_by)),
        warnings=_machine_warnings(base, new),
    )  # fmt: skip
    no_raw = []
    for key in sorted(set(b_by) & set(n_by)):
        bb, nb = b_by[key], n_by[key]
        b_data, n_data = bb["stats"].get("data"), nb["stats"].get("data")
        if b_data and n_data:
            verdict, ratio, p, lo, hi = compare_samples(b_data, n_data, alpha=alpha, threshold=threshold)
        else:
            no_raw.append(bb["name"])
            ratio = nb["stats"]["median"] / bb["stats"]["median"]
            verdict, p, lo, hi = _by_threshold(ratio, threshold), None, None, None
        metrics = _metric_regressions(bb.get("extra_info", {}), nb.get("extra_info", {}), accuracy_drop)
        result.changes.append(Change(bb["name"], verdict, ratio, p, lo, hi, metrics))
    if no_raw:
        result.warnings.append(
            f"{len(no_raw)} benchmark(s) have no raw rounds (run with --benchmark-save-data): "
            "judged by the threshold on medians alone, which cannot tell noise from change"
        )
    return result


def format_comparison(cmp: Comparison, *, fmt: str = "table") -> str:
    """A plain-text table (``table``) or Markdown (``md``) of the comparison."""
    if fmt not in ("table", "md"):
        raise ValueError(f"format must be table or md, got {fmt!r}")

    def num(v: float | None, spec: str) -> str:
        return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)

    head = ("benchmark", "verdict", "new/base", "95% CI", "p", "metrics")
    rows = [
        (c.name, c.verdict, num(c.ratio, ".3f"), f"{num(c.ci_low, '.3f')}..{num(c.ci_high, '.3f')}",
         num(c.p_value, ".2g"), "; ".join(c.metric_regressions) or "-")
        for c in cmp.changes
    ]  # fmt: skip
    lines = []
    if fmt == "md":
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
    else:
        widths = (
            [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)] if rows else [len(h) for h in head]
        )
        lines.append("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
        lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in rows]
    for name in cmp.added:
        lines.append(f"added: {name}")
    for name in cmp.missing:
        lines.append(f"missing: {name}")
    for warning in cmp.warnings:
        lines.append(f"warning: {warning}")
    slower = sum(c.verdict == "slower" for c in cmp.changes)
    faster = sum(c.verdict == "faster" for c in cmp.changes)
    metric = sum(bool(c.metric_regressions) for c in cmp.changes)
    lines.append(f"{slower} slower, {faster} faster, {metric} metric regressions, {len(cmp.changes)} compared")
    return "\n".join(lines)
