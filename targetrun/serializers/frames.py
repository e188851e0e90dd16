"""Table formats: parquet, csv, feather (Arrow IPC), frame-json and jsonl.

Each takes a pandas DataFrame, a polars DataFrame or (where the library can write it) a
pyarrow Table, writes it with that value's own library (``df.to_parquet``,
``df.write_parquet``, ``pyarrow.parquet.write_table``), so the file is the one that
library would write and any other reads it. The kind of value is recorded with the
checkpoint (the option ``frame``; pandas when absent), so a downstream task receives the
same kind: a polars DataFrame written to parquet comes back as a polars DataFrame.

What round-trips: parquet and feather keep a pandas DataFrame's dtypes and index. csv
keeps neither an index (it is not written unless ``index: true``) nor dtypes beyond what
the reader infers (dates come back as strings); frame-json and jsonl write records
(``[{"col": value}, ...]`` / one object a line), lose the index and write dates as ISO
text. Options a Pipelinefile may give: ``frame`` (read an unrecorded file as
``pandas``/``polars``/``arrow``), csv's ``sep`` and ``index``, parquet's ``compression``.

Nothing here imports pandas, polars or pyarrow until a value is written or read.
"""

from __future__ import annotations

import io
import tempfile
from typing import Any, BinaryIO

from targetrun.serializers.base import FormatMismatch, SerializationError, Ref, Serializer, kind_of, require, write_behind

FRAME_KINDS = ("pandas", "polars", "arrow")
LOCAL_FILES = (tempfile.SpooledTemporaryFile, io.BytesIO, io.BufferedReader, io.FileIO)
LIBRARY = {"pandas": "pandas", "polars": "polars", "arrow": "pyarrow"}


class FrameSerializer(Serializer):
    """One table format; subclasses write and read each kind of value it takes."""

    executes_code = False
    extra = "pandas"
    kinds: tuple[str, ...] = FRAME_KINDS
    options: tuple[str, ...] = ("frame",)

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        frame = self.settings.get("frame", "pandas")
        if frame not in self.kinds:
            raise SerializationError(f"{self.name} reads as one of {', '.join(self.kinds)}, not {frame!r}")
        self.frame = str(frame)
        names = {"pandas": "a pandas DataFrame", "polars": "a polars DataFrame", "arrow": "a pyarrow Table"}
        self.takes = ", ".join(names[k] for k in self.kinds[:-1]) + f" or {names[self.kinds[-1]]}"

    def accepts(self, value: object) -> bool:
        return kind_of(value) in self.kinds

    def for_value(self, value: object) -> str:
        kind = kind_of(value)
        if kind not in self.kinds:
            raise FormatMismatch({self.name: self.takes}, value)
        options = {k: v for k, v in self.settings.items() if k != "frame"}
        if kind != "pandas":
            options["frame"] = kind
        return str(Ref(self.name, None, options))

    def dump(self, value: object, f: BinaryIO) -> None:
        kind = kind_of(value)
        if kind not in self.kinds:
            raise FormatMismatch({self.name: self.takes}, value)
        assert kind is not None
        library = require(LIBRARY[kind], f"writing {self.name}")
        try:
            self.write(kind, library, value, f)
        except (ValueError, TypeError, OSError) as exc:  # what the libraries raise for a value they cannot write
            raise SerializationError(f"{LIBRARY[kind]} cannot write this value as {self.name}: {exc}") from None

    def load(self, f: BinaryIO) -> object:
        library = require(LIBRARY[self.frame], f"reading {self.name}")
        try:
            return self.read(self.frame, library, f)
        except (ValueError, TypeError, OSError) as exc:
            raise SerializationError(f"not readable as {self.name}: {exc}") from None
        except Exception as exc:  # polars and pyarrow raise their own error types for bad files
            if type(exc).__module__.split(".", 1)[0] in ("polars", "pyarrow"):
                raise SerializationError(f"not readable as {self.name}: {exc}") from None
            raise

    def write(self, kind: str, lib: Any, value: Any, f: BinaryIO) -> None:
        raise NotImplementedError

    def read(self, kind: str, lib: Any, f: BinaryIO) -> object:
        raise NotImplementedError


