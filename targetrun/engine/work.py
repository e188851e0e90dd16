"""What an executor runs for one task attempt: the task body, then its checkpoint.

:func:`execute` takes a picklable :class:`Job` and returns a :class:`WorkResult`, so the
same function runs inline, in a thread, in a process or on a Dask worker. It loads the
upstream values it needs (lazily, from their checkpoints, when they were not computed in
this process), calls the function or the shell command, and writes the value atomically
to its checkpoint location. Everything else -- decisions, records, events -- stays in
the coordinating process.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import io
import os
import select
import stat
import threading
import time
import types
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, BinaryIO, cast

from targetrun import liveness, templating
from targetrun.checkpoints import CorruptCheckpoint, Expected, read_value
from targetrun.callables import (
    ProcessExitCalled, ThreadExitCalled, exit_call, load_callable, running_tasks, user_code,
)
from targetrun.capture import LogBuffer, process_output, task_output
from targetrun.fingerprint import stream_digest
from targetrun.regularfile import READ_FLAGS, open_regular
from targetrun import stopping
from targetrun.errors import (EXIT_BACKEND, EXIT_USAGE, NO_MORE_FILES, NO_MORE_FILES_HINT, MissingExtraError, StorageError,
                              TargetrunError, UsageError)
from targetrun.serializers.base import FormatMismatch, SerializationError
from targetrun.serializers.make import serializer
from targetrun.storage.base import Storage

STDERR_TAIL_LINES = 20


class WorkError(Exception):
    """A task attempt failed. ``backend`` marks storage failures (exit 3 when final);
    ``usage`` a failure no retry can mend -- the value does not fit its target's format, or
    the library a format needs is not installed (exit 2, not retried)."""

    def __init__(self, message: str, details: str = "", backend: bool = False, log: str = "",
                 usage: bool = False) -> None:
        super().__init__(message, details, backend, log, usage)
        self.message = message
        self.details = details
        self.backend = backend
        self.log = log  # what the attempt printed
        self.usage = usage
        self.attempt: Attempt | None = None  # set by execute (pickled with the exception's __dict__)

    def __str__(self) -> str:
        return self.message


class CorruptInput(WorkError):
    """An input's checkpoint is gone or not what was recorded: the coordinator rebuilds
    ``task`` (the upstream) and then runs the reader again."""

    def __init__(self, message: str, task: str) -> None:
        super().__init__(message)
        self.args = (message, task)  # what pickling across processes passes back to __init__
        self.task = task


@dataclass(frozen=True)
class Input:
    """An upstream value: in memory, or at a checkpoint location to load on demand.

    A checkpoint is loaded where the task runs (maybe another process or a Dask worker),
    so what the store recorded for it (``expected``) and ``--trust`` travel with it: the
    worker applies the trust rule to the very bytes it loads (:func:`read_value`).
    """

    task: str
    value: object = None
    in_memory: bool = False  # a flag, not a sentinel object: Inputs cross process boundaries
    location: str | None = None
    storage: Storage | None = None
    serializer: str = "pickle"
    parts: tuple[Input, ...] | None = None  # a mapped task's value: its children's, in order
    expected: Expected | None = None  # size and sha256 the store recorded; None: not recorded
    trust: bool = False  # --trust: load code-running data nobody recorded

    def load(self) -> object:
        if self.in_memory:
            return self.value
        if self.parts is not None:
            return [part.load() for part in self.parts]
        assert self.location is not None and self.storage is not None
        try:
            return read_value(self.storage, self.location, self.serializer, expected=self.expected, trust=self.trust,
                              task=self.task)
        except FileNotFoundError:
            raise CorruptInput(f"the value of {self.task!r} is gone: {self.location} no longer exists", self.task) from None
        except CorruptCheckpoint as exc:
            raise CorruptInput(f"refusing to read the value of {self.task!r}: {exc}", self.task) from None
        except SerializationError as exc:
            raise WorkError(f"cannot read the value of {self.task!r} from {self.location}: {exc}") from None
        except UsageError as exc:  # not recorded, and loading it could run code
            raise WorkError(exc.format()) from None


@dataclass(frozen=True)
class Job:
    task: str
    attempt: int
    root: str
    serializer: str
    checkpoint: str | None = None
    staging: str | None = None  # where this attempt writes; the coordinator commits it to ``checkpoint``
    storage: Storage | None = None
    fn: Callable[..., Any] | None = None  # resolved by the coordinator when in-process
    run: str | None = None  # "module:function" for out-of-process workers
    shell: str | None = None
    args: Mapping[str, object] = field(default_factory=dict)
    inputs: Mapping[str, Input] = field(default_factory=dict)  # by argument name
    context: Mapping[str, object] = field(default_factory=dict)  # shell template context
    keep_value: bool = True
    key: str = ""  # the planned task's name (a mapped child's own), for the start notice
    ticket: int = 0  # which submission of the task this is, for the start notice
    own_fds: bool = False  # the worker runs one attempt at a time: capture its fds 1 and 2 for it


@dataclass(frozen=True)
class Attempt:
    """When and where an attempt ran, for the run's timeline (``targetrun report``)."""

    started: float  # wall time, epoch seconds
    duration: float
    worker: str  # "host:pid", plus "/thread" off the main thread


