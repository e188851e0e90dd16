"""``-j N`` from the run's own thread: commands side by side, as make runs them.

A pool thread per attempt mostly waits for its command -- but what Python it runs
around the command holds the interpreter the engine's thread needs, and each system call
of the engine's (a stat, a rename, a commit) then waits for it to let go: measured on
1,000 small commands at ``-j 2``, a stat of a missing target took 0.2 ms instead of
7 µs, and the run was 1.4-1.8x ``make -j2``. Here the engine's thread starts each command
itself and waits for all of them at once -- their output pipes and their ends, in one
``poll`` -- between its own work, as make does: no other thread runs Python meanwhile.

Only the attempts whose steps can be waited for that way run here (a shell task whose
files are all local, see :func:`targetrun.engine.work.stepped`); any other (a Python
task, a command that reads or writes an object store) goes to a thread pool of the same
size, made when first needed. Either way an attempt starts when one of ``max_workers``
places is free: submitted before, it is queued (the engine keeps a few more in flight
than run, as with a pool), and it starts as another ends -- the next command right
after the last one's end, before the engine's own work for that end.

The engine calls :meth:`LoopExecutor.pump` where it would sleep until an attempt ends.
A stop (Ctrl-C, SIGTERM) raised there or in a task's steps ends the run; its end calls
:meth:`LoopExecutor.shutdown` with ``wait=False``, which closes the steps of every
command still waited for: each kills its command, with all it started, as a pool thread
does (targetrun/engine/work.py, ``_call_shell``).
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import CancelledError, Future
from typing import Any

from targetrun.executors.base import ExecutorOptions, StartHook, set_thread_hook, thread_hook

_LEFT_OPEN_POLL = 0.1  # seconds: without pidfds, how often an exited command is looked for


class _Waiting:
    """An attempt whose command runs: its steps, and what the command printed so far."""

    __slots__ = ("future", "steps", "running", "collector", "pidfd")

    def __init__(self, future: Future[Any], steps: Any, running: Any, collector: Any, pidfd: int | None) -> None:
        self.future = future
        self.steps = steps
        self.running = running
        self.collector = collector
        self.pidfd = pidfd  # readable once the command has exited (None: not on this system)


class LoopExecutor:
    in_process = True

    @classmethod
    def create(cls, options: ExecutorOptions) -> LoopExecutor:
        return cls(max_workers=options.jobs)

    def __init__(self, max_workers: int = 2) -> None:
        self.max_workers = max_workers
        self.max_in_flight = 2 * max_workers  # as a pool: the next ones wait queued, none idles between tasks
        self._queued: deque[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]] = deque()
        self._places = max_workers  # attempts that may start now
        self._freed = 0  # places freed by attempts in threads, not taken back yet (under _guard)
        self._guard = threading.Lock()
        self._hook: StartHook | None = None
        self._threads: Any = None  # a ThreadExecutor, for attempts that cannot wait here
        self._starter: Any = None  # the thread that starts commands (see _start_command)
        self._starting: dict[Any, Any] = {}  # steps -> the command being started for them
        self._started: deque[tuple[Future[Any], Any, Future[Any]]] = deque()  # from the starter (under _guard)
        self._poller = select.poll()
        self._by_fd: dict[int, _Waiting] = {}
        self._waiting: dict[_Waiting, None] = {}  # in start order
        # Attempts in threads end (and start) in other threads: each then writes a byte here,
        # so a pump that waits for commands wakes for them too.
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._poller.register(self._wake_r, select.POLLIN)

    def watch_starts(self, hook: StartHook | None) -> None:
        self._hook = hook
        if self._threads is not None:
            self._threads.watch_starts(self._from_thread(hook))

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        self._queued.append((future, fn, args))
        self._start_queued()
        return future

    def _start_queued(self) -> None:
        """Start queued attempts while a place is free: its command, or its thread."""
        if self._freed:
            with self._guard:
                self._places, self._freed = self._places + self._freed, 0
        while self._queued and self._places > 0:
            future, fn, args = self._queued.popleft()
            if not future.set_running_or_notify_cancel():
                continue
            self._places -= 1
            stepped = getattr(fn, "stepped", None)
            steps = stepped(*args) if stepped is not None else None
            if steps is None:
                self._in_thread(future, fn, *args)
            else:
                self._advance(future, steps, None, None)

    def pump(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for what the commands in flight print and for
        their ends (and for attempts in threads); each attempt whose command ended goes on
        with its steps here, and its future is done."""
        self._start_queued()
        if self._waiting and any(w.pidfd is None for w in self._waiting):
            timeout = min(timeout, _LEFT_OPEN_POLL)
        ready = self._poller.poll(max(0, int(timeout * 1000 + 0.999)))
        touched: dict[_Waiting, None] = {}
        for fd, events in ready:
            if fd == self._wake_r:
                with contextlib.suppress(BlockingIOError):
                    while os.read(self._wake_r, 4096):
                        pass
                continue
            waiting = self._by_fd.get(fd)
            if waiting is None:
                continue
            touched[waiting] = None
            if fd != waiting.pidfd and not waiting.collector.read(fd, events):
                self._unwatch_fd(fd)
        for waiting in [w for w in self._waiting if w.pidfd is None] if len(touched) < len(self._waiting) else ():
            touched[waiting] = None  # no pidfd: an exited command is found by looking
        for waiting in touched:
            self._settle(waiting)
        self._take_started()
        self._start_queued()

    def shutdown(self, wait: bool = True) -> None:
        """End: any command still waited for is killed by its steps (closed), as the run
        is stopping (or nothing is left: a run that ends by itself waited for them all);
        nothing queued starts."""
        for future, _, _ in self._queued:
            future.cancel()
        self._queued.clear()
        if self._starter is not None:  # the start under way ends first: its steps then kill what it started
            self._starter.shutdown(wait=True, cancel_futures=True)
        for steps in list(self._starting):
            self._starting.pop(steps, None)
            with contextlib.suppress(Exception):
                steps.close()
        for waiting in list(self._waiting):
            self._forget(waiting)
            with contextlib.suppress(Exception):
                waiting.steps.close()
        if self._threads is not None:
            self._threads.shutdown(wait=wait)
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._wake_r = self._wake_w = -1

    # -- steps ---------------------------------------------------------------------

    def _advance(self, future: Future[Any], steps: Any, said: Any, thrown: BaseException | None) -> None:
        """Run an attempt's steps up to its next command (then wait for it) or its end. A
        stop raised in them goes on up: it ends the run."""
        before = thread_hook()
        set_thread_hook(self._hook)  # the start notice comes from this thread, at once
        try:
            running = steps.send(said) if thrown is None else steps.throw(thrown)
        except StopIteration as done:
            self._places += 1
            future.set_result(done.value)
            return
        except Exception as exc:  # the engine decides what an exception means
            self._places += 1
            future.set_exception(exc)
            return
        finally:
            set_thread_hook(before)
        if hasattr(running, "start"):  # a command to start: the starter thread does, this one goes on
            self._start_command(future, steps, running)
        else:
            self._watch(future, steps, running)

    def _start_command(self, future: Future[Any], steps: Any, starting: Any) -> None:
        """A command is started by a thread of its own, which this one hands it to: the
        start waits for the new process to execute its program (about 0.5 ms a command,
        without the interpreter lock), time the loop spends on the others' records."""
        if self._starter is None:
            from concurrent.futures import ThreadPoolExecutor

            self._starter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="targetrun-starter")
        self._starting[steps] = starting
        self._starter.submit(starting.start).add_done_callback(
            lambda done: self._started_in_thread(future, steps, done))

    def _started_in_thread(self, future: Future[Any], steps: Any, done: Future[Any]) -> None:
        with self._guard:
            self._started.append((future, steps, done))
        self._wake()

    def _take_started(self) -> None:
        """Commands the starter started (or could not): their steps go on here."""
        while self._started:
            with self._guard:
                future, steps, done = self._started.popleft()
            if self._starting.pop(steps, None) is None:
                continue  # closed meanwhile (the end): its steps killed what it started
            if done.cancelled():
                self._advance(future, steps, None, CancelledError())
                continue
            exc = done.exception()
            self._advance(future, steps, None if exc is not None else done.result(), exc)

    def _watch(self, future: Future[Any], steps: Any, running: Any) -> None:
        collector = running.collector()
        pidfd = None
        with contextlib.suppress(AttributeError, OSError):  # no pidfds (not Linux, or before 5.3): looked for
            pidfd = os.pidfd_open(running.process.pid)
        waiting = _Waiting(future, steps, running, collector, pidfd)
        self._waiting[waiting] = None
        for fd in [*collector.reading, *([pidfd] if pidfd is not None else [])]:
            self._poller.register(fd, select.POLLIN)
            self._by_fd[fd] = waiting

    def _settle(self, waiting: _Waiting) -> None:
        """Once the command has exited and its pipes are read to their end (or what a
        process it left behind holds is handed elsewhere), its steps go on."""
        process = waiting.running.process
        if waiting.collector.reading:
            if process.poll() is None:
                return  # still running and printing
            for fd in list(waiting.collector.reading):
                self._unwatch_fd(fd)
            waiting.collector.take_rest()
        code = process.poll()
        if code is None:
            return  # its pipes ended before it did: its pidfd (or the next look) tells its end
        self._forget(waiting)
        self._advance(waiting.future, waiting.steps, (waiting.collector.text(), code), None)

    def _forget(self, waiting: _Waiting) -> None:
        self._waiting.pop(waiting, None)
        for fd in [fd for fd, w in self._by_fd.items() if w is waiting]:
            self._unwatch_fd(fd)
        if waiting.pidfd is not None:
            with contextlib.suppress(OSError):
                os.close(waiting.pidfd)
            waiting.pidfd = None

    def _unwatch_fd(self, fd: int) -> None:
        if self._by_fd.pop(fd, None) is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._poller.unregister(fd)

    # -- attempts in threads -------------------------------------------------------

    def _in_thread(self, outer: Future[Any], fn: Callable[..., Any], *args: Any) -> None:
        """A pool thread runs it (at once: the pool has a thread per place); ``outer`` is
        done (the engine's callbacks run) before the byte that wakes a pump is written,
        so the pump's caller finds it done."""
        if self._threads is None:
            from targetrun.executors.local import ThreadExecutor

            self._threads = ThreadExecutor(max_workers=self.max_workers)
            self._threads.watch_starts(self._from_thread(self._hook))
        self._threads.submit(fn, *args).add_done_callback(lambda inner: self._relay(inner, outer))

    def _relay(self, inner: Future[Any], outer: Future[Any]) -> None:
        exc = CancelledError() if inner.cancelled() else inner.exception()
        with self._guard:
            self._freed += 1
        if exc is not None:
            outer.set_exception(exc)
        else:
            outer.set_result(inner.result())
        self._wake()

    def _from_thread(self, hook: StartHook | None) -> StartHook | None:
        if hook is None:
            return None

        def notice(task: str, ticket: int) -> None:
            hook(task, ticket)
            self._wake()

        return notice

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # full (a wake-up is pending anyway) or closed (the end)
            os.write(self._wake_w, b"!")
