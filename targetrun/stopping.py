"""Stopping on a signal: Ctrl-C (SIGINT), SIGTERM, SIGHUP and SIGQUIT, as a terminal, CI
and an ssh session send them -- and on a reader that went away (a closed pipe).

The first signal raises :class:`Stopped` (a ``KeyboardInterrupt``) in the main thread,
so the run unwinds through its ``finally`` blocks: running shell commands are killed with
their whole process group, staging files are removed, no checkpoint is committed any more,
and the run is recorded as interrupted. The exit code then is 128 + the signal number
(129 SIGHUP, 130 SIGINT, 131 SIGQUIT, 143 SIGTERM), as a shell reports a process killed by
it. A second signal while that happens exits at once, killing the running commands first
(no more), with the first signal's code whatever the second was (a CI runner's SIGTERM,
then a Ctrl-C: 143): the next run cleans up what is left (pending writes, see store/base.py).

The four are handled alike, as make handles them (its ``fatal_error_signal``): the terminal
closing (SIGHUP) or Ctrl-\\ (SIGQUIT) reaches targetrun but not its commands, which run in
process groups of their own -- killed by the signal's default action, targetrun would leave
them running, and the run 'running' until a later command calls it died. SIGHUP or SIGQUIT
ignored when the command started (``nohup``) stays ignored, as a shell leaves it.

SIGPIPE itself stays ignored, as Python sets it: a socket whose peer went away (a store, a
bucket) must be an error of that backend, not a stop. A write to the command's own output
that fails because its reader went away (``targetrun status | head -1``) is the stop
instead (:func:`output_closed`): exit 141 (128 + SIGPIPE), like git, and nothing more is said.

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
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

# (SIGHUP and SIGQUIT do not exist on Windows)
SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT") if hasattr(signal, name))
OPTIONAL = tuple(signum for signum in SIGNALS if signum not in (signal.SIGINT, signal.SIGTERM))  # nohup's to ignore
CLOSED_OUTPUT = getattr(signal, "SIGPIPE", 13)  # the stop of a reader that went away (see output_closed)
# The handlers a task's code may not leave changed (restore_handlers): the stop signals, a
# closed output's, and SIGCHLD's -- ignored (SIG_IGN), the kernel reaped every command itself
# and Python's wait took status 0: a later shell task that failed (exit 3) was recorded as made.
_KEPT = (*SIGNALS, CLOSED_OUTPUT, *((signal.SIGCHLD,) if hasattr(signal, "SIGCHLD") else ()))
STOP_CODES = frozenset(128 + signum for signum in (*SIGNALS, CLOSED_OUTPUT))  # the exit codes of a stop


class Stopped(KeyboardInterrupt):
    """The process was asked to stop by a signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.exit_code = 128 + signum


def install() -> None:
    """Handle SIGINT, SIGTERM, SIGHUP and SIGQUIT in this (main) thread from now on (but
    what the command started ignoring, see :func:`kept_ignored`)."""
    global _previous_hook, _installed
    ignored = kept_ignored()
    for signum in SIGNALS:
        if signum not in ignored:
            signal.signal(signum, _on_signal)
    _installed = True
    if sys.unraisablehook is not _redeliver_dropped_stop:
        _previous_hook = sys.unraisablehook
        sys.unraisablehook = _redeliver_dropped_stop


_previous_hook: Any = sys.__unraisablehook__
_installed = False  # install() was called: this process is the command, whose stops are its own
_ignored_at_start: frozenset[int] | None = None


def kept_ignored() -> frozenset[int]:
    """The optional stop signals (SIGHUP, SIGQUIT) this process found ignored the first time
    it asked -- before it set any handler: started under ``nohup`` (or in a script's
    background, for SIGQUIT). They stay ignored, here and in worker processes."""
    global _ignored_at_start
    if _ignored_at_start is None:
        _ignored_at_start = frozenset(signum for signum in OPTIONAL if signal.getsignal(signum) == signal.SIG_IGN)
    return _ignored_at_start


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


