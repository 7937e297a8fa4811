"""The one table renderer: rows of cells as a rich text table, Markdown or CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from inference_scale.errors import InvalidValueError

__all__ = ["FORMATS", "render"]

FORMATS = ("table", "md", "csv")


def render(
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    title: str = "",
    fmt: str = "table",
    left: Sequence[str] = (),
    sections: Sequence[object] | None = None,
    width: int = 160,
) -> str:
    """``rows`` under ``columns`` as ``fmt``. In a text table the ``left`` columns are left
    aligned (the others right), and a rule separates rows whose ``sections`` key changes."""
    if fmt not in FORMATS:
        raise InvalidValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)
        return out.getvalue().rstrip("\n")
    if fmt == "md":
        lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title or None)
    for col in columns:
        table.add_column(col, justify="left" if col in left else "right", no_wrap=True)
    for i, row in enumerate(rows):
        if sections is not None and i > 0 and sections[i] != sections[i - 1]:
            table.add_section()
        table.add_row(*row)
    # Never truncate a cell: widen past ``width`` when the table needs it (a report is read in a
    # file or a CI log more often than in an 80-column terminal).
    natural = sum(max(len(c), *(len(r[i]) for r in rows)) + 3 for i, c in enumerate(columns)) + 1 if rows else 0
    console = Console(file=io.StringIO(), width=max(width, natural), force_terminal=False)
    console.print(table)
    return console.file.getvalue().rstrip("\n")  # type: ignore[attr-defined, no-any-return]
