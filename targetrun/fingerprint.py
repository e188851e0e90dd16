"""Stable fingerprints of values, inputs and parameters, for cache validators.

A cache entry records, when it is written, one fingerprint per input (the upstream
checkpoint's content hash, so deciding later never loads the upstream value) and one per
parameter. A validator compares the recorded fingerprints with the current ones:
``all_inputs`` all of them, ``partial_inputs_only: [x]`` only ``x``, and so on.

Fingerprints are short strings: ``sha256:<hex>`` of a canonical encoding (JSON with
sorted keys where the value allows it, pickle otherwise). DataFrames, Arrow tables and
numpy arrays -- alone or inside a list or dict -- are encoded by their content, never by
pickle (whose bytes depend on the library's version and protocol details): an array by its
dtype, shape and data; a pandas DataFrame by its columns, dtypes and
``pandas.util.hash_pandas_object`` (index included, fixed key); a polars DataFrame or a
pyarrow Table by its uncompressed Arrow IPC stream. So the same table fingerprints the same
in every process and on every machine. (A checkpointed value is fingerprinted by the sha256
of its file's bytes instead.)
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, BinaryIO

from targetrun.model import StaleKind, Validator

PENDING = "pending"  # an input whose upstream runs in this run: known only afterwards


def of_value(value: object) -> str:
    """Fingerprint of a Python value.

    >>> of_value({"b": 1, "a": [1, 2]}) == of_value({"a": [1, 2], "b": 1})
    True
    >>> of_value(1) == of_value("1")
    False
    """
    try:
        data = b"j" + json.dumps(value, sort_keys=True, separators=(",", ":"), default=_by_content).encode()
    except (TypeError, ValueError):
        import pickle  # only for values JSON cannot hold

        data = b"p" + pickle.dumps(value, protocol=4)
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _by_content(value: object) -> object:
    """A table or array as the digest of its canonical bytes (JSON cannot hold it)."""
    canonical = _table_bytes(value)
    if canonical is None:
        raise TypeError(type(value).__name__)
    return {"$content": hashlib.sha256(canonical).hexdigest()}


def _table_bytes(value: object) -> bytes | None:
    """The canonical bytes of a numpy array, a pandas or polars DataFrame or a pyarrow
    Table; None for anything else. Libraries are imported only when such a value is here
    (its module is then already loaded)."""
    cls = type(value)
    top, name = cls.__module__.split(".", 1)[0], cls.__name__
    v: Any = value
    if top == "numpy" and name == "ndarray" and not v.dtype.hasobject:
        numpy: Any = importlib.import_module("numpy")
        header = json.dumps([v.dtype.str, list(v.shape)]).encode()
        data: bytes = numpy.ascontiguousarray(v).tobytes()
        return b"npy" + header + b"\0" + data
    if top == "pandas" and name == "DataFrame":
        pandas: Any = importlib.import_module("pandas")
        try:
            rows: bytes = pandas.util.hash_pandas_object(v, index=True).to_numpy().tobytes()
        except TypeError:  # unhashable cells (lists, dicts): pickle decides
            return None
        header = json.dumps([[str(c) for c in v.columns], [str(t) for t in v.dtypes], str(v.index.dtype)]).encode()
        return b"pandas" + header + b"\0" + rows
    if top == "polars" and name == "DataFrame":
        return b"arrow" + bytes(v.write_ipc_stream(None, compression="uncompressed").getvalue())
    if top == "pyarrow" and name == "Table":
        pyarrow: Any = importlib.import_module("pyarrow")
        importlib.import_module("pyarrow.ipc")
        sink = pyarrow.BufferOutputStream()
        with pyarrow.ipc.new_stream(sink, v.schema) as writer:
            writer.write_table(v)
        return b"arrow" + bytes(sink.getvalue())
    return None


def stream_digest(f: BinaryIO, copy_to: BinaryIO | None = None) -> tuple[int, str]:
    """Size and sha256 of what is left to read in ``f``, read 1 MiB at a time (and
    written to ``copy_to`` on the way, so the bytes hashed are the bytes kept).

    >>> import io
    >>> stream_digest(io.BytesIO(b"abc"))[0], stream_digest(io.BytesIO(b"abc"))[1][:12]
    (3, 'ba7816bf8f01')
    """
    digest = hashlib.sha256()
    size = 0
    while chunk := f.read(1024 * 1024):
        digest.update(chunk)
        size += len(chunk)
        if copy_to is not None:
            copy_to.write(chunk)
    return size, digest.hexdigest()


def of_content(content_hash: str) -> str:
    """Fingerprint of a checkpoint from its recorded content hash."""
    return content_hash if content_hash.startswith(("sha256:", "stat:")) else f"sha256:{content_hash}"


def of_params(params: Mapping[str, object]) -> dict[str, str]:
    return {name: of_value(value) for name, value in sorted(params.items())}


def canonical(fingerprints: Mapping[str, str]) -> str:
    """A mapping of fingerprints as one text (sorted keys, compact), as records store it.

    >>> canonical({"b.py:f": "def:2", "a.py:g": "task:1"})
    '{"a.py:g":"task:1","b.py:f":"def:2"}'
    """
    return json.dumps(dict(sorted(fingerprints.items())), separators=(",", ":"))


def variant(inputs: Mapping[str, str], params: Mapping[str, str], owner: tuple[str, str]) -> str:
    """The identity of a cache entry under its key: one entry per task (``owner``: its
    pipeline and name) and distinct fingerprint set. Tasks sharing a ``cache_key`` keep
    their own entries, as Prefect 1 keeps every task's Cached state under the key.

    >>> variant({}, {}, ("p", "a")) == variant({}, {}, ("p", "b"))
    False
    """
    data = json.dumps([sorted(inputs.items()), sorted(params.items()), list(owner)], separators=(",", ":")).encode()
    return hashlib.sha256(data).hexdigest()[:32]


def relevant(validator: Validator, names: tuple[str, ...], inputs: Mapping[str, str],
             params: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """The fingerprints a validator looks at.

    >>> relevant(Validator.PARTIAL_INPUTS_ONLY, ("x",), {"x": "1", "y": "2"}, {"p": "3"})
    ({'x': '1'}, {})
    """
    if validator is Validator.ALL_INPUTS:
        return dict(inputs), {}
    if validator is Validator.ALL_PARAMETERS:
        return {}, dict(params)
    if validator is Validator.PARTIAL_INPUTS_ONLY:
        return {k: v for k, v in inputs.items() if k in names}, {}
    if validator is Validator.PARTIAL_PARAMETERS_ONLY:
        return {}, {k: v for k, v in params.items() if k in names}
    return {}, {}


class Change(Enum):
    """How one fingerprint differs from its record."""

    CHANGED = "changed"
    GONE = "is gone"  # recorded, no longer there (``all_*`` validators)
    UNKNOWN = "is not known"  # a ``partial_*`` validator names it, the task has no such input/parameter
    PENDING = "is recomputed in this run: kept if it comes out the same"  # its upstream runs first: known only afterwards


@dataclass(frozen=True, slots=True)
class Difference:
    """Which input or parameter fails a validator, and how: a value, not a text to parse.

    >>> str(Difference(StaleKind.PARAMETERS, "city", Change.CHANGED))
    "parameter 'city' changed"
    """

    kind: StaleKind  # INPUTS or PARAMETERS
    name: str
    change: Change

    def __str__(self) -> str:
        noun = "parameter" if self.kind is StaleKind.PARAMETERS else "input"
        return f"{noun} {self.name!r} {self.change.value}"


def mismatch(validator: Validator, names: tuple[str, ...], recorded_inputs: Mapping[str, str],
             recorded_params: Mapping[str, str], inputs: Mapping[str, str],
             params: Mapping[str, str]) -> Difference | None:
    """Why a recorded entry fails its validator, or None if it passes.

    Missing fingerprints count as changed: an entry written without them cannot vouch
    for them (Prefect compared against nothing and passed; targetrun does not).

    >>> str(mismatch(Validator.ALL_PARAMETERS, (), {}, {"n": "a"}, {}, {"n": "b"}))
    "parameter 'n' changed"
    >>> mismatch(Validator.DURATION_ONLY, (), {}, {"n": "a"}, {}, {"n": "b"}) is None
    True
    """
    want_inputs, want_params = relevant(validator, names, inputs, params)
    if validator in (Validator.PARTIAL_INPUTS_ONLY, Validator.PARTIAL_PARAMETERS_ONLY):
        of_inputs = validator is Validator.PARTIAL_INPUTS_ONLY
        pool = inputs if of_inputs else params
        missing = [n for n in names if n not in pool]
        if missing:
            return Difference(StaleKind.INPUTS if of_inputs else StaleKind.PARAMETERS, missing[0], Change.UNKNOWN)
    for kind, want, recorded in ((StaleKind.INPUTS, want_inputs, recorded_inputs),
                                 (StaleKind.PARAMETERS, want_params, recorded_params)):
        for name, fingerprint in want.items():
            if fingerprint == PENDING:
                return Difference(StaleKind.INPUTS, name, Change.PENDING)
            if recorded.get(name) != fingerprint:
                return Difference(kind, name, Change.CHANGED)
        if validator in (Validator.ALL_INPUTS, Validator.ALL_PARAMETERS):
            extra = set(recorded) - set(want)
            if extra and (kind is StaleKind.INPUTS) == (validator is Validator.ALL_INPUTS):
                return Difference(kind, sorted(extra)[0], Change.GONE)
    return None
