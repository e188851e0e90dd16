"""The default state store: one SQLite file (``.targetrun/state.db``), WAL mode.

Each thread gets its own connection (the run's coordinating thread, and the thread that
renews lock leases). WAL with ``synchronous=NORMAL`` makes every commit survive a crash
of the process (kill -9) at a few tens of microseconds per commit; a task's record, its
checkpoint record and its cache entry commit together. Locks are rows with an owner and
a lease; ``BEGIN IMMEDIATE`` makes taking one atomic across processes.

Group commit (see :class:`~targetrun.store.base.StateStore`): the statements of a kept
write wait in a per-thread list and run at the start of that thread's next transaction,
so they commit with it, in order -- or roll back with it, and stay kept for the next one.
A thread's read first commits what it kept, so it reads its own writes.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import sqlite3
import threading
import time
import types
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any

from targetrun import redact, stopping
from targetrun.errors import CacheError
from targetrun.model import CacheEntry, Checkpoint, StaleKind, TaskState
from targetrun.store.statements import (BUSY_HINT, CACHE_GENERATION, GET_BLOB, INSERT_RUN,
                                        PUT_BLOB, busy, failure)
from targetrun.store.base import (MALFORMED, LastRun, PendingWrite, Recorded, RunRecord, RunStatus, StateStore,
                                  StoreOptions, TaskRecord, finite, kept, outcomes_without_passwords, readable, text,
                                  text_or_none)

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, pipeline TEXT NOT NULL, started REAL NOT NULL,
    finished REAL, status TEXT NOT NULL, requested TEXT NOT NULL DEFAULT '', counts TEXT NOT NULL DEFAULT '',
    owner TEXT NOT NULL DEFAULT '', heartbeat REAL);
CREATE INDEX IF NOT EXISTS runs_by_pipeline ON runs (pipeline, started);
CREATE TABLE IF NOT EXISTS task_runs (
    run_id TEXT NOT NULL, pipeline TEXT NOT NULL, task TEXT NOT NULL, state TEXT NOT NULL,
    finished REAL NOT NULL, duration REAL NOT NULL, attempts INTEGER NOT NULL, error TEXT, target TEXT,
    started REAL, worker TEXT NOT NULL DEFAULT '', PRIMARY KEY (run_id, task));
CREATE INDEX IF NOT EXISTS task_runs_by_task ON task_runs (pipeline, task, finished);
CREATE TABLE IF NOT EXISTS checkpoints (
    location TEXT PRIMARY KEY, run_id TEXT NOT NULL, task TEXT NOT NULL, record TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS checkpoints_by_run ON checkpoints (run_id);
CREATE TABLE IF NOT EXISTS cache (
    key TEXT NOT NULL, variant TEXT NOT NULL, pipeline TEXT NOT NULL, task TEXT NOT NULL,
    expires REAL NOT NULL, created REAL NOT NULL, record TEXT NOT NULL, PRIMARY KEY (key, variant));
CREATE INDEX IF NOT EXISTS cache_by_task ON cache (pipeline, task);
CREATE TABLE IF NOT EXISTS locks (name TEXT PRIMARY KEY, owner TEXT NOT NULL, expires REAL NOT NULL);
CREATE TABLE IF NOT EXISTS blobs (key TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS pending (
    staging TEXT PRIMARY KEY, run_id TEXT NOT NULL, location TEXT NOT NULL, storage TEXT NOT NULL,
    record TEXT, entry TEXT, absent INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS pending_by_location ON pending (location);
"""
# The generations (statements.CACHE_GENERATION, statements.RECORDS_GENERATION): a trigger
# per table and kind of change gives its generation a new random value (0 to 2**63 - 1), a
# tag of the change rather than a count (schema 7). A count from 0 is not an identity: two
# stores of one pipeline that saw as many changes -- another project's copied in, a backup
# restored and run again as often -- would hold the same numbers and other records, and a
# certificate (targetrun/replay.py, targetrun/status_replay.py) would vouch for them.
_NEW_TAG = "random() & 9223372036854775807"


def _tagging(table: str, change: str, generation: str) -> str:
    return (f"CREATE TRIGGER IF NOT EXISTS {table}_{change.lower()}_counted AFTER {change} ON {table} BEGIN "
            f"INSERT INTO generations VALUES ('{generation}', {_NEW_TAG}) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value; END")


_CHANGES = ("INSERT", "UPDATE", "DELETE")
GENERATIONS = [
    "CREATE TABLE IF NOT EXISTS generations (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    *(_tagging("cache", change, "cache") for change in _CHANGES),
]
# Every change of a checkpoint record or a task record is tagged, so "what status read from
# the store is as it was" is one row to read (targetrun/status_replay.py). A run's own row
# and its outcomes (what a replayed no-op writes) are not: they change no status.
RECORD_GENERATIONS = [_tagging(table, change, "records") for table in ("checkpoints", "task_runs") for change in _CHANGES]
# A new store's generations start as tags too (a store made again must not start where the last one did).
SEED_GENERATIONS = [f"INSERT OR REPLACE INTO generations VALUES ('{name}', {_NEW_TAG})" for name in ("cache", "records")]
SCHEMA_VERSION = 9


def _without_passwords(db: sqlite3.Connection) -> None:
    """Schema 9: the rows an older targetrun wrote with a URL's password in a location
    (checkpoint keys and records, task records, cache entries, pending writes, lock names,
    a run's outcomes) rewritten without it, as targetrun/store/rooted.py keeps a location
    now. In the upgrade's one transaction (interrupted, nothing changed; done, the version
    says so), with SQLite's secure delete on so the old text is not left in freed space (the
    WAL is truncated after the commit, see :meth:`SqliteStore._check_schema`). A row whose key
    without the password is already taken -- written by a newer targetrun since -- goes."""
    db.execute("PRAGMA secure_delete = ON")
    db.create_function("targetrun_bare", 1, lambda v: redact.without_passwords(v) if isinstance(v, str) else v,
                       deterministic=True)
    tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()]
    for table in tables:
        for column in [r[1] for r in db.execute(f"PRAGMA table_info({table})").fetchall() if r[2].upper() == "TEXT"]:
            holds = f"{column} LIKE '%://%@%' AND targetrun_bare({column}) != {column}"
            db.execute(f"UPDATE OR IGNORE {table} SET {column} = targetrun_bare({column}) WHERE {holds}")
            db.execute(f"DELETE FROM {table} WHERE {holds}")  # its key without the password was taken
    for key, data in db.execute("SELECT key, data FROM blobs WHERE key LIKE 'targetrun-run:%:outcomes'").fetchall():
        bare = outcomes_without_passwords(data)
        if bare is not data:
            db.execute("UPDATE blobs SET data = ? WHERE key = ?", (bare, key))


