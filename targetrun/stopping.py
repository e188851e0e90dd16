"""Stopping on a signal: Ctrl-C (SIGINT) and SIGTERM, as a terminal and CI send them.

The first signal raises :class:`Stopped` (a ``KeyboardInterrupt``) in the main thread,
so the run unwinds through its ``finally`` blocks: running shell commands are killed with
their whole process group, staging files are removed, no checkpoint is committed any more,
and the run is recorded as interrupted. The exit code then is 128 + the signal number
(130 for SIGINT, 143 for SIGTERM), as a shell reports a process killed by it. A second
signal while that happens exits at once with the same code, killing the running commands
first (no more): the next run cleans up what is left (pending writes, see store/base.py).

A signal can arrive while a finalizer (``__del__``) or a weakref callback runs -- the import
system runs such callbacks all the time. The interpreter cannot raise out of those: it
prints "Exception ignored in ..." and drops the exception, and the run would go on as if
never stopped. So :func:`install` also takes the hook those dropped exceptions go to
(``sys.unraisablehook``): a dropped :class:`Stopped` is delivered again, as the same
signal, to the code that runs next.

Two rules keep a stop from breaking what it interrupts:

* A store transaction is one step (:func:`deferred`): a first signal that arrives while
  one is open -- between its BEGIN and its COMMIT, or between the COMMIT and the store
  forgetting the writes it kept for it -- is raised when the transaction is over, not in
  the middle (a transaction left open would fail every later write; writes kept and
  committed but not forgotten would be applied twice). A second signal still exits at once.
* Once stopping, a wait for another process (a store's lock, a bucket's answer:
  :func:`within_grace`) is short: every such wait
  ends by :data:`STOP_GRACE` seconds after the first signal (:func:`wait_until`), so the
  clean-up records what it can and the command exits within seconds, as asked. A command
  ending on an error (a store that stayed locked) cleans up the same way (:func:`hurried`):
  it does not wait the store's whole timeout again for each record it would still write.

Standard library only: this is installed before anything else is imported.
"""

from __future__ import annotations