class StopSafeFinalizer:
    """Mixin for an :mod:`io` class of targetrun's whose ``flush`` or ``close`` is Python code.

    ``io.IOBase``'s own finalizer closes the object (flushing it) and, outside Python's
    dev mode, drops whatever that raised without a word -- it alone does not pass it to
    ``sys.unraisablehook``. A stop signal landing in that Python code raised :class:`Stopped`
    there and vanished: the run went on as if never stopped (capture's stdout router,
    dropped as a task's output capture ended: the next task then failed "not started: the
    run is stopping", and the run ended 1 instead of 130). A ``__del__`` of the class's
    own is a finalizer the interpreter reports: such a stop reaches the hook
    (:func:`_redeliver_dropped_stop`), which delivers it again."""

    def __del__(self) -> None:
        try:
            self.close()  # type: ignore[attr-defined]
        except Exception:  # as IOBase's finalizer: an I/O error while collected is not worth a word
            pass


def _interrupt_main(signum: int) -> None:
    global _relayed, _relay_taken
    if signal.getsignal(signum) is not _on_signal:  # a closed output (SIGPIPE stays ignored): through SIGINT's handler
        with _relay:
            _relayed, _relay_taken = signum, False
        signum = signal.SIGINT
    _thread.interrupt_main(signal.Signals(signum))


def handlers() -> dict[int, Any]:
    """The handlers of the stop signals (and of a closed output's SIGPIPE, and SIGCHLD) now, for
    :func:`restore_handlers` once a task's code that may change them has run."""
    return {signum: signal.getsignal(signum) for signum in _KEPT}


def restore_handlers(before: dict[int, Any]) -> None:
    """Put back the stop handlers a task's code replaced, and unblock the stop signals it
    blocked (in the main thread, where only it can set a handler): a task that ignored
    SIGINT and SIGTERM (``signal.signal(SIGINT, SIG_IGN)``, as some libraries do on import)
    left the run unstoppable but by ``kill -9`` -- no target and no record cleaned up -- and
    one that set SIGPIPE back to its default let a closed output kill the run without a word."""
    for signum, handler in before.items():
        if handler is not None and signal.getsignal(signum) is not handler:
            signal.signal(signum, handler)
    # Blocked (``signal.pthread_sigmask(SIG_BLOCK, {SIGINT, SIGTERM})``), they stayed pending
    # for good: only ``kill -9`` ended the run. The command unblocks them as it starts (see
    # targetrun/__init__.py), a worker's are the run's: a program using the API keeps its own.
    if (_installed or _in_worker) and _SIGMASK is not None:
        stuck = _SIGMASK(signal.SIG_BLOCK, ()).intersection(SIGNALS)
        if stuck:
            _SIGMASK(signal.SIG_UNBLOCK, stuck)


_SIGMASK = getattr(signal, "pthread_sigmask", None)  # (not on Windows)


def ignore() -> None:
    """From now on the stop signals are ignored: the command has finished, and only its
    exit code is left to give."""
    for signum in SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


_stopping = False
_first: int | None = None  # the signal that stopped the command (a closed output: SIGPIPE): its exit code is kept
_hurry_from: float | None = None  # time.monotonic() of the first signal: the whole process is stopping
_hurried = threading.local()  # .since: time.monotonic() of the start of hurried() in this thread
_deferring = 0  # the main thread is inside this many deferred() sections
_deferred: int | None = None  # the signal that arrived meanwhile, raised when they end

STOP_GRACE = 1.0  # seconds after a stop that waits for another process may still take, all together


def _on_signal(signum: int, frame: FrameType | None) -> None:
    global _relay_taken
    if _relayed is not None and not _relay_taken:  # the stop another thread noticed (see _relay_to_main)
        _relay_taken = True
        if _stopping:  # the main thread noticed the same closed output first: not a second stop
            return
        signum = _relayed
    if _stopping:  # asked twice: do not wait for the clean-up -- but leave no command running on
        kill_commands()
        flush()
        os._exit(128 + (_first if _first is not None else signum))  # what stopped it was the first
    _stop(signum)


