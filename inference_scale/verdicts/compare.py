"""Compare two saved benchmark runs and give each benchmark one of four verdicts.

Benchmarks are paired by :attr:`runs.Bench.key` (``fullname``, else ``group::name``). With raw
rounds on both sides (``--benchmark-save-data``) a pair is judged by two gates:

* significance: a two-sided Mann-Whitney U test (``scipy.stats.mannwhitneyu``) whose p-values
  are adjusted over the whole run by Benjamini-Hochberg (``scipy.stats.false_discovery_control``),
  so 100 identical benchmarks do not produce one false alarm per run;
* size: the ratio of medians new/base above ``1 + threshold`` (slower) or below
  ``1 / (1 + threshold)`` (faster), so swapping the runs swaps the verdicts exactly.

Both gates passed: ``slower``/``faster``. Not significant: ``no change``. ``undecided`` when the
test cannot answer: too few rounds for any p-value to reach ``alpha`` (with n and m rounds the
smallest two-sided p is 2 / C(n + m, n): 5 against 5 gives 0.0079), or a significant change
inside the threshold (real but small, or drift between the runs; rounds within one run cannot
tell the two apart, see :mod:`inference_scale.verdicts.ab`). Without raw rounds only the threshold on
medians is left, and a warning says so (pytest-benchmark's ``--benchmark-compare-fail`` is that
bare threshold). A bootstrap 95% interval of the median ratio is printed beside each verdict.

Metrics from this project's record are gated by direction: ``bytes`` or ``macs`` up, or
``accuracy`` down by more than ``accuracy_drop`` (a fraction: 0.005 is half a point). An
accuracy the base measured and the new run lacks (or holds as a non-finite number) makes the
pair ``undecided``: a gate that cannot be checked is never passed.

The runs' reference workloads (:mod:`inference_scale.measure.reference`, read by
:mod:`inference_scale.verdicts.drift`) show whether the machine itself
changed speed; ``normalize`` divides that change out of the new run's timings.

Runs from CPUs that differ in the instruction sets that decide kernels (:data:`.machine.ISA_FLAGS`:
AVX-512, VNNI, AMX, ...) run different code for the same state: the same int8 state measured
4.69x over fp32 with AVX512-VNNI and 2.05x without. Such a pair is warned about, naming the
flags; :func:`check_isa` refuses it (``compare --strict``: exit 2).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeGuard

import numpy as np
from scipy import stats

from inference_scale.defaults import DEFAULTS
from inference_scale.errors import InferenceScaleError, InvalidValueError
from inference_scale.measure.machine import isa_differences, isa_flags
from inference_scale.verdicts.drift import drift
from inference_scale.verdicts.numbers import num
from inference_scale.verdicts.rule import (
    DEFAULT_ALPHA,
    DEFAULT_THRESHOLD,
    VERDICTS,
    by_threshold,
    check_gates,
    gate_exit_code,
    judge,
)
from inference_scale.verdicts.runs import BadRunError, Bench, Run

__all__ = [
    "Change",
    "Comparison",
    "IsaMismatchError",
    "NothingPairedError",
    "check_isa",
    "compare_runs",
    "compare_samples",
    "format_comparison",
    "isa_mismatch",
    "min_p_value",
    "rank_test",
    "samples_verdict",
]


class NothingPairedError(BadRunError):
    """No benchmark of the base run has a namesake in the new run."""


class IsaMismatchError(InferenceScaleError, ValueError):
    """Base and new ran on CPUs that differ in a kernel-deciding ISA flag (``--strict``)."""


def isa_mismatch(base_info: object, new_info: object, *, base: str = "base", new: str = "new") -> str | None:
    """``avx512_vnni (base yes, new no), amx_int8 (base yes, new no)``: the ISA flags that
    differ between two runs' ``machine_info``, each with its value on both sides; None when
    none differs or either run did not record its ISA (every run before the record had it)."""
    flags = isa_differences(base_info, new_info)
    if not flags:
        return None
    b, n = isa_flags(base_info) or {}, isa_flags(new_info) or {}

    def yes(value: bool) -> str:
        return "yes" if value else "no"

    return ", ".join(f"{f} ({base} {yes(b[f])}, {new} {yes(n[f])})" for f in flags)


def check_isa(base: Run, new: Run) -> None:
    """Raise :class:`IsaMismatchError`, in one line naming the flags, when the runs' CPUs differ
    in ISA: different kernels ran, so a verdict on their timings would compare machines."""
    found = isa_mismatch(base.machine_info, new.machine_info)
    if found:
        raise IsaMismatchError(
            f"{base.path} and {new.path} ran on CPUs whose ISA flags differ: {found}; different kernels ran, "
            "so --strict refuses to compare them"
        )


@dataclass(frozen=True)
class Change:
    """The timing verdict for one benchmark pair, and any metric regressions."""

    name: str
    verdict: str
    ratio: float
    p_value: float | None  # raw, before the false-discovery adjustment
    q_value: float | None  # Benjamini-Hochberg adjusted; compared with alpha
    ci_low: float | None
    ci_high: float | None
    reason: str = ""
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
    drift: list[str] = field(default_factory=list)

    @property
    def regressed(self) -> bool:
        return any(c.regressed for c in self.changes)

    def count(self, verdict: str) -> int:
        return sum(c.verdict == verdict for c in self.changes)

    def exit_code(self, *, strict: bool = False, allow_missing: bool = False) -> int:
        return gate_exit_code(
            self.regressed, self.missing, self.count("undecided"), strict=strict, allow_missing=allow_missing
        )


def min_p_value(n: int, m: int) -> float:
    """The smallest two-sided p an exact Mann-Whitney U test can give for n and m rounds:
    complete separation, one of C(n + m, n) orderings, counted at both tails."""
    # log C(n + m, n) through lgamma: the binomial itself overflows a float from about 500 + 500 rounds
    log_comb = math.lgamma(n + m + 1) - math.lgamma(n + 1) - math.lgamma(m + 1)
    return min(1.0, 2.0 * math.exp(-log_comb))


def compare_samples(
    base: Sequence[float],
    new: Sequence[float],
    *,
    alpha: float = DEFAULT_ALPHA,
    threshold: float = DEFAULT_THRESHOLD,
    n_resamples: int = 2000,
    seed: int = 0,
) -> tuple[str, float, float | None, float | None, float | None]:
    """(verdict, new/base median ratio, p-value, CI low, CI high) for two raw samples judged
    alone (no adjustment for other benchmarks)."""
    check_gates(alpha, threshold)
    ratio, p, lo, hi = rank_test(base, new, n_resamples=n_resamples, seed=seed)
    verdict, _ = samples_verdict(ratio, p, p, len(base), len(new), alpha=alpha, threshold=threshold)
    return verdict, ratio, p, lo, hi


def rank_test(
    base: Sequence[float], new: Sequence[float], *, n_resamples: int = 2000, seed: int = 0
) -> tuple[float, float | None, float | None, float | None]:
    b, n = np.asarray(base, dtype=float), np.asarray(new, dtype=float)
    if len(b) == 0 or len(n) == 0 or not np.isfinite(b).all() or not np.isfinite(n).all() or (b < 0).any():
        raise InvalidValueError("timing samples must be non-empty, finite and non-negative")
    if (n < 0).any() or np.median(b) <= 0:
        raise InvalidValueError("timing samples must be non-negative with a positive median")
    ratio = float(np.median(n) / np.median(b))
    if len(b) < 2 or len(n) < 2:
        return ratio, None, None, None
    p = float(stats.mannwhitneyu(b, n, alternative="two-sided").pvalue)
    lo = hi = None
    if len(b) >= 3 and len(n) >= 3 and (np.ptp(b) > 0 or np.ptp(n) > 0):
        res = stats.bootstrap(
            (b, n),
            lambda x, y, axis: np.median(y, axis=axis) / np.median(x, axis=axis),
            n_resamples=n_resamples,
            method="percentile",
            vectorized=True,
            rng=np.random.default_rng(seed),
        )  # fmt: skip
        lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return ratio, p, lo, hi


def samples_verdict(
    ratio: float, p: float | None, q: float | None, n: int, m: int, *, alpha: float, threshold: float
) -> tuple[str, str]:
    """(verdict, reason): undecided where n and m rounds cannot reach ``alpha``, else the rule."""
    if p is None or q is None or min_p_value(n, m) >= alpha:
        return "undecided", f"{n} and {m} rounds: the smallest possible p is {min_p_value(n, m):.2g} >= alpha"
    return judge(ratio, q, alpha=alpha, threshold=threshold)


def _metric_regressions(
    base: dict[str, Any] | None, new: dict[str, Any] | None, accuracy_drop: float
) -> tuple[str, ...]:
    if base is None or new is None:
        return ()
    found = []
    for key in ("bytes", "macs"):
        if new[key] > base[key]:
            found.append(f"{key} {base[key]:,} -> {new[key]:,}")
    acc_b, acc_n = base.get("accuracy"), new.get("accuracy")
    if _known(acc_b) and _known(acc_n) and acc_b - acc_n > accuracy_drop:
        found.append(f"accuracy {acc_b:.2%} -> {acc_n:.2%}")
    return tuple(found)


def _known(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _unknown_metrics(base: dict[str, Any] | None, new: dict[str, Any] | None) -> tuple[str, ...]:
    """Metrics the base run measured that the new run has not (missing, or not a finite number):
    the gate cannot tell whether they regressed, so the pair is undecided, never passed."""
    if base is None:
        return ()
    return tuple(
        f"{key} {base[key]!r} -> {'missing' if new is None or key not in new else repr(new[key])}"
        for key in ("accuracy",)
        if _known(base.get(key)) and not _known(None if new is None else new.get(key))
    )


_MACHINE_KEYS = (("cpu", "brand_raw"), ("inference_scale", "cpu_name"), ("inference_scale", "torch"),
                 ("inference_scale", "threads"), ("inference_scale", "device"))  # fmt: skip


def _machine_warnings(base: Run, new: Run) -> list[str]:
    out = [*base.warnings, *new.warnings]
    if not base.machine_info or not new.machine_info:
        return out
    for section, key in _MACHINE_KEYS:
        sb, sn = base.machine_info.get(section), new.machine_info.get(section)
        a = sb.get(key) if isinstance(sb, dict) else None
        b = sn.get(key) if isinstance(sn, dict) else None
        if a != b:
            out.append(f"machine_info {section}.{key} differs: {a!r} vs {b!r}; timings may not be comparable")
    isa = isa_mismatch(base.machine_info, new.machine_info)
    if isa:
        out.append(f"ISA flags differ between base and new: {isa}; different kernels ran (--strict refuses)")
    return out


def compare_runs(
    base: Run,
    new: Run,
    *,
    alpha: float = DEFAULT_ALPHA,
    threshold: float = DEFAULT_THRESHOLD,
    accuracy_drop: float = DEFAULTS["accuracy_drop_points"] / 100,
    normalize: bool = False,
) -> Comparison:
    """Pair two runs' benchmarks and judge each pair (see the module docstring)."""
    check_gates(alpha, threshold)
    if not (isinstance(accuracy_drop, (int, float)) and math.isfinite(accuracy_drop) and accuracy_drop >= 0):
        raise InvalidValueError(f"accuracy_drop must be a finite number >= 0, got {accuracy_drop!r}")
    b_by = {x.key: x for x in base.benchmarks}
    n_by = {x.key: x for x in new.benchmarks}
    paired = sorted(set(b_by) & set(n_by))
    if not paired:
        raise NothingPairedError(
            f"nothing to compare: none of the {len(b_by)} benchmark(s) of {base.path} is in {new.path} "
            f"({len(n_by)} benchmark(s)); are these runs of the same suite?"
        )
    result = Comparison(
        added=sorted(n_by[k].name for k in set(n_by) - set(b_by)),
        missing=sorted(b_by[k].name for k in set(b_by) - set(n_by)),
        warnings=_machine_warnings(base, new),
    )  # fmt: skip
    factor, result.drift = drift(base, new, threshold)
    # A machine that runs the reference at 0.9x speed makes every timing 1/0.9 longer.
    scale = factor if normalize and factor is not None else 1.0
    if normalize and factor is None:
        result.warnings.append("--normalize: a run has no reference workload, so nothing was divided out")
    tested: list[tuple[str, Bench, Bench, float, float | None, float | None, float | None]] = []
    no_raw = []
    for key in paired:
        bb, nb = b_by[key], n_by[key]
        if bb.rounds is not None and nb.rounds is not None:
            ratio, p, lo, hi = rank_test(bb.rounds, [r * scale for r in nb.rounds])
        else:
            no_raw.append(bb.name)
            ratio, p, lo, hi = nb.median * scale / bb.median, None, None, None
        tested.append((key, bb, nb, ratio, p, lo, hi))
    ps = [t[4] for t in tested if t[4] is not None]
    qs = iter(stats.false_discovery_control(ps, method="bh") if ps else [])
    for _key, bb, nb, ratio, p, lo, hi in tested:
        q = None if p is None else float(next(qs))
        if bb.rounds is None or nb.rounds is None:
            verdict, reason = by_threshold(ratio, threshold) or "no change", "medians only (no raw rounds)"
        else:
            verdict, reason = samples_verdict(
                ratio, p, q, len(bb.rounds), len(nb.rounds), alpha=alpha, threshold=threshold
            )
        metrics = _metric_regressions(bb.record, nb.record, accuracy_drop)
        unknown = _unknown_metrics(bb.record, nb.record)
        if unknown and verdict != "slower":  # slower already fails; otherwise the metric gate is open
            verdict = "undecided"
            reason = "; ".join(filter(None, [reason, f"metric not measured in the new run: {', '.join(unknown)}"]))
        result.changes.append(Change(bb.name, verdict, ratio, p, q, lo, hi, reason, metrics))
    if no_raw:
        result.warnings.append(
            f"{len(no_raw)} benchmark(s) have no raw rounds (run with --benchmark-save-data): "
            "judged by the threshold on medians alone, which cannot tell noise from change"
        )
    return result


