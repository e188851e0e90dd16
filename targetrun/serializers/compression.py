"""Compression by target suffix: ``data.json.gz``, ``events.csv.zst``.

:class:`Compressed` wraps any serializer: ``dump`` streams the format's bytes through the
compressor into the checkpoint file (a large value is never held twice in memory), ``load``
streams them back through the decompressor -- into a spooled temporary file first when the
format needs to seek (parquet, feather, npz). gzip headers carry no time or file name, so
the same value compresses to the same bytes in every run (its fingerprint is stable).
gz, bz2 and xz are in the standard library; zst needs ``targetrun[zstd]``.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import shutil
import tempfile
from contextlib import contextmanager
from collections.abc import Iterator
from typing import Any, BinaryIO, cast

from targetrun.serializers.base import SerializationError, Serializer, require, with_compression

SPOOL_IN_MEMORY = 16 * 1024 * 1024


class Compressed(Serializer):
    def __init__(self, inner: Serializer, codec: str) -> None:
        super().__init__()
        if codec not in ("gz", "bz2", "xz", "zst"):
            from targetrun.errors import UsageError

            raise UsageError(f"unknown compression {codec!r}", hint="Known: gz, bz2, xz, zst.")
        self.inner = inner
        self.codec = codec
        self.name = inner.name
        self.executes_code = inner.executes_code
        self.takes = inner.takes

    def accepts(self, value: object) -> bool:
        return self.inner.accepts(value)

    def for_value(self, value: object) -> str:
        return with_compression(self.inner.for_value(value), self.codec)

    def dump(self, value: object, f: BinaryIO) -> None:
        with self._compressor(f) as stream:
            self.inner.dump(value, stream)

    def load(self, f: BinaryIO) -> object:
        try:
            return self._load(f)
        except (OSError, EOFError, lzma.LZMAError) as exc:  # gzip.BadGzipFile is an OSError
            raise SerializationError(f"not readable as {self.codec}-compressed {self.name}: {exc}") from None
        except Exception as exc:
            if type(exc).__module__.split(".", 1)[0] == "zstandard":
                raise SerializationError(f"not readable as zst-compressed {self.name}: {exc}") from None
            raise

    def _load(self, f: BinaryIO) -> object:
        with self._decompressor(f) as stream:
            if not self.inner.seekable:
                return self.inner.load(stream)
            with tempfile.SpooledTemporaryFile(SPOOL_IN_MEMORY) as spool:
                kept = cast(BinaryIO, spool)
                shutil.copyfileobj(stream, kept, 1024 * 1024)
                kept.seek(0)
                return self.inner.load(kept)

    @contextmanager
    def _compressor(self, f: BinaryIO) -> Iterator[BinaryIO]:
        stream: Any
        if self.codec == "gz":
            stream = gzip.GzipFile(filename="", fileobj=f, mode="wb", mtime=0)
        elif self.codec == "bz2":
            stream = bz2.BZ2File(f, "wb")
        elif self.codec == "xz":
            stream = lzma.LZMAFile(f, "wb")
        else:
            zstd = require("zstandard", "writing .zst")
            stream = zstd.ZstdCompressor().stream_writer(f, closefd=False)
        with stream:  # closing the compressor flushes it; the checkpoint's file stays open
            yield cast(BinaryIO, stream)

    @contextmanager
    def _decompressor(self, f: BinaryIO) -> Iterator[BinaryIO]:
        stream: Any
        if self.codec == "gz":
            stream = gzip.GzipFile(fileobj=f, mode="rb")
        elif self.codec == "bz2":
            stream = bz2.BZ2File(f, "rb")
        elif self.codec == "xz":
            stream = lzma.LZMAFile(f, "rb")
        else:
            zstd = require("zstandard", "reading .zst")
            stream = zstd.ZstdDecompressor().stream_reader(f, closefd=False)
        with stream:
            yield cast(BinaryIO, stream)
