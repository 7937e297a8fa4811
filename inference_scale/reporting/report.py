"""Read saved pytest-benchmark JSON and show it: a table grouped by model (terminal, Markdown
or CSV), with the fastest state of each model and batch marked across runtimes (plots are in
:mod:`.plots`). Runs are files or storage ids (``0001``) under ``.benchmarks/``.

Each figure carries its machine: above the table, the run's host (:func:`.machine.host_line`)
and its measured peaks; in it, each row's achieved throughput in its dtype's unit (GFLOP/s for
float, GOP/s for int8), that as a percentage of the run's peak for the dtype, the roofline
lower bound of one call (:func:`.bounds.lower_bound_ms`), p90 and p99 from the raw rounds where
they suffice (:mod:`.verdicts.tails`), the peak resident memory above the process's baseline
and the cold start (load, then first call, in a fresh process). Under it, a line for each
thing a reader must know: why a percentile is ``-``, which states run within 1.5x of their
bound, and a warning for a state above 100% of its peak (a bug in the peak, never hidden).
An older run without these fields reads as before, with ``-`` in the new columns. Torch-free.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from inference_scale.measure.bounds import lower_bound_ms, ops_unit, peak_for_dtype, peaks_from, percent_of_peak
from inference_scale.measure.machine import host_line, host_record
from inference_scale.reporting.table import render
from inference_scale.slugs import BASELINE, FAMILIES
from inference_scale.units import flops_from_macs
from inference_scale.verdicts import tails
from inference_scale.verdicts.numbers import num
from inference_scale.verdicts.runs import BadRunError, Bench, Run

__all__ = [
    "NEAR_BOUND",
    "TAIL_QS",
    "Row",
    "fastest_lines",
    "format_report",
    "format_rows",
    "host_lines",
    "human",
    "notes",
    "peak_warnings",
    "row_label",
    "rows_from_run",
]

TAIL_QS: tuple[float, ...] = (90, 99)  # the report's percentiles (p50 is the median column)
NEAR_BOUND = 1.5  # a median within this factor of its lower bound is named under the table


@dataclass(frozen=True)
class Row:
    """One benchmark as a report line. Fields from this project's record (family, counts,
    bytes, accuracy, speedup) are None for a benchmark that has none."""

    name: str
    model: str
    family: str | None
    state: str
    batch: int | None
    device: str | None
    median_s: float
    iqr_s: float | None
    params: int | None
    macs: int | None
    bytes: int | None
    accuracy: float | None
    speedup: float | None
    runtime: str | None = None  # "onnxruntime 1.32.0"; None: not recorded (torch, before peers)
    cosine: float | None = None  # logit cosine against fp32
    top1: float | None = None  # top-1 agreement with fp32
    neighbours: float | None = None  # nearest-neighbour agreement with fp32 (embedding models)
    state_family: str | None = None  # the state's family; None: not recorded (runs before it was)
    fastest: bool = False  # the fastest state of its model, batch and device in this run
    dtype: str | None = None  # the record's compute dtype (float32, bfloat16, float16, int8)
    rounds: int | None = None  # raw rounds saved (--benchmark-save-data); None: none saved
    p90_s: float | None = None  # None: no raw rounds, or too few for an estimate (tails.min_samples)
    p99_s: float | None = None
    peak_ops: float | None = None  # operations/s of the run's measured peak for this dtype
    bandwidth: float | None = None  # bytes/s: the run's measured memory bandwidth
    l3_bytes: int | None = None  # the run's L3: weights that fit are not read from memory each call
    nonzero_macs: int | None = None  # MACs a sparse (CSR) kernel executes per sample; None: dense
    peak_rss_bytes: int | None = None  # resident high-water mark above the probe's baseline
    weights_bytes_in_memory: int | None = None
    load_s: float | None = None  # loading the state's artifact in a fresh process
    first_call_s: float | None = None  # its first call after loading
    memory_failed: str | None = None  # why the memory probe failed, where it did

    @property
    def quality(self) -> str:
        """Accuracy where the run measured it, else agreement with fp32 (logit cosine)."""
        if self.accuracy is not None:
            return f"acc {_pct(self.accuracy)}"
        return "-" if self.cosine is None else f"cos {num(self.cosine, '.5f')}"

    @property
    def score(self) -> tuple[float | None, str]:
        """The quality that advice and plots compare, with its kind: accuracy where measured,
        else top-1 agreement with fp32 (1.0 for fp32 itself), else (None, "none")."""
        if self.accuracy is not None:
            return self.accuracy, "accuracy"
        if self.state == BASELINE:
            return 1.0, "agreement"
        agreement = self.top1 if self.top1 is not None else self.neighbours
        return (agreement, "agreement") if agreement is not None else (None, "none")

    @property
    def images_per_s(self) -> float | None:
        return None if self.batch is None else self.batch / self.median_s

    @property
    def gflops(self) -> float | None:
        """Achieved G(FL)OP/s: operations (2 x MACs, :func:`units.flops_from_macs`) x batch /
        median; FLOPs for a float state, integer operations for int8 (see :attr:`ops_unit`)."""
        if self.executed_macs is None or self.batch is None:
            return None
        return flops_from_macs(self.executed_macs) * self.batch / self.median_s / 1e9

    @property
    def executed_macs(self) -> int | None:
        """MACs per sample the kernels execute: the non-zeros for a sparse (CSR) state, whose
        kernels skip the zeros, else ``macs``. Achieved throughput and the bound count these."""
        return self.nonzero_macs if self.nonzero_macs is not None else self.macs

    @property
    def ops_unit(self) -> str:
        """``GOP/s`` for an int8 state, ``GFLOP/s`` for a float one (or an unrecorded dtype)."""
        return ops_unit(self.dtype or "")

    @property
    def percent_peak(self) -> float | None:
        """Achieved operations as a percentage of the run's measured peak for this dtype."""
        achieved = self.gflops
        if achieved is None or self.peak_ops is None or not math.isfinite(achieved) or achieved < 0:
            return None
        return percent_of_peak(achieved * 1e9, self.peak_ops)

    def _bound(self, *, compute: bool = True, memory: bool = True) -> float | None:
        macs = self.executed_macs
        if macs is None or self.batch is None or macs < 0 or self.batch < 1:
            return None
        nbytes = self.bytes if memory and self.bytes is not None and self.bytes >= 0 else None
        if nbytes is not None and self.l3_bytes is not None and nbytes <= self.l3_bytes:
            # Weights that fit in L3 stay there between warm calls: DRAM bandwidth does not
            # bound them, and no cache bandwidth is measured, so only the compute term holds.
            nbytes = None
        return lower_bound_ms(
            macs_per_sample=macs if compute else 0, batch=self.batch,
            peak_ops_per_s=self.peak_ops if compute else None, bytes_read=nbytes,
            bandwidth_bytes_per_s=self.bandwidth if memory else None,
        )  # fmt: skip

    @property
    def bound_ms(self) -> float | None:
        """The roofline lower bound of one call in ms: the larger of 2 x MACs x batch / peak
        (the MACs executed, :attr:`executed_macs`) and bytes / bandwidth (the record's
        ``bytes``: the weights it must read once; only where they exceed the run's L3)."""
        return self._bound()

    @property
    def bound_term(self) -> str | None:
        """Which term sets :attr:`bound_ms`: ``compute`` or ``memory``."""
        bound, compute = self.bound_ms, self._bound(memory=False)
        if bound is None:
            return None
        return "compute" if compute is not None and compute >= bound else "memory"


