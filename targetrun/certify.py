"""When a finished run may be replayed, and its certificate (see :mod:`targetrun.replay`).

A run is certified when it ran nothing and each of its decisions rested only on what the
replay checks again:

* a task **skipped because its target exists**: no cache policy that would look at its
  record (no ``cache_for``, no ``never_use``), nothing of its staleness looked at (no
  ``code``/``deps`` validator), not mapped, its target a local file;
* a **cache hit** of a task without a target or needs: not mapped, no ``deps``
  validator, its value a local file (its validity then rests on the cache entries, the
  clock and -- for a ``code`` validator -- the project's sources only);
* every other task **not needed**;

and none of those tasks' templates renders anything finer than the run's day (the run
id, ``{date:%H}``): the replay's key pins the date to a day. The project source files
the Python tasks' code was read from are held too, by size and modification time: a
task whose code no longer parses is never kept. Anything else -- a task
that ran or failed, a resumed checkpoint, a remote target, a state store that is not the
local SQLite file -- leaves no certificate (an earlier one still holds: everything it
rested on is checked again whenever it is used).
"""

from __future__ import annotations

import math
import os
import sqlite3
from collections.abc import Mapping
from typing import Any

from targetrun import replay, status_replay
from targetrun.engine.decide import CLOCK_SKEW, by_existence, stale_rules, valid_until
from targetrun.engine.plan import Plan, Planner
from targetrun.model import Action, CacheEntry, Reason, RunSummary, StaleKind, TaskSpec, TaskState
from targetrun.resolve import LOCAL
from targetrun.state import StatusReport
from targetrun.storage.base import Stat
from targetrun.store import statements
from targetrun.store.base import StateStore
from targetrun.store.sqlite import SCHEMA_VERSION, SqliteStore
from targetrun.templating import task_templates, varies_within_a_day

_NO_OP = frozenset((TaskState.SKIPPED, TaskState.CACHED, TaskState.NOT_NEEDED))


def certify(ticket: replay.Ticket, plan: Plan, planner: Planner, summary: RunSummary, store: StateStore) -> None:
    """Leave a certificate for the next identical command, when this run earns one
    (``planner``: what decided the plan -- its cache hits, its time, the cache generation
    it read). Never fails the run: a certificate that cannot be written is simply not there."""
    sqlite = _sqlite_file(store)
    if sqlite is None or summary.dry_run or not summary.ok or ticket.spoke():  # a warning must be said again
        return
    found = _what_it_rested_on(plan, planner.hits, summary)
    if found is None:
        return
    files, hits = found
    try:
        window = _cache_window(planner, store, hits)
        day = replay.utc_day(plan.context.date.timestamp())  # the date its templates rendered
        sources = {path: replay.source_stamp(path) for path in planner.made_from.code_index.sources()}
        certificate = _certificate(summary, sqlite, files, sources, window, day) if window is not None else None
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
    varies: dict[str, bool] = {}  # by template: 10,000 tasks share a few shell commands
    skipped, cached, not_needed = TaskState.SKIPPED, TaskState.CACHED, TaskState.NOT_NEEDED
    for outcome in summary.outcomes:  # identity tests: an Enum's hash is Python code, 10,000 times
        state = outcome.state
        if state is not_needed:
            continue
        if state is not skipped and state is not cached:
            return None
        task = plan.tasks.get(outcome.task)
        decision = plan.decisions.get(outcome.task)
        if task is None or decision is None or decision.stale or task.map_index is not None or task.is_gather:
            return None
        if not _fixed_for_the_day(task.spec, varies):
            return None
        if decision.action is Action.SKIP and decision.reason is Reason.TARGET_EXISTS:
            if not decided_by_existence(task.spec) or task.target is None or task.target.result != LOCAL:
                return None
            files.append(task.target.url)
        elif decision.reason is Reason.CACHE_HIT and task.target is None and not task.spec.needs \
                and not _judges_deps(task.spec):
            entry = hits.get(outcome.task)
            if entry is None or entry.checkpoint.storage != LOCAL:
                return None
            files.append(entry.checkpoint.location)
            entries.append((task.spec, entry))
        else:
            return None
    return files, entries


def _fixed_for_the_day(spec: TaskSpec, varies: dict[str, bool]) -> bool:
    """Whether none of the task's templates renders anything finer than the run's day (the
    run id, ``{date:%H}``): the replay's key pins the date to a day. ``varies``: the answer
    by template, kept across a plan's tasks (10,000 tasks share a few shell commands)."""
    for template in task_templates(spec):
        if "{" not in template:  # a literal (10,000 targets each its own): nothing to render
            continue
        found = varies.get(template)
        if found is None:
            found = varies[template] = varies_within_a_day(template)
        if found:
            return False
    return True


