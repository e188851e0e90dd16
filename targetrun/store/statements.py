"""What the SQLite store and the no-op replay (:mod:`targetrun.replay`) both write and
read, written once: the replay records a run without importing the store.

Standard library only.
"""

from __future__ import annotations

SUCCEEDED = "succeeded"  # RunStatus.SUCCEEDED's value (targetrun/store/base.py): a no-op that is replayed
INSERT_RUN = "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
PUT_BLOB = "INSERT OR REPLACE INTO blobs VALUES (?, ?)"
GET_BLOB = "SELECT data FROM blobs WHERE key = ?"
RUN_ROW = "SELECT pipeline, status, requested, counts FROM runs WHERE run_id = ?"
ANY_PENDING = "SELECT count(*) FROM pending"
# How many times the cache table changed: triggers count every insert, update and delete
# (schema 5), so "the cache is as it was" is one row to read.
CACHE_GENERATION = "SELECT coalesce((SELECT value FROM generations WHERE name = 'cache'), 0)"


def outcomes_key(run_id: str) -> str:
    """Where a finished run's outcomes are kept among the blobs (any store)."""
    return f"targetrun-run:{run_id}:outcomes"  # no "://": never an inline value's location