class ParquetSerializer(FrameSerializer):
    """Parquet. pandas and Arrow values are encoded by Arrow into a native buffered stream
    whose 1 MiB flushes are written to the checkpoint on a second thread (:func:`write_behind`),
    so hashing and writing the bytes overlap the encoding instead of following it, and
    Python is called once per MiB rather than for every page. They are read back from one
    buffer of the file's bytes (``reads_whole``): Arrow then decodes natively instead of
    calling back into Python for every small read or seek. The buffer holds the *encoded*
    file (compressed columns), not a second copy of the value."""

    name = "parquet"
    suffixes = (".parquet", ".pq")
    options = ("frame", "compression")
    seekable = True
    reads_whole = True

    def write(self, kind: str, lib: Any, value: Any, f: BinaryIO) -> None:
        compression = self.settings.get("compression", "snappy")
        if kind == "polars":
            value.write_parquet(f, compression=compression)
            return
        pa = require("pyarrow", "writing parquet")
        with write_behind(f) as behind:
            sink = pa.BufferedOutputStream(pa.PythonFile(behind, mode="w"), buffer_size=1024 * 1024)
            try:
                if kind == "pandas":
                    value.to_parquet(sink, compression=compression)
                else:
                    require("pyarrow.parquet", "writing parquet").write_table(value, sink, compression=compression)
            finally:
                sink.close()  # flushes the last MiB to ``behind`` (``f`` itself stays open)

    def read(self, kind: str, lib: Any, f: BinaryIO) -> object:
        if kind == "polars":
            return lib.read_parquet(f)
        pa = require("pyarrow", "reading parquet")
        # A local or spooled file is read whole (one native buffer, no per-seek callbacks);
        # a remote file (an unrecorded target on S3) is handed over as it is, so pyarrow
        # fetches the footer and the column chunks it needs with ranged reads.
        source = pa.BufferReader(f.read()) if isinstance(f, LOCAL_FILES) else f
        if kind == "pandas":
            return lib.read_parquet(source)
        return require("pyarrow.parquet", "reading parquet").read_table(source)


class FeatherSerializer(FrameSerializer):
    """Feather v2, which is the Arrow IPC file format (hence ``.arrow`` too)."""

    name = "feather"
    suffixes = (".feather", ".arrow")
    seekable = True

    def write(self, kind: str, lib: Any, value: Any, f: BinaryIO) -> None:
        if kind == "polars":
            value.write_ipc(f)
        else:  # pyarrow keeps a pandas index and dtypes in the schema's metadata
            require("pyarrow.feather", "writing feather").write_feather(value, f)

    def read(self, kind: str, lib: Any, f: BinaryIO) -> object:
        if kind == "polars":
            return lib.read_ipc(f)
        table = require("pyarrow.feather", "reading feather").read_table(f)
        return table.to_pandas() if kind == "pandas" else table


class CsvSerializer(FrameSerializer):
    name = "csv"
    suffixes = (".csv",)
    options = ("frame", "sep", "index")

    @property
    def sep(self) -> str:
        return str(self.settings.get("sep", ","))

    def write(self, kind: str, lib: Any, value: Any, f: BinaryIO) -> None:
        if kind == "pandas":
            value.to_csv(f, sep=self.sep, index=bool(self.settings.get("index", False)))
        elif kind == "polars":
            value.write_csv(f, separator=self.sep)
        else:
            csv = require("pyarrow.csv", "writing csv")
            csv.write_csv(value, f, csv.WriteOptions(delimiter=self.sep))

    def read(self, kind: str, lib: Any, f: BinaryIO) -> object:
        if kind == "pandas":
            index_col = 0 if self.settings.get("index", False) else None
            return lib.read_csv(f, sep=self.sep, index_col=index_col)
        if kind == "polars":
            return lib.read_csv(f, separator=self.sep)
        csv = require("pyarrow.csv", "reading csv")
        return csv.read_csv(f, parse_options=csv.ParseOptions(delimiter=self.sep))


class FrameJsonSerializer(FrameSerializer):
    """A table as a JSON array of records; ``.json`` picks it for a DataFrame (a dict
    still goes to the json serializer)."""

    name = "frame-json"
    suffixes: tuple[str, ...] = (".json",)
    kinds = ("pandas", "polars")
    lines = False

    def write(self, kind: str, lib: Any, value: Any, f: BinaryIO) -> None:
        if kind == "polars":
            (value.write_ndjson if self.lines else value.write_json)(f)
            return
        text = io.TextIOWrapper(f, encoding="utf-8", write_through=True)
        try:
            value.to_json(text, orient="records", lines=self.lines, date_format="iso")
        finally:
            text.detach()  # leave the checkpoint's file open for the caller

    def read(self, kind: str, lib: Any, f: BinaryIO) -> object:
        if kind == "polars":
            return (lib.read_ndjson if self.lines else lib.read_json)(f)
        return lib.read_json(f, orient="records", lines=self.lines)


class JsonLinesSerializer(FrameJsonSerializer):
    """A table as JSON lines: one record object a line."""

    name = "jsonl"
    suffixes = (".jsonl", ".ndjson")
    lines = True