def _tail_fields(bench: Bench) -> dict[str, Any]:
    """rounds, p90_s and p99_s from the raw rounds (each None where they do not suffice)."""
    if bench.rounds is None:
        return {}
    got = tails.percentiles(bench.rounds, qs=TAIL_QS)
    return {"rounds": len(bench.rounds), "p90_s": got[90], "p99_s": got[99]}


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _seconds(value: object) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
    return float(value) if ok else None  # type: ignore[arg-type]


def _memory_fields(info: Mapping[str, Any]) -> dict[str, Any]:
    """The memory probe's fields of a record (each None where absent or not a figure)."""
    failed = info.get("memory_failed")
    return {
        "peak_rss_bytes": _count(info.get("peak_rss_bytes")),
        "weights_bytes_in_memory": _count(info.get("weights_bytes_in_memory")),
        "load_s": _seconds(info.get("load_s")),
        "first_call_s": _seconds(info.get("first_call_s")),
        "memory_failed": (" ".join(failed.split()) or None) if isinstance(failed, str) else None,
    }


def _plain_row(bench: Bench) -> Row:
    """A benchmark without our record: its group (or test function) stands for the model and
    its parametrization for the state."""
    param = bench.name[len(bench.func) + 1 : -1] if "[" in bench.name else "-"
    return Row(
        name=bench.name, model=bench.group or bench.func, family=None, state=param, batch=None, device=None,
        median_s=bench.median, iqr_s=bench.iqr, params=None, macs=None, bytes=None, accuracy=None, speedup=None,
        **_tail_fields(bench),
    )  # fmt: skip


