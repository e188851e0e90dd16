"""``targetrun history``, ``targetrun cache list`` and ``targetrun gc``: what the store records, and what went."""

from __future__ import annotations

from typing import Any, TextIO

import os

from targetrun.durations import format_duration
from targetrun.housekeeping import Collected
from targetrun.model import CacheEntry
from targetrun.report.json import SCHEMA_VERSION, iso
from targetrun.report.status import plain_table, size_text
from targetrun.store.base import RunRecord


def _when(ts: float, now: float) -> str:
    delta = now - ts
    return f"{format_duration(delta)} ago" if delta >= 0 else f"in {format_duration(-delta)}"


def render_history(runs: list[RunRecord], out: TextIO, now: float) -> None:
    if not runs:  # a newcomer's first look: a header over nothing says less than this
        out.write("no runs recorded yet (`targetrun run` records one)\n")
        return
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
    if not entries:
        out.write("no cache entries (a task with cache_for records one when it runs)\n")
        return
    rows: list[tuple[str, ...]] = []
    for e in entries:
        expiry = ("expires " if e.expires > now else "expired ") + _when(e.expires, now)
        rows.append((e.key, e.task, expiry, e.checkpoint.location, size_text(e.checkpoint.size)))
    plain_table(("key", "task", "expiry", "location", "size"), rows, out)


def cache_to_list(entries: list[CacheEntry], now: float) -> list[dict[str, Any]]:
    return [{"key": e.key, "variant": e.variant, "pipeline": e.pipeline, "task": e.task, "expires": iso(e.expires),
             "expired": e.expires <= now, "location": e.checkpoint.location, "size": e.checkpoint.size,
             "sha256": e.checkpoint.content_hash, "inputs": dict(e.inputs), "params": dict(e.params)} for e in entries]


def _shown(path: str, root: str) -> str:
    relative = os.path.relpath(path, root) if "://" not in path else path
    return path if relative.startswith("..") else relative


def gc_to_dict(found: Collected, root: str, dry_run: bool) -> dict[str, Any]:
    return {"schema": SCHEMA_VERSION, "command": "gc", "dry_run": dry_run, "runs": list(found.runs),
            "logs": [_shown(p, root) for p in found.logs],
            "results": [_shown(c.location, root) for c in found.results] + [_shown(p, root) for p in found.unrecorded],
            "kept": [{"location": _shown(loc, root), "why": why} for loc, why in found.kept.items()],
            "spec_caches": [_shown(p, root) for p in found.spec_caches],
            "replays": [_shown(p, root) for p in found.replays], "bytes": found.freed}


def render_gc(found: Collected, root: str, dry_run: bool, out: TextIO) -> None:
    verb = "would remove" if dry_run else "removed"
    values = len(found.results) + len(found.unrecorded)
    for location, why in found.kept.items():
        out.write(f"kept {_shown(location, root)}: {why}\n")
    out.write(f"{verb} {_count(len(found.runs), 'run record')}, {_count(len(found.logs), 'log folder')}, "
              f"{_count(values, 'value')} of tasks without a target ({size_text(found.freed) or '0 B'}), "
              f"{_count(len(found.spec_caches), 'stale spec cache')}"
              f"{', ' + _count(len(found.replays), 'no-op certificate') if found.replays else ''}\n")


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"