def worker_name() -> str:
    thread = threading.current_thread().name
    return f"{liveness.host()}:{os.getpid()}" + ("" if thread == "MainThread" else f"/{thread}")


@dataclass(frozen=True)
class WorkResult:
    value: object
    size: int | None
    content_hash: str | None
    duration: float
    written_at: float
    log: str = ""  # what the task printed (stdout and stderr)
    serializer: str | None = None  # the one that wrote the checkpoint (a rule picks by value)
    attempt: Attempt | None = None  # when and where it ran (the report's timeline)


def execute(job: Job) -> WorkResult:
    """Run one attempt of a task and checkpoint its value; raise WorkError on failure.

    It first tells the coordinator the attempt has started on a worker (see
    :func:`~targetrun.executors.base.announce_start`): until then the task is queued.
    """
    from targetrun.executors.base import announce_start

    announce_start(job.key or job.task, job.ticket)
    with process_output() if job.own_fds else contextlib.nullcontext(), running_tasks():  # (a worker process too)
        return _attempt(job)


def _attempt(job: Job) -> WorkResult:
    watched = _watch_target(job)
    try:
        return _attempt_body(job)
    except BaseException as exc:  # a failure or a stop: what it made at its own target goes
        if watched is not None:
            with stopping.deferred():
                said = _undo_target(*watched)
            if said and isinstance(exc, WorkError):
                path = watched[2]
                shown = os.path.relpath(path, job.root) if path.startswith(job.root.rstrip(os.sep) + os.sep) else path
                exc.message += said.format(shown)
        raise


# -- a target the task's own code writes -------------------------------------------
# A value goes to a staging file and is renamed onto the target once the task succeeded.
# But a task's code can write its target path itself ('printf half > o.txt; exit 1');
# left there, that half-made file is the target to every later run ("target exists").
# So, as make's .DELETE_ON_ERROR and Snakemake do, a local target a failed or stopped
# attempt created is removed. One that was there before and changed is kept (its old
# bytes may be in it: an append) and said: its record no longer vouches for it, which
# `--verify` tells and every reader's sha256 check refuses. One lstat before the
# attempt, one after a failure; local disk only (a bucket would pay a request a task).

_CANNOT_TELL = ("cannot tell",)


Watched = tuple[Storage, str, str, "tuple[object, ...] | None"]


def watch_target(job: Job) -> Watched | None:
    """:func:`_watch_target`, for the coordinator of a worker that may die: a worker process
    killed mid-attempt undoes nothing itself, so the run undoes it (:func:`undo_lost`)."""
    return _watch_target(job)


