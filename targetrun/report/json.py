"""Machine-readable output: one JSON document per command (``--json``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from targetrun.model import RunSummary, Stale, TaskOutcome, TaskState, cannot_tell, known_stale

SCHEMA_VERSION = 2  # 2: one object with `runs` whatever the number of dates


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    try:
        when = dt.datetime.fromtimestamp(ts, dt.timezone.utc)
    except (ValueError, OverflowError, OSError):  # a record's time beyond what a date can hold
        return None
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def stale_to_list(stale: tuple[Stale, ...]) -> list[dict[str, str]]:
    """What is out of date about a task's target (empty: nothing, or nothing recorded)."""
    return [{"what": s.what.value, "detail": s.detail} for s in known_stale(stale)]


def unknown_to_list(stale: tuple[Stale, ...]) -> list[dict[str, str]]:
    """What cannot be told about a task's target (its record's code fingerprint was taken
    by another fingerprint model): never stale, never acted on."""
    return [{"what": s.what.value, "detail": s.detail} for s in cannot_tell(stale)]


def outcome_to_dict(outcome: TaskOutcome) -> dict[str, Any]:
    decision = outcome.decision
    entry: dict[str, Any] = {
        "task": outcome.task,
        "state": outcome.state.value,
        "reason": decision.reason.value,
        "decision": decision.describe(),
        "target": outcome.target,
        "stale": stale_to_list(decision.stale),
        "unknown": unknown_to_list(decision.stale),
    }
    if decision.until is not None:
        entry["cached_until"] = iso(decision.until)
    if outcome.attempts:
        entry["attempts"] = outcome.attempts
        entry["duration"] = round(outcome.duration, 6)
    if outcome.error:
        entry["error"] = outcome.error
    if outcome.checkpoint is not None:
        entry["checkpoint"] = {
            "location": outcome.checkpoint.location,
            "size": outcome.checkpoint.size,
            "sha256": outcome.checkpoint.content_hash,
            "serializer": outcome.checkpoint.serializer,
        }
    return entry


def summary_to_dict(summary: RunSummary, exit_code: int) -> dict[str, Any]:
    counts = {state.value: summary.count(state) for state in TaskState if summary.count(state)}
    return {
        "schema": SCHEMA_VERSION,
        "command": "run",
        "pipeline": summary.pipeline,
        "run_id": summary.run_id,
        "dry_run": summary.dry_run,
        "ok": exit_code == 0,
        "exit_code": exit_code,
        "requested": list(summary.requested),
        "started": iso(summary.started),
        "finished": iso(summary.finished),
        "duration": round(summary.finished - summary.started, 6),
        "counts": counts,
        "tasks": [outcome_to_dict(o) for o in summary.outcomes],
    }


def summaries_to_dict(summaries: list[RunSummary], exit_code: int, code_of: Callable[[RunSummary], int]) -> dict[str, Any]:
    """One shape whatever the number of dates: one object with every date's summary under
    ``runs`` and, at the top, the totals and every task (each naming its ``run_id``), so a
    consumer of a one-date run and one of a backfill read the same keys."""
    runs = [summary_to_dict(s, code_of(s)) for s in summaries]
    counts: dict[str, int] = {}
    for run in runs:
        for state, number in run["counts"].items():
            counts[state] = counts.get(state, 0) + number
    return {
        "schema": SCHEMA_VERSION,
        "command": "run",
        "pipeline": summaries[0].pipeline if summaries else None,
        "dry_run": any(s.dry_run for s in summaries),
        "ok": exit_code == 0,
        "exit_code": exit_code,
        "requested": list(summaries[0].requested) if summaries else [],
        "started": iso(min(s.started for s in summaries)) if summaries else None,
        "finished": iso(max(s.finished for s in summaries)) if summaries else None,
        "counts": counts,
        "tasks": [{**task, "run_id": run["run_id"]} for run in runs for task in run["tasks"]],
        "runs": runs,
    }
