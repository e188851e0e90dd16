"""Finish what a stopped run left half-way: pending checkpoint writes (store/base.py).

A run that was interrupted, failed to reach its store, or died (``kill -9``, a lost
machine) can leave pending writes. Before a new run plans, each pending write of a run that
is no longer alive is resolved:

* its target holds exactly the bytes of the prepared record (the move happened, the
  commit did not) -> the record is committed: the project's own output stays trusted;
* anything else -> its staging file is removed, and the pending write dropped once its run
  has been gone for :data:`STRAGGLER_GRACE` (an object store may still complete an upload
  sent just before the end); whatever is at the target keeps the record it had -- unless
  nothing was there when the attempt was staged (``absent``, local disk): then what is there
  now the attempt's own code wrote (``printf half > o.txt``, the run killed whole before it
  could undo it, as engine/work.py does when it can), and it goes, as make's
  ``.DELETE_ON_ERROR`` -- unless a committed record vouches for its bytes (another run made
  it since), another run still alive is writing it, or it changed after its run's last
  sign of life (someone else put it there since). A file that was there before is never
  removed.

A pending write whose staging name is not its target's staging sibling with a token of
its own run (``.NAME.targetrun-RUN-ATTEMPT-XXXXXXXX`` beside it, as engine/writes.py names
it) was not written by targetrun -- a store is data another process may have changed --:
its row is dropped and the path it names left alone. One that lies outside every result
location of this pipeline (and of another clone of its project on this machine) --
another folder or bucket, a ``..`` segment, a symlinked folder that leads out -- is left
alone, row and file: it may be another pipeline's (a shared store), and no row may lead
recovery to remove a file anywhere else.
Pending writes of a live run (another process, now) are left alone -- also one whose run
record is gone (deleted from the store, unreadable) while that run holds its target's lock --,
and so are those in a
local folder this machine does not have (a clone elsewhere sharing the store cleans up
its own).
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable, Collection

from targetrun import liveness
from targetrun.engine.locks import held_by_run
from targetrun.errors import TargetrunError
from targetrun.fingerprint import stream_digest
from targetrun.model import Checkpoint, Location, PipelineSpec
from targetrun.resolve import LOCAL, result_roots
from targetrun.storage.base import Storage, is_staging_of, staging_sibling
from targetrun.store.base import PendingWrite, RunRecord, RunStatus, StateStore


def recover(store: StateStore, storages: Callable[[str], Storage], now: float, lease: float, *,
            spec: PipelineSpec) -> int:
    """Resolve the pending writes of runs that are gone, within the result locations of
    ``spec`` (or of a clone of its project: see :func:`inside`); return how many were resolved."""
    resolved = 0
    roots = result_roots(spec)
    for pending in store.pending_writes():
        if not staged_by_its_run(pending):
            # Not a write targetrun prepared (a row someone else put in the store): its
            # "staging file" may be any file or folder, which is not ours to remove.
            store.drop_pending(pending.staging)
            continue
        if not (inside(pending, roots) or in_a_clone(pending, spec, roots)):
            continue  # another pipeline's place, or a row that leads out: not ours to touch
        if pending.storage == LOCAL and not os.path.isdir(os.path.dirname(pending.staging)):
            continue  # another machine's folder: its own next command resolves it
        run = store.run(pending.run_id)
        if _alive(run, now, lease) or (run is None and held_by_run(store, f"target:{pending.location}", pending.run_id)):
            continue  # (a run whose record is gone -- deleted, unreadable -- is alive while it holds its target's lock)
        storage = storages(pending.storage)
        if pending.checkpoint is not None and holds(storage, pending.location, pending.checkpoint):
            # The move happened; on an object store it is a copy then a delete, and the run
            # may have died between the two: the staging copy goes too.
            with contextlib.suppress(TargetrunError):
                storage.discard(pending.staging)
            store.record_task(None, pending.checkpoint, pending.entry, staging=pending.staging)
        else:
            if pending.absent:
                _remove_made_target(store, storage, pending, run, now, lease)
            _discard(store, storage, pending, settled=_gone_long(run, now))
        resolved += 1
    return resolved


_TOKEN_TAIL = re.compile(r"-[0-9]+-[0-9a-f]+")  # what engine/writes.py adds to the run id (8 hex digits now)


def staged_by_its_run(pending: PendingWrite) -> bool:
    """Whether ``pending`` names its target's staging sibling with the token a run of its
    ``run_id`` gives a staging file (``RUN-ATTEMPT-HEX``, engine/writes.py).

    >>> from targetrun.store.base import PendingWrite
    >>> ok = PendingWrite("r1", "/p/out/x.json", "/p/out/.x.json.targetrun-r1-2-0a1b2c3d", "local")
    >>> staged_by_its_run(ok), staged_by_its_run(PendingWrite("r2", ok.location, ok.staging, "local"))
    (True, False)
    >>> staged_by_its_run(PendingWrite("r1", "/p/out/x.json", "/p/out/.x.json.targetrun-mine", "local"))
    False
    """
    run_id = pending.run_id
    if not run_id or any(c in run_id for c in "/\\\0") or not is_staging_of(pending.staging, pending.location):
        return False
    token = pending.staging[len(staging_sibling(pending.location, "")):]
    return token.startswith(run_id) and _TOKEN_TAIL.fullmatch(token, len(run_id)) is not None


def inside(pending: PendingWrite, roots: Collection[Location]) -> bool:
    """Whether ``pending``'s staging file lies inside one of the result locations ``roots``
    of its storage: below the folder or prefix, with no ``.`` or ``..`` segment, and -- on
    local disk -- its folder really there, not reached through a symlink that leads out."""
    staging = pending.staging
    for root in roots:
        if root.result != pending.storage:
            continue
        if pending.storage == LOCAL:
            base = root.url.rstrip(os.sep) or os.sep
            if os.path.normpath(staging) != staging or not staging.startswith(base.rstrip(os.sep) + os.sep):
                continue
            real_root, real_folder = os.path.realpath(base), os.path.realpath(os.path.dirname(staging))
            if real_folder == real_root or real_folder.startswith(real_root.rstrip(os.sep) + os.sep):
                return True
        else:
            base = root.url.rstrip("/")
            rest = staging[len(base) + 1:] if staging.startswith(base + "/") else ""
            if rest and all(part not in ("", ".", "..") for part in rest.split("/")):
                return True
    return False


def in_a_clone(pending: PendingWrite, spec: PipelineSpec, roots: Collection[Location]) -> bool:
    """Whether ``pending`` lies in a local result location of another clone of this
    project on this machine (two clones side by side may share one state store): in
    ``CLONE/REL`` for a result location ``REL`` inside this project, where ``CLONE`` is a
    folder holding a Pipelinefile of the same file name."""
    if pending.storage != LOCAL or os.path.normpath(pending.staging) != pending.staging:
        return False
    for root in roots:
        if root.result != LOCAL or not _within(root.url, spec.root):
            continue
        relative = os.path.relpath(root.url, spec.root)
        clone = os.path.dirname(pending.staging)
        while clone != os.path.dirname(clone):
            clone = os.path.dirname(clone)
            base = os.path.normpath(os.path.join(clone, relative))
            if clone != spec.root and os.path.isfile(os.path.join(clone, os.path.basename(spec.path))) \
                    and inside(pending, [Location(LOCAL, base)]):
                return True
    return False


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


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


# A run renews its heartbeat at least once a second (engine/locks.py); a target that changed
# later than this after the last one was not changed by that run.
_LAST_SIGN_SLACK = 10.0


def _remove_made_target(store: StateStore, storage: Storage, pending: PendingWrite, run: RunRecord | None,
                        now: float, lease: float) -> None:
    """Remove what a dead run's attempt made at a target that was absent before it (see the
    module docstring); leave anything another run or person may have put there."""
    path = storage.local_path(pending.location)
    if path is None or run is None or run.status is not RunStatus.RUNNING:
        return  # a run that ended undid what its attempts made; a row without its run: cannot tell
    try:
        changed = os.lstat(path).st_ctime
    except (OSError, ValueError):
        return  # nothing there (or nothing to tell)
    # (the wall clock, as the heartbeat thread writes it and the disk stamps ctime: TARGETRUN_NOW
    # moves ``now``; a row's future is no sign of life)
    last = min(run.heartbeat if run.heartbeat is not None else run.started, time.time())
    if changed > last + _LAST_SIGN_SLACK:
        return
    record = store.checkpoints([pending.location]).get(pending.location)
    try:
        if record is not None and holds(storage, pending.location, record):
            return
    except (OSError, TargetrunError):
        return  # cannot tell: left
    for other in store.pending_writes(pending.location):
        if other.run_id != pending.run_id and _alive(store.run(other.run_id), now, lease):
            return
    with contextlib.suppress(TargetrunError):
        storage.remove(pending.location)  # a folder whole, a symlink itself


def _discard(store: StateStore, storage: Storage, pending: PendingWrite, *, settled: bool) -> None:
    try:
        storage.discard(pending.staging)
    except TargetrunError:
        return  # the record stays until the staging file is gone: the next run tries again
    if settled:
        store.drop_pending(pending.staging)