def rows_from_run(run: Run) -> list[Row]:
    """One row per benchmark; speedup is against the fp32 row of the same model, batch and
    device (from the same test function when there is one, else from any). Peaks and
    bandwidth come from the run's ``machine_info``, tails from each benchmark's raw rounds."""
    if not run.benchmarks:
        raise BadRunError(f"{run.path} holds no benchmarks")
    peaks = peaks_from(run.machine_info)
    bandwidth = None if peaks is None or peaks.get("bandwidth_gbs") is None else peaks["bandwidth_gbs"] * 1e9
    l3_bytes = _count((host_record(run.machine_info) or {}).get("l3_bytes")) or None
    baselines: dict[tuple[str, ...], float] = {}
    for bench in run.benchmarks:
        info = bench.record
        if info is not None and info["state"] == BASELINE:
            key = (info["model"], str(info["batch_size"]), info["device"])
            baselines[(bench.func, *key)] = bench.median
            baselines.setdefault(key, bench.median)
    rows = []
    for bench in run.benchmarks:
        info = bench.record
        if info is None:
            rows.append(_plain_row(bench))
            continue
        key = (info["model"], str(info["batch_size"]), info["device"])
        base = baselines.get((bench.func, *key), baselines.get(key))
        accuracy, cosine, top1 = info.get("accuracy"), info.get("cosine_vs_fp32"), info.get("top1_agreement")
        neighbours = info.get("neighbour_agreement")
        runtime = f"{info.get('runtime', 'torch')} {info.get('runtime_version', '')}".strip()
        rows.append(
            Row(
                name=bench.name, model=info["model"], family=info["family"], state=info["state"],
                batch=info["batch_size"], device=info["device"], median_s=bench.median, iqr_s=bench.iqr,
                params=info["params"], macs=info["macs"], bytes=info["bytes"],
                accuracy=float(accuracy) if isinstance(accuracy, (int, float)) else None,
                speedup=None if base is None else base / bench.median, runtime=runtime,
                cosine=float(cosine) if isinstance(cosine, (int, float)) else None,
                top1=float(top1) if isinstance(top1, (int, float)) else None,
                neighbours=float(neighbours) if isinstance(neighbours, (int, float)) else None,
                state_family=info.get("state_family") or None,
                dtype=info["dtype"], peak_ops=peak_for_dtype(peaks, info["dtype"]), bandwidth=bandwidth,
                l3_bytes=l3_bytes, nonzero_macs=_count(info.get("nonzero_macs")),
                **_tail_fields(bench), **_memory_fields(info),
            )
        )  # fmt: skip
    order = {id(row): i for i, row in enumerate(rows)}
    return _mark_fastest(sorted(rows, key=lambda r: (r.model, r.batch or 0, _display_rank(r), order[id(r)])))


def _display_rank(row: Row) -> int:
    """The baseline first, then the families in registry order; within one, the run's order
    (a grid runs its states in registry order). A run that recorded no family keeps its order."""
    if row.state == BASELINE:
        return -1
    return FAMILIES.index(row.state_family) if row.state_family in FAMILIES else len(FAMILIES)


def _mark_fastest(rows: list[Row]) -> list[Row]:
    """Flag, per model, batch and device, the row with the lowest median across every state
    and runtime (rows without our record have no batch and are never flagged)."""
    best: dict[tuple[str, int, str | None], Row] = {}
    for row in rows:
        if row.batch is None:
            continue
        key = (row.model, row.batch, row.device)
        if key not in best or row.median_s < best[key].median_s:
            best[key] = row
    chosen = {id(r) for r in best.values()}
    return [dataclasses.replace(r, fastest=True) if id(r) in chosen else r for r in rows]


def fastest_lines(rows: list[Row]) -> list[str]:
    """One line per model and batch: its fastest state, runtime, speedup and quality."""
    return [
        f"fastest {r.model} b{r.batch}: {r.state} ({r.runtime or 'torch'}) {r.median_s * 1e3:.3g} ms, "
        f"{'-' if r.speedup is None else f'{r.speedup:.2f}x'} vs fp32, {r.quality}"
        for r in rows
        if r.fastest
    ]


_COLUMNS = (
    "model",
    "state",
    "runtime",
    "batch",
    "median ms",
    "IQR ms",
    "p90 ms",
    "p99 ms",
    "bound ms",
    "img/s",
    "speedup",
    "achieved",
    "% peak",
    "params",
    "MACs",
    "MB",
    "RAM MB",
    "cold ms",
    "acc",
    "cos vs fp32",
    "agree",
)


