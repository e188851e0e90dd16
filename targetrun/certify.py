"""When a finished run may be replayed, and its certificate (see :mod:`targetrun.replay`).

A run is certified when it ran nothing and each of its decisions rested only on what the
replay checks again:

* a task **skipped because its target exists**: no cache policy that would look at its
  record (no ``cache_for``, no ``never_use``), nothing of its staleness looked at (no
  ``code``/``deps`` validator), not mapped, its target a local file;
* a **cache hit** of a task without a target or needs: not mapped, its value a local
  file (its validity then rests on its cache rows and the clock only);
* every other task **not needed**;

and none of those tasks' templates renders anything finer than the run's day (the run
id, ``{date:%H}``): the replay's key pins the date to a day. Anything else -- a task
that ran or failed, a resumed checkpoint, a remote target, a state store that is not the
local SQLite file -- leaves no certificate (an earlier one still holds: everything it
rested on is checked again whenever it is used).
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
from collections.abc import Mapping

from targetrun import replay
from targetrun.engine.decide import CLOCK_SKEW, stale_rules, valid_until
from targetrun.engine.plan import Plan
from targetrun.model import Action, CacheEntry, Reason, RunSummary, TaskSpec, TaskState, Validator
from targetrun.resolve import LOCAL
from targetrun.store import statements
from targetrun.store.base import StateStore
from targetrun.store.sqlite import SCHEMA_VERSION, SqliteStore
from targetrun.templating import task_templates, varies_within_a_day

_NO_OP = frozenset((TaskState.SKIPPED, TaskState.CACHED, TaskState.NOT_NEEDED))


def certify(ticket: replay.Ticket, plan: Plan, hits: Mapping[str, CacheEntry], summary: RunSummary,
            store: StateStore, now: float) -> None:
    """Leave a certificate for the next identical command, when this run earns one
    (``hits``: the cache entries the plan hit; ``now``: the time it decided at).
    Never fails the run: a certificate that cannot be written is simply not there."""
    sqlite = _sqlite_file(store)
    if sqlite is None or summary.dry_run or not summary.ok or ticket.spoke():
        return
    found = _what_it_rested_on(plan, hits, summary)
    if found is None:
        return
    files, entries = found
    try:
        certificate = _certificate(plan, summary, sqlite, files, entries, now)
        if certificate is not None and ticket.unchanged() and not ticket.spoke():
            replay.write(ticket.path, dict(certificate, key=ticket.key))
    except Exception:  # a damaged store row, a full disk: the run stands, uncertified
        pass


def _sqlite_file(store: StateStore) -> str | None:
    inner = getattr(store, "inner", store)  # a RootedStore's own store
    return os.path.abspath(inner.path) if isinstance(inner, SqliteStore) else None


def _what_it_rested_on(plan: Plan, hits: Mapping[str, CacheEntry],
                       summary: RunSummary) -> tuple[list[str], list[tuple[TaskSpec, CacheEntry]]] | None:
    """The files and the cache entries (with the task that hit each) every decision
    rested on, or None: not replayable."""
    files: list[str] = []
    entries: list[tuple[TaskSpec, CacheEntry]] = []
    for outcome in summary.outcomes:
        if outcome.state not in _NO_OP:
            return None
        if outcome.state is TaskState.NOT_NEEDED:
            continue
        task = plan.tasks.get(outcome.task)
        decision = plan.decisions.get(outcome.task)
        if task is None or decision is None or decision.stale or task.map_index is not None or task.is_gather:
            return None
        if not _day_only(task.spec):
            return None
        if decision.action is Action.SKIP and decision.reason is Reason.TARGET_EXISTS:
            if not _by_existence_only(task.spec) or task.target is None or task.target.result != LOCAL:
                return None
            files.append(task.target.url)
        elif decision.reason is Reason.CACHE_HIT and task.target is None and not task.spec.needs:
            entry = hits.get(outcome.task)
            if entry is None or entry.checkpoint.storage != LOCAL:
                return None
            files.append(entry.checkpoint.location)
            entries.append((task.spec, entry))
        else:
            return None
    return files, entries


def _by_existence_only(spec: TaskSpec) -> bool:
    """Whether only the target's existence decides this task (rules 2 and 5 look at nothing else)."""
    policy = spec.cache
    if policy is not None and (policy.caches or Validator.NEVER_USE in policy.validators):
        return False
    return not stale_rules(policy, rebuild_stale=False, report_stale=False).looked


def _hits_still_there(entries: list[tuple[TaskSpec, CacheEntry]], rows: list[tuple[object, ...]]) -> bool:
    """Whether the rows read back hold every entry the plan hit, as it read them: another
    command may have cleared or remade them since (``cache clear``, ``--force``), and a
    certificate of those rows would vouch for a hit the full run no longer finds."""
    found = {(key, variant, expires, created) for key, variant, expires, created, _record in rows}
    return all((entry.key, entry.variant, entry.expires, entry.checkpoint.written_at) in found
               for _spec, entry in entries)


def _day_only(spec: TaskSpec) -> bool:
    return not any(varies_within_a_day(template) for template in task_templates(spec))


def _certificate(plan: Plan, summary: RunSummary, sqlite: str, files: list[str],
                 entries: list[tuple[TaskSpec, CacheEntry]], now: float) -> dict[str, object] | None:
    """What the replay checks and records, read back from the store as this run left it."""
    not_before, not_after = -math.inf, math.inf
    for spec, entry in entries:
        # the policy of the task that hit: an entry under a shared cache_key may have been
        # written by another task (or pipeline), with another cache_for
        policy = spec.cache
        if policy is None:
            return None
        not_before = max(not_before, entry.checkpoint.written_at - CLOCK_SKEW)
        not_after = min(not_after, valid_until(entry, policy))
    keys = json.dumps(sorted({entry.key for _spec, entry in entries}))
    db = sqlite3.connect(sqlite, timeout=replay.BUSY_TIMEOUT, isolation_level=None)
    try:
        run = db.execute(statements.RUN_ROW, (summary.run_id,)).fetchone()
        blob = db.execute(statements.GET_BLOB, (statements.outcomes_key(summary.run_id),)).fetchone()
        rows = db.execute(statements.CACHE_ROWS, (keys,)).fetchall() if entries else []
        schema = db.execute("PRAGMA user_version").fetchone()[0]
    finally:
        db.close()
    if run is None or blob is None or schema != SCHEMA_VERSION or run[1] != statements.SUCCEEDED:
        return None
    if not _hits_still_there(entries, rows):
        return None
    for _key, _variant, _expires, created, _record in rows:  # a row "from the future" comes alive later
        if isinstance(created, bool) or not isinstance(created, (int, float)):
            return None  # a damaged row: its time is unknown
        if created > now + CLOCK_SKEW:
            not_after = min(not_after, created - CLOCK_SKEW)
    pipeline, _status, requested, counts = run
    return {
        "day": replay.utc_day(plan.context.date.timestamp()),
        "files": files,
        "folders": replay.folders_of(files),
        "hit_keys": keys,
        "hit_rows": replay.rows_digest(rows),
        "not_before": not_before,
        "not_after": not_after,
        "store": sqlite,
        "schema": schema,
        "pipeline": pipeline,
        "requested": requested,
        "counts": counts,
        "outcomes": bytes(blob[0]).hex(),
        "final": {state.value: summary.count(state) for state in _NO_OP if summary.count(state)},
    }