def _judges_deps(spec: TaskSpec) -> bool:
    """Whether a cache hit rests on its deps' contents, which a replay does not read
    (its code rests on the project's sources, which the certificate holds)."""
    return StaleKind.DEPS in stale_rules(spec.cache, rebuild_stale=False, report_stale=False).looked


def decided_by_existence(spec: TaskSpec) -> bool:
    """Whether only the target's existence decides this task: rules 1-4 look at nothing
    else (no ``cache_for``, no ``never_use``), and rule 5 (staleness) acts on nothing (no
    validator). The one policy check of both certificates, the run's and the status's: a
    replay checks the targets again, never what a validator or a cache entry would weigh."""
    policy = spec.cache
    return policy is None or (by_existence(policy) and not stale_rules(policy, rebuild_stale=False,
                                                                         report_stale=False).looked)


def _cache_window(planner: Planner, store: StateStore,
                  hits: list[tuple[TaskSpec, CacheEntry]]) -> tuple[int, float, float] | None:
    """The cache generation the hits rest on and the time they stay valid in, or None:
    the cache changed since the plan read it (-1 and no bounds: no hit to rest on)."""
    if not hits:
        return -1, -math.inf, math.inf
    generation = planner.cache_generation
    every = store.cache_entries(sorted({hit.key for _spec, hit in hits}))
    if generation is None or store.cache_generation() != generation:  # read after: `every` is as planned
        return None
    not_before, not_after = -math.inf, math.inf
    for spec, hit in hits:
        # the policy of the task that hit: an entry under a shared cache_key may have been
        # written by another task (or pipeline), with another cache_for
        policy = spec.cache
        if policy is None:
            return None
        not_before = max(not_before, hit.checkpoint.written_at - CLOCK_SKEW)  # "from the future" before
        not_after = min(not_after, valid_until(hit, policy))
    for entries in every.values():  # an entry "from the future" comes alive later, and may hit instead
        for entry in entries:
            if entry.checkpoint.written_at > planner.now + CLOCK_SKEW:
                not_after = min(not_after, entry.checkpoint.written_at - CLOCK_SKEW)
    return generation, not_before, not_after