def undo_lost(watched: Watched | None, root: str) -> str:
    """What to add to the failure of an attempt whose worker was lost: what it made at its own
    target, removed (or, there before, left and said) -- as :func:`_attempt` does for an
    attempt whose worker lives to see it fail."""
    if watched is None:
        return ""
    said = _undo_target(*watched)
    path = watched[2]
    return said.format(os.path.relpath(path, root) if path.startswith(root.rstrip(os.sep) + os.sep) else path) if said else ""


def _watch_target(job: Job) -> tuple[Storage, str, str, tuple[object, ...] | None] | None:
    """The target's storage, URL and local path, and what is there before the attempt
    (None: nothing); None for a target not on local disk."""
    if job.checkpoint is None or job.storage is None:
        return None
    path = job.storage.local_path(job.checkpoint)
    return None if path is None else (job.storage, job.checkpoint, path, _mark(path))


def _mark(path: str) -> tuple[object, ...] | None:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return _CANNOT_TELL
    return info.st_mode, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns


def _undo_target(storage: Storage, url: str, path: str, before: tuple[object, ...] | None) -> str:
    """Remove what the attempt made at ``url`` (local ``path``) where nothing was; what to
    add to its failure ('{}': the path as shown), empty when nothing changed there."""
    now = _mark(path)
    if now is None or now == before or _CANNOT_TELL in (now, before):
        return ""
    if before is not None:
        return ("; it changed {}, which was there before, and left it (its record no longer "
                "vouches for it: `targetrun status --verify` shows it, --verify remakes it)")
    try:
        storage.remove(url)  # a folder whole, a symlink itself
    except StorageError as exc:
        return f"; it made {{}} itself, which could not be removed ({exc}): remove it, or it counts as made"
    return "; removed {}, which the attempt made there itself (half made, it would have counted as made)"


def _attempt_body(job: Job) -> WorkResult:
    started, wall = time.perf_counter(), time.time()
    # A shell task's output comes through its own pipes (see _call_shell), nothing of it
    # through this process's streams: it needs a log, not the capture of sys.stdout and
    # fds 1 and 2 a Python task needs (installing it, settling the sink and flushing C's
    # stdio, twice a task). A Python task running beside it keeps the sink to itself.
    with task_output() if job.shell is None else contextlib.nullcontext(LogBuffer()) as printed:
        try:
            written_as = job.serializer
            if job.shell is not None:
                value, size, digest = _run_shell(job, printed)
            else:
                with user_code(restore=False):  # (the import and the call put back what they set)
                    value, size, digest, written_as = _run_python(job)
        except WorkError as exc:
            exc.log = printed.tail()
            exc.attempt = Attempt(wall, time.perf_counter() - started, worker_name())
            raise
        except StorageError as exc:
            error = WorkError(exc.format(), backend=True, log=printed.tail())
            error.attempt = Attempt(wall, time.perf_counter() - started, worker_name())
            raise error from None
        except MissingExtraError as exc:  # a format's library (pandas, numpy...) is not installed
            error = WorkError(f"task {job.task!r}: {exc.format()}", usage=True, log=printed.tail())
            error.attempt = Attempt(wall, time.perf_counter() - started, worker_name())
            raise error from None
        except TargetrunError as exc:  # targetrun's own (a shell template naming no field): its message says it all
            error = WorkError(exc.format(), backend=exc.exit_code == EXIT_BACKEND, usage=exc.exit_code == EXIT_USAGE,
                              log=printed.tail())
            error.attempt = Attempt(wall, time.perf_counter() - started, worker_name())
            raise error from None
        except BaseException as exc:  # the task's own failure: report it, with its traceback
            # (BaseException: sys.exit() in a task, or a class of its own derived from it, is
            # the task's failure too -- not the end of the run with the task's exit code; a
            # KeyboardInterrupt is a stop, which ends the run, unless the task raised it itself)
            if isinstance(exc, KeyboardInterrupt) and stopping.stops_the_run(exc):
                raise
            import traceback

            said = str(exc) if isinstance(exc, ThreadExitCalled) else \
                f"the task called {exit_call(exc)}" if isinstance(exc, ProcessExitCalled) else \
                f"{type(exc).__name__}: {exc}"
            trace = "" if isinstance(exc, ThreadExitCalled) else traceback.format_exc()  # (only targetrun's frames)
            error = WorkError(said, trace, log=printed.tail())
            error.attempt = Attempt(wall, time.perf_counter() - started, worker_name())
            raise error from None
    duration = time.perf_counter() - started
    return WorkResult(value if job.keep_value else None, size, digest, duration, time.time(),
                      printed.tail(), written_as, Attempt(wall, duration, worker_name()))


