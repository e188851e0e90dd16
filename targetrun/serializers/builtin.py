"""pickle, json, text and bytes serializers."""

from __future__ import annotations

import json
import pickle
from typing import BinaryIO

from targetrun.serializers.base import SerializationError, Serializer


class PickleSerializer(Serializer):
    """Any picklable value. Loading a pickle runs code chosen by whoever wrote it:
    only read pickles from storage you trust (see the README's security notes)."""

    name = "pickle"
    executes_code = True

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

    def dump(self, value: object, f: BinaryIO) -> None:
        try:
            text = json.dumps(value, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise SerializationError(f"the value is not JSON: {exc}") from None
        f.write(text.encode("utf-8") + b"\n")

    def load(self, f: BinaryIO) -> object:
        try:
            return json.load(f)
        except (ValueError, UnicodeDecodeError) as exc:
            raise SerializationError(f"not valid JSON: {exc}") from None


class TextSerializer(Serializer):
    name = "text"
    executes_code = False

    def dump(self, value: object, f: BinaryIO) -> None:
        if not isinstance(value, str):
            raise SerializationError(f"the text serializer takes a str, the task returned {type(value).__name__}")
        f.write(value.encode("utf-8"))

    def load(self, f: BinaryIO) -> object:
        try:
            return f.read().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SerializationError(f"not UTF-8 text: {exc}") from None


class BytesSerializer(Serializer):
    name = "bytes"
    executes_code = False

    def dump(self, value: object, f: BinaryIO) -> None:
        if isinstance(value, str):
            value = value.encode("utf-8")
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

    def for_value(self, value: object) -> str:
        return "text" if isinstance(value, str) else "json"

    def dump(self, value: object, f: BinaryIO) -> None:
        (TextSerializer() if isinstance(value, str) else JsonSerializer()).dump(value, f)

    def load(self, f: BinaryIO) -> object:
        return TextSerializer().load(f)