def format_comparison(cmp: Comparison, *, fmt: str = "table", show_all: bool = True) -> str:
    """A plain-text table (``table``) or Markdown (``md``) of the comparison; ``show_all``
    False leaves out the rows whose verdict is ``no change``."""
    if fmt not in ("table", "md"):
        raise InvalidValueError(f"format must be table or md, got {fmt!r}")
    head = ("benchmark", "verdict", "new/base", "95% CI", "q (BH)", "metrics", "note")
    rows = [
        (c.name, c.verdict, num(c.ratio, ".3f"), f"{num(c.ci_low, '.3f')}..{num(c.ci_high, '.3f')}",
         num(c.q_value, ".2g"), "; ".join(c.metric_regressions) or "-", c.reason or "-")
        for c in cmp.changes
        if show_all or c.verdict != "no change" or c.metric_regressions
    ]  # fmt: skip
    lines = []
    if fmt == "md":
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
    else:
        widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
        lines.append("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip())
        lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines += [f"added: {name}" for name in cmp.added]
    lines += [f"missing: {name}" for name in cmp.missing]
    lines += [f"drift: {line}" for line in cmp.drift]
    lines += [f"warning: {w}" for w in cmp.warnings]
    counts = ", ".join(f"{cmp.count(v)} {v}" for v in VERDICTS)
    metric = sum(bool(c.metric_regressions) for c in cmp.changes)
    lines.append(f"{counts}, {metric} metric regressions, {len(cmp.missing)} missing, {len(cmp.changes)} compared")
    return "\n".join(lines)