def _pct(value: float | None) -> str:
    return num(value, ".2%")


def _ms(seconds: float | None, spec: str = ".3f") -> str:
    return num(None if seconds is None else seconds * 1e3, spec)


def _percent(value: float | None) -> str:
    """``42.1`` (``0.041`` below 1%, so a small share is not printed as zero)."""
    return num(value, ".1f" if value is None or abs(value) >= 1 else ".2g")


def _achieved(row: Row) -> str:
    """``97.3 GFLOP/s`` or ``531 GOP/s``: the unit says the dtype's kind of operation."""
    value = row.gflops
    return "-" if value is None or not math.isfinite(value) else f"{value:.1f} {row.ops_unit}"


def _cold(row: Row) -> str:
    """``load+first`` in ms (``812+45.3``); ``-`` where the probe recorded neither."""
    if row.load_s is None and row.first_call_s is None:
        return "-"

    def short(seconds: float | None) -> str:  # 1480 rather than 1.48e+03
        return _ms(seconds, ".0f" if seconds is not None and seconds >= 0.1 else ".3g")

    return f"{short(row.load_s)}+{short(row.first_call_s)}"


def _cells(row: Row) -> list[str]:
    return [
        row.model, f"{row.state} *" if row.fastest else row.state, row.runtime or "-", num(row.batch, "d"),
        f"{row.median_s * 1e3:.3f}", _ms(row.iqr_s), _ms(row.p90_s), _ms(row.p99_s), num(row.bound_ms, ".3g"),
        num(row.images_per_s, ".1f"), "-" if row.speedup is None else f"{row.speedup:.2f}x", _achieved(row),
        _percent(row.percent_peak), num(row.params, ","), human(row.macs),
        num(None if row.bytes is None else row.bytes / 1e6, ".2f"),
        num(None if row.peak_rss_bytes is None else row.peak_rss_bytes / 1e6, ".1f"), _cold(row),
        _pct(row.accuracy), num(row.cosine, ".5f"),
        num(row.top1 if row.top1 is not None else row.neighbours, ".1%"),
    ]  # fmt: skip


def human(n: float | None, unit: str = "") -> str:
    """``n`` to three significant digits with a k/M/G suffix: 286,334 -> 286k, 4.09e9 -> 4.09G."""
    if n is None:
        return "-"
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{suffix}{unit}"
    return f"{n:.3g}{unit}"


def format_rows(rows: list[Row], fmt: str = "table") -> str:
    """The rows as a rich table (``table``), Markdown (``md``) or CSV (``csv``)."""
    return render(
        _COLUMNS, [_cells(r) for r in rows], fmt=fmt, left=("model", "state"), sections=[r.model for r in rows],
        title="inference-scale report (speedup vs fp32 at the same batch and device; * fastest state)",
    )  # fmt: skip


def row_label(row: Row) -> str:
    """``lenet int8-static b1`` (a row of anyone's benchmark: its test name)."""
    if row.batch is None:
        return row.name
    runtime = "" if row.runtime in (None, "") or row.runtime.startswith("torch") else f" ({row.runtime})"
    return f"{row.model} {row.state}{runtime} b{row.batch}"


def _gops(value: float | None, unit: str) -> str:
    return "-" if value is None else f"{value:.4g} {unit}"


def host_lines(run: Run) -> list[str]:
    """The run's machine in one line (``host: ...``, ``-`` for each part it lacks), then its
    measured peaks where it has them, each beside the ISA's theoretical figure."""
    lines = [f"host: {host_line(run.machine_info)}"]
    peaks = peaks_from(run.machine_info)
    if peaks is None:
        return lines
    theory = peaks.get("theoretical")
    theory = theory if isinstance(theory, Mapping) else {}

    def part(name: str, key: str, unit: str) -> str:
        top = theory.get(key)
        known = isinstance(top, (int, float)) and not isinstance(top, bool) and math.isfinite(top) and top > 0
        return f"{name} {_gops(peaks.get(key), unit)}" + (f" (theoretical {top:.4g})" if known else "")

    threads = peaks.get("threads")
    on = f" on {threads} thread{'s' if threads != 1 else ''}" if threads else ""
    parts = [part("fp32", "fp32_gflops", "GFLOP/s"), part("bf16", "bf16_gflops", "GFLOP/s"),
             part("int8", "int8_gops", "GOP/s"), f"bandwidth {_gops(peaks.get('bandwidth_gbs'), 'GB/s')}"]  # fmt: skip
    lines.append(f"peaks{on} (measured): " + ", ".join(parts))
    return lines