# Stores written by an older targetrun are upgraded in place, one version at a time:
# version -> the statements (or steps) that make it the next one.
MIGRATIONS: dict[int, Sequence[str | Callable[[sqlite3.Connection], None]]] = {
    2: ["ALTER TABLE runs ADD COLUMN owner TEXT NOT NULL DEFAULT ''", "ALTER TABLE runs ADD COLUMN heartbeat REAL",
        "CREATE TABLE IF NOT EXISTS pending (staging TEXT PRIMARY KEY, run_id TEXT NOT NULL, location TEXT NOT NULL, "
        "storage TEXT NOT NULL, record TEXT, entry TEXT)",
        "CREATE INDEX IF NOT EXISTS pending_by_location ON pending (location)"],
    3: ["ALTER TABLE task_runs ADD COLUMN started REAL",
        "ALTER TABLE task_runs ADD COLUMN worker TEXT NOT NULL DEFAULT ''"],
    4: GENERATIONS,
    5: RECORD_GENERATIONS,
    # schema 6 counted changes from 0: its triggers are replaced by tagging ones, and the generations tagged
    6: [f"DROP TRIGGER IF EXISTS {table}_{change.lower()}_counted" for table in ("cache", "checkpoints", "task_runs")
        for change in _CHANGES] + GENERATIONS + RECORD_GENERATIONS + SEED_GENERATIONS,
    # whether a pending write's target was absent before its attempt (engine/recovery.py)
    7: ["ALTER TABLE pending ADD COLUMN absent INTEGER NOT NULL DEFAULT 0"],
    8: [_without_passwords],
}
MAX_ENTRIES_PER_KEY = 32  # older variants beyond this are pruned
_BATCH = 500  # keys per IN (...) query


DEFAULT_TIMEOUT = 30.0
SQLITE_SIBLINGS = ("", "-wal", "-shm", "-journal")  # a SQLite store is these files together
_SLICE = 0.05  # seconds SQLite waits for a lock on its own before the store looks at the clock and signals


_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")  # as targetrun.resolve.protocol reads one