import _thread
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stopped(KeyboardInterrupt):
    """The process was asked to stop by a signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.exit_code = 128 + signum


def install() -> None:
    """Handle SIGINT and SIGTERM in this (main) thread from now on."""
    global _previous_hook
    for signum in SIGNALS:
        signal.signal(signum, _on_signal)
    if sys.unraisablehook is not _redeliver_dropped_stop:
        _previous_hook = sys.unraisablehook
        sys.unraisablehook = _redeliver_dropped_stop


_previous_hook: Any = sys.__unraisablehook__


def _redeliver_dropped_stop(unraisable: Any) -> None:
    """A :class:`Stopped` raised inside a finalizer or callback, which the interpreter
    drops: send the signal again, so it stops the code that runs next. Anything else goes
    to the hook that was there before."""
    global _stopping
    if isinstance(unraisable.exc_value, Stopped):
        _stopping = False  # the same first signal, not a second one
        # Not handled in here (the hook's own exception would be dropped too): another
        # thread marks the signal as arrived once this one lets go of the interpreter, and
        # the main thread runs the handler at its next instruction, past the finalizer.
        _thread.start_new_thread(_interrupt_main, (unraisable.exc_value.signum,))
        return
    _previous_hook(unraisable)


def _interrupt_main(signum: int) -> None:
    _thread.interrupt_main(signal.Signals(signum))


def ignore() -> None:
    """From now on SIGINT and SIGTERM are ignored: the command has finished, and only its
    exit code is left to give."""
    for signum in SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


_stopping = False
_hurry_from: float | None = None  # time.monotonic() of the first signal: the whole process is stopping
_hurried = threading.local()  # .since: time.monotonic() of the start of hurried() in this thread
_deferring = 0  # the main thread is inside this many deferred() sections
_deferred: int | None = None  # the signal that arrived meanwhile, raised when they end

STOP_GRACE = 1.0  # seconds after a stop that waits for another process may still take, all together


def _on_signal(signum: int, frame: FrameType | None) -> None:
    global _stopping, _hurry_from, _deferred
    if _stopping:  # asked twice: do not wait for the clean-up -- but leave no command running on
        kill_commands()
        flush()
        os._exit(128 + signum)
    _stopping = True
    if _hurry_from is None:
        _hurry_from = time.monotonic()
    if _deferring:
        _deferred = signum
        return
    raise Stopped(signum)


@contextmanager
def deferred() -> Iterator[None]:
    """A step a stop must not cut in two (a store transaction): a first signal arriving
    in it is raised as it ends. Signals are handled in the main thread only, so elsewhere
    this does nothing. Code inside that waits calls :func:`deliver` where stopping is safe."""
    global _deferring
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1
        if not _deferring:
            deliver()


def deliver(own: int = 0) -> None:
    """Raise the signal a :func:`deferred` step held back, if one arrived (in the main
    thread) -- and only when no section but the caller's ``own`` ones is open: a wait
    inside a store transaction that is itself inside a larger deferred step (a run's end:
    release the locks, record the run) must not cut that larger step in two."""
    global _deferred
    if _deferred is not None and _deferring <= own and threading.current_thread() is threading.main_thread():
        signum, _deferred = _deferred, None
        raise Stopped(signum)


def wait_until(deadline: float) -> float:
    """When a wait for another process that would end at ``deadline`` (``time.monotonic()``)
    must end: then, or -- once a stop signal arrived, or inside :func:`hurried` in this
    thread -- by :data:`STOP_GRACE` after that began."""
    since: float | None = getattr(_hurried, "since", None)
    if _hurry_from is not None:
        since = _hurry_from if since is None else min(since, _hurry_from)
    if since is None:
        return deadline
    return min(deadline, since + STOP_GRACE)


@contextmanager
def hurried(when: bool = True) -> Iterator[None]:
    """Within (when ``when``), in this thread: the command is ending on an error, and every
    wait for another process ends by :data:`STOP_GRACE` after this began -- what it still
    records on its way out is best-effort. Afterwards waits are as long as before (an API
    caller's next run), unless a stop arrived meanwhile. Only this thread's waits: another
    run of the same process, in another thread, is not ending (its waits were cut to the
    grace too, and a store that was merely busy failed it)."""
    if not when or getattr(_hurried, "since", None) is not None:
        yield
        return
    _hurried.since = time.monotonic()
    try:
        yield
    finally:
        _hurried.since = None


def within_grace(step: Callable[[], object]) -> bool:
    """Run ``step`` -- a call to another machine (a bucket) -- and say whether it finished.
    Normally it simply runs. While the command ends on a stop or a fault (see
    :func:`wait_until`) it runs in a thread of its own and is given up when the grace ends:
    a bucket that stopped answering must not hold a Ctrl-C for its client's whole retry
    budget (minutes). A step given up goes on in that thread until the process exits;
    the caller leaves things so the next run finishes the job. What ``step`` raises is
    raised here."""
    deadline = wait_until(math.inf)
    if deadline == math.inf:  # not ending: as long as the client takes
        step()
        return True
    failed: list[BaseException] = []
    done = threading.Event()

    def call() -> None:
        try:
            step()
        except BaseException as exc:  # handed to the caller below
            failed.append(exc)
        finally:
            done.set()

    threading.Thread(target=call, name="targetrun-grace", daemon=True).start()
    if not done.wait(max(0.0, deadline - time.monotonic())):
        return False
    if failed:
        raise failed[0]
    return True


# -- the commands this process runs -----------------------------------------------------

_RUNNING: set[Any] = set()  # shell commands (Popen objects) running in this process, any thread
_STARTING: set[int] = set()  # the threads (idents) starting a command that is not tracked yet
_STARTED = threading.Condition(threading.RLock())  # (reentrant: a signal handler may take it in a holder's thread)
START_GRACE = 2.0  # seconds kill_commands() waits for other threads to finish starting their commands


@contextmanager
def starting() -> Iterator[None]:
    """Starting a command and tracking it (:func:`track`), in this thread: a
    :func:`kill_commands` meanwhile (another thread stops the run) waits for the command to
    be tracked, to kill it too -- else it ran on after the run had ended."""
    me = threading.get_ident()
    with _STARTED:
        _STARTING.add(me)
    try:
        yield
    finally:
        with _STARTED:
            _STARTING.discard(me)
            _STARTED.notify_all()


def track(process: Any) -> None:
    """A shell command started, in its own process group (``start_new_session``). Once a
    stop arrived it is killed at once (started as the run stopped, in another thread)."""
    _RUNNING.add(process)
    if _stopping:
        kill_group(process)


def untrack(process: Any) -> None:
    _RUNNING.discard(process)


def kill_commands() -> None:
    """Stop every shell command this process runs, with all it started (a run is stopping)
    -- also those other threads are starting now, once they are tracked (a few ms)."""
    for process in list(_RUNNING):
        kill_group(process)
    me = threading.get_ident()
    deadline = time.monotonic() + START_GRACE
    with _STARTED:
        while _STARTING - {me} and (left := deadline - time.monotonic()) > 0:
            _STARTED.wait(left)
    for process in list(_RUNNING):
        kill_group(process)


def kill_group(process: Any) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        try:
            process.kill()
        except OSError:
            pass


def install_in_worker() -> None:
    """In a worker process of a run: SIGINT or SIGTERM (the run is stopping, or a terminal's
    Ctrl-C reached the whole group) kills its commands and ends the worker at once, so no
    attempt runs or writes after the stop."""
    for signum in SIGNALS:
        signal.signal(signum, _stop_worker)


def _stop_worker(signum: int, frame: FrameType | None) -> None:
    kill_commands()
    flush()
    os._exit(128 + signum)


def exit_code_of(exc: BaseException | None) -> int:
    """The exit code for an interruption: the signal's, or 130 for a plain Ctrl-C."""
    while exc is not None:
        if isinstance(exc, Stopped):
            return exc.exit_code
        exc = exc.__cause__ or exc.__context__
    return 128 + signal.SIGINT


def flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):  # AttributeError: started with it closed (None)
            pass
