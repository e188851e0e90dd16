"""Writing a text to an output stream whole, or failing: never a silent short write.

Python's buffered layer answers a large write that the disk takes only in part (a full
disk, ``ulimit -f``) with a short count and no error, and its text layer drops the count:
the rest is lost and nothing says so (``status --json > file`` ended at byte 65,536, exit
0). A stream in non-blocking mode (a parent set O_NONBLOCK on the pipe) raises
``BlockingIOError`` in the middle of a text instead of waiting for its reader.
:func:`write_whole` writes to a file stream's descriptor itself: after a short count it
writes the rest (whose write then fails with the disk's error), and it waits for room in a
full pipe. Imports nothing of targetrun: the replayed no-op uses it before the CLI loads.
"""

from __future__ import annotations

import io
import os
import select
from typing import IO


def write_whole(stream: IO[str], text: str) -> None:
    """Write ``text`` to ``stream``, all of it or an ``OSError``. A stream on no descriptor
    (a StringIO, a test runner's buffer) is written to as it is."""
    if not isinstance(stream, io.TextIOWrapper) or (fd := _descriptor(stream)) is None:
        stream.write(text)
        return
    _flush(stream, fd)  # what Python's own layer holds goes first
    data = memoryview(text.encode(stream.encoding or "utf-8", stream.errors or "strict"))
    while data:
        try:
            data = data[os.write(fd, data):]
        except BlockingIOError:  # a non-blocking pipe that is full: wait for its reader
            select.select([], [fd], [])


def _flush(stream: IO[str], fd: int) -> None:
    while True:
        try:
            stream.flush()
            return
        except BlockingIOError:
            select.select([], [fd], [])


def _descriptor(stream: io.TextIOWrapper) -> int | None:
    try:
        return stream.fileno()
    except (OSError, ValueError):  # no descriptor (io.UnsupportedOperation), or closed
        return None
