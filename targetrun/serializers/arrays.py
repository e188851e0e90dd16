"""numpy arrays: ``.npy`` for one array, ``.npz`` for a dict of named arrays.

Written with ``allow_pickle=False`` and read the same way, so neither format can carry
code: an object-dtype array (which would need pickle) is refused when it is written.
numpy is imported when a value is written or read.
"""

from __future__ import annotations

from typing import Any, BinaryIO

from targetrun.serializers.base import FormatMismatch, SerializationError, Serializer, kind_of, require


class NpySerializer(Serializer):
    name = "npy"
    executes_code = False
    suffixes = (".npy",)
    takes = "a numpy ndarray"
    extra = "numpy"
    seekable = True  # np.load reads the magic string, then seeks back

    def accepts(self, value: object) -> bool:
        return kind_of(value) == "numpy"

    def dump(self, value: object, f: BinaryIO) -> None:
        if not self.accepts(value):
            raise FormatMismatch({self.name: self.takes}, value)
        np = require("numpy", "writing npy")
        try:
            np.save(f, value, allow_pickle=False)
        except ValueError as exc:
            raise SerializationError(f"numpy cannot write this array without pickle: {exc}") from None

    def load(self, f: BinaryIO) -> object:
        np = require("numpy", "reading npy")
        try:
            return np.load(f, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise SerializationError(f"not a readable .npy array: {exc}") from None


class NpzSerializer(Serializer):
    name = "npz"
    executes_code = False
    suffixes = (".npz",)
    takes = "a dict of str to numpy ndarray"
    extra = "numpy"
    seekable = True

    def accepts(self, value: object) -> bool:
        return (isinstance(value, dict) and bool(value)
                and all(isinstance(k, str) and kind_of(v) == "numpy" for k, v in value.items()))

    def dump(self, value: object, f: BinaryIO) -> None:
        if not self.accepts(value):
            raise FormatMismatch({self.name: self.takes}, value)
        np = require("numpy", "writing npz")
        arrays: dict[str, Any] = dict(value)  # type: ignore[call-overload]
        try:
            np.savez(f, allow_pickle=False, **arrays)
        except ValueError as exc:
            raise SerializationError(f"numpy cannot write these arrays without pickle: {exc}") from None

    def load(self, f: BinaryIO) -> object:
        np = require("numpy", "reading npz")
        try:
            with np.load(f, allow_pickle=False) as archive:
                return {name: archive[name] for name in archive.files}
        except (ValueError, OSError, EOFError) as exc:
            raise SerializationError(f"not a readable .npz archive: {exc}") from None
