"""Reading a checkpoint: the one function through which stored bytes become a value.

The trust rule (DESIGN.md §3): **no byte is loaded by a serializer that can run code**
(pickle: :attr:`Serializer.executes_code`) **unless it is a checkpoint this state store
recorded and its size and sha256 match the record when it is read** -- or the user passed
``--trust``. Every reader goes through :func:`read_value`: planning (the items of a mapped
task), the run (a worker loading its inputs, a mapped task expanding), and ``show``. The
caller passes what the store recorded for the location (:class:`Expected`, or None when
nothing was recorded); a worker receives it inside its :class:`~targetrun.engine.work.Input`.

There is no gap between checking and using: the bytes are read once into a spooled buffer
(in memory up to 16 MiB, a temporary file beyond), hashed on the way, compared with the
record, and the serializer loads *that buffer*. A file replaced after the check is never
the one loaded.

A serializer that holds the whole file in memory anyway (:attr:`Serializer.reads_whole`:
parquet) reading a *local* checkpoint skips the spool: the file is read once into one
immutable ``bytes`` (never more than the recorded size plus one byte), and the serializer
loads exactly that object. If it cannot run code, it decodes while a second thread hashes
the same object (hashlib and Arrow both release the GIL, so the two overlap on two cores),
and the value is returned only if the digest matches -- a mismatch is still
:class:`CorruptCheckpoint`, whatever the decoder made of the bytes. A serializer that can
run code never overlaps: the check comes first.

A recorded checkpoint whose bytes differ from the record is *corrupt*
(:class:`CorruptCheckpoint`), whatever the serializer and even with ``--trust``: planning
recomputes it, a worker refuses it (the task that needed it fails). An unrecorded file is
loaded only by a serializer that cannot run code (json, text, bytes), or with ``--trust``.
"""

from __future__ import annotations

import hashlib
import io
import tempfile
import threading
from dataclasses import dataclass
from typing import BinaryIO, cast

from targetrun.errors import UsageError
from targetrun.fingerprint import stream_digest
from targetrun.model import Checkpoint
from targetrun.serializers.base import SerializationError
from targetrun.serializers.make import serializer
from targetrun.storage.base import Storage

SPOOL_IN_MEMORY = 16 * 1024 * 1024  # bytes of a checkpoint kept in memory while it is checked
VERIFY_HASH_LIMIT = 64 * 1024 * 1024  # planning checks larger checkpoints by size only (reads hash all)


@dataclass(frozen=True)
class Expected:
    """What the state store recorded for a checkpoint: its size, sha256 and the serializer
    that wrote it. Frozen and picklable, so it travels to a worker with the input it
    describes, and every reader loads the bytes as they were written -- never as what the
    Pipelinefile implies now (a task's serializer changed since, or inferred anew)."""

    size: int
    sha256: str
    serializer: str = ""  # "": not known (a comparison only); the caller's serializer then

    @classmethod
    def of(cls, record: Checkpoint | None) -> Expected | None:
        """The expectation a record sets; None when there is none to check against."""
        if record is None or not record.content_hash:
            return None
        return cls(record.size, record.content_hash, record.serializer)


class CorruptCheckpoint(Exception):
    """A recorded checkpoint whose bytes are no longer the ones recorded."""

    def __init__(self, url: str, problem: str) -> None:
        super().__init__(url, problem)
        self.url = url
        self.problem = problem

    def __str__(self) -> str:
        return f"{self.url} is not what targetrun wrote there ({self.problem})"


def untrusted(url: str, task: str, codec: str) -> UsageError:
    """The refusal to load code-running data no run recorded in this state store (exit 2)."""
    return UsageError(
        f"{url} (task {task!r}) is a {codec} checkpoint that no targetrun run recorded in this state store; "
        f"loading {codec} data runs code chosen by whoever wrote it",
        hint="Pass --trust (or set TARGETRUN_TRUST=1) if you trust its source, or give the task serializer: json.",
    )


def needs_record(codec: str, trust: bool) -> bool:
    """Whether data of this serializer may be loaded only from a recorded, matching checkpoint."""
    return not trust and serializer(codec).executes_code