def _names(rows: Sequence[Row], total: int) -> str:
    return "every row" if len(rows) == total and total > 1 else ", ".join(row_label(r) for r in rows)


def notes(rows: Sequence[Row]) -> list[str]:
    """The lines under the table: why a percentile reads ``-`` (too few raw rounds, with the
    count :func:`.tails.min_samples` asks for, or none saved), which states run within
    :data:`NEAR_BOUND` x of their lower bound, and which memory probes failed."""
    out = []
    without = [r for r in rows if r.rounds is None]
    if without:
        out.append(f"p90, p99 -: no raw rounds (save them with --benchmark-save-data): {_names(without, len(rows))}")
    for q in TAIL_QS:
        field = {90: "p90_s", 99: "p99_s"}[int(q)]
        short = [r for r in rows if r.rounds is not None and getattr(r, field) is None]
        if not short:
            continue
        counts = sorted({r.rounds for r in short if r.rounds is not None})
        have = str(counts[0]) if len(counts) == 1 else f"{counts[0]} to {counts[-1]}"
        out.append(f"{tails.label(q)} needs {tails.min_samples(q)} rounds, have {have}: {_names(short, len(rows))}")
    near = [
        r for r in rows
        if r.bound_ms is not None and r.bound_ms > 0 and r.median_s * 1e3 <= NEAR_BOUND * r.bound_ms
        and r.median_s * 1e3 >= r.bound_ms
    ]  # fmt: skip
    if near:
        listed = ", ".join(
            f"{row_label(r)} ({r.median_s * 1e3:.3g} ms, bound {r.bound_ms:.3g} ms, {r.bound_term})" for r in near
        )
        out.append(f"within {NEAR_BOUND:g}x of the bound: {listed}")
    failed = [r for r in rows if r.memory_failed]
    if failed:
        out.append("memory probe failed: " + "; ".join(f"{row_label(r)} ({r.memory_failed})" for r in failed))
    if any(r.bound_ms is not None or r.load_s is not None or r.first_call_s is not None for r in rows):
        out.append(
            "bound ms: max(2 x MACs x batch / peak, bytes / bandwidth where the weights exceed L3; CSR states "
            "count their non-zero MACs); % peak: achieved / the dtype's measured "
            "peak; RAM MB: peak resident memory above the process's baseline; cold ms: load + first call, "
            "in a fresh process"
        )
    return out


def peak_warnings(rows: Sequence[Row]) -> list[str]:
    """One line per state that beats a physical limit: above 100% of its dtype's peak (a
    kernel cannot beat the peak, so the peak is wrong) or, failing that, a median below its
    bandwidth bound (weights larger than L3 read faster than the run's bandwidth: the
    bandwidth figure is low, or the L3 size read from sysfs is too small)."""
    out = []
    for r in rows:
        pct = r.percent_peak
        if pct is not None and pct > 100:
            out.append(
                f"{row_label(r)} runs at {pct:.0f}% of the run's {r.dtype} peak ({r.gflops:.4g} {r.ops_unit} "
                f"achieved, peak {(r.peak_ops or 0) / 1e9:.4g}): no kernel beats the peak, so the peak is wrong "
                "(a bug in measure/peaks), not the state"
            )
        elif r.bound_ms is not None and r.median_s * 1e3 < r.bound_ms:
            out.append(
                f"{row_label(r)}'s median {r.median_s * 1e3:.3g} ms is below its {r.bound_term} bound "
                f"{r.bound_ms:.3g} ms: its {(r.bytes or 0) / 1e6:.3g} MB of weights, more than L3, were read "
                "faster than the run's bandwidth, so that figure (or the L3 size) is wrong"
            )
    return out


def format_report(run: Run, rows: list[Row], fmt: str = "table") -> tuple[str, list[str]]:
    """The whole report of one run as ``(stdout text, stderr lines)``. ``table``: the run's
    path, its host (and peaks), the table, the fastest states, the notes and the warnings.
    ``md``: the same without the path, notes and warnings as a list. ``csv``: the table alone
    (one header and one line per benchmark, for a spreadsheet); its warnings go to stderr."""
    table = format_rows(rows, fmt)
    warned = [f"warning: {w}" for w in peak_warnings(rows)]
    if fmt == "csv":
        return table, warned
    if fmt == "md":
        head = "  \n".join(host_lines(run))
        tail = [f"- {line}" for line in [*notes(rows), *warned]]
        return "\n\n".join(filter(None, [head, table, "\n".join(tail)])), []
    lines = [f"run: {run.path}", *host_lines(run), table, *fastest_lines(rows), *notes(rows), *warned]
    return "\n".join(lines), []
