"""Read saved pytest-benchmark JSON and show it: a table grouped by model (terminal, Markdown
or CSV) and PNG plots. Runs are files or storage ids (``0001``) under ``.benchmarks/``."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .record import InvalidRecordError, validate_extra_info

__all__ = ["BadRunError", "Row", "find_run", "format_rows", "load_run", "plot_rows", "rows_from_run"]

FORMATS = ("table", "md", "csv")
_STATE_ORDER = ("fp32", "channels_last", "bf16", "int8-static", "int8-dynamic", "int8-static-fx")


class BadRunError(ValueError):
    """A run that cannot be read: missing, not JSON, not pytest-benchmark output, or without
    the extra_info record."""


def find_run(spec: str | None, *, storage: Path = Path(".benchmarks")) -> Path:
    """A JSON file: ``spec`` itself if it is a file, else the saved run whose id starts with
    it (``0001``), else (``spec`` None) the newest saved run."""
    if spec is not None and Path(spec).is_file():
        return Path(spec)
    saved = sorted(storage.glob("*/*.json"), key=lambda p: p.name)
    if spec is None:
        if not saved:
            raise BadRunError(f"no saved runs under {storage}/ (run the benchmarks with --benchmark-autosave)")
        return saved[-1]
    matches = [p for p in saved if p.name.split("_", 1)[0] == spec or p.stem == spec]
    if not matches:
        ids = ", ".join(p.name.split("_", 1)[0] for p in saved) or "none"
        raise BadRunError(f"no run {spec!r}: not a file, and the saved ids under {storage}/ are: {ids}")
    return matches[-1]


def load_run(path: Path) -> dict[str, Any]:
    """The parsed JSON of a pytest-benchmark run, checked for shape."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise BadRunError(f"cannot read {path}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise BadRunError(f"{path} is not JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list) or "machine_info" not in data:
        raise BadRunError(f"{path} is not pytest-benchmark output (no 'benchmarks' list and 'machine_info')")
    for bench in data["benchmarks"]:
        if not isinstance(bench, dict) or "stats" not in bench or "name" not in bench:
            raise BadRunError(f"{path} has a benchmark entry without name and stats")
        try:
            validate_extra_info(bench.get("extra_info") or {})
        except InvalidRecordError as exc:
            raise BadRunError(f"{path}: benchmark {bench['name']} has no usable extra_info record: {exc}") from exc
    return data


@dataclass(frozen=True)
class Row:
    name: str
    model: str
    family: str
    state: str
    batch: int
    device: str
    median_s: float
    iqr_s: float
    params: int
    macs: int
    bytes: int
    accuracy: float | None
    speedup: float | None

    @property
    def images_per_s(self) -> float:
        return self.batch / self.median_s

    @property
    def gflops(self) -> float:
        """Achieved GFLOP/s: 2 x MACs x batch / median."""
        return 2 * self.macs * self.batch / self.median_s / 1e9


def rows_from_run(data: dict[str, Any]) -> list[Row]:
    """One row per benchmark; speedup is against the fp32 row of the same model, batch and
    device (from the same test function when there is one, else from any)."""
    raw = []
    for bench in data["benchmarks"]:
        info, stats = bench["extra_info"], bench["stats"]
        raw.append((bench["name"].split("[", 1)[0], info, stats, bench["name"]))
    baselines: dict[tuple[str, ...], float] = {}
    for func, info, stats, _ in raw:
        if info["state"] == "fp32":
            key = (info["model"], str(info["batch_size"]), info["device"])
            baselines[(func, *key)] = stats["median"]
            baselines.setdefault(key, stats["median"])
    rows = []
    for func, info, stats, name in raw:
        key = (info["model"], str(info["batch_size"]), info["device"])
        base = baselines.get((func, *key), baselines.get(key))
        rows.append(
            Row(
                name=name,
                model=info["model"],
                family=info["family"],
                state=info["state"],
                batch=info["batch_size"],
                device=info["device"],
                median_s=stats["median"],
                iqr_s=stats["iqr"],
                params=info["params"],
                macs=info["macs"],
                bytes=info["bytes"],
                accuracy=info.get("accuracy"),
                speedup=None if base is None else base / stats["median"],
            )
        )
    order = {s: i for i, s in enumerate(_STATE_ORDER)}
    return sorted(rows, key=lambda r: (r.model, r.batch, order.get(r.state, len(order)), r.state, r.name))


_COLUMNS = (
    "model",
    "state",
    "batch",
    "median ms",
    "IQR ms",
    "img/s",
    "speedup",
    "params",
    "GMACs",
    "MB",
    "acc",
    "GFLOP/s",
)


def _cells(row: Row) -> list[str]:
    return [
        row.model, row.state, str(row.batch), f"{row.median_s * 1e3:.3f}", f"{row.iqr_s * 1e3:.3f}",
        f"{row.images_per_s:.1f}", "-" if row.speedup is None else f"{row.speedup:.2f}x", f"{row.params:,}",
        f"{row.macs / 1e9:.3f}", f"{row.bytes / 1e6:.2f}", "-" if row.accuracy is None else f"{row.accuracy:.2%}",
        f"{row.gflops:.1f}",
    ]  # fmt: skip


def format_rows(rows: list[Row], fmt: str = "table") -> str:
    """The rows as a rich table (``table``), Markdown (``md``) or CSV (``csv``)."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(_COLUMNS)
        writer.writerows(_cells(r) for r in rows)
        return out.getvalue().rstrip("\n")
    if fmt == "md":
        lines = ["| " + " | ".join(_COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
        lines += ["| " + " | ".join(_cells(r)) + " |" for r in rows]
        return "\n".join(lines)
    from rich.console import Console
    from rich.table import Table

    table = Table(title="inference-scale report (speedup vs fp32 at the same batch and device)")
    for col in _COLUMNS:
        table.add_column(col, justify="left" if col in ("model", "state") else "right", no_wrap=True)
    previous = None
    for row in rows:
        if previous is not None and row.model != previous:
            table.add_section()
        table.add_row(*_cells(row))
        previous = row.model
    console = Console(file=io.StringIO(), width=160, force_terminal=False)
    console.print(table)
    return console.file.getvalue().rstrip("\n")  # type: ignore[attr-defined, no-any-return]


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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []

    fig, ax = plt.subplots(figsize=(7, 5))
    for family in sorted({r.family for r in rows}):
        pts = [r for r in rows if r.family == family and r.state == "fp32"]
        if pts:
            ax.scatter([r.params for r in pts], [r.images_per_s for r in pts], label=family)
            for r in pts:
                ax.annotate(f"{r.model} b{r.batch}", (r.params, r.images_per_s), fontsize=7)
    ax.set(xscale="log", yscale="log", xlabel="parameters", ylabel="images / s (fp32)", title="Throughput vs size")
    ax.legend(fontsize=8)
    written.append(_save(fig, out_dir / "throughput_vs_params.png"))

    # one batch size (the smallest: single-request latency) so points compare like with like
    small = min(r.batch for r in rows)
    at_batch = [r for r in rows if r.batch == small]
    fig, ax = plt.subplots(figsize=(8, 5.5))
    colours = plt.get_cmap("tab20")
    for i, state in enumerate(sorted({r.state for r in at_batch})):
        pts = [r for r in at_batch if r.state == state]
        marker = "osD^v<>"[i // 20 % 7] if i >= 20 else "o"
        ax.scatter([r.bytes / 1e6 for r in pts], [r.median_s * 1e3 for r in pts], label=state, s=22,
                   color=colours(i % 20), marker=marker)  # fmt: skip
    front = _pareto([(r.bytes / 1e6, r.median_s * 1e3) for r in at_batch])
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
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)  # atomic: a reader never sees half a PNG
    return path
