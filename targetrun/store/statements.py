"""What the SQLite store and the no-op replay (:mod:`targetrun.replay`) both write and
read, written once: the replay records a run without importing the store.

Standard library only.
"""

from __future__ import annotations

import errno
import sqlite3

SUCCEEDED = "succeeded"  # RunStatus.SUCCEEDED's value (targetrun/store/base.py): a no-op that is replayed
INSERT_RUN = "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
PUT_BLOB = "INSERT OR REPLACE INTO blobs VALUES (?, ?)"
GET_BLOB = "SELECT data FROM blobs WHERE key = ?"
RUN_ROW = "SELECT pipeline, status, requested, counts FROM runs WHERE run_id = ?"
ANY_PENDING = "SELECT count(*) FROM pending"
# The cache table's generation: triggers give it a new random tag on every insert, update
# and delete (schema 7; a count from 0 before), so "the cache is as it was" is one row to read.
CACHE_GENERATION = "SELECT coalesce((SELECT value FROM generations WHERE name = 'cache'), 0)"
# The records' generation, tagged anew on every change of a checkpoint record or a task
# record (schema 7): what status shows of the store is as it was while both generations are.
RECORDS_GENERATION = "SELECT coalesce((SELECT value FROM generations WHERE name = 'records'), 0)"


# What a user can do about the store's three kinds of failure (its message names the store).
BUSY_HINT = ("Another targetrun (or a program that opened the file) is using it; wait for it or stop it, or set "
             "TARGETRUN_STORE_TIMEOUT to wait longer.")
FULL_HINT = ("The disk that holds it is full: make room on it, then run again (targets already made are kept and "
             "trusted).")
DAMAGED_HINT = ("If it is damaged or not a targetrun database, move it aside; targetrun creates a new one (cache "
                "entries and run history in it are then forgotten, targets are not).")


def busy(exc: BaseException) -> bool:
    """Whether SQLite gave up waiting for another connection's lock."""
    return "locked" in str(exc) or "busy" in str(exc)


def full(exc: BaseException) -> bool:
    """Whether the disk (or a quota) left no room: SQLITE_FULL, or ENOSPC/EDQUOT from the OS.
    Moving such a store aside (the hint for a damaged one) would lose its records for nothing."""
    return isinstance(exc, sqlite3.Error) and "is full" in str(exc) or \
        isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


def outcomes_key(run_id: str) -> str:
    """Where a finished run's outcomes are kept among the blobs (any store)."""
    return f"targetrun-run:{run_id}:outcomes"  # no "://": never an inline value's location
