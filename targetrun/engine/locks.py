"""Per-target locks for one run, with their leases renewed in the background.

Before a task runs, the engine takes a lock on its target (or, without one, its cache
key) in the state store. A second run that finds it held waits and then re-decides --
usually finding the target now exists -- instead of computing the same output twice.
While the run lasts, a daemon thread renews its heartbeat in the store (so ``history``
can tell a live run from one that died) and the leases of every lock it holds, so only a
crashed holder's lock expires. A holder on this machine whose process is gone
(kill -9) is recognised from the owner name ``host/pid/run`` and its lock broken at once;
a holder elsewhere is waited for until its lease expires.
"""

from __future__ import annotations

import os
import threading
import time

from targetrun.errors import BackendError
from targetrun.store.base import StateStore


class RunLocks:
    def __init__(self, store: StateStore, run_id: str, lease: float) -> None:
        self.store = store
        self.run_id = run_id
        self.owner = f"{_host()}/{os.getpid()}/{run_id}"
        self.lease = lease
        self._held: dict[str, str] = {}  # task -> lock name
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def claim(self, task: str, name: str | None) -> bool:
        """Hold ``name`` for ``task`` (True), or learn that another run holds it (False)."""
        if name is None or self._held.get(task) == name:
            return True
        if not self.store.acquire(name, self.owner, self.lease):
            holder = self.store.lock_owner(name)
            if holder is None or not _dead_here(holder):
                return False
            self.store.release(name, holder)  # its process is gone: no lease to wait out
            if not self.store.acquire(name, self.owner, self.lease):
                return False
        with self._guard:
            self._held[task] = name
        self._start_renewing()
        return True

    def release(self, task: str) -> None:
        with self._guard:
            name = self._held.pop(task, None)
        if name is not None:
            self.store.release(name, self.owner)

    def release_all(self) -> None:
        self._stop.set()
        for task in list(self._held):
            try:
                self.release(task)
            except BackendError:
                pass  # the lease expires on its own

    def start(self) -> None:
        """Begin renewing: the run's heartbeat always, its locks once it holds some."""
        self._start_renewing()

    def _start_renewing(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._renew_loop, name="targetrun-leases", daemon=True)
            self._thread.start()

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.lease / 3):
            with self._guard:
                names = list(self._held.values())
            try:
                self.store.heartbeat(self.run_id, time.time())
                if names:
                    self.store.renew(names, self.owner, self.lease)
            except BackendError:
                pass  # try again next period; a lost lease only risks duplicate work


def _dead_here(owner: str) -> bool:
    """Whether ``owner`` (``host/pid/run``) is a process on this machine that no longer runs."""
    host, _, rest = owner.partition("/")
    pid_text = rest.partition("/")[0]
    if host != _host() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _host() -> str:
    import socket  # only runs that take locks pay for it

    return socket.gethostname()