class SqliteStore(StateStore):
    @classmethod
    def open(cls, location: str, options: StoreOptions) -> SqliteStore:
        return cls(location, timeout=options.busy_timeout)

    @classmethod
    def address(cls, url: str, root: str, *, file: str | None = None) -> str:
        """A path (``~`` expanded), or ``file://`` / ``sqlite://`` and a path, relative to ``root``;
        normalised as SQLite itself reads it -- which refuses a ``..`` that climbs past ``/``
        (``../../../../tmp/x.db`` from a shallow folder: "unable to open database file"),
        where the file system stays at ``/``.

        >>> SqliteStore.address("../../../../tmp/s.db", "/srv/p")
        '/tmp/s.db'
        """
        scheme = _SCHEME.match(url)
        path = url[scheme.end():] if scheme else url
        return os.path.normpath(os.path.join(root, os.path.expanduser(path)))

    def __init__(self, path: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.path = path
        self.timeout = timeout  # seconds to wait for another process's write lock
        self._local = threading.local()
        self._all: list[tuple[threading.Thread, sqlite3.Connection]] = []  # each connection and its thread
        self._guard = threading.Lock()
        self._while_busy(self._check_schema)
        self._identity = self._file_identity()

    def _file_identity(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_dev, st.st_ino

    def _check_still_there(self) -> None:
        """SQLite keeps writing to a database file that was deleted or replaced under it, and
        those records would be lost: refuse to vouch for a new checkpoint then."""
        if self._file_identity() != self._identity:
            raise CacheError(f"the state store {self.path} was removed or replaced while this run was using it",
                             hint="Run again: targets this run could not record were not kept.")

    def _while_busy(self, step: Any, own: int = 0) -> Any:
        """Run ``step``, retrying while another process holds a lock it needs, for up to
        the store's timeout. SQLite itself waits only a slice of it (:data:`_SLICE`) each
        time, so the wait is in Python: a stop signal is handled at once (SQLite's own wait
        would hold it for the whole timeout), and once stopping the wait is cut short
        (targetrun/stopping.py) -- a Ctrl-C never waits 30 s per record for a locked store.
        ``own``: how many deferred sections the caller itself opened around this wait
        (a transaction's BEGIN: its own one); a stop held back by any other is not raised here."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                return step()
            except sqlite3.OperationalError as exc:
                if not busy(exc) or time.monotonic() >= stopping.wait_until(deadline):
                    raise self._broken(exc) from None
                stopping.deliver(own)  # nothing of the caller's is open here: a stop held back until now ends the wait
                time.sleep(0.01)
            except sqlite3.Error as exc:
                raise self._broken(exc) from None

    def _check_schema(self) -> None:
        """Create the tables, or check they are ours, in one transaction (two runs may race here)."""
        db = self._db
        if db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            tables = db.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
            migrated = version in MIGRATIONS and tables
            if migrated:
                while version in MIGRATIONS:
                    for statement in MIGRATIONS[version]:
                        if isinstance(statement, str):
                            db.execute(statement)
                        else:
                            statement(db)
                    version += 1
                db.execute(f"PRAGMA user_version = {version}")
            if version != SCHEMA_VERSION and (version != 0 or tables):
                raise CacheError(
                    f"the state store {self.path} was written by another version of targetrun (schema {version})",
                    hint="Move it aside; targetrun creates a new one (targets are kept, cache entries and history are not).",
                )
            if version != SCHEMA_VERSION:
                tables_and_triggers = GENERATIONS + RECORD_GENERATIONS + SEED_GENERATIONS
                for statement in [s for s in SCHEMA.split(";") if s.strip()] + tables_and_triggers:
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except BaseException as exc:
            db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                # a stop that landed in a migration's own function came out as "user-defined
                # function raised exception": an interruption, not a damaged store to move aside
                stopping.deliver_lost()
            raise
        db.execute("COMMIT")
        if migrated:  # what the rewrite replaced is in the WAL's older frames until it is emptied
            with suppress(sqlite3.Error):
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    @property
    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = self._connect()
            self._local.db = db
            with self._guard:
                self._all.append((threading.current_thread(), db))
        return db

    def _connect(self) -> sqlite3.Connection:
        try:
            folder = os.path.dirname(self.path)
            if folder:
                os.makedirs(folder, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=min(self.timeout, _SLICE), isolation_level=None,
                                 check_same_thread=False)
        except (sqlite3.Error, OSError) as exc:
            raise self._broken(exc) from None
        self._while_busy(lambda: db.execute("PRAGMA journal_mode=WAL"))
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    def _broken(self, exc: BaseException) -> CacheError:
        if busy(exc):
            return CacheError(f"the state store {self.path} stayed locked by another process for {self.timeout:g}s",
                              hint=BUSY_HINT)
        what, hint = failure(exc, self.path)
        return CacheError(f"the state store {self.path} {what}", hint=hint)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, with what this thread kept first. A stop signal in it is
        raised once it is over (stopping.deferred): never with the transaction left open
        (every later write of the run would fail) nor between its COMMIT and forgetting
        the kept writes it carried (they would be applied again by the next one)."""
        db = self._db
        later = self._later()
        with stopping.deferred():
            try:
                self._while_busy(lambda: db.execute("BEGIN IMMEDIATE"), own=1)
                try:
                    for statement, args in later:  # what this thread kept commits first, with this write
                        db.execute(statement, args)
                    yield db
                except BaseException:
                    if db.in_transaction:  # SQLite may have rolled it back itself (a full disk): say why, not this
                        db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
                later.clear()
            except sqlite3.Error as exc:
                if db.in_transaction:  # a COMMIT that failed (a full disk) may leave it open
                    with suppress(sqlite3.Error):
                        db.execute("ROLLBACK")
                raise self._broken(exc) from None

    def _later(self) -> list[tuple[str, Sequence[object]]]:
        """This thread's kept writes, oldest first (see the module docstring)."""
        later: list[tuple[str, Sequence[object]]] | None = getattr(self._local, "later", None)
        if later is None:
            later = self._local.later = []
        return later

    def flush(self) -> None:
        if self._later():
            with self._transaction():
                pass

    def _query(self, sql: str, args: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        self.flush()  # a thread reads its own kept writes
        db = self._db
        return self._while_busy(lambda: _fetched(db, sql, args))  # type: ignore[no-any-return]

    # -- runs and tasks ------------------------------------------------------------

    def begin_run(self, record: RunRecord) -> None:
        with self._transaction() as db:
            db.execute(
                INSERT_RUN,
                (record.run_id, record.pipeline, record.started, record.finished, record.status.value,
                 "\n".join(record.requested), record.counts, record.owner, record.heartbeat),
            )

    def finish_run(self, run_id: str, status: RunStatus, finished: float, counts: str) -> None:
        with self._transaction() as db:
            db.execute("UPDATE runs SET status = ?, finished = ?, counts = ? WHERE run_id = ?",
                       (status.value, finished, counts, run_id))

    def heartbeat(self, run_id: str, now: float) -> None:
        with self._transaction() as db:
            db.execute("UPDATE runs SET heartbeat = ? WHERE run_id = ?", (now, run_id))

    def run(self, run_id: str) -> RunRecord | None:
        rows = self._query(f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ?", (run_id,))
        found = readable(self.path, "run record", rows, _run_record)
        return found[0] if found else None

    def record_task(self, record: TaskRecord | None, checkpoint: Checkpoint | None, entry: CacheEntry | None = None,
                    *, staging: str | None = None) -> None:
        statements = _task_writes(record, checkpoint, entry, staging)
        with self._transaction() as db:
            for statement, args in statements:
                db.execute(statement, args)

    def record_task_soon(self, record: TaskRecord | None, checkpoint: Checkpoint | None,
                         entry: CacheEntry | None = None, *, staging: str | None = None) -> None:
        self._later().extend(_task_writes(record, checkpoint, entry, staging))

    # -- two-phase checkpoint writes -------------------------------------------------

    def intend_write(self, pending: PendingWrite) -> None:
        with self._transaction() as db:
            db.execute(_INTEND, (pending.staging, pending.run_id, pending.location, pending.storage, int(pending.absent)))

    def intend_write_soon(self, pending: PendingWrite) -> None:
        self._later().append((_INTEND, (pending.staging, pending.run_id, pending.location, pending.storage,
                                        int(pending.absent))))

    def prepare_write(self, staging: str, checkpoint: Checkpoint, entry: CacheEntry | None) -> None:
        self._check_still_there()
        # One statement, committed on its own when nothing is kept (the usual case: each
        # finished task prepares its record alone), without a BEGIN and a COMMIT around it.
        self._write(_PREPARE, (dump_checkpoint(checkpoint), dump_entry(entry) if entry else None, staging))

    def prepare_writes(self, prepared: Sequence[tuple[str, Checkpoint, CacheEntry | None]]) -> None:
        if len(prepared) == 1:
            self.prepare_write(*prepared[0])
            return
        self._check_still_there()
        rows = [(dump_checkpoint(checkpoint), dump_entry(entry) if entry else None, staging)
                for staging, checkpoint, entry in prepared]
        with self._transaction() as db:
            db.executemany(_PREPARE, rows)

    def pending_writes(self, location: str | None = None) -> list[PendingWrite]:
        where, args = ("WHERE location = ?", (location,)) if location is not None else ("", ())
        rows = self._query(f"SELECT run_id, location, staging, storage, record, entry, absent FROM pending {where}", args)
        return readable(self.path, "pending write", rows, _pending)

    def drop_pending(self, staging: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM pending WHERE staging = ?", (staging,))

    def checkpoints(self, locations: list[str]) -> dict[str, Checkpoint]:
        found: dict[str, Checkpoint] = {}
        for start in range(0, len(locations), _BATCH):
            chunk = locations[start:start + _BATCH]
            marks = ",".join("?" * len(chunk))
            rows = self._query(f"SELECT location, record FROM checkpoints WHERE location IN ({marks})", chunk)
            found.update(self._records(rows))
        return found

    def _records(self, rows: list[tuple[Any, ...]]) -> list[tuple[str, Checkpoint]]:
        """Rows ``(key, record)`` decoded: all at once when they are well formed (see
        :func:`_decoded`), else row by row, a malformed one reported and left out."""
        docs = _decoded(rows, 1)
        if docs is None:
            return readable(self.path, "checkpoint record", rows, lambda r: (text(r[0]), load_checkpoint(r[1])))
        return readable(self.path, "checkpoint record", zip([row[0] for row in rows], docs),
                        lambda pair: (text(pair[0]), checkpoint_of(pair[1])))

    def checkpoints_that_differ(self, locations: list[str], code: str,
                                kinds: Collection[StaleKind]) -> dict[str, Checkpoint | None]:
        """As the base class says; SQLite compares (json_extract, in C) and returns the
        record only where something may differ, so a no-op of 10,000 unchanged targets (or
        their ``status``) decodes none. A malformed record is returned (and reported) as usual."""
        same = " AND ".join(["json_extract(record, '$.code') IS ?", *(_SAME[kind] for kind in _SAME if kind in kinds)])
        found: dict[str, Checkpoint | None] = {}
        for start in range(0, len(locations), _BATCH):
            chunk = locations[start:start + _BATCH]
            marks = ",".join("?" * len(chunk))
            rows = self._json_rows("SELECT location, {} FROM checkpoints WHERE location IN (" + marks + ")",
                                   *_unless_same(same), [code, *chunk])
            if rows is None:  # an SQLite without JSON: compare in Python
                return super().checkpoints_that_differ(locations, code, kinds)
            self._keep_differing(found, rows)
        return found

    def checkpoints_that_differ_each(self, codes: Mapping[str, str],
                                     kinds: Collection[StaleKind]) -> dict[str, Checkpoint | None]:
        """As the base class says; SQLite compares each record with its own code in one
        query per batch (the asked codes joined as a VALUES table), as
        :meth:`checkpoints_that_differ` compares with one."""
        same = " AND ".join(["json_extract(record, '$.code') IS asked.column2",
                             *(_SAME[kind] for kind in _SAME if kind in kinds)])
        pairs = list(codes.items())
        found: dict[str, Checkpoint | None] = {}
        for start in range(0, len(pairs), _BATCH):
            chunk = pairs[start:start + _BATCH]
            values = ",".join("(?,?)" for _ in chunk)
            rows = self._json_rows("SELECT checkpoints.location, {} FROM (VALUES " + values + ") AS asked "
                                   "JOIN checkpoints ON checkpoints.location = asked.column1",
                                   *_unless_same(same), [item for pair in chunk for item in pair])
            if rows is None:  # an SQLite without JSON: compare in Python
                return super().checkpoints_that_differ_each(codes, kinds)
            self._keep_differing(found, rows)
        return found

    def _json_rows(self, query: str, quick: str, guarded: str, args: Sequence[object]) -> list[tuple[Any, ...]] | None:
        """Rows of ``query``, its ``{}`` the ``quick`` columns -- or, when a record is not
        JSON (SQLite stops the quick form at it), the ``guarded`` ones, which check each record
        first (checking them always would parse every record once more); None when this
        SQLite has no JSON functions (the caller reads the records in Python)."""
        self.flush()  # a thread reads its own kept writes
        try:
            try:
                return _fetched(self._db, query.format(quick), args)
            except sqlite3.OperationalError as exc:
                if "malformed JSON" not in str(exc):
                    raise
                return _fetched(self._db, query.format(guarded), args)
        except sqlite3.OperationalError as exc:
            if "no such function" in str(exc):
                return None
            raise self._broken(exc) from None
        except sqlite3.Error as exc:
            raise self._broken(exc) from None

    def _keep_differing(self, found: dict[str, Checkpoint | None], rows: list[tuple[Any, ...]]) -> None:
        found.update((row[0], None) for row in rows if row[1] is None)
        found.update(self._records([row for row in rows if row[1] is not None]))

    def recorded(self, locations: list[str]) -> dict[str, int | None]:
        """As the base class says; SQLite reads the size and hash (json_extract, in C),
        decoding no record. A record whose size is not a whole number is read as the base
        class reads it (a malformed one is reported and left out)."""
        found: dict[str, int | None] = {}
        odd: list[str] = []
        for start in range(0, len(locations), _BATCH):
            chunk = locations[start:start + _BATCH]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT location, CASE WHEN json_valid(record) THEN json_extract(record, '$.size') END, " \
                  f"CASE WHEN json_valid(record) THEN json_extract(record, '$.hash') END " \
                  f"FROM checkpoints WHERE location IN ({marks})"
            self.flush()  # a thread reads its own kept writes
            try:
                rows = _fetched(self._db, sql, chunk)
            except sqlite3.OperationalError as exc:
                if "no such function" in str(exc):  # an SQLite without JSON
                    return super().recorded(locations)
                raise self._broken(exc) from None
            except sqlite3.Error as exc:
                raise self._broken(exc) from None
            for location, size, digest in rows:
                if digest == "":  # no content recorded (a folder)
                    found[text(location)] = None
                elif type(size) is int and type(digest) is str:
                    found[text(location)] = size
                else:
                    odd.append(text(location))
        if odd:  # malformed: reported and left out, as checkpoints() does
            found.update(super().recorded(odd))
        return found

    def recorded_for_status(self, locations: list[str]) -> dict[str, Recorded]:
        """As the base class says; SQLite reads the size and hash and returns the record only
        where it keeps parameter values or a date (json_extract, in C), so ``status`` of
        10,000 targets made without parameters decodes none. A record whose size is not a
        whole number, or that is not JSON, is read as the base class reads it (a malformed
        one is reported and left out)."""
        made = "json_extract(record, '$.made_with') IS NOT NULL OR json_extract(record, '$.made_for') IS NOT NULL"
        quick = f"json_extract(record, '$.size'), json_extract(record, '$.hash'), CASE WHEN {made} THEN record END"
        guarded = f"CASE WHEN json_valid(record) THEN json_extract(record, '$.size') END, " \
                  f"CASE WHEN json_valid(record) THEN json_extract(record, '$.hash') END, " \
                  f"CASE WHEN NOT json_valid(record) OR {made} THEN record END"
        found: dict[str, Recorded] = {}
        odd: list[str] = []
        for start in range(0, len(locations), _BATCH):
            chunk = locations[start:start + _BATCH]
            marks = ",".join("?" * len(chunk))
            rows = self._json_rows("SELECT location, {} FROM checkpoints WHERE location IN (" + marks + ")",
                                   quick, guarded, chunk)
            if rows is None:  # an SQLite without JSON: decode in Python
                return super().recorded_for_status(locations)
            kept: list[tuple[Any, ...]] = []  # rows whose record keeps parameter values or a date
            for row in rows:
                location, size, digest, record = row
                if record is not None or not (digest == "" or (type(size) is int and type(digest) is str)):
                    kept.append((location, record))
                elif digest == "":  # no content recorded (a folder)
                    found[text(location)] = Recorded(None, None)
                else:
                    found[text(location)] = Recorded(size, None)
            for location, record in self._records([row for row in kept if row[1] is not None]):
                found[location] = Recorded.of(record)
            odd.extend(text(row[0]) for row in kept if row[1] is None)
        if odd:  # a size that is not a whole number: decoded, a malformed one reported and left out
            found.update(super().recorded_for_status(odd))
        return found

    def checkpoints_made_with(self, locations: list[str]) -> dict[str, Checkpoint]:
        """As the base class says; SQLite selects the records (json_extract, in C), so the
        status of 10,000 targets made without parameters decodes none of them again."""
        where = ("CASE WHEN json_valid(record) THEN json_extract(record, '$.made_with') IS NOT NULL "
                 "OR json_extract(record, '$.made_for') IS NOT NULL ELSE 1 END")
        try:
            found = self._checkpoints_where(locations, where)
        except _NoJson:
            return super().checkpoints_made_with(locations)
        return {location: record for location, record in found.items() if record.made_with or record.made_for}

    def _checkpoints_where(self, locations: list[str], condition: str, *args: object) -> dict[str, Checkpoint]:
        """The records at ``locations`` that meet an SQL ``condition`` (_NoJson: this SQLite
        has no JSON functions). A malformed record is returned (and reported) as usual."""
        found: dict[str, Checkpoint] = {}
        for start in range(0, len(locations), _BATCH):
            chunk = locations[start:start + _BATCH]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT location, record FROM checkpoints WHERE location IN ({marks}) AND {condition}"
            self.flush()  # a thread reads its own kept writes
            try:
                rows = _fetched(self._db, sql, [*chunk, *args])
            except sqlite3.OperationalError as exc:
                if "no such function" in str(exc):
                    raise _NoJson() from None
                raise self._broken(exc) from None
            except sqlite3.Error as exc:
                raise self._broken(exc) from None
            found.update(self._records(rows))
        return found

    def run_checkpoints(self, run_id: str) -> dict[str, Checkpoint]:
        rows = self._query("SELECT task, record FROM checkpoints WHERE run_id = ?", (run_id,))
        return dict(self._records(rows))

    def forget_checkpoint(self, location: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM checkpoints WHERE location = ?", (location,))

    def last_task_records(self, pipeline: str) -> dict[str, TaskRecord]:
        rows = self._query(
            "SELECT run_id, pipeline, task, state, MAX(finished), duration, attempts, error, target "
            "FROM task_runs WHERE pipeline = ? GROUP BY task",
            (pipeline,),
        )
        records = readable(self.path, "task record", rows, _last_record)
        return {record.task: record for record in records}

    def last_runs(self, pipeline: str) -> dict[str, LastRun]:
        """As :meth:`last_task_records` selects them (a row it would leave out as unreadable
        is left out here too, and reported), without the columns ``status`` does not show."""
        rows = self._query(
            "SELECT task, run_id, state, MAX(finished), error, duration, attempts "
            "FROM task_runs WHERE pipeline = ? GROUP BY task",
            (pipeline,),
        )
        return dict(readable(self.path, "task record", rows, _last_run))

    def runs(self, pipeline: str, limit: int = 20) -> list[RunRecord]:
        rows = self._query(
            f"SELECT {_RUN_COLUMNS} FROM runs WHERE pipeline = ? ORDER BY rowid DESC LIMIT ?",  # the order runs
            (pipeline, limit),  # began here, whatever their clocks said
        )
        return readable(self.path, "run record", rows, _run_record)

    # -- cache -----------------------------------------------------------------------

    def cache_entries(self, keys: list[str]) -> dict[str, list[CacheEntry]]:
        found: dict[str, list[CacheEntry]] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), _BATCH):
            chunk = unique[start:start + _BATCH]
            marks = ",".join("?" * len(chunk))
            rows = self._query(f"SELECT key, variant, pipeline, task, expires, record FROM cache WHERE key IN ({marks}) "
                               "ORDER BY created DESC", chunk)
            docs = _decoded(rows, 5)
            entries = readable(self.path, "cache entry", rows, _entry) if docs is None else \
                readable(self.path, "cache entry", zip(rows, docs), lambda pair: _entry_of(*pair))
            for entry in entries:
                found.setdefault(entry.key, []).append(entry)
        return found

    def list_cache(self, pipeline: str | None = None) -> list[CacheEntry]:
        where, args = ("WHERE pipeline = ?", (pipeline,)) if pipeline else ("", ())
        rows = self._query(f"SELECT key, variant, pipeline, task, expires, record FROM cache {where} ORDER BY key, created DESC", args)
        return readable(self.path, "cache entry", rows, _entry)

    def delete_cache(self, *, key: str | None = None, task: str | None = None, pipeline: str | None = None,
                     expired_before: float | None = None) -> int:
        clauses: list[str] = []
        args: list[object] = []
        for column, value in (("key", key), ("task", task), ("pipeline", pipeline)):
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value)
        if expired_before is not None:
            clauses.append("expires <= ?")
            args.append(expired_before)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._transaction() as db:
            return db.execute(f"DELETE FROM cache {where}", args).rowcount

    # -- inline values ---------------------------------------------------------------

    def put_blob(self, key: str, data: bytes) -> None:
        with self._transaction() as db:
            db.execute(PUT_BLOB, (key, data))

    def cache_generation(self) -> int | None:
        return int(self._query(CACHE_GENERATION)[0][0])

    def get_blob(self, key: str) -> bytes | None:
        rows = self._query(GET_BLOB, (key,))
        return bytes(rows[0][0]) if rows else None

    def delete_blob(self, key: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM blobs WHERE key = ?", (key,))

    # -- locks -----------------------------------------------------------------------

    def acquire(self, name: str, owner: str, lease: float) -> bool:
        # One statement, so one atomic write: take a free or expired lock, or extend our own.
        now = time.time()
        return self._write(_ACQUIRE, (name, owner, now + lease, now)).rowcount == 1

    def acquire_many(self, names: Sequence[str], owner: str, lease: float) -> set[str]:
        if len(names) == 1:
            return set(names) if self.acquire(names[0], owner, lease) else set()
        now = time.time()
        with self._transaction() as db:  # one write for all, with what this thread kept
            return {name for name in names if db.execute(_ACQUIRE, (name, owner, now + lease, now)).rowcount == 1}

    def renew(self, names: list[str], owner: str, lease: float) -> None:
        with self._transaction() as db:
            db.executemany("UPDATE locks SET expires = ? WHERE name = ? AND owner = ?",
                           [(time.time() + lease, name, owner) for name in names])

    def release(self, name: str, owner: str) -> None:
        self._write(_RELEASE, (name, owner))

    def release_soon(self, name: str, owner: str) -> None:
        self._later().append((_RELEASE, (name, owner)))

    def _write(self, sql: str, args: tuple[object, ...]) -> sqlite3.Cursor:
        """One statement, committed on its own -- or with the writes this thread kept."""
        if self._later():
            with self._transaction() as db:
                return db.execute(sql, args)
        db = self._db
        return self._while_busy(lambda: db.execute(sql, args))  # type: ignore[no-any-return]

    def lock_owner(self, name: str) -> str | None:
        held = self.lock_lease(name)
        return held[0] if held else None

    def lock_lease(self, name: str) -> tuple[str, float] | None:
        now = time.time()
        rows = self._query("SELECT owner, expires FROM locks WHERE name = ? AND expires > ? "
                           "AND typeof(expires) IN ('integer', 'real') AND typeof(owner) = 'text'", (name, now))
        return (rows[0][0], rows[0][1] - now) if rows else None  # (a row of another shape is free: see _ACQUIRE)

    def task_records(self, run_id: str, pipeline: str) -> dict[str, TaskRecord]:
        rows = self._query(f"SELECT {_TASK_COLUMNS} FROM task_runs WHERE run_id = ?", (run_id,))
        records = readable(self.path, "task record", rows, lambda r: TaskRecord(
            text(r[0]), text(r[1]), text(r[2]), TaskState(r[3]), finite(r[4]), finite(r[5]), int(r[6]),
            text_or_none(r[7]), text_or_none(r[8]), None if r[9] is None else finite(r[9]), text(r[10] or "")))
        return {record.task: record for record in records}

    def files(self) -> tuple[str, ...]:
        return tuple(self.path + suffix for suffix in SQLITE_SIBLINGS)

    def close(self) -> None:
        try:
            self.flush()
        finally:  # a store that cannot take the kept writes is still let go of
            with self._guard:
                for thread, db in self._all:
                    # Never under a thread that may be using it: closing a connection while
                    # another thread waits in SQLite frees what that thread runs on (a crash).
                    # A live thread's connection closes when the thread ends (its local data goes).
                    if thread is threading.current_thread() or not thread.is_alive():
                        db.close()
                self._all.clear()
            self._local = threading.local()

    # -- housekeeping ------------------------------------------------------------------

    def task_checkpoints(self, pipeline: str, task: str, limit: int = 1000) -> list[Checkpoint]:
        rows = self._query(
            "SELECT c.record FROM checkpoints c JOIN runs r ON r.run_id = c.run_id "
            "WHERE r.pipeline = ? AND c.task = ? ORDER BY r.started DESC LIMIT ?", (pipeline, task, limit))
        return readable(self.path, "checkpoint record", rows, lambda row: load_checkpoint(row[0]))

    def prune_runs(self, pipeline: str, run_ids: list[str]) -> int:
        removed = 0
        with self._transaction() as db:
            # SQLite's bare columns beside MAX() come from the row holding the maximum.
            latest = {rowid for rowid, _ in db.execute(
                "SELECT rowid, MAX(finished) FROM task_runs WHERE pipeline = ? GROUP BY task", (pipeline,))}
            for start in range(0, len(run_ids), _BATCH):
                chunk = run_ids[start:start + _BATCH]
                marks = ",".join("?" * len(chunk))
                doomed = [(rowid,) for (rowid,) in db.execute(
                    f"SELECT rowid FROM task_runs WHERE pipeline = ? AND run_id IN ({marks})", (pipeline, *chunk))
                    if rowid not in latest]
                db.executemany("DELETE FROM task_runs WHERE rowid = ?", doomed)
                removed += db.execute(f"DELETE FROM runs WHERE pipeline = ? AND run_id IN ({marks})",
                                      (pipeline, *chunk)).rowcount
        return removed


_RUN_COLUMNS = "run_id, pipeline, started, status, finished, requested, counts, owner, heartbeat"
_TASK_COLUMNS = "run_id, pipeline, task, state, finished, duration, attempts, error, target, started, worker"
_RELEASE = "DELETE FROM locks WHERE name = ? AND owner = ?"
_INTEND = "INSERT OR REPLACE INTO pending VALUES (?, ?, ?, ?, NULL, NULL, ?)"


_PREPARE = "UPDATE pending SET record = ?, entry = ? WHERE staging = ?"
# take a free or expired lock, or extend our own (rowcount 1), in one atomic statement
# A lock is free when its lease ran out -- or when its row is none a run writes: an expiry
# that is not a number (SQLite orders text above every number: "held" for ever) or an
# owner that is not text (no release names it). Another process's row is data, not a hold.
_ACQUIRE = ("INSERT INTO locks VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE SET owner = excluded.owner, "
            "expires = excluded.expires WHERE locks.expires <= ? OR locks.owner = excluded.owner "
            "OR typeof(locks.expires) NOT IN ('integer', 'real') OR typeof(locks.owner) != 'text'")


def _task_writes(record: TaskRecord | None, checkpoint: Checkpoint | None, entry: CacheEntry | None,
                 staging: str | None) -> list[tuple[str, Sequence[object]]]:
    """The statements of :meth:`SqliteStore.record_task`, which commit together."""
    statements: list[tuple[str, Sequence[object]]] = []
    if record is not None:
        record = kept(record)
        statements.append((
            f"INSERT OR REPLACE INTO task_runs ({_TASK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (record.run_id, record.pipeline, record.task, record.state.value, record.finished,
             record.duration, record.attempts, record.error, record.target, record.started, record.worker)))
    if staging is not None:
        statements.append(("DELETE FROM pending WHERE staging = ?", (staging,)))
    if checkpoint is not None:
        statements.append(("INSERT OR REPLACE INTO checkpoints VALUES (?, ?, ?, ?)",
                           (checkpoint.location, checkpoint.run_id, checkpoint.task, dump_checkpoint(checkpoint))))
    if entry is not None:
        statements.append(("INSERT OR REPLACE INTO cache VALUES (?, ?, ?, ?, ?, ?, ?)",
                           (entry.key, entry.variant, entry.pipeline, entry.task, entry.expires,
                            entry.checkpoint.written_at, dump_checkpoint(entry.checkpoint))))
        statements.append(("DELETE FROM cache WHERE key = ? AND variant NOT IN "
                           "(SELECT variant FROM cache WHERE key = ? ORDER BY created DESC LIMIT ?)",
                           (entry.key, entry.key, MAX_ENTRIES_PER_KEY)))
    return statements


def _unless_same(same: str) -> tuple[str, str]:
    """The quick and guarded column (:meth:`SqliteStore._json_rows`) of a record compared in
    SQL: NULL where ``same`` holds for it, else the record (a record not JSON: returned)."""
    return (f"CASE WHEN {same} THEN NULL ELSE record END",
            f"CASE WHEN NOT json_valid(record) THEN record WHEN {same} THEN NULL ELSE record END")


_STATES = {state.value: state for state in TaskState}


def _fetched(db: sqlite3.Connection, sql: str, args: Sequence[object]) -> list[tuple[Any, ...]]:
    """Every row of a query. Python's sqlite3 fails the whole query on one text value that is
    not UTF-8 (another program's row): it is read again with such text as bytes, which
    the row's reader rejects as it rejects a BLOB (:func:`~targetrun.store.base.text`), so
    that row alone is skipped -- not the store refused. The usual read stays in C."""
    try:
        return db.execute(sql, args).fetchall()
    except sqlite3.OperationalError as exc:
        if "Could not decode to UTF-8" not in str(exc):
            raise
    db.text_factory = _text_or_bytes
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.text_factory = str


def _text_or_bytes(data: bytes) -> str | bytes:
    try:
        return data.decode()
    except UnicodeDecodeError:
        return data


def _number(value: object) -> float:
    """:func:`finite`, with the common case (a finite float, as written) first."""
    return value if type(value) is float and math.isfinite(value) else finite(value)


def _last_run(r: Sequence[Any]) -> tuple[str, LastRun]:
    """A row of :meth:`SqliteStore.last_runs`, checked as :func:`_last_record` checks it."""
    attempts = r[6]
    if type(attempts) is not int:
        int(attempts)
    _number(r[5])
    return text(r[0]), LastRun(text(r[1]), _STATES[r[2]], _number(r[3]), text_or_none(r[4]))


def _last_record(r: Sequence[Any]) -> TaskRecord:
    """A row of :meth:`SqliteStore.last_task_records` (``status`` reads one per task):
    as ``TaskRecord(..., TaskState(r[3]), finite(r[4]), ...)``, by lookups, not calls."""
    attempts = r[6]
    return TaskRecord(text(r[0]), text(r[1]), text(r[2]), _STATES[r[3]], _number(r[4]), _number(r[5]),
                      attempts if type(attempts) is int else int(attempts), text_or_none(r[7]), text_or_none(r[8]))


# What a record keeps that could differ, by the kind that compares it (see
# targetrun.store.base.may_differ): "same" when it keeps none of it.
_SAME = {
    StaleKind.PARAMETERS: "COALESCE(json_extract(record, '$.made_with'), '{}') = '{}' "
                          "AND COALESCE(json_extract(record, '$.made_for'), '') = ''",
    StaleKind.INPUTS: "COALESCE(json_extract(record, '$.inputs'), '{}') = '{}'",
    StaleKind.DEPS: "json_extract(record, '$.deps') IS NULL",
}


class _NoJson(Exception):
    """This SQLite was built without its JSON functions: the caller filters in Python."""


def _run_record(r: Sequence[Any]) -> RunRecord:
    return RunRecord(text(r[0]), text(r[1]), finite(r[2]), RunStatus(r[3]), None if r[4] is None else finite(r[4]),
                     tuple(text(r[5]).split("\n")) if r[5] else (), text(r[6] or ""), text(r[7] or ""),
                     None if r[8] is None else finite(r[8]))


# One encoder for every record this store writes: json.dumps with these separators builds
# a new JSONEncoder on each call, and a task's records are encoded twice a task.
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode


def dump_entry(entry: CacheEntry) -> str:
    return _ENCODE({"key": entry.key, "variant": entry.variant, "pipeline": entry.pipeline, "task": entry.task,
                    "expires": entry.expires, "checkpoint": json.loads(dump_checkpoint(entry.checkpoint))})


def load_entry(record: str) -> CacheEntry:
    try:
        d = json.loads(record)
        return CacheEntry(text(d["key"]), text(d["variant"]), text(d["pipeline"]), text(d["task"]),
                          checkpoint_of(d["checkpoint"]), finite(d["expires"]))
    except MALFORMED as exc:
        raise CacheError(f"a pending cache entry in the state store is not readable: {exc}") from None


def dump_checkpoint(checkpoint: Checkpoint) -> str:
    return _ENCODE({
        "task": checkpoint.task, "location": checkpoint.location, "serializer": checkpoint.serializer,
        "size": checkpoint.size, "hash": checkpoint.content_hash, "run_id": checkpoint.run_id,
        "written_at": checkpoint.written_at, "duration": checkpoint.duration, "inputs": dict(checkpoint.inputs),
        "params": dict(checkpoint.params), "storage": checkpoint.storage,
        **({"made_with": dict(checkpoint.made_with)} if checkpoint.made_with else {}),
        **({"made_for": checkpoint.made_for} if checkpoint.made_for else {}),
        **({"code": dict(sorted(checkpoint.code.items()))} if checkpoint.code is not None else {}),
        **({"deps": dict(checkpoint.deps)} if checkpoint.deps is not None else {}),
        **({"dep_stats": dict(checkpoint.dep_stats)} if checkpoint.dep_stats else {}),
    })


def _entry(row: tuple[Any, ...]) -> CacheEntry:
    key, variant, pipeline, task, expires, record = row
    return CacheEntry(text(key), text(variant), text(pipeline), text(task), load_checkpoint(record), finite(expires))


def _entry_of(row: tuple[Any, ...], doc: object) -> CacheEntry:
    """:func:`_entry`, its record already decoded."""
    key, variant, pipeline, task, expires, _ = row
    return CacheEntry(text(key), text(variant), text(pipeline), text(task), checkpoint_of(doc), finite(expires))


def _decoded(rows: Sequence[tuple[Any, ...]], column: int) -> list[Any] | None:
    """The JSON records in ``column`` of ``rows``, decoded by one ``json.loads`` of them
    all, or None when any is not one JSON object (its caller then decodes row by row,
    reporting and leaving out the bad ones, as always). Half of a record's decoding time is
    the call itself: 10,000 cache hits or a status of 10,000 targets read that many."""
    texts = [row[column] for row in rows]
    if not all(type(text) is str and text[:1] == "{" and text[-1:] == "}" for text in texts):
        return None
    try:
        docs = json.loads("[" + ",".join(texts) + "]")
    except (ValueError, RecursionError):
        return None
    if len(docs) != len(texts) or not all(type(doc) is dict for doc in docs):
        return None  # a record of several objects, or one spread over two: row by row
    return docs  # type: ignore[no-any-return]


def load_checkpoint(record: str | bytes) -> Checkpoint:
    try:
        d = json.loads(record)
    except (ValueError, TypeError, RecursionError) as exc:  # TypeError: NULL; RecursionError: "[[[[..."
        raise CacheError(f"a checkpoint record in the state store is not readable: {exc}",
                         hint="Clear it with `targetrun cache clear`, or move the store aside.") from None
    return checkpoint_of(d)


def _slot_setters(cls: type) -> tuple[Callable[[Any, Any], None], ...] | None:
    """The slot setters of a frozen dataclass's fields, in field order; None when a field
    is not a plain slot or the class does more in ``__init__`` (``__post_init__``)."""
    setters = []
    for f in dataclasses.fields(cls):
        slot = cls.__dict__.get(f.name)
        if not isinstance(slot, types.MemberDescriptorType) or not f.init:
            return None
        setters.append(slot.__set__)
    return None if hasattr(cls, "__post_init__") else tuple(setters)


_CHECKPOINT_SLOTS = _slot_setters(Checkpoint)


def _checkpoint(*values: Any) -> Checkpoint:
    """``Checkpoint(*values)`` (all 16 fields given, in order) without its frozen
    ``__init__``, which sets each slot through ``object.__setattr__``: a third of the time,
    for the 10,000 records a status or a cache-hit no-op reads."""
    if _CHECKPOINT_SLOTS is None or len(values) != len(_CHECKPOINT_SLOTS):
        return Checkpoint(*values)
    made: Checkpoint = object.__new__(Checkpoint)
    for put, value in zip(_CHECKPOINT_SLOTS, values):
        put(made, value)
    return made


def checkpoint_of(d: Any) -> Checkpoint:
    """A decoded checkpoint record (CacheError: it is not one)."""
    try:
        get = d.get  # 10,000 records are read per no-op run with a validator: keep this lean
        size, written, duration = d["size"], d["written_at"], get("duration", 0.0)
        return _checkpoint(text(d["task"]), text(d["location"]), text(d["serializer"]),
                           size if type(size) is int else _size(size), text(d["hash"]), text(d["run_id"]),
                           written if type(written) is float and math.isfinite(written) else finite(written),
                           duration if type(duration) is float and math.isfinite(duration) else finite(duration),
                           _texts(get("inputs")) or {}, _texts(get("params")) or {}, text(get("storage", "local")),
                           _texts(get("made_with")) or {}, text_or_none(get("made_for")), _texts(get("code")),
                           _texts(get("deps")), _texts(get("dep_stats")) or {})
    except (ValueError, KeyError, TypeError, OverflowError, AttributeError) as exc:
        raise CacheError(f"a checkpoint record in the state store is not readable: {exc}",
                         hint="Clear it with `targetrun cache clear`, or move the store aside.") from None


def _texts(raw: object) -> dict[str, str] | None:
    """A recorded mapping of names to fingerprints; None when the record has none (older)."""
    if raw is None:
        return None
    if type(raw) is dict and all(type(value) is str for value in raw.values()):  # json.loads made a fresh dict: no copy
        return raw
    raise TypeError(f"expected a mapping of names to text, found {type(raw).__name__}")


def _size(value: object) -> int:
    """A recorded size that is not an int as written: a whole number (``true`` is not one)."""
    if type(value) is bool or type(value) is float and not value.is_integer():
        raise TypeError(f"expected a size in bytes, found {value!r}")
    size: int = int(value)  # type: ignore[call-overload]  # ValueError/TypeError/OverflowError for anything else
    return size


def _pending(row: tuple[Any, ...]) -> PendingWrite:
    """A row of the pending table; its record unreadable: a write that never committed."""
    run_id, location, staging, storage, record, entry, absent = row
    pending = PendingWrite(text(run_id), text(location), text(staging), text(storage), absent=absent == 1)
    try:
        return dataclasses.replace(pending, checkpoint=load_checkpoint(record) if record else None,
                                   entry=load_entry(entry) if entry else None)
    except CacheError:
        return pending
