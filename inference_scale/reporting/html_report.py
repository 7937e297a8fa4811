"""``inference-scale report --html OUT.html``: one self-contained file that opens offline.

Four sections, each a ``<section>`` with an id the browser test looks for:

* ``results``: every benchmark of the given runs with every :class:`report.Row` column;
* ``models``: per model, latency against deployed size, its Pareto front over the two
  (:func:`advice.non_dominated`, the one Pareto rule) and the advice's pick with its reason
  (:func:`advice.advise` under the default accuracy-drop budget);
* ``history``: each benchmark's series over the storage's runs of the same machine
  (:mod:`.history`), its bootstrap intervals as error bars, each step marked and labelled;
* ``compare``: the verdicts of the newest run of that history against the one before
  (:func:`compare.compare_runs`).

Charts are plotly figures; plotly.js is inlined once (``include_plotlyjs=True`` on the first
chart, about 4.6 MB), so the file needs no network. Hovering a point shows its value, commit
and state. The file is written atomically.
"""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from inference_scale.atomic import write_bytes_atomic
from inference_scale.errors import InferenceScaleError
from inference_scale.reporting.advice import DEFAULT_MAX_DROP, AdviceError, Budgets, advise, non_dominated
from inference_scale.reporting.report import Row, rows_from_run
from inference_scale.verdicts.compare import compare_runs
from inference_scale.verdicts.runs import load_run

__all__ = ["SECTIONS", "render_html", "write_html"]

