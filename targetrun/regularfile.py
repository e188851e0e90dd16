"""Open a local file for reading only when it is a regular file.

A FIFO, a device or a socket can sit where targetrun expects a file -- planted, or
swapped in between a stat and an open. Opening a FIFO for reading waits for a writer
forever, and ``/dev/zero`` never ends; so every local read of a target, a dep, a module's
source, a cache, a certificate or the Pipelinefile opens without waiting and judges the
opened descriptor, not the path: what was checked is what is read.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import stat
from typing import BinaryIO

try:
    import fcntl
except ImportError:  # Windows: no FIFO to wait on, and no O_NONBLOCK set
    fcntl = None  # type: ignore[assignment]

__all__ = ["NotRegularFile", "LeadsOutside", "open_regular", "regular_descriptor", "read_named", "read_upto", "kind_of",
           "READ_FLAGS"]

# Read-only, without waiting for a writer (a FIFO), not inherited by commands.
READ_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)


class NotRegularFile(OSError):
    """Something is at the path, but no regular file: its ``mode`` says what."""

    def __init__(self, path: str, mode: int) -> None:
        super().__init__(errno.EINVAL, f"{kind_of(mode)}, not a regular file", path)
        self.mode = mode


class LeadsOutside(OSError):
    """The path is a symlink, or lies in a folder that resolves outside the one it must be in."""

    def __init__(self, path: str, inside: str) -> None:
        super().__init__(errno.ELOOP, f"a symlink, or in a folder that leads out of {inside}", path)


def kind_of(mode: int) -> str:
    """What a file of ``mode`` is, in words.

    >>> kind_of(stat.S_IFIFO), kind_of(stat.S_IFCHR), kind_of(stat.S_IFDIR)
    ('a FIFO', 'a device', 'a folder')
    """
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "no regular file"


def open_regular(path: str, *, streams_too: bool = False, inside: str | None = None) -> BinaryIO:
    """``path`` opened for reading, blocking as usual once open; :class:`NotRegularFile`
    when it is no regular file, OSError as ``os.open`` raises it.

    ``streams_too``: a pipe or a character device is read as well -- only for a file the
    user names on the command line, which may be a stream (``-f <(generate)``,
    ``--params-file /dev/stdin``), and only by a caller that reads at most a limit. A
    FIFO no process writes to then reads as empty at once instead of waiting.

    ``inside``: a folder of targetrun's own the file must lie in (a task's log under
    ``.targetrun/logs/``): a symlink at the path, or a folder on the way that resolves out
    of it, is :class:`LeadsOutside` -- what was planted there is not read through."""
    if inside is None:
        return os.fdopen(regular_descriptor(path, streams_too=streams_too), "rb")
    fd = regular_descriptor(path, streams_too=streams_too, no_link=True)
    folder, within = os.path.realpath(os.path.dirname(path)), os.path.realpath(inside)
    if os.path.commonpath([folder, within]) != within:
        os.close(fd)
        raise LeadsOutside(path, inside)
    return os.fdopen(fd, "rb")


def regular_descriptor(path: str, *, streams_too: bool = False, no_link: bool = False) -> int:
    """:func:`open_regular` as a bare descriptor, for a hot path that reads it with
    ``os.read`` (a file object adds a stat, a terminal test and a seek); the caller closes it.
    ``no_link``: a symlink at ``path`` itself is not followed (ELOOP)."""
    try:
        fd = os.open(path, READ_FLAGS | (getattr(os, "O_NOFOLLOW", 0) if no_link else 0))
    except OSError as exc:
        if no_link and exc.errno == errno.ELOOP:
            _refuse_link(path)
        raise
    try:
        mode = os.fstat(fd).st_mode
        if not (stat.S_ISREG(mode) or (streams_too and (stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)))):
            raise NotRegularFile(path, mode)
        _block(fd)
        return fd
    except BaseException:
        with contextlib.suppress(OSError):
            os.close(fd)
        raise


def _refuse_link(path: str) -> None:
    """A symlink where no link belongs: said as what it leads to when that is no regular file
    (a link to ``/dev/zero`` is a device), else as a link (never followed to be read)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:  # dangling, or a loop: a link all the same
        mode = stat.S_IFREG
    if not stat.S_ISREG(mode):
        raise NotRegularFile(path, mode)
    raise LeadsOutside(path, os.path.dirname(path))


def _block(fd: int) -> None:
    """Clear O_NONBLOCK: one ``fcntl`` call, as this module chose every status flag itself
    (``os.set_blocking`` reads them first)."""
    if fcntl is not None:
        fcntl.fcntl(fd, fcntl.F_SETFL, 0)


def read_named(path: str, limit: int) -> bytes:
    """The bytes of a file the user names on the command line (the Pipelinefile, a params
    file): a regular file, or a stream -- a pipe (``-f <(generate)``) or a character device
    (``/dev/stdin``) -- read up to ``limit`` bytes and no further (``/dev/zero`` never ends).

    OSError as :func:`open_regular` raises it; EFBIG past ``limit`` (a regular file by its
    size, unread); ENODATA for a pipe that ended before any byte, which is how a FIFO no
    process writes to reads: refused at once rather than taken for an empty file, nor
    waited on forever."""
    with open_regular(path, streams_too=True) as f:
        info = os.fstat(f.fileno())
        if stat.S_ISREG(info.st_mode) and info.st_size > limit:
            raise OSError(errno.EFBIG, f"{info.st_size:,} bytes, more than the {limit:,} allowed", path)
        first = _first_of_pipe(f.fileno(), path, limit) if stat.S_ISFIFO(info.st_mode) else b""
        data = first + read_upto(f, limit - len(first))
    if len(data) > limit:
        raise OSError(errno.EFBIG, f"more than the {limit:,} bytes allowed", path)
    return data


_CHUNK = 1 << 20  # a read of a stream, at most


def read_upto(f: BinaryIO, limit: int) -> bytes:
    """What is left to read of ``f`` up to ``limit`` bytes and one more (so that the caller
    tells "more than the limit" from "the limit"), in pieces the size of the file (or of
    :data:`_CHUNK` for a stream): never a read of the whole limit at once, which allocates
    all of it first (64 MiB for a Pipelinefile of a few kilobytes, on every command)."""
    try:
        info = os.fstat(f.fileno())
        wanted = info.st_size + 1 if stat.S_ISREG(info.st_mode) else _CHUNK
    except (OSError, ValueError, io.UnsupportedOperation):
        wanted = _CHUNK
    pieces: list[bytes] = []
    size = 0
    while size <= limit and (piece := f.read(max(1, min(wanted, limit + 1 - size)))):
        pieces.append(piece)
        size += len(piece)
        wanted = _CHUNK
    return b"".join(pieces)


def _first_of_pipe(fd: int, path: str, limit: int) -> bytes:
    """What a pipe holds now, read without waiting: empty when a writer is there but has not
    written yet (it will, or close); ENODATA when the pipe has ended with nothing in it."""
    os.set_blocking(fd, False)
    try:
        first = os.read(fd, min(limit + 1, _CHUNK))
    except BlockingIOError:
        return b""  # a writer is there: reading waits for it, as for any stream
    finally:
        os.set_blocking(fd, True)
    if not first:
        raise OSError(errno.ENODATA, "a pipe or FIFO that nothing writes to (it ended before its first byte)", path)
    return first
