"""Read saved pytest-benchmark JSON and show it: a table grouped by model (terminal, Markdown
or CSV) and PNG plots. Runs are files or storage ids (``0001``) under ``.benchmarks/``."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .atomic import write_bytes_atomic
from .runs import BadRunError, Bench, Run
from .sizing import flops_from_macs
from .states import state_sort_key
from .table import render

__all__ = ["Row", "format_rows", "human", "plot_rows", "rows_from_run"]


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

    @property
    def images_per_s(self) -> float | None:
        return None if self.batch is None else self.batch / self.median_s

    @property
    def gflops(self) -> float | None:
        """Achieved GFLOP/s: FLOPs (2 x MACs, :func:`sizing.flops_from_macs`) x batch / median."""
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
        if info is not None and info["state"] == "fp32":
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
        accuracy = info.get("accuracy")
        rows.append(
            Row(
                name=bench.name, model=info["model"], family=info["family"], state=info["state"],
                batch=info["batch_size"], device=info["device"], median_s=bench.median, iqr_s=bench.iqr,
                params=info["params"], macs=info["macs"], bytes=info["bytes"],
                accuracy=float(accuracy) if isinstance(accuracy, (int, float)) else None,
                speedup=None if base is None else base / bench.median,
            )
        )  # fmt: skip
    return sorted(rows, key=lambda r: (r.model, r.batch or 0, state_sort_key(r.state), r.name))


_COLUMNS = (
    "model",
    "state",
    "batch",
    "median ms",
    "IQR ms",
    "img/s",
    "speedup",
    "params",
    "MACs",
    "MB",
    "acc",
    "GFLOP/s",
)


def _num(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _cells(row: Row) -> list[str]:
    return [
        row.model, row.state, _num(row.batch, "d"), f"{row.median_s * 1e3:.3f}",
        _num(None if row.iqr_s is None else row.iqr_s * 1e3, ".3f"), _num(row.images_per_s, ".1f"),
        "-" if row.speedup is None else f"{row.speedup:.2f}x", _num(row.params, ","), human(row.macs),
        _num(None if row.bytes is None else row.bytes / 1e6, ".2f"),
        "-" if row.accuracy is None else f"{row.accuracy:.2%}", _num(row.gflops, ".1f"),
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
        title="inference-scale report (speedup vs fp32 at the same batch and device)",
    )  # fmt: skip


def _pareto(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points no other point beats on both axes (smaller is better on both)."""
    front, best = [], math.inf
    for x, y in sorted(points):
        if y < best:
            front.append((x, y))
            best = y
    return front


def plot_rows(rows: list[Row], out_dir: Path) -> list[Path]:
    """Three PNGs: throughput vs parameters by family (fp32 rows), latency vs bytes per state
    with the Pareto frontier, and speedup bars per model. Returns the files written."""
    # Only benchmarks with this project's record have sizes to plot; check before any file is written.
    rows = [r for r in rows if r.params is not None and r.bytes is not None and r.batch is not None]
    if not rows:
        raise BadRunError("nothing to plot: no benchmark carries an inference-scale record (params, bytes, batch)")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []

    fig, ax = plt.subplots(figsize=(7, 5))
    for family in sorted({r.family or "-" for r in rows}):
        pts = [r for r in rows if (r.family or "-") == family and r.state == "fp32"]
        if pts:
            ax.scatter([r.params or 0 for r in pts], [r.images_per_s or 0 for r in pts], label=family)
            for r in pts:
                ax.annotate(f"{r.model} b{r.batch}", (r.params, r.images_per_s), fontsize=7)
    ax.set(xscale="log", yscale="log", xlabel="parameters", ylabel="images / s (fp32)", title="Throughput vs size")
    ax.legend(fontsize=8)
    written.append(_save(fig, out_dir / "throughput_vs_params.png"))

    # one batch size (the smallest: single-request latency) so points compare like with like
    small = min(r.batch or 0 for r in rows)
    at_batch = [r for r in rows if r.batch == small]
    fig, ax = plt.subplots(figsize=(8, 5.5))
    colours = plt.get_cmap("tab20")
    for i, state in enumerate(sorted({r.state for r in at_batch})):
        pts = [r for r in at_batch if r.state == state]
        marker = "osD^v<>"[i // 20 % 7] if i >= 20 else "o"
        ax.scatter([(r.bytes or 0) / 1e6 for r in pts], [r.median_s * 1e3 for r in pts], label=state, s=22,
                   color=colours(i % 20), marker=marker)  # fmt: skip
    front = _pareto([((r.bytes or 0) / 1e6, r.median_s * 1e3) for r in at_batch])
    ax.plot(*zip(*front, strict=True), "k--", lw=1, label="Pareto frontier")
    ax.set(xscale="log", yscale="log", xlabel="checkpoint MB", ylabel="median latency (ms)",
           title=f"Latency vs size at batch {small}")  # fmt: skip
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    written.append(_save(fig, out_dir / "latency_vs_bytes.png"))

    fig, ax = plt.subplots(figsize=(9, 5))
    bars = [r for r in rows if r.speedup is not None and r.state != "fp32"]
    ax.barh([f"{r.model} {r.state} b{r.batch}" for r in bars], [r.speedup or 0 for r in bars])
    ax.axvline(1.0, color="k", lw=1)
    ax.set(xlabel="speedup vs fp32 (x)", title="Speedup per model and state")
    ax.tick_params(axis="y", labelsize=7)
    written.append(_save(fig, out_dir / "speedup.png"))
    return written


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    write_bytes_atomic(buffer.getvalue(), path)  # a reader never sees half a PNG
    return path