def read_value(storage: Storage, url: str, codec: str, *, expected: Expected | None, trust: bool, task: str) -> object:
    """Load the value at ``url`` under the trust rule (the module docstring).

    A recorded checkpoint is loaded by the serializer its record names (``codec`` is for
    an unrecorded file). Raises :class:`UsageError` (unrecorded and the serializer can run
    code, no trust) before a byte is read, :class:`CorruptCheckpoint` (bytes differ from the record),
    ``FileNotFoundError`` (gone) or :class:`SerializationError` (not readable as ``codec``).
    """
    if expected is None:
        if needs_record(codec, trust):
            if storage.info(url) is None:  # gone: said as gone, not as a file to trust (--trust would say "gone")
                raise FileNotFoundError(url)
            raise untrusted(url, task, codec)
        with storage.open_read(url) as source:  # nothing to compare with: load as it streams
            return _load(codec, source)
    codec = expected.serializer or codec  # as it was written, never by a guess
    if serializer(codec).reads_whole and storage.local_path(url) is not None:
        return _load_whole(storage, url, codec, expected)
    with storage.open_read(url) as source, tempfile.SpooledTemporaryFile(SPOOL_IN_MEMORY) as buffer:
        kept = cast(BinaryIO, buffer)
        size, digest = stream_digest(source, copy_to=kept)
        problem = mismatch(expected, size, digest)
        if problem is not None:
            raise CorruptCheckpoint(url, problem)
        kept.seek(0)
        return _load(codec, kept)


def _load_whole(storage: Storage, url: str, codec: str, expected: Expected) -> object:
    """Read the checkpoint once into memory and load those very bytes if they match the
    record (the module docstring). Reading stops one byte past the recorded size, so a
    file grown since it was recorded is refused without being read into memory whole."""
    with storage.open_read(url) as source:
        data = bytes(source.read(expected.size + 1))  # bytes: immutable while it is hashed and decoded
        size = len(data) + (_count_rest(source) if len(data) > expected.size else 0)
    problem = mismatch(expected, size, None)
    if problem is not None:
        raise CorruptCheckpoint(url, problem)
    if serializer(codec).executes_code:
        problem = mismatch(expected, None, hashlib.sha256(data).hexdigest())
        if problem is not None:
            raise CorruptCheckpoint(url, problem)
        return _load(codec, io.BytesIO(data))
    digest = _Digest(data)
    try:
        value = _load(codec, io.BytesIO(data))  # BytesIO shares ``data``: no copy
    except Exception:  # (an interrupt stays an interrupt)
        problem = mismatch(expected, None, digest.result())
        if problem is not None:  # corrupt bytes: say so, not what the decoder thought of them
            raise CorruptCheckpoint(url, problem) from None
        raise
    problem = mismatch(expected, None, digest.result())
    if problem is not None:
        raise CorruptCheckpoint(url, problem)  # the value decoded from them is dropped
    return value


class _Digest:
    """The sha256 of an immutable ``bytes``, computed on a thread of its own."""

    def __init__(self, data: bytes) -> None:
        self._hash = hashlib.sha256()
        self._thread = threading.Thread(target=self._hash.update, args=(data,), name="targetrun-sha256", daemon=True)
        self._thread.start()

    def result(self) -> str:
        self._thread.join()
        return self._hash.hexdigest()


def _count_rest(source: BinaryIO) -> int:
    """How many bytes are left in ``source`` (read and dropped a MiB at a time)."""
    size = 0
    while chunk := source.read(1024 * 1024):
        size += len(chunk)
    return size


def _load(codec: str, source: BinaryIO) -> object:
    try:
        return serializer(codec).load(source)
    except RecursionError:  # JSON (or any format) nested deeper than the interpreter can follow
        raise SerializationError("it is nested too deeply to be read") from None


def mismatch(expected: Expected, size: int | None, digest: str | None) -> str | None:
    """Why a checkpoint's size or sha256 is not what was recorded, or None.

    >>> mismatch(Expected(3, "ab"), 2, None)
    'it is 2 bytes, 3 were written'
    >>> mismatch(Expected(3, "ab"), 3, "cd")
    'its content is not what was written (sha256 differs)'
    >>> mismatch(Expected(3, "ab"), 3, "ab") is None
    True
    """
    if size is not None and size != expected.size:
        return f"it is {size:,} bytes, {expected.size:,} were written"
    if digest is not None and digest != expected.sha256:
        return "its content is not what was written (sha256 differs)"
    return None


def verify_checkpoint(storage: Storage, url: str, record: Checkpoint) -> str | None:
    """Compare a checkpoint with its record without loading it: its size, then (up to
    64 MiB) its sha256. Planning uses this to find corrupt checkpoints; the reads that
    follow check again, on the bytes they load."""
    stat = storage.info(url)
    if stat is None:
        return "it is gone"
    if not record.content_hash:  # no content was recorded (a folder a shell task wrote): there is nothing to compare
        return None
    expected = Expected(record.size, record.content_hash)
    problem = mismatch(expected, stat.size, None)
    if problem is not None or not record.content_hash or record.size > VERIFY_HASH_LIMIT:
        return problem
    try:
        with storage.open_read(url) as f:
            _, digest = stream_digest(f)
    except (FileNotFoundError, IsADirectoryError):
        return None  # a folder written by a shell task: its size was enough
    return mismatch(expected, None, digest)