SECTIONS = ("results", "models", "history", "compare")

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; font-size: 12px; margin-bottom: 1em; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: right; white-space: nowrap; }
th { background: #f0f0f0; } td.l { text-align: left; }
.wrap { overflow-x: auto; } .note { color: #555; font-size: 13px; }
.slower { background: #fdd; } .faster { background: #dfd; }
"""


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return html.escape(str(value))


def _table(head: Sequence[str], rows: Sequence[Sequence[Any]], classes: Sequence[str] = ()) -> str:
    out = ["<div class='wrap'><table><tr>", *(f"<th>{html.escape(h)}</th>" for h in head), "</tr>"]
    for i, row in enumerate(rows):
        cls = f" class='{classes[i]}'" if i < len(classes) and classes[i] else ""
        cells = "".join(f"<td class='l'>{_cell(v)}</td>" if isinstance(v, str) else f"<td>{_cell(v)}</td>" for v in row)
        out.append(f"<tr{cls}>{cells}</tr>")
    out.append("</table></div>")
    return "".join(out)


class _Charts:
    """Figures to HTML divs; plotly.js goes inline with the first one only."""

    def __init__(self) -> None:
        self.count = 0

    def div(self, fig: Any) -> str:
        self.count += 1
        fig.update_layout(height=360, margin={"l": 60, "r": 20, "t": 50, "b": 50}, template="plotly_white")
        text: str = fig.to_html(
            full_html=False,
            include_plotlyjs=self.count == 1,
            div_id=f"chart-{self.count}",
            config={"displaylogo": False},
        )
        return f"<div class='chart'>{text}</div>"


def _results(rows: Sequence[tuple[Path, Row]]) -> str:
    fields = [f.name for f in dataclasses.fields(Row)]
    head = ["run", *fields, "images_per_s", "gflops", "quality"]
    body = [[path.name, *(getattr(r, f) for f in fields), r.images_per_s, r.gflops, r.quality] for path, r in rows]
    return _table(head, body)


def _models(rows: Sequence[Row], charts: _Charts) -> str:
    import plotly.graph_objects as go

    timed = [r for r in rows if r.bytes is not None and r.batch is not None]
    if not timed:
        return "<p class='note'>No benchmark carries an inference-scale record (bytes, batch): nothing to plot.</p>"
    try:
        picks = {(a.model, a.batch): a for a in advise(timed, budgets=Budgets(max_accuracy_drop=DEFAULT_MAX_DROP))}
    except AdviceError as exc:
        picks, note = {}, f"<p class='note'>advice: {html.escape(str(exc))}</p>"
    else:
        note = ""
    parts = [note]
    for model in sorted({r.model for r in timed}):
        mine = [r for r in timed if r.model == model]
        batch = min(r.batch or 0 for r in mine)
        pts = [r for r in mine if r.batch == batch]
        xs, ys = [(r.bytes or 0) / 1e6 for r in pts], [r.median_s * 1e3 for r in pts]
        hover = [
            f"{r.state}<br>{y:.4g} ms, {x:.4g} MB<br>{r.quality}<br>{r.name}"
            for r, x, y in zip(pts, xs, ys, strict=True)
        ]
        fig = go.Figure()
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="markers+text",
                text=[r.state for r in pts],
                textposition="top center",
                hovertext=hover,
                hoverinfo="text",
                name="states",
            )
        )
        front = sorted(non_dominated([(x, y) for x, y in zip(xs, ys, strict=True)]), key=lambda i: xs[i])
        fig.add_trace(
            go.Scatter(
                x=[xs[i] for i in front],
                y=[ys[i] for i in front],
                mode="lines",
                line={"dash": "dash", "color": "black"},
                name="Pareto front",
                hoverinfo="skip",
            )
        )
        advice = picks.get((model, batch))
        if advice is not None and advice.pick is not None:
            pick = advice.pick
            fig.add_trace(
                go.Scatter(
                    x=[pick.bytes / 1e6],
                    y=[pick.latency_ms],
                    mode="markers",
                    marker={"symbol": "star", "size": 18, "color": "crimson"},
                    name="pick",
                    hovertext=[f"pick: {pick.state}"],
                    hoverinfo="text",
                )
            )
        fig.update_layout(
            title=f"{model}, batch {batch}: latency against size",
            xaxis_title="deployed MB",
            yaxis_title="median latency (ms)",
            xaxis_type="log",
            yaxis_type="log",
        )
        reason = (
            ""
            if advice is None
            else f"<p><b>advice for {html.escape(model)} b{batch}:</b> {html.escape(advice.reason)}</p>"
        )
        parts.append(charts.div(fig) + reason)
    return "".join(parts)


def _history(storage: Path, machine: str | None, charts: _Charts) -> tuple[str, Any]:
    import plotly.graph_objects as go

    from inference_scale.verdicts.history import load_history

    try:
        hist = load_history(storage, machine=machine)
    except InferenceScaleError as exc:
        return f"<p class='note'>No history: {html.escape(str(exc))}</p>", None
    parts = [
        f"<p class='note'>{len(hist.runs)} runs of {html.escape(hist.machine)}, ordered by commit time; "
        f"{len(hist.steps)} steps over {hist.threshold:.0%}"
        f"{'; the latest segment regressed: ' + html.escape(', '.join(hist.regressed)) if hist.regressed else ''}"
        "</p>"
    ]
    for s in hist.series:
        xs = [hist.runs[p.index].commit[:8] + f" #{p.index + 1}" for p in s.points]
        ys = [p.value * 1e3 for p in s.points]
        up = [None if p.ci_high is None else (p.ci_high - p.value) * 1e3 for p in s.points]
        down = [None if p.ci_low is None else (p.value - p.ci_low) * 1e3 for p in s.points]
        hover = [
            f"{y:.4g} ms<br>commit {hist.runs[p.index].commit}<br>state {p.state or '-'}<br>{hist.runs[p.index].when}"
            for p, y in zip(s.points, ys, strict=True)
        ]
        fig = go.Figure(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines+markers",
                hovertext=hover,
                hoverinfo="text",
                name=s.name,
                error_y={"type": "data", "array": up, "arrayminus": down, "visible": True},
            )
        )
        for step in s.steps:
            at = next(i for i, p in enumerate(s.points) if p.index == step.at)
            color = "crimson" if step.verdict == "slower" else "seagreen"
            fig.add_vline(x=at - 0.5, line={"color": color, "dash": "dot"})
            fig.add_annotation(
                x=at - 0.5,
                y=max(ys),
                text=f"{step.verdict} {step.ratio:.2f}x",
                showarrow=False,
                font={"color": color},
                yshift=10,
            )
        fig.update_layout(title=f"{s.name}: {hist.stat} per run", yaxis_title="ms", xaxis_title="commit (run)")
        parts.append(charts.div(fig))
    return "".join(parts), hist


def _compare(hist: Any) -> str:
    from inference_scale.verdicts.compare import format_comparison

    if hist is None or len(hist.runs) < 2:
        return "<p class='note'>Fewer than two runs of one machine: nothing to compare.</p>"
    base, new = load_run(hist.runs[-2].path), load_run(hist.runs[-1].path)
    cmp = compare_runs(base, new)
    head = ("benchmark", "verdict", "new/base", "95% CI", "q (BH)", "metrics", "note")
    rows = [
        [
            c.name,
            c.verdict,
            c.ratio,
            f"{_cell(c.ci_low)}..{_cell(c.ci_high)}",
            c.q_value,
            "; ".join(c.metric_regressions) or "-",
            c.reason or "-",
        ]
        for c in cmp.changes
    ]
    summary = format_comparison(cmp).splitlines()[-1]
    title = (
        f"<p>{html.escape(hist.runs[-1].path.name)} against {html.escape(hist.runs[-2].path.name)}: "
        f"{html.escape(summary)}</p>"
    )
    return title + _table(head, rows, [c.verdict if c.verdict in ("slower", "faster") else "" for c in cmp.changes])


def render_html(run_paths: Sequence[Path], *, storage: Path) -> str:
    """The report's HTML text (see the module docstring)."""
    runs = [load_run(p) for p in run_paths]
    rows = [(run.path, r) for run in runs for r in rows_from_run(run)]
    # The history is the machine folder the (first) run was saved in, when it lies in storage.
    first = Path(run_paths[0]).resolve()
    machine = first.parent.name if first.parent.parent == storage.resolve() else None
    charts = _Charts()
    models = _models([r for _, r in rows], charts)
    history, hist = _history(storage, machine, charts)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    body = {
        "results": _results(rows),
        "models": models,
        "history": history,
        "compare": _compare(hist),
    }
    titles = {
        "results": "Results",
        "models": "Speed against size, per model",
        "history": "History",
        "compare": "Latest compare",
    }
    sections = "".join(f"<section id='{k}'><h2>{titles[k]}</h2>{body[k]}</section>" for k in SECTIONS)
    listed = ", ".join(html.escape(str(p)) for p in run_paths)
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>inference-scale report</title>"
        f"<style>{_STYLE}</style></head><body><h1>inference-scale report</h1>"
        f"<p class='note'>runs: {listed}; storage {html.escape(str(storage))}; written {stamp}</p>"
        f"{sections}</body></html>"
    )


def write_html(out: Path, run_paths: Sequence[Path], *, storage: Path) -> Path:
    """Render and write the report to ``out`` atomically."""
    write_bytes_atomic(render_html(run_paths, storage=storage).encode("utf-8"), out)
    return out
