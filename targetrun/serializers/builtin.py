"""pickle, json, text and bytes serializers, and the rules that pick one by the value."""

from __future__ import annotations

import json
import pickle
from typing import Any, BinaryIO

from targetrun.errors import UsageError
from targetrun.serializers.base import FormatMismatch, SerializationError, Serializer, classes, kind_of



def _utf8(text: str) -> bytes:
    """``text`` as UTF-8; text that is not Unicode -- a lone surrogate, which ``os.fsdecode``
    makes of a file name's bytes that are not UTF-8 -- is the value's failure to fit the
    format (:class:`SerializationError`), not an error inside targetrun with its traceback.

    >>> _utf8("a\\udcffb")
    Traceback (most recent call last):
    ...
    targetrun.serializers.base.SerializationError: the value holds text that is not Unicode text ('\\udcff' at character 1: a lone surrogate, as os.fsdecode makes of bytes that are not UTF-8); decode such bytes first (bytes.decode with errors='replace'), or return bytes
    """
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise SerializationError(
            f"the value holds text that is not Unicode text ({ascii(text[exc.start:exc.end])} at character {exc.start}: "
            "a lone surrogate, as os.fsdecode makes of bytes that are not UTF-8); decode such bytes first "
            "(bytes.decode with errors='replace'), or return bytes") from None


class PickleSerializer(Serializer):
    """Any picklable value. Loading a pickle runs code chosen by whoever wrote it:
    only read pickles from storage you trust (see the README's security notes)."""

    name = "pickle"
    executes_code = True
    suffixes = output_suffixes = (".pkl", ".pickle")

    def dump(self, value: object, f: BinaryIO) -> None:
        try:
            pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise SerializationError(f"the value cannot be pickled: {exc}") from None

    def load(self, f: BinaryIO) -> object:
        try:
            return pickle.load(f)
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError) as exc:
            raise SerializationError(f"not a readable pickle: {exc}") from None


class JsonSerializer(Serializer):
    name = "json"
    executes_code = False
    suffixes = output_suffixes = (".json",)
    takes = "a JSON value (dict, list, str, number, bool or None)"

    def accepts(self, value: object) -> bool:
        return kind_of(value) is None and not isinstance(value, (bytes, bytearray, memoryview))

    def dump(self, value: object, f: BinaryIO) -> None:
        try:
            text = json.dumps(value, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise SerializationError(f"the value is not JSON: {exc}") from None
        f.write(_utf8(text) + b"\n")

    def load(self, f: BinaryIO) -> object:
        try:
            return json.load(f)
        except (ValueError, UnicodeDecodeError) as exc:
            raise SerializationError(f"not valid JSON: {exc}") from None


class TextSerializer(Serializer):
    name = "text"
    executes_code = False
    output_suffixes = (".txt",)  # a Python task's .txt is the rule text-or-json
    takes = "a str"

    def accepts(self, value: object) -> bool:
        return isinstance(value, str)

    def dump(self, value: object, f: BinaryIO) -> None:
        if not isinstance(value, str):
            raise SerializationError(f"the text serializer takes a str, the task returned {type(value).__name__}")
        f.write(_utf8(value))

    def load(self, f: BinaryIO) -> object:
        try:
            return f.read().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SerializationError(f"not UTF-8 text: {exc}") from None


class BytesSerializer(Serializer):
    name = "bytes"
    executes_code = False
    takes = "bytes or a str"

    def accepts(self, value: object) -> bool:
        return isinstance(value, (bytes, bytearray, memoryview, str))

    def dump(self, value: object, f: BinaryIO) -> None:
        if isinstance(value, str):
            value = _utf8(value)
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise SerializationError(f"the bytes serializer takes bytes, the task returned {type(value).__name__}")
        f.write(value)

    def load(self, f: BinaryIO) -> object:
        return f.read()


class TextOrJsonSerializer(Serializer):
    """The rule for a Python task's ``.txt`` target: readable text whatever the value.

    A str is written as text; any other JSON value as JSON text (``99``, ``[1, 2]``), so
    the file reads as the value and the value round-trips. ``for_value`` names the one
    used, and that name is what the checkpoint records. ``load`` is used only for a file
    no run recorded (made by something else): it is text then.
    """

    name = "text-or-json"
    executes_code = False
    suffixes = (".txt",)
    takes = "a str or a JSON value"

    def accepts(self, value: object) -> bool:
        return JsonSerializer().accepts(value)

    def for_value(self, value: object) -> str:
        if not self.accepts(value):
            raise FormatMismatch({"text": "a str", "json": "a JSON value"}, value, "to a .txt target")
        return "text" if isinstance(value, str) else "json"

    def dump(self, value: object, f: BinaryIO) -> None:
        (TextSerializer() if isinstance(value, str) else JsonSerializer()).dump(value, f)

    def load(self, f: BinaryIO) -> object:
        return TextSerializer().load(f)


class BySuffixSerializer(Serializer):
    """The rule for a suffix several formats claim (``.json``: json for a dict, frame-json
    for a DataFrame): the first claimant that accepts the value writes it, and that is the
    one recorded. ``load`` (a file no run recorded) uses the first claimant, the built-in
    that needs no extra library."""

    name = "by-suffix"
    options = ("suffix",)
    takes = "a value one of the formats claiming the suffix accepts"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.suffix = str(self.settings.get("suffix", ""))
        self.candidates = [cls() for cls in classes(plugins=True) if self.suffix in cls.suffixes]
        if not self.candidates:
            raise UsageError(f"no serializer claims the suffix {self.suffix!r}")
        self.executes_code = any(c.executes_code for c in self.candidates)

    def for_value(self, value: object) -> str:
        for candidate in self.candidates:
            if candidate.accepts(value):
                return candidate.for_value(value)
        raise self._mismatch(value)

    def dump(self, value: object, f: BinaryIO) -> None:
        for candidate in self.candidates:
            if candidate.accepts(value):
                return candidate.dump(value, f)
        raise self._mismatch(value)

    def _mismatch(self, value: object) -> FormatMismatch:
        return FormatMismatch({c.name: c.takes for c in self.candidates}, value, f"to a {self.suffix} target")

    def load(self, f: BinaryIO) -> object:
        return self.candidates[0].load(f)
