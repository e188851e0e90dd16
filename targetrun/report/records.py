"""``targetrun history`` and ``targetrun cache list``: tables of store records."""

from __future__ import annotations

from typing import Any, TextIO

from targetrun.durations import format_duration
from targetrun.model import CacheEntry
from targetrun.report.json import iso
from targetrun.report.status import plain_table, size_text
from targetrun.store.base import RunRecord


def _when(ts: float, now: float) -> str:
    delta = now - ts
    return f"{format_duration(delta)} ago" if delta >= 0 else f"in {format_duration(-delta)}"


def render_history(runs: list[RunRecord], out: TextIO, now: float) -> None:
    rows: list[tuple[str, ...]] = []
    for run in runs:
        took = format_duration(run.finished - run.started) if run.finished else ""
        rows.append((run.run_id, _when(run.started, now), run.status.value, took, run.counts))
    plain_table(("run", "started", "status", "took", "tasks"), rows, out)


def history_to_list(runs: list[RunRecord]) -> list[dict[str, Any]]:
    return [{"run_id": r.run_id, "pipeline": r.pipeline, "started": iso(r.started), "finished": iso(r.finished),
             "status": r.status.value, "requested": list(r.requested), "counts": parse_counts(r.counts)}
            for r in runs]


def parse_counts(text: str) -> dict[str, int]:
    """The store keeps a run's counts as the line ``history`` prints; ``--json`` gives numbers,
    keyed like ``run --json``'s ``counts``.

    >>> parse_counts("3 succeeded, 1 upstream failed")
    {'succeeded': 3, 'upstream failed': 1}
    >>> parse_counts("")
    {}
    """
    counts: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        number, _, state = part.partition(" ")
        if number.isdigit() and state:
            counts[state] = counts.get(state, 0) + int(number)
    return counts


def render_cache(entries: list[CacheEntry], out: TextIO, now: float) -> None:
    rows: list[tuple[str, ...]] = []
    for e in entries:
        expiry = ("expires " if e.expires > now else "expired ") + _when(e.expires, now)
        rows.append((e.key, e.task, expiry, e.checkpoint.location, size_text(e.checkpoint.size)))
    plain_table(("key", "task", "expiry", "location", "size"), rows, out)


def cache_to_list(entries: list[CacheEntry], now: float) -> list[dict[str, Any]]:
    return [{"key": e.key, "variant": e.variant, "pipeline": e.pipeline, "task": e.task, "expires": iso(e.expires),
             "expired": e.expires <= now, "location": e.checkpoint.location, "size": e.checkpoint.size,
             "sha256": e.checkpoint.content_hash, "inputs": dict(e.inputs), "params": dict(e.params)} for e in entries]