# -- Python tasks ------------------------------------------------------------------


def _run_python(job: Job) -> tuple[object, int | None, str | None, str]:
    fn = job.fn or load_callable(job.run or "", job.root)
    kwargs = dict(job.args)
    kwargs.update((arg, source.load()) for arg, source in job.inputs.items())
    with user_code():  # (nested) a child the call forked ends as it returns, before it writes anything
        value = _awaited(fn(**kwargs))
    if job.checkpoint is None or job.storage is None or job.staging is None:
        return value, None, None, job.serializer
    try:
        written_as = serializer(job.serializer).for_value(value)
    except FormatMismatch as exc:
        raise WorkError(f"task {job.task!r} returned a {exc.value_type}, which cannot be written to {job.checkpoint}: "
                        f"{exc}; give the target a suffix that fits, or set the task's `serializer`", usage=True) from None
    size, digest = write_value(job.storage, job.staging, value, written_as, shown=job.checkpoint)
    return value, size, digest, written_as


def _awaited(value: object) -> object:
    """What an ``async def`` task returns: its coroutine run to the end in an event loop of
    this attempt's own (asyncio is imported only then). Handed on unawaited, the coroutine
    was the task's value -- refused by json, pickled as nothing useful, and "never awaited"."""
    if not isinstance(value, types.CoroutineType):
        return value
    import asyncio

    return asyncio.run(value)


def write_value(storage: Storage, staging: str, value: object, serializer_name: str, *, shown: str) -> tuple[int, str]:
    """Serialize ``value`` to the staging location of checkpoint ``shown``; return its size
    and content hash. The coordinator records it, then commits it to the checkpoint."""
    codec = serializer(serializer_name)
    try:
        with _staged_unless_stopping(storage, staging) as f:
            writer = HashingWriter(f)
            try:
                codec.dump(value, cast(BinaryIO, writer))
            except SerializationError:
                writer.raise_refusal()  # a full disk is the storage's failure (exit 3), not the format's
                raise
    except SerializationError as exc:  # the value does not fit its target's format: the same on every attempt
        raise WorkError(f"cannot write the value to {shown} as {serializer_name}: {exc}", usage=True) from None
    _verify(storage, staging, shown)
    return writer.size, writer.hexdigest()


@contextlib.contextmanager
def _staged_unless_stopping(storage: Storage, staging: str) -> Iterator[BinaryIO]:
    """:meth:`Storage.stage_write`, its file created only while the run is not stopping --
    and as a command starts (stopping.starting): a stop's end, which waits for those, then
    finds the file to remove. Made by a worker thread after the end had looked, it was
    left beside the target (the process exits without waiting for that thread)."""
    with contextlib.ExitStack() as stack:
        with stopping.starting():
            _unless_stopping(staging)
            f = stack.enter_context(storage.stage_write(staging))
        yield f


def _unless_stopping(what: str) -> None:
    """Start nothing more once the run is stopping (this attempt's end goes unrecorded);
    in the main thread (an inline attempt) that is the stop itself, raised again if lost."""
    stopping.deliver_lost()
    if stopping.is_stopping():
        raise WorkError(f"not started: the run is stopping ({what})")


