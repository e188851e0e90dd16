"""Thread and process pools over :mod:`concurrent.futures`.

Both tell the engine when an attempt really starts (see :mod:`targetrun.executors.base`):
a pool thread calls the hook directly; a pool process puts the notice on a queue it got
when it was spawned, and a thread here hands it to the hook. "Running" therefore means
"a worker thread or process has begun it", not "the pool has accepted it".
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from targetrun import stopping
from targetrun.executors.base import ExecutorOptions, StartHook, set_process_hook, set_thread_hook


class _Relay:
    """The executor's current start hook, read when a notice arrives (one per run)."""

    def __init__(self) -> None:
        self.hook: StartHook | None = None

    def __call__(self, task: str, ticket: int) -> None:
        hook = self.hook
        if hook is not None:
            hook(task, ticket)


class ThreadExecutor:
    in_process = True

    @classmethod
    def create(cls, options: ExecutorOptions) -> ThreadExecutor:
        return cls(max_workers=options.jobs)

    def __init__(self, max_workers: int = 2) -> None:
        self.max_workers = max_workers
        self.max_in_flight = 2 * max_workers
        self._relay = _Relay()
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="targetrun",
                                        initializer=set_thread_hook, initargs=(self._relay,))

    def watch_starts(self, hook: StartHook | None) -> None:
        self._relay.hook = hook

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Future[Any]:
        return self._pool.submit(fn, *args)

    def shutdown(self, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=not wait)


def _notify_through(queue: Any, ignored: frozenset[int], parent: int | None = None) -> None:
    """In a pool process, as it starts: start notices go back over ``queue``, and a stop
    signal ends the process with its commands (see :func:`targetrun.stopping.install_in_worker`)
    -- but those in ``ignored``, which the run keeps ignored (nohup). So does the end of the
    run's process (``parent``): no attempt goes on as an orphan."""
    stopping.install_in_worker(ignored)
    if parent is not None:
        stopping.end_with_parent(parent)
    pid = os.getpid()
    set_process_hook(lambda task, ticket: queue.put((task, ticket, pid)))  # the pid: see ProcessExecutor.spared
    _keep_own_fds()


def _keep_own_fds() -> None:
    """The worker's pipes to the run (its call and result queues, the start notices, the
    resource tracker's) are not handed on: ``spawn`` leaves them inheritable, and a command
    a task started in the background (``os.system("server &")``, ``Popen(close_fds=False)``)
    held them -- and with them the run's end (``targetrun run | cat``) -- as long as it ran.
    Such a command gets fds 0-2 only, as it does from the inline executor."""
    folder = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"
    try:
        fds = [int(name) for name in os.listdir(folder)]
    except (OSError, ValueError):
        return
    for fd in fds:
        if fd > 2:
            with contextlib.suppress(OSError):  # (the listing's own, closed by now)
                os.set_inheritable(fd, False)


# How a worker the broken pool ended itself exits: its SIGTERM, as the worker's handler
# ends with it (stopping.install_in_worker: 128 + 15), or as the signal's default.
_ENDED_BY_POOL = (-signal.SIGTERM, 128 + signal.SIGTERM)

WORKER_EXIT_GRACE = 1.0  # seconds a worker whose work is done gets to end on its own (moments, done)


