"""What the SQLite store and the no-op replay (:mod:`targetrun.replay`) both write and
read, written once: the replay records a run without importing the store.

Standard library only.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import stat

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
SIZE_LIMIT_HINT = ("This process may not write files that large (`ulimit -f`, RLIMIT_FSIZE): raise the limit, then run "
                   "again (targets already made are kept and trusted); the store itself is kept as it is.")
READ_ONLY_HINT = ("The folder that holds it is on a read-only file system: make it writable (or point `cache:` at "
                  "a writable place), then run again; the store itself is kept as it is.")


def busy(exc: BaseException) -> bool:
    """Whether SQLite gave up waiting for another connection's lock."""
    return "locked" in str(exc) or "busy" in str(exc)


def full(exc: BaseException) -> bool:
    """Whether the disk (or a quota) left no room: SQLITE_FULL, or ENOSPC/EDQUOT from the OS.
    Moving such a store aside (the hint for a damaged one) would lose its records for nothing."""
    return isinstance(exc, sqlite3.Error) and "is full" in str(exc) or \
        isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


def failure(exc: BaseException, path: str) -> tuple[str, str]:
    """What a store error that is not a busy lock says, and what to do about it. SQLite
    reports a full disk or a read-only mount while it sizes its shared-memory file or opens
    the database as a bare "disk I/O error" or "unable to open database file", which reads
    as damage -- and moving a store aside for that would lose its records for nothing -- so
    the file system that holds the store is asked too."""
    special = _special(path)
    if special:
        return f"cannot be used: {exc}", (f"It is {special}, not a database file: point `cache:` at a file path "
                                          "(the default is .targetrun/state.db) and leave that one as it is.")
    if _other_data(path):
        return f"cannot be used: {exc}", (
            "The file holds other data, not a SQLite database: `cache:` names the wrong file (it is left as it "
            "is) -- point it at a database path, such as the default .targetrun/state.db.")
    if full(exc) or _filesystem_says(path, full=True):
        return f"cannot be written: {exc}", FULL_HINT
    limit = _size_limit_reached(path, exc)
    if limit:
        return f"cannot be written: {exc} (it may not grow past {limit} bytes)", SIZE_LIMIT_HINT
    if _filesystem_says(path, full=False):
        return f"cannot be written: {exc}", READ_ONLY_HINT
    return f"cannot be used: {exc}", DAMAGED_HINT


_SQLITE_HEADER = b"SQLite format 3\x00"


def _other_data(path: str) -> bool:
    """Whether ``path`` is a file whose first bytes are text that no SQLite database starts
    with (``cache: tasks.py``): not a store that was damaged -- one whose header went is
    bytes of no one's choosing -- but the wrong file, which moving aside would only break.
    Never so in targetrun's own ``.targetrun/`` folder: a text file there is a damaged store."""
    if os.path.basename(os.path.dirname(os.path.abspath(path))) == ".targetrun":
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(len(_SQLITE_HEADER))
    except OSError:
        return False
    if len(head) < len(_SQLITE_HEADER) or head == _SQLITE_HEADER:
        return False
    try:
        return head.decode("utf-8").isprintable() or "\n" in head.decode("utf-8")
    except UnicodeDecodeError:
        return False


def _size_limit_reached(path: str, exc: BaseException) -> int:
    """The process's file size limit (``ulimit -f``) when it is what stopped the store, its
    write-ahead log or its journal growing: SQLite says only "disk I/O error" for the EFBIG
    of a write past it, which reads as damage -- and moving the store aside would lose its
    records for nothing. 0 when there is no limit or no file of the store is near it."""
    if isinstance(exc, OSError) and exc.errno == errno.EFBIG:
        pass
    elif not (isinstance(exc, sqlite3.Error) and "disk I/O error" in str(exc)):
        return 0
    try:
        import resource
    except ImportError:  # not POSIX
        return 0
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if limit == resource.RLIM_INFINITY or limit < 0:
        return 0
    for suffix in ("", "-wal", "-journal"):
        with contextlib.suppress(OSError):
            if os.stat(path + suffix).st_size + 2 * 65536 >= limit:  # a write of a few pages would cross it
                return int(limit)
    return 0


def _special(path: str) -> str:
    """What is at ``path`` when it is there and no regular file (``cache: /dev/null``,
    ``cache: .``): moving that aside, the hint for a damaged store, is never the fix."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return ""
    if stat.S_ISREG(mode):
        return ""
    return "a folder" if stat.S_ISDIR(mode) else "a device or other special file"


def _filesystem_says(path: str, *, full: bool) -> bool:
    """Whether the file system holding ``path`` has no room left for this user (``full``)
    or is mounted read-only; False when it cannot be asked."""
    folder = os.path.dirname(os.path.abspath(path))
    while folder and not os.path.isdir(folder):  # not made yet: the nearest folder that is
        parent = os.path.dirname(folder)
        if parent == folder:
            return False
        folder = parent
    try:
        fs = os.statvfs(folder)
    except OSError:
        return False
    # /proc, /sys and the like have no blocks at all: no room is not their failure
    return fs.f_blocks > 0 and fs.f_bavail == 0 if full else bool(fs.f_flag & os.ST_RDONLY)


def outcomes_key(run_id: str) -> str:
    """Where a finished run's outcomes are kept among the blobs (any store)."""
    return f"targetrun-run:{run_id}:outcomes"  # no "://": never an inline value's location
