"""Rendering ``targetrun status``: a rich table on a terminal, aligned plain text
otherwise, or JSON."""

from __future__ import annotations

from typing import Any, TextIO

from targetrun.durations import format_duration
from targetrun.report.json import SCHEMA_VERSION, iso
from targetrun.redact import safe
from targetrun.model import StaleKind
from targetrun.state import StatusReport, StatusRow

HEADERS = ("task", "target", "state", "size", "age", "last run")


def size_text(n: int | None) -> str:
    if n is None:
        return ""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return ""  # pragma: no cover


def _state(row: StatusRow) -> str:
    text = row.decision.describe(stale=False)
    if not row.decision.runs and row.decision.reason.value == "not needed" and row.target:
        text += " (target exists)" if row.stat else (f" ({row.note})" if row.note else " (target missing)")
    return text


def _stale(row: StatusRow) -> str:
    """`` (stale: code changed — tasks.py: clean)`` for an output that stands although what
    made it changed (a parameter change is already said by "made with")."""
    if row.decision.runs:
        return ""
    items = [s for s in row.stale if not (row.made and s.what is StaleKind.PARAMETERS)]
    return f" (stale: {'; '.join(s.describe() for s in items)})" if items else ""


def _last(row: StatusRow, now: float, said: dict[tuple[object, ...], str] | None = None) -> str:
    if row.last is None:
        return ""
    return f"{row.last.state.value} {_duration(max(0.0, now - row.last.finished), said)} ago"


def _duration(seconds: float, said: dict[tuple[object, ...], str] | None) -> str:
    """:func:`format_duration`; from a minute on it shows whole seconds, so the words for
    each whole second are made once per table (10,000 ages fall in few seconds)."""
    if said is None or seconds < 60:
        return format_duration(seconds)
    key = ("duration", int(seconds))
    found = said.get(key)
    if found is None:
        found = said[key] = format_duration(seconds)
    return found


def cells(row: StatusRow, now: float, said: dict[tuple[object, ...], str] | None = None) -> tuple[str, ...]:
    """One table row, in the user's terms: the target as written (relative to the
    Pipelinefile's folder), and what an existing output was made with when that differs.

    ``said`` remembers the state column across the rows of one table: 10,000 rows share a
    handful of decisions, and each is put into words once."""
    age = _duration(max(0.0, now - row.stat.mtime), said) if row.stat and row.stat.mtime else ""
    if said is None or row.made or row.stale:
        state = _state(row) + (f" ({row.made})" if row.made else "") + _stale(row)
    else:
        key = (row.decision, row.stat is not None, row.note, row.target is not None)
        state = said.get(key) or said.setdefault(key, _state(row))
    return (row.task, row.path or row.target or "-", state, size_text(row.stat.size if row.stat else None), age,
            _last(row, now, said))


def render_status(report: StatusReport, out: TextIO, *, colour: bool, now: float) -> None:
    said: dict[tuple[object, ...], str] = {}
    rows = [cells(row, now, said) for row in report.rows]
    if colour:
        _rich_table(report, rows, out)
    else:
        _plain_table(rows, out)
    would = len(report.would_run)
    out.write(f"{safe(report.pipeline)} ({report.run_date}): {would} of {len(report.rows)} task{'s' if len(report.rows) != 1 else ''} would run\n")


def _plain_table(rows: list[tuple[str, ...]], out: TextIO) -> None:
    plain_table(HEADERS, rows, out)


def plain_table(headers: tuple[str, ...], rows: list[tuple[str, ...]], out: TextIO) -> None:
    """Columns aligned with spaces; no control codes. Each distinct cell is made safe
    once (a column of 10,000 rows holds few distinct states, sizes and ages)."""
    shown: dict[str, str] = {}

    def show(cell: str) -> str:
        found = shown.get(cell)
        if found is None:
            found = shown[cell] = safe(cell)
        return found

    rows = [tuple(map(show, row)) for row in rows]  # one line per row, whatever the values hold
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    out.write("".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() + "\n"
                      for line in [headers, *rows]))


def _rich_table(report: StatusReport, rows: list[tuple[str, ...]], out: TextIO) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(*HEADERS, box=None, header_style="bold")
    for row, line in zip(report.rows, rows):
        style = "yellow" if row.decision.runs else ("dim" if not row.stat else "green")
        table.add_row(*(Text(safe(cell)) for cell in line), style=style)  # Text: a value is never markup
    Console(file=out, force_terminal=True, soft_wrap=True).print(table)


def status_to_dict(report: StatusReport) -> dict[str, Any]:
    return {
        "schema": SCHEMA_VERSION,
        "command": "status",
        "pipeline": report.pipeline,
        "date": report.run_date,
        "would_run": [r.task for r in report.would_run],
        "tasks": [
            {
                "task": r.task,
                "target": r.target,
                "path": r.path,
                "state": _state(r),
                "action": r.decision.action.value,
                "reason": r.decision.reason.value,
                "exists": None if r.target is None else (None if r.note else r.stat is not None),
                "size": r.stat.size if r.stat else None,
                "modified": iso(r.stat.mtime) if r.stat else None,
                "cached_until": iso(r.decision.until),
                "made_with": dict(r.made_with) or None,
                "made_for": r.made_for,
                "stale": [{"what": s.what.value, "detail": s.detail} for s in r.stale],
                "last_run": None if r.last is None else {
                    "run_id": r.last.run_id, "state": r.last.state.value, "finished": iso(r.last.finished),
                    "error": r.last.error},
            }
            for r in report.rows
        ],
    }


def statuses_to_dict(reports: list[StatusReport]) -> dict[str, Any]:
    """``status --json``: one object whatever the number of dates (as ``run --json``):
    every date's status under ``runs`` and, at the top, every row (each naming its date)."""
    docs = [status_to_dict(report) for report in reports]
    return {
        "schema": SCHEMA_VERSION,
        "command": "status",
        "pipeline": reports[0].pipeline if reports else None,
        "dates": [doc["date"] for doc in docs],
        "would_run": [task for doc in docs for task in doc["would_run"]],
        "tasks": [{**row, "date": doc["date"]} for doc in docs for row in doc["tasks"]],
        "runs": docs,
    }
