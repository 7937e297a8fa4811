"""The serve plot, one per model: p50 and p99 against offered load, one colour per state
(measured: solid p99, dashed p50; simulated p99: dotted), the budget marked, and each state's
highest measured rate under it. Written atomically."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

from inference_scale.atomic import write_bytes_atomic
from inference_scale.serving.search import policy_words

__all__ = ["plot_path", "plot_serve"]


def plot_path(out_dir: str | Path, model: str) -> Path:
    """Where the serve plot of ``model`` goes: ``serve_NAME.png`` with every run of characters
    other than letters, digits, ``.``, ``_`` and ``-`` as one ``_``, so that ``hf:/models/bert``
    or ``mypkg.nets:build`` names one file in ``out_dir``, not a path through folders."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", model).strip("_.") or "model"
    return Path(out_dir) / f"serve_{name}.png"


def plot_serve(result: dict[str, Any], out_dir: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for i, (slug, entry) in enumerate(result["states"].items()):
        colour = f"C{i}"
        rows = sorted(
            [*entry["probes"], *([entry["check"]] if entry.get("check") else [])], key=lambda r: r["offered_qps"]
        )
        rows = [r for r in rows if r["measured_p99_ms"] is not None]
        if not rows:
            continue
        rate = [r["offered_qps"] for r in rows]
        own = entry.get("policy") if result["policy"].get("max_batch_chosen") else None
        name = f"{slug} (max batch {own['max_batch']})" if own else slug
        ax.plot(rate, [r["measured_p99_ms"] for r in rows], "o-", color=colour, label=f"{name} p99")
        ax.plot(rate, [r["measured_p50_ms"] for r in rows], "s--", color=colour, alpha=0.6, label=f"{slug} p50")
        ax.plot(rate, [r["simulated_p99_ms"] for r in rows], ":", color=colour, alpha=0.8, label=f"{slug} p99 sim.")
        best = entry.get("measured_highest_qps")
        if best:
            ax.axvline(best, color=colour, lw=0.8, alpha=0.7)
            ax.annotate(f"{best:.0f} q/s", (best, result["p99_ms"]), xytext=(3, 6 + 10 * i),
                        textcoords="offset points", color=colour, fontsize=8)  # fmt: skip
    ax.axhline(result["p99_ms"], color="k", lw=1, ls="-.", label=f"p99 budget {result['p99_ms']:g} ms")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("offered load (queries/s, Poisson)")
    ax.set_ylabel("latency (ms)")
    ax.set_title(f"{result['model']}: {policy_words(result['policy'])}, "
                 f"{result['threads']} thread(s)\n{result['host']}, {result['date']}", fontsize=9)  # fmt: skip
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    path = plot_path(out_dir, result["model"])
    write_bytes_atomic(buffer.getvalue(), path)
    return path