def _stop(signum: int) -> None:
    """The first stop: raised now, or as the :func:`deferred` step it landed in ends."""
    global _stopping, _hurry_from, _deferred, _first
    _stopping = True
    if _first is None:
        _first = signum
    if _hurry_from is None:
        _hurry_from = time.monotonic()
    if _deferring:
        _deferred = signum
        return
    raise Stopped(signum)


def is_stopping() -> bool:
    """Whether a stop arrived: the command is ending, and nothing new should start (a
    worker thread about to start a command or create a staging file asks) -- or, on a
    worker that runs attempts for other processes, the run this thread works for stopped
    (:func:`stop_owner`)."""
    return _stopping or (_owner_of_this_thread() in _STOPPED_OWNERS)


def output_closed() -> None:
    """A write to the command's own output failed because its reader went away (EPIPE:
    ``| head -1`` has read its line): the command stops as if by SIGPIPE, exit 141 --
    raised in the main thread (or as its :func:`deferred` step ends), and when another
    thread noticed it (a live view's refresh, a task's own thread printing) handed to the
    main thread as a signal is (:func:`_relay_to_main`): the same stop, whichever thread
    wrote. Nothing is raised in the caller but in the main thread: the caller drops what it
    could not write. Once stopping already, nothing more happens. Outside the command
    (targetrun used as a library, :func:`install` never called) the caller raises the
    ``BrokenPipeError`` as it was."""
    if not _installed:
        raise BrokenPipeError(32, "Broken pipe")
    if _stopping:
        return
    if threading.current_thread() is not threading.main_thread():
        _relay_to_main(CLOSED_OUTPUT)
        return
    _stop(CLOSED_OUTPUT)


_relay = threading.Lock()
_relayed: int | None = None  # a stop another thread noticed, for the main thread to raise
_relay_taken = False  # the main thread's handler took it: a later signal is a second one


def _relay_to_main(signum: int) -> None:
    """Have the main thread stop as if ``signum`` had arrived: a real SIGINT sent to it
    alone (it also wakes a main thread waiting in a system call or a lock), whose handler
    takes ``signum`` instead (:func:`_on_signal`). Once: the first thread to notice relays."""
    global _relayed
    with _relay:
        if _relayed is not None:
            return
        _relayed = signum
    main = threading.main_thread().ident
    if hasattr(signal, "pthread_kill") and main is not None:
        signal.pthread_kill(main, signal.SIGINT)
    else:  # (Windows) runs the handler once the main thread runs Python again
        _thread.interrupt_main()


class _Deferred:
    """A step a stop must not cut in two (a store transaction): a first signal arriving
    in it is raised as it ends. Signals are handled in the main thread only, so elsewhere
    this does nothing. Code inside that waits calls :func:`deliver` where stopping is safe.

    A class, not a generator: a run enters some fifteen of these for each task it runs,
    and this form costs a third of one made by ``contextlib.contextmanager``."""

    __slots__ = ("_counted",)

    def __enter__(self) -> None:
        global _deferring
        self._counted = threading.current_thread() is threading.main_thread()
        if self._counted:
            _deferring += 1

    def __exit__(self, *exc: object) -> None:
        global _deferring
        if self._counted:
            _deferring -= 1
            if not _deferring:
                deliver()


def deferred() -> _Deferred:
    """A step a stop must not cut in two (see :class:`_Deferred`): ``with deferred(): ...``."""
    return _Deferred()


def deliver(own: int = 0) -> None:
    """Raise the signal a :func:`deferred` step held back, if one arrived (in the main
    thread) -- and only when no section but the caller's ``own`` ones is open: a wait
    inside a store transaction that is itself inside a larger deferred step (a run's end:
    release the locks, record the run) must not cut that larger step in two."""
    global _deferred
    if _deferred is not None and _deferring <= own and threading.current_thread() is threading.main_thread():
        signum, _deferred = _deferred, None
        raise Stopped(signum)