def _verify(storage: Storage, staging: str, shown: str) -> None:
    if storage.info(staging) is None:
        raise WorkError(f"the checkpoint for {shown} is missing right after it was written", backend=True)


class HashingWriter(io.RawIOBase):
    """A write-through file that counts bytes and hashes them on the way."""

    def __init__(self, raw: BinaryIO) -> None:
        super().__init__()
        self._raw = raw
        self._hash = hashlib.sha256()
        self.size = 0
        self.refused: Exception | None = None

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self._hash.update(view)
        self.size += view.nbytes
        try:
            self._raw.write(view)
        except Exception as exc:
            self.refused = exc  # a serializer's library may wrap it in its own error: write_value raises this one
            raise
        return view.nbytes

    def raise_refusal(self) -> None:
        """Raise the error the checkpoint's file raised on a write, if it raised one."""
        if self.refused is not None:
            raise self.refused

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def file_digest(path: str) -> tuple[int, str]:
    with open_regular(path) as f:  # NotRegularFile (an OSError) for a FIFO swapped in since the check
        return stream_digest(f)


def _output_digest(path: str) -> tuple[int, str] | None:
    """Size and sha256 of what a command wrote to ``{output}``: None when nothing is
    there, ``(0, "")`` for what is no file (a folder, a dangling link, a FIFO or a device
    -- never read). The usual regular file costs an open, a stat of what is open, one read
    and a close: opened without waiting (a FIFO would wait for a writer), which a regular
    file ignores.
    Every call here lets another thread take the interpreter, and the engine's thread is
    waiting for it: a stat of the path first, a flag changed, an empty read to see the end
    would each cost a hand-over for every shell task."""
    try:
        fd = os.open(path, READ_FLAGS)
    except OSError as exc:
        return _not_opened(path, exc)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return 0, ""
        # The whole file and a byte more, at most a chunk: a short read that reached the
        # size the stat saw is the end. (A read of a whole chunk for two bytes costs more
        # than the rest together: a megabyte allocated, and given back, every time.)
        want = min(info.st_size + 1, _CHUNK_OF_FILE)
        digest, size = hashlib.sha256(), 0
        while chunk := _read(fd, want):
            digest.update(chunk)
            size += len(chunk)
            if len(chunk) < want and size >= info.st_size:
                break
    finally:
        os.close(fd)
    return size, digest.hexdigest()


def _read(fd: int, size: int) -> bytes:
    try:
        return os.read(fd, size)
    except BlockingIOError:  # a file system that honours O_NONBLOCK for a file: read it as usual
        os.set_blocking(fd, True)
        return os.read(fd, size)


def _not_opened(path: str, error: OSError) -> tuple[int, str] | None:
    """What :func:`_output_digest` says of a path it could not open: None when nothing is
    there, ``(0, "")`` for a dangling link or a socket; a regular file it may not read
    raises the open's error, as reading it would."""
    try:
        info = os.lstat(path)
    except OSError:
        return None
    if stat.S_ISREG(info.st_mode):
        raise error
    return 0, ""


_CHUNK_OF_FILE = 1024 * 1024


# -- shell tasks -------------------------------------------------------------------


