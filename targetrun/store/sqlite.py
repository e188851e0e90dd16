"""The default state store: one SQLite file (``.targetrun/state.db``), WAL mode.

One connection per run, used by the coordinating thread. WAL with ``synchronous=NORMAL``
makes every commit survive a crash of the process (kill -9), at a few tens of
microseconds per commit; a task's record and its checkpoint record commit together.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from targetrun.errors import CacheError
from targetrun.model import Checkpoint, TaskState
from targetrun.store.base import RunRecord, RunStatus, StateStore, TaskRecord

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, pipeline TEXT NOT NULL, started REAL NOT NULL,
    finished REAL, status TEXT NOT NULL, requested TEXT NOT NULL DEFAULT '', counts TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS runs_by_pipeline ON runs (pipeline, started);
CREATE TABLE IF NOT EXISTS task_runs (
    run_id TEXT NOT NULL, pipeline TEXT NOT NULL, task TEXT NOT NULL, state TEXT NOT NULL,
    finished REAL NOT NULL, duration REAL NOT NULL, attempts INTEGER NOT NULL, error TEXT, target TEXT,
    PRIMARY KEY (run_id, task));
CREATE INDEX IF NOT EXISTS task_runs_by_task ON task_runs (pipeline, task, finished);
CREATE TABLE IF NOT EXISTS checkpoints (
    location TEXT PRIMARY KEY, task TEXT NOT NULL, serializer TEXT NOT NULL, size INTEGER NOT NULL,
    hash TEXT NOT NULL, run_id TEXT NOT NULL, written_at REAL NOT NULL, duration REAL NOT NULL);
CREATE INDEX IF NOT EXISTS checkpoints_by_run ON checkpoints (run_id);
"""
_CHECKPOINT_COLUMNS = "task, location, serializer, size, hash, run_id, written_at, duration"


class SqliteStore(StateStore):
    def __init__(self, path: str, *, timeout: float = 30.0) -> None:
        self.path = path
        self._db = self._connect(timeout)

    def _connect(self, timeout: float) -> sqlite3.Connection:
        try:
            folder = os.path.dirname(self.path)
            if folder:
                os.makedirs(folder, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=timeout, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise self._broken(exc) from None
        return db

    def _broken(self, exc: BaseException) -> CacheError:
        return CacheError(
            f"the state store {self.path} cannot be used: {exc}",
            hint="If it is damaged or not a targetrun database, move it aside; targetrun creates a new one "
            "(cache entries and run history in it are then forgotten, targets are not).",
        )

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise self._broken(exc) from None

    def _query(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        try:
            return self._db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise self._broken(exc) from None

    def begin_run(self, record: RunRecord) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?)",
                (record.run_id, record.pipeline, record.started, record.finished, record.status.value,
                 "\n".join(record.requested), record.counts),
            )

    def finish_run(self, run_id: str, status: RunStatus, finished: float, counts: str) -> None:
        with self._transaction() as db:
            db.execute("UPDATE runs SET status = ?, finished = ?, counts = ? WHERE run_id = ?", (status.value, finished, counts, run_id))

    def record_task(self, record: TaskRecord, checkpoint: Checkpoint | None) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO task_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (record.run_id, record.pipeline, record.task, record.state.value, record.finished,
                 record.duration, record.attempts, record.error, record.target),
            )
            if checkpoint is not None:
                db.execute(
                    f"INSERT OR REPLACE INTO checkpoints ({_CHECKPOINT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (checkpoint.task, checkpoint.location, checkpoint.serializer, checkpoint.size,
                     checkpoint.content_hash, checkpoint.run_id, checkpoint.written_at, checkpoint.duration),
                )

    def checkpoint(self, location: str) -> Checkpoint | None:
        rows = self._query(f"SELECT {_CHECKPOINT_COLUMNS} FROM checkpoints WHERE location = ?", (location,))
        return _checkpoint(rows[0]) if rows else None

    def run_checkpoints(self, run_id: str) -> dict[str, Checkpoint]:
        rows = self._query(f"SELECT {_CHECKPOINT_COLUMNS} FROM checkpoints WHERE run_id = ?", (run_id,))
        return {str(row[0]): _checkpoint(row) for row in rows}

    def forget_checkpoint(self, location: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM checkpoints WHERE location = ?", (location,))

    def last_task_records(self, pipeline: str) -> dict[str, TaskRecord]:
        rows = self._query(
            "SELECT run_id, pipeline, task, state, MAX(finished), duration, attempts, error, target "
            "FROM task_runs WHERE pipeline = ? GROUP BY task",
            (pipeline,),
        )
        return {
            str(r[2]): TaskRecord(str(r[0]), str(r[1]), str(r[2]), TaskState(r[3]), float(r[4]),  # type: ignore[arg-type]
                                  float(r[5]), int(r[6]), r[7], r[8])  # type: ignore[arg-type]
            for r in rows
        }

    def runs(self, pipeline: str, limit: int = 20) -> list[RunRecord]:
        rows = self._query(
            "SELECT run_id, pipeline, started, status, finished, requested, counts FROM runs "
            "WHERE pipeline = ? ORDER BY started DESC LIMIT ?",
            (pipeline, limit),
        )
        return [
            RunRecord(str(r[0]), str(r[1]), float(r[2]), RunStatus(r[3]), r[4],  # type: ignore[arg-type]
                      tuple(str(r[5]).split("\n")) if r[5] else (), str(r[6]))
            for r in rows
        ]

    def close(self) -> None:
        self._db.close()


def _checkpoint(row: tuple[object, ...]) -> Checkpoint:
    task, location, serializer, size, digest, run_id, written_at, duration = row
    return Checkpoint(str(task), str(location), str(serializer), int(size), str(digest), str(run_id),  # type: ignore[call-overload]
                      float(written_at), float(duration))  # type: ignore[arg-type]
