"""Capture what a task prints -- Python writes and file-descriptor writes -- per task.

Two layers, because a process has one ``sys.stdout`` object and one file descriptor 1,
while tasks may run several at once in its threads:

* **Python writes** (``print``, ``sys.stderr.write``, ``logging``). While at least one
  task runs in a process, ``sys.stdout`` and ``sys.stderr`` are a router that sends a
  write to the buffer of the task running in the writing thread, or to the original
  stream for any other thread; the root logger's stream handlers that write to the
  original streams (``logging.basicConfig()`` at import time) write to the router
  meanwhile. Exact for every executor, parallel threads included.

* **File-descriptor writes** (a subprocess started with ``subprocess``/``os.system``, a C
  extension's ``printf``, ``os.write(1, ...)``, a handler bound to the original stream).
  :func:`process_output` points fds 1 and 2 of the process at a sink file for as long as
  it is held: the engine holds it for a run in the coordinating process (inline and
  threads executors), a process-pool worker for each attempt. Bytes in the sink are
  *settled* (read and attributed) whenever a task starts or ends and before each Python
  write of a task, so between two settles the set of running tasks did not change: the
  bytes go to the one task that ran, or -- several tasks ran at once in this process, or
  none -- to the run's *unattributed* output, which the engine reports (a run log).
  Inline and process workers run one task at a time, so attribution is exact there; with
  threads it is exact whenever a task runs alone.

targetrun's own output (the console lines, the live view, ``--json``) must still reach
the real terminal: :class:`TerminalStream` wraps a reporter's stream and, while the sink
holds fd 1 or 2, writes to a duplicate of the original descriptor. What a task printed
travels back with its result and is written to ``.targetrun/logs/RUN_ID/TASK.log``.
"""

from __future__ import annotations

import codecs
import contextlib
import io
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import IO, Any, TextIO, cast

from targetrun.stopping import StopSafeFinalizer
from targetrun.wholewrite import write_whole

MAX_LOG_CHARS = 1_000_000  # keep the end of very chatty tasks
STD_FDS = (1, 2)


class LogBuffer:
    """What a task prints, as much of it as its log keeps: once it holds twice
    :data:`MAX_LOG_CHARS`, its start goes (counted in :attr:`cut`). A task that prints
    gigabytes (a verbose loop, ``yes >&2``) cost targetrun twice its output in memory
    before the log kept its last megabyte -- a few such tasks, and the run was killed.
    (Pieces in a list, joined when cut: a StringIO cut in place costs ten times as much
    for every write that follows.)"""

    def __init__(self, limit: int = MAX_LOG_CHARS) -> None:
        self._limit = limit
        self._pieces: list[str] = []
        self._size = 0
        self.cut = 0  # characters dropped from the start

    def write(self, text: str) -> int:
        if text:
            self._pieces.append(text)
            self._size += len(text)
            if self._size > 2 * self._limit:
                whole = "".join(self._pieces)
                kept = _kept_end(whole, self._limit)
                self.cut += len(whole) - len(kept)
                self._pieces, self._size = [kept], len(kept)
        return len(text)

    def getvalue(self) -> str:
        """What is kept of it (without the mark of a cut: see :meth:`tail`)."""
        if len(self._pieces) > 1:
            self._pieces = ["".join(self._pieces)]
        return self._pieces[0] if self._pieces else ""

    def tail(self) -> str:
        """The end of what was printed, marked as cut when it was (see :func:`tail`)."""
        return tail(self.getvalue(), self._limit, cut=self.cut)


class _Router(StopSafeFinalizer, io.TextIOBase):
    def __init__(self, original: TextIO, local: threading.local) -> None:
        super().__init__()
        self.original = original
        self._local = local

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        buffer: LogBuffer | None = getattr(self._local, "buffer", None)
        if buffer is None:
            return self.original.write(text)
        _SINK.settle()  # what the task wrote to its fds so far comes first in its log
        return buffer.write(text)

    def flush(self) -> None:
        if getattr(self._local, "buffer", None) is None:
            self.original.flush()

    def isatty(self) -> bool:
        return False


class _Capture:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._local = threading.local()
        self._saved: tuple[TextIO, TextIO] | None = None
        self._handlers: list[tuple[logging.StreamHandler[Any], Any]] = []

    def _install(self) -> None:
        self._saved = (sys.stdout, sys.stderr)
        routers = {id(sys.stdout): _Router(sys.stdout, self._local), id(sys.stderr): _Router(sys.stderr, self._local)}
        sys.stdout, sys.stderr = routers[id(sys.stdout)], routers[id(sys.stderr)]
        for handler in logging.root.handlers:
            if type(handler) is logging.StreamHandler and id(handler.stream) in routers:
                self._handlers.append((handler, handler.setStream(routers[id(handler.stream)])))

    def _uninstall(self) -> None:
        for handler, stream in self._handlers:
            if isinstance(handler.stream, _Router):
                handler.setStream(stream)
        self._handlers.clear()
        if self._saved is not None:
            sys.stdout, sys.stderr = self._saved
            self._saved = None

    @contextmanager
    def task_output(self) -> Iterator[LogBuffer]:
        buffer = LogBuffer()
        with self._lock:
            if self._users == 0:
                self._install()
            self._users += 1
        _SINK.task_begins(buffer)
        self._local.buffer = buffer
        try:
            yield buffer
        finally:
            self._local.buffer = None
            _SINK.task_ends(buffer)
            with self._lock:
                self._users -= 1
                if self._users == 0:
                    self._uninstall()