def _run_shell(job: Job, printed: LogBuffer) -> tuple[object, int | None, str | None]:
    assert job.shell is not None
    writes_output = any(name == "output" for name, _, _ in templating.fields(job.shell))
    with ExitStack() as stack:
        paths = {arg: stack.enter_context(_fetched(source)) for arg, source in job.inputs.items()}
        paths.update({source.task: paths[arg] for arg, source in job.inputs.items()})
        context = dict(job.context)
        context["needs"] = templating.Namespace("needs", paths)
        if job.staging is None:  # `checkpoint: false`: it runs for what it does, and what it prints is its log
            _call_shell(job, templating.render_shell(job.shell, context), stdout=None, printed=printed)
            return None, None, None
        assert job.storage is not None and job.checkpoint is not None
        if writes_output:
            out = stack.enter_context(job.storage.stage_output(job.staging))
            context["output"] = out
            _call_shell(job, templating.render_shell(job.shell, context), stdout=None, printed=printed)
            written = _output_digest(out)
            if written is None:
                raise WorkError("the command exited 0 but did not write {output}")
            result: tuple[object, int | None, str | None] = (None, *written)
            if written[1] and out == job.staging:  # the staging itself, read whole just now: it is there
                return result
        else:
            command = templating.render_shell(job.shell, context)
            with _staged_unless_stopping(job.storage, job.staging) as f:
                writer = HashingWriter(f)
                _call_shell(job, command, stdout=writer, printed=printed)
            result = (None, writer.size, writer.hexdigest())
    _verify(job.storage, job.staging, job.checkpoint)
    return result


def _fetched(source: Input) -> Any:
    assert source.storage is not None and source.location is not None
    return source.storage.fetched(source.location)


def _call_shell(job: Job, command: str, stdout: io.RawIOBase | None, printed: LogBuffer) -> None:
    """Run the command; its stderr (and stdout, unless stdout is the result) goes to the log.

    What it prints comes back through a pipe this process reads while the command runs
    (no file per command)."""
    import subprocess

    from targetrun import direct
    from targetrun.executors.base import command_started

    try:
        err, err_end = os.pipe()  # (none left: the limit of open files is reached)
    except OSError as exc:
        raise _not_started(command, exc) from None
    started: direct.Started | None = None
    try:
        # A stop while the command starts is raised once it is tracked, here, where the
        # command is killed: raised inside the start (or before the tracking) it left the
        # command running on after the run had ended. A stop in another thread (this one
        # a pool's) waits for the tracking to kill it (stopping.starting).
        with stopping.deferred(), stopping.starting():
            try:
                _unless_stopping(job.checkpoint or job.task)
                try:
                    started = direct.start(command, job.root, stdout=subprocess.PIPE if stdout is not None else err_end,
                                           stderr=err_end, allow_redirect=stdout is None)
                except OSError as exc:  # the shell itself could not start: nothing of the task's ran
                    raise _not_started(command, exc) from None
            finally:
                os.close(err_end)  # the command holds its own copy: the pipe ends when the command's copies close
            stopping.track(started.process)
        process = started.process
        command_started()  # the coordinator's own work, when this is its thread, runs beside the command
        _collect(process, err, stdout, printed)
        code = process.wait()
    except BaseException:  # Ctrl-C, SIGTERM, or the write failed: do not leave the command running
        if started is not None:
            stopping.kill_group(started.process)
            started.process.wait()
        raise
    finally:
        os.close(err)
        if started is not None:
            if started.process.stdout is not None:
                started.process.stdout.close()
            stopping.untrack(started.process)
    code, said = started.status(code)
    printed.write(said)
    if code != 0:
        last = printed.getvalue().splitlines()[-STDERR_TAIL_LINES:]
        reason = f"was killed by signal {-code} ({_signal_name(-code)})" if code < 0 else f"exited with status {code}"
        raise WorkError(f"the command {reason}", "\n".join(last))


def _not_started(command: str, exc: OSError) -> WorkError:
    """The failure of a command whose shell could not even start (its own frames, not the
    task's, were its traceback): too long for the system (E2BIG, which no retry mends), or
    out of processes or memory."""
    import errno

    if exc.errno == errno.E2BIG:
        return WorkError(f"the command could not start: rendered, it is {len(command.encode('utf-8', 'replace')):,} "
                         f"bytes, more than the system lets one command have ({exc.strerror}); pass large values "
                         "through a file (a target the command reads as {needs.TASK}, or a dep) instead", usage=True)
    if exc.errno in (errno.EMFILE, errno.ENFILE):
        return WorkError(f"the command could not start: {exc.strerror}: {NO_MORE_FILES} -- {NO_MORE_FILES_HINT}")
    return WorkError(f"the command could not start: {exc.strerror or exc}")


