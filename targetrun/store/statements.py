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
# Every cache entry under the keys of a JSON list, in one order: what a cache hit rested on.
CACHE_ROWS = ("SELECT key, variant, expires, created, record FROM cache "
              "WHERE key IN (SELECT value FROM json_each(?)) ORDER BY key, variant")


def outcomes_key(run_id: str) -> str:
    """Where a finished run's outcomes are kept among the blobs (any store)."""
    return f"targetrun-run:{run_id}:outcomes"  # no "://": never an inline value's location
