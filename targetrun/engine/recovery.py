"""Finish what a stopped run left half-way: pending checkpoint writes (store/base.py).

A run that was interrupted, failed to reach its store, or died (``kill -9``, a lost
machine) can leave pending writes. Before a new run plans, each pending write of a run that
is no longer alive is resolved:

* its target holds exactly the bytes of the prepared record (the move happened, the
  commit did not) -> the record is committed: the project's own output stays trusted;
* anything else -> its staging file is removed, and the pending write dropped once its run
  has been gone for :data:`STRAGGLER_GRACE` (an object store may still complete an upload
  sent just before the end); whatever is at the target keeps the record it had.

A pending write whose staging name is not its target's staging sibling
(``.NAME.targetrun-TOKEN`` beside it) was not written by targetrun -- a store is data
another process may have changed --: its row is dropped and the path it names left alone.
Pending writes of a live run (another process, now) are left alone, and so are those in a
local folder this machine does not have (a clone elsewhere sharing the store cleans up
its own).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable

from targetrun import liveness
from targetrun.errors import TargetrunError
from targetrun.fingerprint import stream_digest
from targetrun.model import Checkpoint
from targetrun.resolve import LOCAL
from targetrun.storage.base import Storage, is_staging_of
from targetrun.store.base import PendingWrite, RunRecord, RunStatus, StateStore


def recover(store: StateStore, storages: Callable[[str], Storage], now: float, lease: float) -> int:
    """Resolve the pending writes of runs that are gone; return how many were resolved."""
    resolved = 0
    for pending in store.pending_writes():
        if not is_staging_of(pending.staging, pending.location):
            # Not a write targetrun prepared (a row someone else put in the store): its
            # "staging file" may be any file or folder, which is not ours to remove.
            store.drop_pending(pending.staging)
            continue
        if pending.storage == LOCAL and not os.path.isdir(os.path.dirname(pending.staging)):
            continue  # another machine's folder: its own next command resolves it
        run = store.run(pending.run_id)
        if _alive(run, now, lease):
            continue
        storage = storages(pending.storage)
        if pending.checkpoint is not None and holds(storage, pending.location, pending.checkpoint):
            # The move happened; on an object store it is a copy then a delete, and the run
            # may have died between the two: the staging copy goes too.
            with contextlib.suppress(TargetrunError):
                storage.discard(pending.staging)
            store.record_task(None, pending.checkpoint, pending.entry, staging=pending.staging)
        else:
            _discard(store, storage, pending, settled=_gone_long(run, now))
        resolved += 1
    return resolved


# An object store may still complete an upload its client sent just before it died: the
# record of a staging file stays this long after its run's last sign of life, so a later
# run removes such a straggler too.
STRAGGLER_GRACE = 30.0


def _gone_long(run: RunRecord | None, now: float) -> bool:
    if run is None:
        return True
    last = run.heartbeat if run.heartbeat is not None else run.started
    return now - last > STRAGGLER_GRACE


def holds(storage: Storage, location: str, checkpoint: Checkpoint) -> bool:
    """Whether ``location`` holds exactly the bytes ``checkpoint`` records."""
    with contextlib.suppress(FileNotFoundError):
        stat = storage.info(location)
        if stat is None or (stat.size is not None and stat.size != checkpoint.size):
            return False
        with storage.open_read(location) as f:
            size, digest = stream_digest(f)
        return size == checkpoint.size and digest == checkpoint.content_hash
    return False


def _alive(run: RunRecord | None, now: float, lease: float) -> bool:
    if run is None or run.status is not RunStatus.RUNNING:
        return False
    return not liveness.is_dead(run.owner, run.heartbeat, now, lease)


def _discard(store: StateStore, storage: Storage, pending: PendingWrite, *, settled: bool) -> None:
    try:
        storage.discard(pending.staging)
    except TargetrunError:
        return  # the record stays until the staging file is gone: the next run tries again
    if settled:
        store.drop_pending(pending.staging)
