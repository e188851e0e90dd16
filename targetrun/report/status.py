"""Rendering ``targetrun status``: a rich table on a terminal, aligned plain text
otherwise, or JSON."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TextIO

from targetrun.durations import format_duration
from targetrun.report.json import SCHEMA_VERSION, iso, stale_to_list, unknown_to_list
from targetrun.redact import safe
from targetrun.model import Decision, StaleKind, TaskState, also_stale, cannot_tell, known_stale
from targetrun.state import StatusReport, StatusRow
from targetrun.store.base import LastRun

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


NO_RECORD = " (no record: what made it is unknown)"
_SAME = ", with the same -p and --date as this status"  # its templates name parameters or the date


def _named(task: str) -> str:
    """The name ``targetrun run`` takes for a task: a mapped child's parent (``per_city``
    for ``per_city[0]``; running it makes only the children that are missing).

    >>> _named("per_city[0]"), _named("clean")
    ('per_city', 'clean')
    """
    return task.partition("[")[0]


def _state(row: StatusRow) -> str:
    text = row.decision.describe(stale=False)
    if not row.decision.runs and row.decision.reason.value == "not needed" and row.target:
        text += " (target exists)" if row.stat else (f" ({row.note})" if row.note else
                                                     f" (target missing: `targetrun run {_named(row.task)}` makes it"
                                                     f"{_SAME if row.templated else ''})")
    if row.recorded is False and not row.decision.runs:
        text += NO_RECORD  # made by hand, by another tool, or its record lost
    elif row.written is not None and row.stat is not None and not row.decision.runs:
        text += (f" (changed since it was recorded: {size_text(row.stat.size)}, {size_text(row.written)} were written;"
                 " `targetrun run --verify` remakes it)")
    return text


def _stale(row: StatusRow) -> str:
    """`` (stale: code changed — tasks.py: clean)`` for an output that stands although what
    made it changed (a parameter change is already said by "made with")."""
    if row.decision.runs:  # "will run: cache expired (...) (also stale: code changed — ...)"
        return also_stale(row.decision)
    items = [s for s in known_stale(row.stale) if not (row.made and s.what is StaleKind.PARAMETERS)]
    unknown = "".join(f" ({s.describe()})" for s in cannot_tell(row.stale))
    return (f" (stale: {'; '.join(s.describe() for s in items)})" if items else "") + unknown


def cells(row: StatusRow, now: float) -> tuple[str, ...]:
    """One table row, in the user's terms: the target as written (relative to the
    Pipelinefile's folder), and what an existing output was made with when that differs."""
    return _Cells(now)(row)