def deliver_lost() -> None:
    """Raise the first stop again if it was lost: asked in the main thread outside every
    :func:`deferred` step, where a stop that arrived has always been raised already -- and
    this code would not be running had that reached it. Something swallowed it without a
    word: a finalizer that reports nothing (a library's stream: ``io.IOBase`` drops what its
    ``close`` raised when collected), C code that clears errors. The engine asks before
    each step of its loop and before an attempt starts writing."""
    global _deferred
    if _stopping and _first is not None and not _deferring and threading.current_thread() is threading.main_thread():
        _deferred = None
        raise Stopped(_first)


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
        if _worker_stop is not None and me == threading.main_thread().ident:
            _stop_worker(_worker_stop, None)  # what this thread started is tracked now: it goes too


def track(process: Any) -> None:
    """A shell command started, in its own process group (``start_new_session``). Once a
    stop arrived it is killed at once (started as the run stopped, in another thread)."""
    _RUNNING.add(process)
    owner = _owner_of_this_thread()
    if owner is not None:
        with _OWNED_LOCK:
            _OWNED.setdefault(owner, set()).add(process)
    if is_stopping():
        kill_group(process)


def untrack(process: Any) -> None:
    _RUNNING.discard(process)
    owner = _owner_of_this_thread()
    if owner is not None:
        with _OWNED_LOCK:  # another thread of the same run may be adding to the set this empties
            owned = _OWNED.get(owner)
            if owned is not None:
                owned.discard(process)
                if not owned:
                    del _OWNED[owner]


def kill_commands() -> None:
    """Stop every shell command this process runs, with all it started (a run is stopping)
    -- also those other threads are starting now, once they are tracked (a few ms)."""
    _kill_also_starting(lambda: _RUNNING)


def _kill_also_starting(running: Callable[[], Iterable[Any]]) -> None:
    """Kill the commands ``running()`` names, and again once the threads starting one now
    have tracked it (:func:`starting`), for at most :data:`START_GRACE`."""
    for process in list(running()):
        kill_group(process)
    me = threading.get_ident()
    deadline = time.monotonic() + START_GRACE
    with _STARTED:
        while _STARTING - {me} and (left := deadline - time.monotonic()) > 0:
            _STARTED.wait(left)
    for process in list(running()):
        kill_group(process)


# -- a worker that runs attempts for other processes (Dask) -------------------------------
# Such a worker runs attempts of any number of runs, each from a client process of its own;
# a run that stops must stop its own commands there, and only those.

_owner = threading.local()  # the run the attempt in this thread works for (see working_for)
_OWNED: dict[str, set[Any]] = {}  # run -> its commands running in this process
_OWNED_LOCK = threading.Lock()
_STOPPED_OWNERS: set[str] = set()  # the runs that stopped: nothing more starts for them here


def _owner_of_this_thread() -> str | None:
    return getattr(_owner, "name", None)


@contextmanager
def working_for(owner: str) -> Iterator[None]:
    """Within: this thread runs an attempt for the run ``owner`` (a name of its own, known
    to the worker and the run), which :func:`stop_owner` stops."""
    previous = _owner_of_this_thread()
    _owner.name = owner
    try:
        yield
    finally:
        _owner.name = previous


def stop_owner(owner: str) -> None:
    """On a worker: the run ``owner`` stopped. Its commands here are killed, with all they
    started -- also those its threads are starting now -- and nothing more starts for it
    (:func:`is_stopping` says so in its threads): no attempt of a stopped run runs on or
    writes. The other runs the worker serves go on."""
    _STOPPED_OWNERS.add(owner)
    _kill_also_starting(lambda: _owned_by(owner))


def _owned_by(owner: str) -> list[Any]:
    with _OWNED_LOCK:
        return list(_OWNED.get(owner, ()))


def kill_group(process: Any) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        try:
            process.kill()
        except OSError:
            pass


def install_in_worker(ignored: frozenset[int] = frozenset()) -> None:
    """In a worker process of a run: a stop signal (the run is stopping, or a terminal's
    Ctrl-C or hangup reached the whole group) kills its commands and ends the worker at
    once, so no attempt runs or writes after the stop. ``ignored``: the signals the run
    itself keeps ignored (:func:`kept_ignored`: nohup), which the worker ignores too."""
    global _in_worker
    for signum in SIGNALS:
        signal.signal(signum, signal.SIG_IGN if signum in ignored else _stop_worker)
    _in_worker = True


_in_worker = False  # install_in_worker() was called: a signal here ends the process, never raises


