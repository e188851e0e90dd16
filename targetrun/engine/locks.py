"""Per-target locks for one run, with their leases renewed in the background.

Before a task runs, the engine takes a lock on its target (or, without one, its cache
key) in the state store. A second run that finds it held waits and then re-decides --
usually finding the target now exists -- instead of computing the same output twice.

Liveness is decided by the lease, never by a process id alone. While a task runs, a
daemon thread renews the lease of every lock this run holds once per *heartbeat*
(``min(lease / 3, 1 s)``), so a holder that stops renewing is gone (or hung). The owner
name ``host/pidns/pid/run/lease=SECONDS`` -- the run's own owner (see
:func:`targetrun.liveness.owner_id`), its run id and its lease -- tells a waiter the
holder's lease, hence when it last renewed. A lock is taken over when its lease has
expired; earlier only when its holder is a process of this host *and* PID namespace that
is gone *and* it has missed :data:`MISSED_BEATS` heartbeats -- a kill -9 is recovered
from in seconds, while a live holder in another PID namespace with the same host name
(containers) keeps its lock.

The same thread renews the run's own heartbeat in the store, so ``history`` can tell a
live run from one that died (see :mod:`targetrun.liveness`).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping

from targetrun import liveness, stopping
from targetrun.errors import BackendError
from targetrun.store.base import StateStore

HEARTBEAT = 1.0  # seconds between renewals, at most
MISSED_BEATS = 3  # heartbeats a dead-looking local holder must miss before its lock is broken
RENEWAL_JOIN = 5.0  # seconds the end of a run waits for a renewal under way (the store may be slow)
# A lease no run takes: a lock held longer by an owner whose lease is unknown is data
# another process left (an expiry of 1e308 stopped every later run of its target).
FOREIGN_LEASE = 24 * 3600.0
_OWNER = re.compile(r"^(?P<process>[^/]*/[^/]*/\d+)/(?P<run>.*)/lease=(?P<lease>[0-9.]+)$")


def heartbeat(lease: float) -> float:
    """How often a holder with ``lease`` renews it."""
    return min(lease / 3, HEARTBEAT)


class RunLocks:
    def __init__(self, store: StateStore, run_id: str, lease: float) -> None:
        self.store = store
        self.run_id = run_id
        self.owner = f"{liveness.owner_id()}/{run_id}/lease={lease:g}"
        self.lease = lease
        self._held: dict[str, str] = {}  # task -> lock name
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def claim(self, task: str, name: str | None) -> bool:
        """Hold ``name`` for ``task`` (True), or learn that another run holds it (False)."""
        if name is None or self._held.get(task) == name:
            return True
        # Taken and known to be held in one step: a stop raised between the two left the lock
        # in the store, out of release_all's reach (the next run waited for its lease).
        with stopping.deferred():
            if not self.store.acquire(name, self.owner, self.lease):
                held = self.store.lock_lease(name)
                if held is None or not _abandoned(*held):
                    return False
                self.store.release(name, held[0])  # its process is gone and it stopped renewing
                if not self.store.acquire(name, self.owner, self.lease):
                    return False
            with self._guard:
                self._held[task] = name
        self._start_renewing()
        return True

    def claim_many(self, wanted: Mapping[str, str | None]) -> set[str]:
        """:meth:`claim` for each task (``task -> lock name``), the free locks taken in one
        write: the tasks that now hold theirs."""
        asked = {task: name for task, name in wanted.items() if name is not None and self._held.get(task) != name}
        claimed = {task for task in wanted if task not in asked}
        names = list(dict.fromkeys(asked.values()))
        with stopping.deferred():  # taken and known to be held in one step (see claim)
            # (a store failing part-way lets go of what it took: StateStore.acquire_many)
            taken = self.store.acquire_many(names, self.owner, self.lease) if asked else set()
            with self._guard:
                for task, name in asked.items():
                    if name in taken:
                        self._held[task] = name
                        claimed.add(task)
        for task, name in asked.items():
            if name not in taken and self.claim(task, name):  # held by another run: taken over if abandoned
                claimed.add(task)
        if taken:
            self._start_renewing()
        return claimed

    def release(self, task: str) -> None:
        """Let ``task``'s lock go with the store's next write (group commit): after the task's
        record, which the engine kept just before, so a run waiting for the lock finds it."""
        with stopping.deferred():  # let go of and kept to release in one step (see claim)
            with self._guard:
                name = self._held.pop(task, None)
            if name is not None:
                self.store.release_soon(name, self.owner)

    def release_all(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            # Its renewal ends before the run does (and the store closes); once stopping,
            # or on a fault, its wait for a locked store is short (targetrun/stopping.py).
            self._thread.join(timeout=RENEWAL_JOIN)
        for task in list(self._held):
            with self._guard:
                name = self._held.pop(task, None)
            try:
                if name is not None:
                    self.store.release(name, self.owner)
            except BackendError:
                pass  # the lease expires on its own

    def start(self) -> None:
        """Begin renewing: the run's heartbeat always, its locks once it holds some."""
        self._start_renewing()

    def _start_renewing(self) -> None:
        if self._thread is not None:  # (asked on every claim: running already, as a rule)
            return
        # Made and started in one step: a stop between the two left a thread release_all
        # cannot join (a RuntimeError instead of the stop's clean end).
        with stopping.deferred():
            if self._thread is None:
                self._thread = threading.Thread(target=self._renew_loop, name="targetrun-leases", daemon=True)
                self._thread.start()

    def _renew_loop(self) -> None:
        while not self._stop.wait(heartbeat(self.lease)):
            with self._guard:
                names = list(self._held.values())
            try:
                self.store.heartbeat(self.run_id, time.time())
                if names:
                    self.store.renew(names, self.owner, self.lease)
            except BackendError:
                pass  # try again next period; a lost lease only risks duplicate work


def held_by_run(store: StateStore, name: str, run_id: str) -> bool:
    """Whether run ``run_id`` holds lock ``name`` and is not gone (see :func:`_abandoned`):
    a sign of life that does not depend on the run's record (recovery asks it of a pending
    write whose run has no readable record). True too when the store cannot tell."""
    try:
        held = store.lock_lease(name)
    except BackendError:
        return True
    if held is None:
        return False
    match = _OWNER.match(held[0])
    return match is not None and match["run"] == run_id and not _abandoned(*held)


def _abandoned(owner: str, left: float) -> bool:
    """Whether the holder ``owner``, whose lease has ``left`` seconds to run, is gone: its
    process is gone from this host and PID namespace *and* it has missed
    :data:`MISSED_BEATS` renewals -- or the row is none its holder wrote: more left than
    the lease it declares (or than :data:`FOREIGN_LEASE`, its lease unknown)."""
    match = _OWNER.match(owner)
    if match is None:  # another form (an older targetrun): waited out -- unless no lease is that long
        return left > FOREIGN_LEASE
    try:
        lease = float(match["lease"])
    except ValueError:
        return False
    if left > 2 * lease + 1:  # its holder renews to its lease at most: a row another process wrote
        return True
    silent = lease - left  # seconds since the holder last renewed
    if silent <= MISSED_BEATS * heartbeat(lease) + 0.5:  # half a second for a busy machine's timer
        return False
    return liveness.gone_here(match["process"])