def _signal_name(number: int) -> str:
    """``SIGKILL`` for 9; the number again for one this platform does not name."""
    import signal

    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


_LEFT_OPEN_POLL = 100  # ms: how often to look whether the command exited while its output pipe stays open
_CHUNK = 65536  # a pipe's capacity: one read empties it
_HUNG_UP = getattr(select, "POLLHUP", -1)  # poll's word for a pipe every writer closed (-1: no poll here)


def _collect(process: Any, err: int, result: io.RawIOBase | None, printed: LogBuffer) -> None:
    """What the command prints to ``err`` while it runs (into ``printed``, which keeps a
    log's worth of it), and (``result``) its stdout, as they come. Each ends when its pipe
    does or, once the command has exited, with what is there: everything the command and its foreground children wrote is in the pipe by
    then, and a background process it left holding a pipe open (``server &``) is not
    waited for -- a daemon a task starts must not hold the run for its lifetime. What such
    a process prints later goes to a detached reader (:func:`_drain_elsewhere`), not into
    the task's value or log."""
    out = process.stdout.fileno() if result is not None else None
    poller = select.poll()
    poller.register(err, select.POLLIN)
    if out is not None:
        poller.register(out, select.POLLIN)
    reading = {err} if out is None else {err, out}
    text = codecs.getincrementaldecoder("utf-8")("replace")
    while reading:
        for fd, events in poller.poll(_LEFT_OPEN_POLL):
            # hung up with nothing in it (POLLHUP alone: a command that printed nothing): it has
            # ended, and no read is needed to tell
            data = b"" if events == _HUNG_UP else os.read(fd, _CHUNK)
            if not data:
                poller.unregister(fd)
                reading.discard(fd)
            elif fd == out:
                assert result is not None
                result.write(data)
            else:
                printed.write(text.decode(data))
        if reading and process.poll() is not None:  # it exited: nothing of its own is still to come
            for fd in sorted(reading):
                rest, ended = _available(fd)
                if fd == out:
                    assert result is not None
                    result.write(rest)
                else:
                    printed.write(text.decode(rest))
                if not ended:  # something it started still holds the pipe
                    _drain_elsewhere(fd)
            break
    printed.write(text.decode(b"", final=True))


def _drain_elsewhere(fd: int) -> None:
    """The command exited and left a background process holding its output pipe: a reader
    of its own (``cat``, detached) takes and drops what that process prints until it closes
    the pipe, as a file took it before. Closing the pipe with no reader would kill that
    process (SIGPIPE) the next time it prints -- a server a task started, say."""
    import subprocess

    os.set_blocking(fd, True)  # the reader shares the pipe's open file: not left non-blocking
    try:
        # The shell starts the reader in the background and exits at once: nothing to wait
        # for here, and the reader, orphaned, is reaped by init, not left a zombie of this process.
        # (A background job's stdin is /dev/null unless redirected: the pipe reaches it as fd 3.)
        subprocess.run(["/bin/sh", "-c", "exec 3<&0; cat <&3 >/dev/null 3<&- &"], stdin=fd, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, start_new_session=True, check=False)
    except OSError:
        pass  # no reader: the background process meets a closed pipe when it prints, nothing worse


def _available(fd: int) -> tuple[bytes, bool]:
    """What can be read from ``fd`` now, without waiting for more, and whether the pipe
    ended (every writer closed it)."""
    os.set_blocking(fd, False)
    chunks = []
    try:
        while data := os.read(fd, _CHUNK):
            chunks.append(data)
    except BlockingIOError:
        return b"".join(chunks), False
    return b"".join(chunks), True