def _certificate(summary: RunSummary, sqlite: str, files: list[str], sources: dict[str, str],
                 window: tuple[int, float, float], day: str) -> dict[str, object] | None:
    """What the replay checks and records, read back from the store as this run left it."""
    db = sqlite3.connect(sqlite, timeout=replay.BUSY_TIMEOUT, isolation_level=None)
    try:
        run = db.execute(statements.RUN_ROW, (summary.run_id,)).fetchone()
        blob = db.execute(statements.GET_BLOB, (statements.outcomes_key(summary.run_id),)).fetchone()
        schema = db.execute("PRAGMA user_version").fetchone()[0]
    finally:
        db.close()
    if run is None or blob is None or schema != SCHEMA_VERSION or run[1] != statements.SUCCEEDED:
        return None
    pipeline, _status, requested, counts = run
    generation, not_before, not_after = window
    return {
        "day": day,
        "files": files,
        "folders": replay.folders_of(files),
        "sources": sources,
        "cache_generation": generation,
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


# -- status ------------------------------------------------------------------------------


class StatusWitness:
    """What ``status`` needs to certify its table (:mod:`targetrun.status_replay`): the state
    store's generations as they were before planning read anything, and the plan."""

    def __init__(self) -> None:
        self.store: str | None = None  # the SQLite file, when the store is one
        self.generations: tuple[int, int, int, int] | None = None  # schema, pending, records, cache
        self.plan: Plan | None = None

    def before(self, store: StateStore) -> None:
        self.store = _sqlite_file(store)
        if self.store is not None:
            self.generations = _generations(self.store)

    def after(self, plan: Plan) -> None:
        self.plan = plan


def _generations(sqlite: str) -> tuple[int, int, int, int]:
    db = sqlite3.connect(sqlite, timeout=replay.BUSY_TIMEOUT, isolation_level=None)
    try:
        db.execute("BEGIN")
        try:
            found = (int(db.execute("PRAGMA user_version").fetchone()[0]),
                     int(db.execute(statements.ANY_PENDING).fetchone()[0]),
                     int(db.execute(statements.RECORDS_GENERATION).fetchone()[0]),
                     int(db.execute(statements.CACHE_GENERATION).fetchone()[0]))
        finally:
            db.execute("COMMIT")
        return found
    finally:
        db.close()


def certify_status(ticket: replay.Ticket, witness: StatusWitness, report: StatusReport, text: str,
                   now: float) -> None:
    """Leave a status certificate when this status's table (``text``, as printed, its ages
    taken at ``now``) rested only on what the replay checks again. Never fails the command."""
    from targetrun import redact

    plan, store, before = witness.plan, witness.store, witness.generations
    if plan is None or store is None or before is None or before[0] != SCHEMA_VERSION or before[1] or ticket.spoke():
        return
    # The replay prints without masking: no credential may be known to this process but
    # those of its environment -- the certificate's key holds the whole environment, so
    # the replay runs only with the same ones, and the table below is checked against them.
    if redact.secrets_beyond_environment() or not _status_rests_on_files_and_store(plan):
        return
    try:
        cut = text.rfind("\n", 0, len(text) - 1) + 1
        table, footer = text[:cut], text[cut:]
        rows = _status_rows(report, table)
        if rows is None:
            return
        header, columns = rows
        files = [url for url, sig in zip(columns["urls"], columns["signatures"])
                 if url is not None and sig != status_replay.MISSING]
        data = status_replay.Certificate.encode({
            "key": ticket.key, "day": replay.utc_day(plan.context.date.timestamp()), "store": store,
            "schema": before[0], "records": before[2], "cache": before[3], "header": header,
            "folders": replay.folders_of(files), "footer": footer, "would": len(report.would_run)}, **columns)
        # the replay's rendering (of the certificate as it will read it) must be this status's, character for
        # character, and print nothing a mask would hide (the table and the final line are each redacted whole, as
        # the command's output stream redacts them)
        certificate = status_replay.Certificate.decode(data)
        if certificate is None or certificate.render(now) != table \
                or redact.redact(table) != table or redact.redact(footer) != footer:
            return
        if _generations(store) != before or not ticket.unchanged() or ticket.spoke():
            return
        replay.write_bytes(ticket.path, data)
    except Exception:  # a full disk, a target changing meanwhile: the status stands, uncertified
        pass


def _status_rests_on_files_and_store(plan: Plan) -> bool:
    """Whether every task's row rests only on its target, the Pipelinefile, the day and the
    store: a shell task (its code is its command), no deps, decided by existence alone
    (:func:`decided_by_existence`, as the run's certificate asks), not mapped, a local
    target, templates fixed for the day."""
    varies: dict[str, bool] = {}
    by_policy: dict[int, bool] = {}  # decided_by_existence by policy: 10,000 tasks share a few (None most)
    for task in plan.tasks.values():
        spec = task.spec
        if spec.shell is None or spec.run is not None or spec.deps or spec.foreach is not None \
                or task.map_index is not None:
            return False
        policy = spec.cache
        if policy is not None:
            known = by_policy.get(id(policy))  # the plan holds every policy: no identity is reused meanwhile
            if known is None:
                known = by_policy[id(policy)] = decided_by_existence(spec)
            if not known:
                return False
        target = task.target
        if target is not None and target.result != LOCAL:
            return False
        if not _fixed_for_the_day(spec, varies):
            return False
    return True


def _status_rows(report: StatusReport, table: str) -> tuple[str, dict[str, Any]] | None:
    """The header's first four cells and the certificate's columns (status_replay.Certificate.encode's
    arguments) -- each line's first four cells cut from ``table``, the status as printed --,
    each target's signature as the row's look at it saw it (a target whose look kept none is
    looked at again); None when a row says something the replay cannot check ("cannot
    tell"), or a target looked at again is not as the row saw it."""
    lines = table.split("\n")[:-1]
    cut = lines[0].find("  age  ") + 2  # where the ages begin: the header's fifth column
    if cut < 2 or len(lines) != len(report.rows) + 1:
        return None
    urls: list[str | None] = []
    signatures: list[int] = []
    mtimes: list[float] = []
    missing = status_replay.MISSING
    for row in report.rows:
        if row.note:
            return None
        stat, target = row.stat, row.target
        if target is None or stat is None:
            # missing as the row saw it (the replay looks again); with no target, never looked at
            sig, mtime = missing, 0.0
        elif stat.signature is not None:  # the very stat the row shows: nothing to compare
            sig, mtime = stat.signature, stat.mtime or 0.0
        else:
            found = _signature_as_seen(target, stat)
            if found is None:
                return None
            sig, mtime = found, stat.mtime or 0.0
        urls.append(target)
        signatures.append(sig)
        mtimes.append(mtime)
    return lines[0][:cut], {
        "prefixes": [line[:cut].ljust(cut) for line in lines[1:]], "urls": urls, "signatures": signatures,
        "ran": [row.last.state.value if row.last else "" for row in report.rows],
        "finished": [row.last.finished if row.last else 0.0 for row in report.rows], "mtimes": mtimes}


def _signature_as_seen(target: str, seen: Stat) -> int | None:
    """The signature of ``target`` looked at again, or None: not as the row saw it (``seen``)."""
    try:
        st = os.stat(target)
    except FileNotFoundError:
        return None
    if (st.st_size, st.st_mtime) != (seen.size, seen.mtime):
        return None
    return status_replay.signature(st)
