"""The Serializer port: how a value becomes the bytes of a checkpoint, and back.

``dump`` writes to a binary file (streaming, so a large value is never held twice in
memory); ``load`` reads from one. Built-ins: pickle, json, text, bytes, the table formats
parquet, csv, feather, frame-json and jsonl (pandas or polars DataFrames, pyarrow Tables),
the array formats npy and npz, and two *rules* that pick a format by the value: ``text-or-json`` (a ``.txt``
target of a Python task: a str as text, any other JSON value as JSON) and ``by-suffix``
(a suffix more than one format claims: a DataFrame to ``.json`` as frame-json, a dict as
json). The checkpoint records the concrete serializer a rule picked, so reading never
guesses.

**The registry is the truth.** Every serializer class says its ``name``, the target
``suffixes`` it claims for a Python task's value, the ``output_suffixes`` it reads a shell
command's file by, what it ``accepts`` and the ``extra`` it needs. Suffix inference
(:func:`for_suffix`), the Pipelinefile's ``serializer:`` check and the "formats that fit"
of an error all read the classes in :data:`SERIALIZERS`; a plugin registered through the
``targetrun.serializers`` entry point takes part exactly like a built-in.

**A reference** is what a task carries and a checkpoint records: a name, an optional
compression (``+gz``, ``+bz2``, ``+xz``, ``+zst``, from a target suffix such as
``events.csv.gz``) and optional options as a JSON object::

    parquet            csv+gz {"sep":";"}            parquet {"frame":"polars"}

so a checkpoint written with ``sep: ";"`` or from a polars DataFrame is read back with
the same options and as the same kind of value. :func:`serializer` builds one from a
reference.

``executes_code`` says whether loading bytes can run code chosen by whoever wrote them
(pickle can). Such bytes are loaded only through :func:`targetrun.checkpoints.read_value`,
which applies the trust rule. A serializer that does not say is assumed to run code.
Libraries (pandas, pyarrow, polars, numpy, zstandard) are imported when a value is written
or read, never when targetrun starts; a missing one is a :class:`MissingExtraError` (exit
2) naming the extra to install.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import queue
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, BinaryIO, cast

from targetrun.errors import EXTRA_OF, MissingExtraError, UsageError
from targetrun.registry import Entry, Registry


class SerializationError(Exception):
    """The value cannot be written (or read) by this serializer."""


class FormatMismatch(SerializationError):
    """The value is not one this format can hold (a dict to ``.parquet``): exit 2, with the
    formats that fit the value."""

    def __init__(self, formats: dict[str, str], value: object, where: str = "") -> None:
        self.formats = formats  # format name -> what it takes
        self.value_type = type_name(value)
        self.fits = formats_for(value)
        self.where = where or f"as {', '.join(formats)}"
        super().__init__(formats, self.value_type, self.where)

    def __str__(self) -> str:
        takes = "; ".join(f"{name} takes {what}" for name, what in self.formats.items())
        fits = ", ".join(self.fits) if self.fits else "none of the registered formats"
        return (f"a {self.value_type} cannot be written {self.where} ({takes}); "
                f"formats that take a {self.value_type}: {fits}")


COMPRESSIONS = {".gz": "gz", ".bz2": "bz2", ".xz": "xz", ".zst": "zst"}  # target suffix -> codec


class Serializer(ABC):
    name: str = ""
    executes_code: bool = True  # loading may run code the writer chose: only recorded, verified bytes
    suffixes: tuple[str, ...] = ()  # target suffixes whose Python values this format writes
    output_suffixes: tuple[str, ...] = ()  # a shell command's file with this suffix is read by it
    takes: str = "any value"  # what ``accepts`` admits, for messages
    extra: str | None = None  # the targetrun extra whose libraries it imports
    options: tuple[str, ...] = ()  # the options a Pipelinefile may give it
    seekable: bool = False  # ``load`` needs a file it can seek (parquet, feather, npz)
    reads_whole: bool = False  # ``load`` reads the whole file into memory anyway: hand it the bytes already read

    def __init__(self, **options: Any) -> None:
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            known = ", ".join(self.options) or "none"
            raise UsageError(f"serializer {self.name!r} has no option {unknown[0]!r}", hint=f"Its options: {known}.")
        self.settings: dict[str, Any] = dict(options)

    @abstractmethod
    def dump(self, value: object, f: BinaryIO) -> None: ...

    @abstractmethod
    def load(self, f: BinaryIO) -> object: ...

    def accepts(self, value: object) -> bool:
        """Whether ``value`` is one this format can hold (checked before writing; cheap,
        by type, never importing a library)."""
        return True

    def for_value(self, value: object) -> str:
        """The reference that writes ``value``: this one (with its options), except for a
        rule that picks by the value or a format that records what kind of value it held.
        The checkpoint records the reference returned here, so reading never guesses.
        Raises :class:`FormatMismatch` when the value does not fit."""
        if not self.accepts(value):
            raise FormatMismatch({self.name: self.takes}, value)
        return str(Ref(self.name, None, self.settings))


SERIALIZERS = Registry(
    "serializer",
    "targetrun.serializers",
    {
        "pickle": Entry("targetrun.serializers.builtin:PickleSerializer"),
        "json": Entry("targetrun.serializers.builtin:JsonSerializer"),
        "text": Entry("targetrun.serializers.builtin:TextSerializer"),
        "bytes": Entry("targetrun.serializers.builtin:BytesSerializer"),
        "text-or-json": Entry("targetrun.serializers.builtin:TextOrJsonSerializer"),
        "by-suffix": Entry("targetrun.serializers.builtin:BySuffixSerializer"),
        "parquet": Entry("targetrun.serializers.frames:ParquetSerializer"),
        "csv": Entry("targetrun.serializers.frames:CsvSerializer"),
        "feather": Entry("targetrun.serializers.frames:FeatherSerializer"),
        "frame-json": Entry("targetrun.serializers.frames:FrameJsonSerializer"),
        "jsonl": Entry("targetrun.serializers.frames:JsonLinesSerializer"),
        "npy": Entry("targetrun.serializers.arrays:NpySerializer"),
        "npz": Entry("targetrun.serializers.arrays:NpzSerializer"),
    },
)
RULES = ("text-or-json", "by-suffix")  # pick a format by the value; never recorded themselves


# -- references ---------------------------------------------------------------------


@dataclass(frozen=True)
class Ref:
    """A parsed serializer reference (the module docstring).

    >>> str(Ref.parse('csv+gz {"sep": ";"}')), Ref.parse("parquet")
    ('csv+gz {"sep":";"}', Ref(name='parquet', compression=None, options={}))
    """

    name: str
    compression: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, ref: str) -> Ref:
        head, _, raw = ref.partition(" ")
        name, _, compression = head.partition("+")
        options = json.loads(raw) if raw.strip() else {}
        if not isinstance(options, dict):
            raise UsageError(f"serializer reference {ref!r}: options must be a JSON object")
        return cls(name, compression or None, options)

    def __str__(self) -> str:
        head = f"{self.name}+{self.compression}" if self.compression else self.name
        if not self.options:
            return head
        return f"{head} {json.dumps(dict(self.options), sort_keys=True, separators=(',', ':'))}"


def with_compression(ref: str, compression: str | None) -> str:
    """``ref`` compressed with ``compression`` (a reference already compressed keeps its own)."""
    parsed = Ref.parse(ref)
    if compression is None or parsed.compression is not None:
        return ref
    return str(Ref(parsed.name, compression, parsed.options))


# -- the registry as the source of suffixes -----------------------------------------


def classes(*, plugins: bool) -> list[type[Serializer]]:
    """The registered serializer classes: the built-ins, then (if asked) the plugins."""
    names = SERIALIZERS.builtins()
    if plugins:
        names += [name for name in SERIALIZERS.names(plugins=True) if name not in names]
    return [SERIALIZERS.get(name) for name in names]


def split_suffix(target: str) -> tuple[str, str | None]:
    """A target's format suffix and compression codec.

    >>> split_suffix("events.csv.zst"), split_suffix("a/b.PARQUET"), split_suffix("a.b/c")
    (('.csv', 'zst'), ('.parquet', None), ('', None))
    """
    name = target.rsplit("/", 1)[-1].lower()
    stem, dot, last = name.rpartition(".")
    compression = COMPRESSIONS.get(f".{last}") if dot else None
    if compression is not None:
        name = stem
    _, dot, suffix = name.rpartition(".")
    return (f".{suffix}" if dot else ""), compression


def for_suffix(suffix: str, *, command_output: bool) -> str | None:
    """The serializer reference a target suffix implies, or None if no format claims it.

    Built-ins are consulted first; plugins (entry points, read once) only for a suffix no
    built-in claims, so a plain run never pays for reading them. Several formats claiming
    one suffix make the rule ``by-suffix``, which picks by the value when it is written.
    """
    if not suffix:
        return None
    for plugins in (False, True):
        attr = "output_suffixes" if command_output else "suffixes"
        claim = [cls.name for cls in classes(plugins=plugins) if suffix in getattr(cls, attr)]
        if len(claim) == 1:
            return claim[0]
        if claim:
            return str(Ref("by-suffix", None, {"suffix": suffix}))
    return None


def formats_for(value: object) -> list[str]:
    """The formats (with their suffixes) that can hold ``value``, for a mismatch message."""
    fits = []
    for cls in classes(plugins=True):
        if cls.name in RULES or not cls.suffixes:
            continue
        try:
            if cls().accepts(value):
                fits.append(f"{cls.name} ({', '.join(cls.suffixes)})")
        except Exception:  # noqa: BLE001 - a plugin that cannot tell does not fit
            continue
    return fits


def file_suffix(ref: str) -> str:
    """The suffix of a checkpoint file named after its serializer (a task with no target)."""
    if ref not in _REF_NAMES:  # parsed once per reference: 10,000 cache hits ask with a few
        try:
            _REF_NAMES[ref] = Ref.parse(ref).name
        except UsageError:
            _REF_NAMES[ref] = None
    name = _REF_NAMES[ref]
    if name is None:
        return ".bin"
    try:
        cls = SERIALIZERS.get(name)  # asked each time: a plugin may be registered meanwhile
    except UsageError:
        return ".bin"
    return next(iter(cls.suffixes or cls.output_suffixes), ".bin")


_REF_NAMES: dict[str, str | None] = {}  # serializer reference -> its name (None: not a reference)


# -- values, by type, without importing their libraries ----------------------------


def kind_of(value: object) -> str | None:
    """``pandas``, ``polars`` or ``arrow`` for a DataFrame or Table; ``numpy`` for an
    ndarray; None otherwise. By the type's module, so no library is imported to ask.

    >>> kind_of({}), kind_of([1])
    (None, None)
    """
    cls = type(value)
    top = cls.__module__.split(".", 1)[0]
    if top == "pandas" and cls.__name__ == "DataFrame":
        return "pandas"
    if top == "polars" and cls.__name__ == "DataFrame":
        return "polars"
    if top == "pyarrow" and cls.__name__ == "Table":
        return "arrow"
    if top == "numpy" and cls.__name__ == "ndarray":
        return "numpy"
    return None


def type_name(value: object) -> str:
    """How a message names a value's type: ``dict``, ``pandas DataFrame``, ``numpy ndarray``."""
    cls = type(value)
    top = cls.__module__.split(".", 1)[0]
    return cls.__name__ if top == "builtins" else f"{top} {cls.__name__}"