def end_with_parent(parent: int, every: float = 0.2) -> None:
    """In a worker process: end it, as a stop signal would (its commands killed first), once
    the process that started it is gone -- killed with ``kill -9``, say, which left its
    workers running their attempts as orphans beside the next run. A daemon thread looks at
    the parent process every ``every`` seconds (portable, and unlike Linux's
    PR_SET_PDEATHSIG not tied to the thread that started the worker)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every)
        os.kill(os.getpid(), signal.SIGTERM)  # the main thread's handler: _stop_worker

    threading.Thread(target=watch, name="targetrun-parent-watch", daemon=True).start()


def stops_the_run(exc: KeyboardInterrupt) -> bool:
    """Whether a KeyboardInterrupt out of a task's code is the run being stopped, not the
    task's own ``raise`` (or a library's). A signal reaches Python code only in a process's
    main thread, and where targetrun handles it -- the command (:func:`install`), a worker
    process of it (:func:`install_in_worker`) -- it arrives as :class:`Stopped` or ends the
    process: a bare KeyboardInterrupt there, or in any other thread, is the task's. Only a
    program using the API that handles no signals gets Python's own KeyboardInterrupt for
    a Ctrl-C, in its main thread, where it cannot be told from a task's: it stops the run."""
    if isinstance(exc, Stopped):
        return True
    if threading.current_thread() is not threading.main_thread():
        return False
    return not (_installed or _in_worker)


_worker_stop: int | None = None  # a stop that reached a worker while its main thread started a command


def _stop_worker(signum: int, frame: FrameType | None) -> None:
    """A worker's stop: its commands killed, then the process ends. Arriving while this
    very thread starts a command (the handler runs in the thread that is starting it),
    it waits for the end of :func:`starting`, where that command is tracked: ended at
    once, it left the command untracked and running on, writing its staging file after
    the run had removed what it knew of (a processes run stopped at random moments)."""
    global _worker_stop
    if threading.get_ident() in _STARTING:
        _worker_stop = signum
        return
    kill_commands()
    flush()
    os._exit(128 + signum)


def name_of(code: int) -> str:
    """How an interruption's exit code is said: 'Ctrl-C' for 130, else the signal's name."""
    return "Ctrl-C" if code == 128 + signal.SIGINT else signal.Signals(code - 128).name


def exit_code_of(exc: BaseException | None) -> int:
    """The exit code for an interruption: the signal's, or 130 for a plain Ctrl-C."""
    while exc is not None:
        if isinstance(exc, Stopped):
            return exc.exit_code
        exc = exc.__cause__ or exc.__context__
    return 128 + signal.SIGINT


def escape_unencodable(*streams: Any) -> None:
    """Show a character the terminal's encoding cannot (``é`` on an ASCII or Latin-1 stdout)
    as an escape (``\\xe9``), as Python does on stderr: never a ``UnicodeEncodeError`` --
    an internal error -- over a name, a value or a library's message."""
    for stream in streams:
        if getattr(stream, "errors", None) == "strict" and hasattr(stream, "reconfigure"):
            try:
                stream.reconfigure(errors="backslashreplace")
            except (ValueError, OSError):  # closed, or not a text stream after all
                pass


def before_exit() -> None:
    """What a normal exit would do first and ``os._exit`` skips, for a command ending on a
    stop: multiprocessing's exit-time finalizers (priority 0 and up), which unlink the named
    semaphores of the processes executor's queues -- left to it, multiprocessing's resource
    tracker, a process of its own sharing stderr, unlinks them and warns of "leaked
    semaphore objects" after the stop was reported. Not for a library caller, whose process
    goes on (its own semaphores are its own business); then what fails here is moot."""
    util = sys.modules.get("multiprocessing.util")
    run_finalizers = getattr(util, "_run_finalizers", None)
    if run_finalizers is not None:
        try:
            run_finalizers(0)
        except Exception:
            pass
    flush()


def flush() -> None:
    """Flush stdout and stderr before an ``os._exit``: whatever a stream raises (closed, full,
    None when started closed, a task's own replacement of it) must not stop the exit."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
