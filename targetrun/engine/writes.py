"""One run's checkpoint writes, in two phases (see store/base.py and storage/base.py).

Before an attempt runs, its checkpoint gets a *staging* place next to its target and the
store a pending record of the intent (:meth:`Writes.stage`); the worker writes there.
When the attempt succeeds, the record of what it wrote is *prepared* and the staged file
is moved onto the target (:meth:`Writes.commit`); the task's record then completes the
write. The intent and the task's record are *kept* by the store and commit with its next
write (group commit, see store/base.py): the intent with the claim of the task's lock,
before the attempt starts; the record with whatever the run writes next. The prepared
record alone is committed on its own, before the move, as it is what vouches for the
target until the task's record is in. An attempt that fails, and the end of the run,
remove what was staged (:meth:`Writes.forget`, :meth:`Writes.discard_all`). Whatever a
crash leaves half-way, the next run finishes or removes by the pending records
(engine/recovery.py): a target is never half-written, and the bytes at a target are
vouched for from the moment they appear.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Collection, Sequence

from targetrun import stopping
from targetrun.errors import TargetrunError
from targetrun.model import CacheEntry, Checkpoint, Location
from targetrun.storage.base import Storage
from targetrun.store.base import PendingWrite, StateStore


class Writes:
    def __init__(self, store: StateStore, storages: Callable[[str], Storage], run_id: str) -> None:
        self.store = store
        self.storages = storages
        self.run_id = run_id
        self._staged: dict[str, tuple[str, str]] = {}  # task -> (storage key, staging url), in flight

    def stage(self, task: str, checkpoint: Location, attempt: int) -> tuple[Storage, str]:
        """Where an attempt of ``task`` writes its checkpoint: the storage and a staging URL,
        recorded as pending before the attempt starts. The record is kept by the store to
        commit with the claim of the task's lock (group commit): the caller flushes the
        store before the attempt starts."""
        storage = self.storages(checkpoint.result)
        staging = storage.staging_url(checkpoint.url, f"{self.run_id}-{attempt}-{os.urandom(4).hex()}")
        absent = _absent(storage.local_path(checkpoint.url))
        # The intent kept and the run knowing of it are one step: a stop between the two left
        # the intent to commit with the end's writes, which remove only what the run knows of.
        with stopping.deferred():
            self.store.intend_write_soon(PendingWrite(self.run_id, checkpoint.url, staging, checkpoint.result,
                                                      absent=absent))
            self._staged[task] = (checkpoint.result, staging)
        return storage, staging

    def staged(self, task: str) -> tuple[Storage, str] | None:
        """The place an attempt of ``task`` staged and has not used yet, if any."""
        found = self._staged.get(task)
        return (self.storages(found[0]), found[1]) if found is not None else None

    def finished(self, task: str) -> str | None:
        """The staging URL of ``task``'s attempt, which has ended (None if it staged nothing)."""
        return self._staged.pop(task, (None, None))[1]

    def prepare(self, prepared: Sequence[tuple[str, Checkpoint, CacheEntry | None]]) -> None:
        """Prepare the records of several staged checkpoints ``(staging, checkpoint, entry)``
        in one write, before each is committed (``commit(..., prepared=True)``)."""
        self.store.prepare_writes(prepared)

    def commit(self, target: Location, staging: str, checkpoint: Checkpoint, entry: CacheEntry | None,
               *, prepared: bool = False, inside: tuple[str, str] | None = None) -> None:
        """Make a staged checkpoint the target: its record is prepared first (unless it was).
        ``inside``: the result location (as written, as it really is) a value led the target
        into; the move itself refuses a folder that is elsewhere now (Storage.commit_inside)."""
        try:
            if not prepared:
                self.store.prepare_write(staging, checkpoint, entry)
            storage = self.storages(target.result)
            if inside is None:
                storage.commit(staging, target.url)
            else:
                storage.commit_inside(staging, target.url, *inside)
        except BaseException:
            # The pending record stays: if the move did happen (a copy whose delete failed),
            # the next run finds the target matching the prepared record and commits it.
            with contextlib.suppress(TargetrunError):
                self._discard(target.result, staging)
            raise

    def forget(self, task: str) -> None:
        """An attempt of ``task`` failed: remove what it staged and its pending record -- one
        step: a stop once the run had let go of it, before it was removed, left it behind."""
        with stopping.deferred():
            storage_key, staging = self._staged.pop(task, (None, None))
            if storage_key is not None and staging is not None:
                self._forget(storage_key, staging)

    def discard_all(self, in_flight: Collection[str], *, stopped: bool = False) -> None:
        """At the end of a run no attempt of it commits any more: remove what they staged.
        An attempt still running (a Python task in a thread cannot be stopped) keeps its
        pending record, so the next run removes whatever it leaves behind -- and so does
        every write to an object store when a stop or a fault ended the run (``stopped``):
        a request already sent completes at the server whatever the client does next (an
        upload fsspec's own thread goes on with, the last one of a worker process that was
        killed), and one landing after this delete would leave a key nobody removes."""
        for task, (storage_key, staging) in self._staged.items():
            if task in in_flight or (stopped and not self._local(storage_key, staging)):
                with contextlib.suppress(TargetrunError):
                    self._discard(storage_key, staging)
            else:
                self._forget(storage_key, staging)
        self._staged.clear()

    def _local(self, storage_key: str, staging: str) -> bool:
        return self.storages(storage_key).local_path(staging) is not None

    def _forget(self, storage_key: str, staging: str) -> None:
        """Remove a staging file and its pending record; what fails here the next run redoes."""
        try:
            if self._discard(storage_key, staging):
                self.store.drop_pending(staging)
        except TargetrunError:
            pass

    def _discard(self, storage_key: str, staging: str) -> bool:
        """Remove a staging file; False when a stop or a fault ends the run and its remote
        storage did not answer within the grace (targetrun/stopping.py): its pending record
        then stays, and the next run removes it. A local file is always removed."""
        storage = self.storages(storage_key)
        if self._local(storage_key, staging):
            storage.discard(staging)
            return True
        return stopping.within_grace(lambda: storage.discard(staging))


def _absent(path: str | None) -> bool:
    """Whether nothing is at ``path`` (a target on local disk; None: elsewhere): what its
    attempt's own code writes there, a run killed whole leaves, and the next one removes
    (engine/recovery.py). One lstat; anything but "not there" counts as there."""
    if path is None:
        return False
    try:
        os.lstat(path)
    except FileNotFoundError:
        return True
    except (OSError, ValueError):
        return False
    return False
