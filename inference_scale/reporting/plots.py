"""PNG plots of a run, one panel per model (small multiples): no one chooses between LeNet and
ResNet-50, so no axis, front or bar chart mixes models.

* ``latency_vs_bytes.png``: each model's states at its smallest batch, labelled, with that
  model's Pareto front over latency and bytes;
* ``latency_vs_quality.png``: the same against accuracy (or top-1 agreement with fp32);
* ``speedup.png``: each model's speedups against fp32, sorted, one bar group per batch size;
* ``advice.png`` (``inference-scale advise --plot``): latency against quality with the
  three-way front and the pick highlighted.

Files are written atomically: a reader never sees half a PNG.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from inference_scale.atomic import write_bytes_atomic
from inference_scale.reporting.advice import non_dominated
from inference_scale.reporting.report import Row
from inference_scale.slugs import BASELINE
from inference_scale.verdicts.runs import BadRunError

__all__ = ["plot_advice", "plot_rows"]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _panels(n: int, title: str) -> tuple[Any, list[Any]]:
    plt = _pyplot()
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.2 * rows), squeeze=False)
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    fig.suptitle(title)
    return fig, flat[:n]


def _label(ax: Any, points: Sequence[tuple[float, float, str]]) -> None:
    # Alternate label offsets along y so neighbouring states do not print on top of each other.
    for i, (x, y, text) in enumerate(sorted(points, key=lambda p: p[1])):
        ax.annotate(text, (x, y), xytext=(4, 4 if i % 2 == 0 else -10), textcoords="offset points", fontsize=7)


def _plain_ticks(ax: Any) -> None:
    """Log axes read 0.4 and 150, not 4 x 10^-1: people compare these numbers with tables."""
    from matplotlib.ticker import FuncFormatter

    plain = FuncFormatter(lambda v, _: f"{v:g}")
    for axis in (ax.xaxis, ax.yaxis):
        if axis.get_scale() == "log":
            axis.set_major_formatter(plain)
            axis.set_minor_formatter(plain)


def _by_model(rows: Sequence[Row]) -> dict[str, list[Row]]:
    out: dict[str, list[Row]] = {}
    for r in rows:
        out.setdefault(r.model, []).append(r)
    return out


def _scatter(
    rows: Sequence[Row], path: Path, *, title: str, x_of: Callable[[Row], float | None], xlabel: str, log_x: bool
) -> Path:
    """One panel per model: latency (y) against ``x_of`` at the model's smallest batch, with
    the front of (x, latency) where smaller x is better (log_x) or larger is (quality)."""
    models = _by_model(rows)
    fig, axes = _panels(len(models), title)
    for ax, (model, mine) in zip(axes, models.items(), strict=True):
        batch = min(r.batch or 0 for r in mine)
        pts = [(x, r.median_s * 1e3, r.state) for r in mine if r.batch == batch and (x := x_of(r)) is not None]
        if not pts:
            ax.set(title=f"{model} (b{batch}): nothing recorded")
            continue
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=18)
        _label(ax, pts)
        sign = 1.0 if log_x else -1.0  # quality: larger is better
        front = sorted(pts[i][:2] for i in non_dominated([(sign * x, y) for x, y, _ in pts]))
        ax.plot([x for x, _ in front], [y for _, y in front], "k--", lw=1, label="Pareto front")
        ax.set(xlabel=xlabel, ylabel="median latency (ms)", title=f"{model}, batch {batch}", yscale="log")
        if log_x:
            ax.set_xscale("log")
        _plain_ticks(ax)
        ax.legend(fontsize=7)
    return _save(fig, path)


def _speedups(rows: Sequence[Row], path: Path) -> Path:
    models = {m: [r for r in rs if r.speedup is not None and r.state != BASELINE] for m, rs in _by_model(rows).items()}
    models = {m: rs for m, rs in models.items() if rs}
    if not models:
        models = {"(no speedups)": []}
    fig, axes = _panels(len(models), "Speedup against fp32 eager, same run")
    for ax, (model, mine) in zip(axes, models.items(), strict=True):
        batches = sorted({r.batch or 0 for r in mine})
        # sorted by the smallest batch's speedup, so the best state reads first
        order = sorted({r.state for r in mine}, key=lambda s: -max(
            (r.speedup or 0 for r in mine if r.state == s and r.batch == batches[0]), default=0))  # fmt: skip
        height = 0.8 / max(1, len(batches))
        for j, b in enumerate(batches):
            values = {r.state: r.speedup or 0 for r in mine if r.batch == b}
            ys = [i + j * height for i in range(len(order))]
            ax.barh(ys, [values.get(s, 0) for s in order], height=height, label=f"b{b}")
        ax.set_yticks([i + height * (len(batches) - 1) / 2 for i in range(len(order))], order, fontsize=7)
        ax.invert_yaxis()
        ax.axvline(1.0, color="k", lw=1)
        ax.set(xlabel="speedup (x)", title=model)
        ax.legend(fontsize=7)
    return _save(fig, path)


def plot_rows(rows: list[Row], out_dir: Path) -> list[Path]:
    """``latency_vs_bytes.png``, ``latency_vs_quality.png`` and ``speedup.png`` in ``out_dir``,
    one panel per model. Returns the files written."""
    # Only benchmarks with this project's record have sizes to plot; check before any file is written.
    rows = [r for r in rows if r.params is not None and r.bytes is not None and r.batch is not None]
    if not rows:
        raise BadRunError("nothing to plot: no benchmark carries an inference-scale record (params, bytes, batch)")
    out_dir.mkdir(parents=True, exist_ok=True)
    return [
        _scatter(rows, out_dir / "latency_vs_bytes.png", title="Latency against size, per model",
                 x_of=lambda r: (r.bytes or 0) / 1e6, xlabel="deployed MB", log_x=True),
        _scatter(rows, out_dir / "latency_vs_quality.png", title="Latency against quality, per model",
                 x_of=lambda r: r.score[0], xlabel="accuracy, else top-1 agreement with fp32", log_x=False),
        _speedups(rows, out_dir / "speedup.png"),
    ]  # fmt: skip


def plot_advice(advice: Sequence[Any], out_dir: Path) -> list[Path]:
    """``advice.png``: per model, every state's latency against quality, the three-way front
    (latency, bytes, quality) ringed and the pick starred."""
    if not advice:
        raise BadRunError("nothing to plot: no advice")
    out_dir.mkdir(parents=True, exist_ok=True)
    fig, axes = _panels(len(advice), "Which state to deploy: latency against quality (front ringed, pick starred)")
    for ax, a in zip(axes, advice, strict=True):
        shown = [c for c in a.candidates if c.quality is not None]
        ax.scatter([c.quality for c in shown], [c.latency_ms for c in shown], s=14, color="grey")
        front = [c for c in a.front if c.quality is not None]
        ax.scatter([c.quality for c in front], [c.latency_ms for c in front], s=60, facecolors="none",
                   edgecolors="tab:blue", label="Pareto front")  # fmt: skip
        if a.pick is not None and a.pick.quality is not None:
            ax.scatter([a.pick.quality], [a.pick.latency_ms], marker="*", s=220, color="tab:red", label="pick")
        _label(ax, [(c.quality, c.latency_ms, c.state) for c in shown if c.quality is not None])
        kind = "accuracy" if any(c.quality_kind == "accuracy" for c in shown) else "top-1 agreement with fp32"
        ax.set(xlabel=kind, ylabel="median latency (ms)", yscale="log", title=f"{a.model}, batch {a.batch}")
        _plain_ticks(ax)
        ax.legend(fontsize=7)
    return [_save(fig, out_dir / "advice.png")]


def _save(fig: Any, path: Path) -> Path:
    plt = _pyplot()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    write_bytes_atomic(buffer.getvalue(), path)
    return path