class _Sink:
    """Fds 1 and 2 of this process pointed at one append-only file, while held (and fd 0
    at /dev/null: tasks read no input)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._users = 0
        self._fd: int | None = None  # kept open for the process: children may still write to it
        self._saved: dict[int, int] = {}  # 1 and 2 -> a duplicate of the original descriptor
        self._saved_input: int | None = None  # a duplicate of fd 0, on /dev/null meanwhile
        self._terminals: dict[int, TextIO] = {}
        self._read = 0  # bytes of the file settled so far
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._running: list[LogBuffer] = []  # buffers of the tasks running in this process
        self._unattributed = LogBuffer()

    @property
    def active(self) -> bool:
        return self._users > 0

    def enter(self) -> None:
        with self._lock:
            if self._users == 0:
                self._redirect()
            self._users += 1

    def exit(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users == 0:
                self._restore()

    def _redirect(self) -> None:
        _flush_python_streams()
        if self._fd is None:
            handle, path = tempfile.mkstemp(prefix="targetrun-output-")
            os.close(handle)
            # O_APPEND: children share this open file; every write lands at the end.
            self._fd = os.open(path, os.O_RDWR | os.O_APPEND)
            os.unlink(path)
        for fd in STD_FDS:
            try:
                self._saved[fd] = os.dup(fd)
            except OSError:  # no such descriptor (a daemon): nothing to protect
                continue
            os.dup2(self._fd, fd)
        # Tasks read no input, as a shell task's command's stdin is /dev/null: input() in a
        # Python task, or a command it runs that reads (`read x`), waited on the terminal
        # for a line, its prompt captured -- the run hung with nothing on the screen.
        try:
            self._saved_input = os.dup(0)
        except OSError:
            self._saved_input = None
        else:
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.close(null)

    def _restore(self) -> None:
        _flush_python_streams()
        _flush_c_streams()
        self.settle()
        for stream in self._terminals.values():
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        self._terminals.clear()
        for fd, saved in self._saved.items():
            os.dup2(saved, fd)
            os.close(saved)
        self._saved.clear()
        if self._saved_input is not None:
            os.dup2(self._saved_input, 0)
            os.close(self._saved_input)
            self._saved_input = None
        if self._fd is not None:  # start the file over: nothing in it is unsettled
            os.ftruncate(self._fd, 0)
            self._read = 0
        self._running.clear()  # a task still running (a thread that cannot be stopped) is on its own now

    def terminal(self, fd: int, like: TextIO) -> TextIO | None:
        """A text stream on the original descriptor ``fd`` while the sink holds it."""
        with self._lock:
            saved = self._saved.get(fd)
            if saved is None:
                return None
            stream = self._terminals.get(fd)
            if stream is None:
                raw = io.FileIO(saved, "w", closefd=False)
                stream = io.TextIOWrapper(io.BufferedWriter(raw), encoding=getattr(like, "encoding", None) or "utf-8",
                                          errors=getattr(like, "errors", None) or "strict",
                                          line_buffering=bool(getattr(like, "line_buffering", False)))
                self._terminals[fd] = stream
            return stream

    def settle(self) -> None:
        """Attribute the bytes written to the sink since the last settle."""
        if self._users == 0 or self._fd is None:
            return
        with self._lock:
            if self._fd is None:
                return
            size = os.fstat(self._fd).st_size
            if size <= self._read:
                return
            # chunk by chunk into a buffer that keeps only a log's worth (LogBuffer): a
            # subprocess of a task may have written gigabytes to the sink since the last settle
            into = self._running[0] if len(self._running) == 1 else self._unattributed
            while self._read < size:
                chunk = os.pread(self._fd, min(size - self._read, 1 << 20), self._read)
                if not chunk:
                    break
                self._read += len(chunk)
                into.write(self._decoder.decode(chunk))

    def task_begins(self, buffer: LogBuffer) -> None:
        if not self.active:
            return
        with self._lock:
            self.settle()
            self._running.append(buffer)

    def task_ends(self, buffer: LogBuffer) -> None:
        if not self.active:
            return
        _flush_c_streams()  # a C extension's printf sits in stdio's buffer until flushed
        with self._lock:
            self.settle()
            with contextlib.suppress(ValueError):
                self._running.remove(buffer)

    def take_unattributed(self) -> str:
        with self._lock:
            self.settle()
            text = self._unattributed.tail()
            self._unattributed = LogBuffer()
            return text


def _flush_python_streams() -> None:
    for stream in {id(s): s for s in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__) if s is not None}.values():
        with contextlib.suppress(Exception):
            stream.flush()


_LIBC: Any = None


def _flush_c_streams() -> None:
    """``fflush(NULL)``: C code's buffered stdout reaches the descriptor now, not at exit."""
    global _LIBC
    try:
        if _LIBC is None:
            import ctypes  # only when capturing a task's C-level output

            _LIBC = ctypes.CDLL(None)
        _LIBC.fflush(None)
    except (OSError, AttributeError, TypeError):  # no C library to ask (not POSIX)
        pass