class ProcessExecutor:
    """Worker processes (``spawn``: no fork of a process that holds threads and sockets).

    Each worker runs one attempt at a time and nothing else writes to its stdout, so an
    attempt takes over the worker's file descriptors 1 and 2 (``isolated``): what a task's
    subprocesses and C code print is its own.
    """

    in_process = False
    isolated = True

    @classmethod
    def create(cls, options: ExecutorOptions) -> ProcessExecutor:
        return cls(max_workers=options.jobs)

    def __init__(self, max_workers: int = 2) -> None:
        self.max_workers = max_workers
        self.max_in_flight = 2 * max_workers
        # not at import: multiprocessing (and the socket module it brings) costs every run
        # some 10 ms, and only this executor needs it
        import multiprocessing

        self._context = multiprocessing.get_context("spawn")
        self._relay = _Relay()
        self._workers: dict[int, Any] = {}  # every worker process the pool started, by pid
        # the broken pool's, while the attempts it lost are still being told (a retry submitted
        # first replaced it: those told after looked for their worker among the new pool's)
        self._broken: dict[int, Any] = {}
        self._ran_in: dict[int, int] = {}  # submission ticket -> the pid of the worker that began it
        self._pool = self._new_pool()

    def _new_pool(self) -> Any:
        """A pool, with a queue of start notices (and its reader) of its own: a worker killed
        while it put a notice holds that queue's write lock for ever, and the workers of a
        pool started after it would wait for it at their first attempt's start."""
        from concurrent.futures import ProcessPoolExecutor

        self._starts: Any = self._context.SimpleQueue()
        self._reader = threading.Thread(target=self._read_starts, args=(self._starts,), name="targetrun-starts",
                                        daemon=True)
        self._reader.start()
        return ProcessPoolExecutor(max_workers=self.max_workers, mp_context=self._context,
                                   initializer=_notify_through,
                                   initargs=(self._starts, stopping.kept_ignored(), os.getpid()))

    def _read_starts(self, starts: Any) -> None:
        while True:
            try:
                notice = starts.get()
            except (EOFError, OSError):
                return
            if notice is None:
                return
            task, ticket, pid = notice
            self._ran_in[ticket] = pid
            self._relay(task, ticket)

    def watch_starts(self, hook: StartHook | None) -> None:
        self._relay.hook = hook

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Future[Any]:
        from concurrent.futures.process import BrokenProcessPool

        try:
            future: Future[Any] = self._pool.submit(fn, *args)
        except BrokenProcessPool:
            # A worker died (the OOM killer, kill -9): the pool is unusable for good, and
            # the attempts it lost are the engine's to retry or fail. A retry -- or any task
            # submitted after -- gets a new pool; it raised out of the run (exit 4).
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._end_reader(wait=False)
            self._broken, self._workers = self._workers, {}
            self._pool = self._new_pool()
            future = self._pool.submit(fn, *args)
        self._workers.update(getattr(self._pool, "_processes", None) or {})
        return future

    def spared(self, exc: BaseException, ticket: int) -> bool:
        """Whether submission ``ticket``, lost with ``exc``, was lost only because a worker
        died and broke the pool before it began: it ran nothing, so the engine submits it
        again without counting an attempt. One that had begun counts its lost attempt, as
        any (its worker may have been ended by the pool -- or by a SIGTERM of its own or an
        admin's, which the exit code cannot tell apart; running it again for free ran a task
        without retries twice). (A worker that died before its start notice was read makes
        its task look spared once; the engine spares a task once.)"""
        from concurrent.futures.process import BrokenProcessPool

        return isinstance(exc, BrokenProcessPool) and self._ran_in.pop(ticket, None) is None

    def explain_loss(self, exc: BaseException) -> str | None:
        """How the worker whose death broke the pool ended ("killed by signal 9 (SIGKILL:
        ...)"; the pool's SIGTERM to the others it then ends is not that), and that the
        attempts beside it were lost with it. None when ``exc`` is not a broken pool's, or no
        worker is seen ended otherwise."""
        from concurrent.futures.process import BrokenProcessPool

        if not isinstance(exc, BrokenProcessPool):
            return None
        deadline = time.monotonic() + 5  # one wait for them all, not one for each (-j 16: a minute)
        for process in [*self._workers.values(), *self._broken.values()]:
            with contextlib.suppress(OSError, ValueError):
                # the pool ends them all; one killed can close its pipes before it is reaped
                process.join(max(0.0, deadline - time.monotonic()))
                code = process.exitcode
                if code is None or code == 0 or code in _ENDED_BY_POOL:
                    continue
                if code < 0:
                    name = signal.Signals(-code).name if -code in signal.valid_signals() else "?"
                    why = (": killed from outside, as the kernel does when memory runs out"
                           if -code == signal.SIGKILL else "")
                    how = f"was killed by signal {-code} ({name}{why})"
                else:
                    how = f"ended with exit code {code}"
                return f"a worker process of the pool {how}; every attempt running in the pool was lost with it"
        return None

    def shutdown(self, wait: bool = True) -> None:
        workers = list((getattr(self._pool, "_processes", None) or {}).values())
        if not wait:  # the run is stopping: no worker may go on with an attempt, or start the next one
            for process in workers:
                with contextlib.suppress(OSError):
                    process.terminate()
        # Not the pool's own wait: a worker's exit waits for every thread a task's code left
        # running in it (a library's, a pool never shut down), and held the run's end as long.
        self._pool.shutdown(wait=False, cancel_futures=not wait)
        # Returns once they have ended, so the run's undo of their attempts (Engine._end) comes
        # after their last write (a signal ends a worker at once: stopping.install_in_worker).
        # Done, a worker ends within moments; one that does not, a signal ends (its work is over).
        deadline = time.monotonic() + (stopping.STOP_GRACE if not wait else WORKER_EXIT_GRACE)
        for process in workers:
            with contextlib.suppress(OSError, ValueError):
                process.join(max(0.0, deadline - time.monotonic()))
                if process.is_alive() and wait:
                    process.terminate()
                    process.join(stopping.STOP_GRACE)
                if process.is_alive():  # stuck in C code that does not let the signal in
                    process.kill()
                    process.join(1)
        if wait:  # and the pool's own thread, which has nothing left to wait for
            self._pool.shutdown(wait=True)
        self._end_reader(wait)

    def _end_reader(self, wait: bool) -> None:
        """Have the reader of start notices end: a None through their queue, put by a thread
        of its own. A worker killed while it put a notice -- terminated by a stop, or by the
        kernel's OOM killer -- holds the queue's write lock for ever, and a put in this
        thread waited for it for ever: a stopped processes run hung in its end (found by
        stopping one at random moments). Left waiting, both threads end with the process."""
        ender = threading.Thread(target=self._starts.put, args=(None,), name="targetrun-starts-end", daemon=True)
        ender.start()
        if wait:
            ender.join(timeout=1)
            self._reader.join(timeout=0 if ender.is_alive() else 5)
