"""Read saved pytest-benchmark JSON and show it: a table grouped by model (terminal, Markdown
or CSV), with the fastest state of each model and batch marked across runtimes (plots are in
:mod:`.plots`). Runs are files or storage ids (``0001``) under ``.benchmarks/``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from inference_scale.reporting.table import render
from inference_scale.slugs import BASELINE, FAMILIES
from inference_scale.units import flops_from_macs
from inference_scale.verdicts.numbers import num
from inference_scale.verdicts.runs import BadRunError, Bench, Run

__all__ = ["Row", "fastest_lines", "format_rows", "human", "rows_from_run"]


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
        """Achieved GFLOP/s: FLOPs (2 x MACs, :func:`units.flops_from_macs`) x batch / median."""
        if self.macs is None or self.batch is None:
            return None
        return flops_from_macs(self.macs) * self.batch / self.median_s / 1e9


def _plain_row(bench: Bench) -> Row:
    """A benchmark without our record: its group (or test function) stands for the model and
    its parametrization for the state."""
    param = bench.name[len(bench.func) + 1 : -1] if "[" in bench.name else "-"
    return Row(
        name=bench.name, model=bench.group or bench.func, family=None, state=param, batch=None, device=None,
        median_s=bench.median, iqr_s=bench.iqr, params=None, macs=None, bytes=None, accuracy=None, speedup=None,
    )  # fmt: skip


def rows_from_run(run: Run) -> list[Row]:
    """One row per benchmark; speedup is against the fp32 row of the same model, batch and
    device (from the same test function when there is one, else from any)."""
    if not run.benchmarks:
        raise BadRunError(f"{run.path} holds no benchmarks")
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
    "img/s",
    "speedup",
    "params",
    "MACs",
    "MB",
    "acc",
    "cos vs fp32",
    "agree",
    "GFLOP/s",
)


def _pct(value: float | None) -> str:
    return num(value, ".2%")


def _cells(row: Row) -> list[str]:
    return [
        row.model, f"{row.state} *" if row.fastest else row.state, row.runtime or "-", num(row.batch, "d"),
        f"{row.median_s * 1e3:.3f}",
        num(None if row.iqr_s is None else row.iqr_s * 1e3, ".3f"), num(row.images_per_s, ".1f"),
        "-" if row.speedup is None else f"{row.speedup:.2f}x", num(row.params, ","), human(row.macs),
        num(None if row.bytes is None else row.bytes / 1e6, ".2f"),
        _pct(row.accuracy), num(row.cosine, ".5f"),
        num(row.top1 if row.top1 is not None else row.neighbours, ".1%"), num(row.gflops, ".1f"),
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