def require(module: str, purpose: str) -> ModuleType:
    """Import an optional library, or raise :class:`MissingExtraError` (exit 2) naming the
    extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        top = module.split(".", 1)[0]
        raise MissingExtraError.needs(purpose, top, EXTRA_OF.get(top, top)) from None


# -- writing on a second thread -----------------------------------------------------


class _WriteBehind(io.RawIOBase):
    """A write-only file that hands each write, as an immutable ``bytes``, to a thread that
    writes it to the real file (see :func:`write_behind`)."""

    def __init__(self, f: BinaryIO, depth: int) -> None:
        super().__init__()
        self._f = f
        self._chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=depth)  # bounds the memory held
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._drain, name="targetrun-write", daemon=True)
        self._thread.start()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._raise()
        chunk = data if type(data) is bytes else bytes(data)  # a copy the caller cannot change after returning
        self._chunks.put(chunk)
        return len(chunk)

    def finish(self) -> None:
        """Wait until every chunk is written; raise what writing one raised."""
        self._chunks.put(None)
        self._thread.join()
        self._raise()

    def _drain(self) -> None:
        while (chunk := self._chunks.get()) is not None:
            if self._error is None:  # after a failure keep taking chunks, so a writer never blocks
                try:
                    self._f.write(chunk)
                except BaseException as exc:  # noqa: BLE001 - raised again on the caller's thread
                    self._error = exc

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error


@contextlib.contextmanager
def write_behind(f: BinaryIO, depth: int = 16) -> Iterator[BinaryIO]:
    """A file whose writes reach ``f`` on a thread of their own, in order, while the caller
    goes on encoding: what ``f`` does with each chunk (the checkpoint's sha256 and the disk
    write, both without the GIL) overlaps the encoder's own work on a second core. Each
    chunk is an immutable copy, so the bytes ``f`` hashes are the bytes it writes. At most
    ``depth`` chunks wait; leaving the block waits for all of them and raises the error one
    of them met (a full disk), else the block's own error."""
    behind = _WriteBehind(f, depth)
    try:
        yield cast(BinaryIO, behind)
    except BaseException:
        with contextlib.suppress(BaseException):
            behind.finish()
        raise
    behind.finish()