class _Cells:
    """:func:`cells` for the rows of one table. 10,000 rows share a handful of decisions,
    sizes and whole seconds: each is put into words once (a decision is known by its
    identity, and kept here with its words, so that identity is not reused meanwhile).
    From a minute on a duration shows whole seconds, so an age, and a last run with its
    state ("succeeded 3m5s ago"), is put into words once per whole second."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.states: dict[tuple[int, bool, str, bool, bool | None, str, int | None, bool, int | None],
                          tuple[Decision, str]] = {}
        self.sizes: dict[int | None, str] = {}
        self.ages: dict[int, str] = {}  # by whole second, from a minute on
        self.ran: dict[tuple[TaskState, int], str] = {}  # by state and whole second, from a minute on
        self.words: dict[TaskState, str] = {}  # a state's value (an Enum's value is a Python call)

    def _age(self, seconds: float) -> str:
        if seconds < 60:
            return format_duration(seconds if seconds > 0.0 else 0.0)
        whole = int(seconds)
        found = self.ages.get(whole)
        if found is None:
            found = self.ages[whole] = format_duration(seconds)
        return found

    def _ran(self, last: LastRun) -> str:
        seconds, state = self.now - last.finished, last.state
        if seconds < 60:
            words = self.words.get(state) or self.words.setdefault(state, state.value)
            return f"{words} {format_duration(seconds if seconds > 0.0 else 0.0)} ago"
        key = (state, int(seconds))
        found = self.ran.get(key)
        if found is None:
            found = self.ran[key] = f"{state.value} {format_duration(seconds)} ago"
        return found

    def __call__(self, row: StatusRow) -> tuple[str, ...]:
        stat = row.stat
        age = self._age(self.now - stat.mtime) if stat and stat.mtime else ""
        if row.made_with or row.made_for or row.stale:
            state = _state(row) + (f" ({row.made})" if row.made else "") + _stale(row)
        else:
            key = (id(row.decision), stat is not None, row.note, row.target is not None, row.recorded,
                   row.task if stat is None and not row.decision.runs else "", row.written, row.templated,
                   stat.size if stat is not None and row.written is not None else None)  # "... `targetrun run TASK` makes it"
            known = self.states.get(key)
            if known is None:
                known = self.states[key] = (row.decision, _state(row))
            state = known[1]
        size = stat.size if stat else None
        size_words = self.sizes.get(size)
        if size_words is None:
            size_words = self.sizes[size] = size_text(size)
        last = row.last
        return row.task, row.path or row.target or "-", state, size_words, age, self._ran(last) if last else ""


def render_status(report: StatusReport, out: TextIO, *, colour: bool, now: float) -> None:
    rows = list(map(_Cells(now), report.rows))
    if colour:
        _rich_table(report, rows, out)
    else:
        _plain_table(rows, out)
    would = len(report.would_run)
    out.write(f"{safe(report.pipeline)} ({report.run_date}): {would} of {len(report.rows)} task{'s' if len(report.rows) != 1 else ''} would run\n")


def _plain_table(rows: list[tuple[str, ...]], out: TextIO) -> None:
    plain_table(HEADERS, rows, out)


def plain_table(headers: tuple[str, ...], rows: list[tuple[str, ...]], out: TextIO) -> None:
    """Columns aligned with spaces; no control codes. A column is made safe a value at a
    time, each distinct value once (a column of 10,000 rows holds few distinct states,
    sizes and ages), and each line is formatted by one ``%`` (``%-Ns`` is ``ljust(N)``)."""
    columns = [_safe_column(column) for column in zip(*rows)] or [() for _ in headers]
    widths = [max(len(h), *map(len, column)) if column else len(h) for h, column in zip(headers, columns)]
    line = "  ".join(f"%-{w}s" for w in widths)
    out.write("".join([(line % tuple(headers)).rstrip() + "\n",  # one line per row, whatever the values hold
                       *[(line % cells).rstrip() + "\n" for cells in zip(*columns)]]))


def _safe_column(column: tuple[str, ...]) -> tuple[str, ...]:
    distinct = list(dict.fromkeys(column))
    shown = list(map(safe, distinct))
    if shown == distinct:  # the usual: nothing to mask or escape
        return column
    return tuple(map(dict(zip(distinct, shown)).__getitem__, column))


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
                "recorded": r.recorded,
                "changed_since_recorded": None if not r.recorded else r.written is not None,
                "size": r.stat.size if r.stat else None,
                "modified": iso(r.stat.mtime) if r.stat else None,
                "cached_until": iso(r.decision.until),
                "made_with": dict(r.made_with) or None,
                "made_for": r.made_for,
                "stale": stale_to_list(r.stale),
                "unknown": unknown_to_list(r.stale),
                "last_run": None if r.last is None else {
                    "run_id": r.last.run_id, "state": r.last.state.value, "finished": iso(r.last.finished),
                    "error": r.last.error},
            }
            for r in report.rows
        ],
    }


def statuses_to_dict(reports: Iterable[StatusReport]) -> dict[str, Any]:
    """``status --json``: one object whatever the number of dates (as ``run --json``):
    every date's status under ``runs`` and, at the top, every row (each naming its date).
    ``reports`` may be made as they are read: each is dropped once turned into its rows."""
    docs = [status_to_dict(report) for report in reports]
    return {
        "schema": SCHEMA_VERSION,
        "command": "status",
        "pipeline": docs[0]["pipeline"] if docs else None,
        "dates": [doc["date"] for doc in docs],
        "would_run": [task for doc in docs for task in doc["would_run"]],
        "tasks": [{**row, "date": doc["date"]} for doc in docs for row in doc["tasks"]],
        "runs": docs,
    }
