"""Capture what a Python task prints, per thread, so parallel tasks do not mix.

While at least one task runs, ``sys.stdout`` and ``sys.stderr`` are replaced by a router
that sends a write to the buffer of the task running in the writing thread, or to the
original stream for any other thread. The router is installed when the first task
starts and removed when the last one ends (reference counted under a lock). What a task
printed travels back with its result, whatever the executor, and is written to
``.targetrun/logs/RUN_ID/TASK.log`` by the coordinating process.
"""

from __future__ import annotations

import io
import sys
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TextIO

MAX_LOG_CHARS = 1_000_000  # keep the end of very chatty tasks


class _Router(io.TextIOBase):
    def __init__(self, original: TextIO, local: threading.local) -> None:
        super().__init__()
        self.original = original
        self._local = local

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        buffer: io.StringIO | None = getattr(self._local, "buffer", None)
        if buffer is None:
            return self.original.write(text)
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

    @contextmanager
    def task_output(self) -> Iterator[io.StringIO]:
        buffer = io.StringIO()
        with self._lock:
            if self._users == 0:
                self._saved = (sys.stdout, sys.stderr)
                sys.stdout = _Router(sys.stdout, self._local)
                sys.stderr = _Router(sys.stderr, self._local)
            self._users += 1
        self._local.buffer = buffer
        try:
            yield buffer
        finally:
            self._local.buffer = None
            with self._lock:
                self._users -= 1
                if self._users == 0 and self._saved is not None:
                    sys.stdout, sys.stderr = self._saved
                    self._saved = None


_CAPTURE = _Capture()  # one per process: sys.stdout is one per process too


def task_output() -> AbstractContextManager[io.StringIO]:
    """``with task_output() as buffer:`` -- what this thread prints goes to ``buffer``."""
    return _CAPTURE.task_output()


def tail(text: str, limit: int = MAX_LOG_CHARS) -> str:
    """The end of a long log, marked as cut.

    >>> tail("abcdef", 3)
    '[... 3 characters cut ...]\\ndef'
    """
    if len(text) <= limit:
        return text
    return f"[... {len(text) - limit} characters cut ...]\n{text[-limit:]}"
