"""What ``targetrun report`` shows, gathered from the state store and the task logs
(:func:`targetrun.api.write_report` gathers it; report/html.py only renders it).

It runs nothing and reads no checkpoint: the graph comes from the Pipelinefile, each
task's state from the run's records -- a task record for every task that ran (with when
and where it ran) and the run's outcome summary for the rest (skipped, cache hit, not
needed, upstream failed) -- sizes and ages from checkpoint *records*, and a failed task's
last printed lines from ``.targetrun/logs/RUN_ID/TASK.log``.

Several runs can be shown at once: the runs of one backfill (``--date A..B`` runs once
per date in one process), each with its date.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from targetrun.errors import UsageError
from targetrun.model import PipelineSpec
from targetrun.regularfile import open_regular
from targetrun.resolve import LOGS, log_path
from targetrun.store.base import RunRecord, StateStore, as_seen

LOG_LINES = 30
LOG_BYTES = 4000
UNKNOWN = "unknown"  # a task of the Pipelinefile the run left no record of


@dataclass(frozen=True, slots=True)
class TaskRow:
    """One task (or mapped child) in one run."""

    run_id: str
    task: str  # as the run named it: "fetch", or a mapped child "per_city[2]"
    node: str  # the Pipelinefile task it belongs to (the graph node)
    state: str  # a TaskState value, or UNKNOWN
    reason: str = ""
    target: str | None = None
    size: int | None = None
    written: float | None = None  # when its checkpoint was written (age)
    started: float | None = None
    duration: float | None = None
    attempts: int = 0
    worker: str = ""
    error: str | None = None
    log: str = ""  # last lines printed, for failures


@dataclass(frozen=True, slots=True)
class RunView:
    run: RunRecord
    date: str
    rows: tuple[TaskRow, ...]
    summarised: bool  # whether the run's outcome summary was found (else: only tasks that ran are known)


@dataclass(frozen=True, slots=True)
class ReportData:
    pipeline: str
    root: str
    graph: dict[str, tuple[str, ...]]  # Pipelinefile task -> the tasks it needs
    mapped: frozenset[str]  # tasks with foreach
    runs: tuple[RunView, ...]  # the runs shown, oldest first
    history: tuple[RunRecord, ...]  # recent runs, newest first
    generated: float


def choose_runs(store: StateStore, pipeline: str, run_ids: Sequence[str], now: float, lease: float) -> list[RunRecord]:
    """The runs to show: those named, else the latest run together with the runs the same
    process made just before it (a backfill: one run per date)."""
    if run_ids:
        chosen = []
        for run_id in run_ids:
            record = store.run(run_id)
            if record is None or record.pipeline != pipeline:
                raise UsageError(f"no run {run_id!r} of pipeline {pipeline!r} in the state store",
                                 hint="See `targetrun history` for run ids.")
            chosen.append(as_seen(record, now, lease))
        return sorted(chosen, key=lambda r: r.started)
    recent = [as_seen(r, now, lease) for r in store.runs(pipeline, limit=1_000)]
    if not recent:
        raise UsageError(f"pipeline {pipeline!r} has no runs in the state store yet",
                         hint="Run it first (`targetrun run`); `targetrun run --report FILE` writes the report at its end.")
    batch = [recent[0]]
    for earlier in recent[1:]:
        if not batch[0].owner or earlier.owner != batch[0].owner:
            break
        batch.append(earlier)
    return list(reversed(batch))


def collect(spec: PipelineSpec, store: StateStore, runs: Sequence[RunRecord], history: Sequence[RunRecord],
            now: float) -> ReportData:
    graph = {name: tuple(dict.fromkeys(task.upstream)) for name, task in spec.tasks.items()}
    mapped = frozenset(name for name, task in spec.tasks.items() if task.foreach is not None)
    views = tuple(_run_view(spec, store, run) for run in runs)
    return ReportData(spec.name, spec.root, graph, mapped, views, tuple(history), now)


def node_of(task: str) -> str:
    """The Pipelinefile task a run's task name belongs to.

    >>> node_of("per_city[12]"), node_of("fetch")
    ('per_city', 'fetch')
    """
    return task.split("[", 1)[0] if task.endswith("]") else task


def _run_view(spec: PipelineSpec, store: StateStore, run: RunRecord) -> RunView:
    records = store.task_records(run.run_id, spec.name)
    outcomes = store.run_outcomes(run.run_id)
    marks = {m.task: m for m in outcomes.marks} if outcomes else {}
    names = list(dict.fromkeys([*marks, *records]))
    written = store.run_checkpoints(run.run_id)
    skipped_targets = [m.target for m in marks.values() if m.target and m.task not in written]
    older = store.checkpoints(skipped_targets) if skipped_targets else {}
    rows = []
    for name in names:
        record, mark = records.get(name), marks.get(name)
        checkpoint = written.get(name) or (older.get(mark.target) if mark is not None and mark.target else None)
        state = record.state.value if record else mark.state.value if mark else UNKNOWN
        error = record.error if record else None
        rows.append(TaskRow(
            run.run_id, name, node_of(name), state, _reason(mark.reason if mark else ""),
            (record.target if record else None) or (mark.target if mark else None),
            checkpoint.size if checkpoint else None, checkpoint.written_at if checkpoint else None,
            record.started if record else None, record.duration if record else None,
            record.attempts if record else 0, record.worker if record else "", error,
            _log_tail(spec.root, run.run_id, name) if error else "",
        ))
    known = {row.node for row in rows}
    rows.extend(TaskRow(run.run_id, name, name, UNKNOWN, "no record in this run") for name in spec.tasks
                if name not in known)
    return RunView(run, outcomes.date if outcomes else "", tuple(rows), outcomes is not None)


def _reason(text: str) -> str:
    """ "will run: target missing" is said before a run; afterwards the reason is why it ran."""
    return text.removeprefix("will run: ")


def _log_tail(root: str, run_id: str, task: str) -> str:
    path = log_path(root, run_id, task)
    try:
        # a FIFO or a device in its place is not read, nor a link planted there (the report is an artifact): ""
        with open_regular(path, inside=os.path.join(root, LOGS)) as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - LOG_BYTES * 4))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-LOG_LINES:])[-LOG_BYTES:]