_CAPTURE = _Capture()  # one per process: sys.stdout is one per process too
_SINK = _Sink()  # and so are file descriptors 1 and 2


def task_output() -> AbstractContextManager[LogBuffer]:
    """``with task_output() as buffer:`` -- what this thread's task prints goes to ``buffer``
    (and, while :func:`process_output` is held, what reaches fds 1 and 2 when it runs alone)."""
    return _CAPTURE.task_output()


@contextmanager
def process_output() -> Iterator[None]:
    """Hold fds 1 and 2 of this process on the sink (re-entrant; restored by the last exit)."""
    _SINK.enter()
    try:
        yield
    finally:
        _SINK.exit()


def unattributed_output() -> str:
    """What reached fds 1 and 2 since the last call and could not be told to be one task's."""
    return _SINK.take_unattributed()


class TerminalStream(StopSafeFinalizer, io.TextIOBase):
    """A reporter's stream that stays on the terminal while the sink holds fds 1 and 2.

    Wraps ``stream``; when ``stream`` writes to fd 1 or 2 and the sink holds it, writes go
    to a duplicate of the original descriptor instead. Any other stream (a StringIO, a
    test runner's buffer) is written to as it is.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream
        self._fd = _std_fd(stream)

    def _target(self) -> TextIO:
        if self._fd is not None:
            terminal = _SINK.terminal(self._fd, self.stream)
            if terminal is not None:
                return terminal
        return self.stream

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        write_whole(self._target(), text)  # (a short write by a full disk is not taken for a whole one)
        return len(text)

    def flush(self) -> None:
        self._target().flush()

    def isatty(self) -> bool:
        target = self._target()
        return bool(getattr(target, "isatty", lambda: False)())

    def fileno(self) -> int:
        return self._target().fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.stream, "encoding", None) or "utf-8"


def terminal(stream: TextIO | IO[str]) -> TextIO:
    """``stream``, kept on the terminal while tasks' output is captured (see TerminalStream).
    A stream on another descriptor, or on none (a StringIO), is returned as it is -- and so is
    one that stays on the terminal by itself below what it does (``stays_on_terminal``: the
    CLI's redacting streams), which a TerminalStream around it would bypass."""
    if isinstance(stream, TerminalStream) or getattr(stream, "stays_on_terminal", False) or _std_fd(stream) is None:
        return cast(TextIO, stream)
    return cast(TextIO, TerminalStream(cast(TextIO, stream)))


def _std_fd(stream: object) -> int | None:
    try:
        fd = stream.fileno()  # type: ignore[attr-defined]
    except Exception:  # no descriptor at all (io.UnsupportedOperation, AttributeError, ...)
        return None
    return fd if fd in STD_FDS else None


def tail(text: str, limit: int = MAX_LOG_CHARS, *, cut: int = 0) -> str:
    """The end of a long log, marked as cut (``cut``: characters already dropped before
    ``text``, whose start is then a cut made by :func:`_kept_end`).

    >>> tail("abcdef", 3), tail("def", 3, cut=3)
    ('[... 3 characters cut ...]\\ndef', '[... 3 characters cut ...]\\ndef')
    """
    if len(text) <= limit and not cut:
        return text
    kept = _kept_end(text, limit)
    return f"[... {cut + len(text) - len(kept)} characters cut ...]\n{kept}"


def _kept_end(text: str, limit: int) -> str:
    """The last ``limit`` characters of ``text`` at most, from a line (or a word) that starts whole."""
    if len(text) <= limit:
        return text
    kept = text[-limit:]
    if text[-limit - 1] != "\n":  # the cut falls inside a line: drop the rest of it
        kept = _from_next_break(kept)
    return kept


def _from_next_break(text: str) -> str:
    """``text`` from its second line, else from its second word, else whole. A cut
    inside a word would leave the end of whatever it held -- a credential, whose
    redaction (later, by the process that knows the secrets) finds only the whole
    value: so the end of a long log is kept from a line, or a word, that starts whole.

    >>> _from_next_break("ret-value\\nnext line"), _from_next_break("lue more"), _from_next_break("word")
    ('next line', 'more', 'word')
    """
    for breaks in ("\n", " \t\r"):
        at = min((i for i in (text.find(c) for c in breaks) if i >= 0), default=-1)
        if at >= 0 and text[at + 1:].strip():
            return text[at + 1:]
    return text
