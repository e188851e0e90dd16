"""The Serializer port: how a value becomes the bytes of a checkpoint, and back.

``dump`` writes to a binary file (streaming, so a large value is never held twice in
memory); ``load`` reads from one. Built-ins: pickle, json, text, bytes, and the rule
``text-or-json`` (a ``.txt`` target of a Python task): a str is written as text, any other
JSON value (99, 1.5, true, null, a list, a dict) as JSON, which reads as "99" and loads
back as 99; the checkpoint records which one wrote it. A serializer that
cannot represent a value raises :class:`SerializationError`, which fails the task with a
message saying what was returned and what the serializer takes.

``executes_code`` says whether loading bytes can run code chosen by whoever wrote them
(pickle can). Such bytes are loaded only through :func:`targetrun.checkpoints.read_value`,
which applies the trust rule. A serializer that does not say is assumed to run code.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import BinaryIO

from targetrun.registry import Entry, Registry


class SerializationError(Exception):
    """The value cannot be written (or read) by this serializer."""


class Serializer(ABC):
    name: str = ""
    executes_code: bool = True  # loading may run code the writer chose: only recorded, verified bytes

    @abstractmethod
    def dump(self, value: object, f: BinaryIO) -> None: ...

    @abstractmethod
    def load(self, f: BinaryIO) -> object: ...

    def for_value(self, value: object) -> str:
        """The serializer that writes ``value``: this one, except for a rule that picks by
        the value (``text-or-json``). The checkpoint records the name returned here, so
        reading never guesses."""
        return self.name


SERIALIZERS = Registry(
    "serializer",
    "targetrun.serializers",
    {
        "pickle": Entry("targetrun.serializers.builtin:PickleSerializer"),
        "json": Entry("targetrun.serializers.builtin:JsonSerializer"),
        "text": Entry("targetrun.serializers.builtin:TextSerializer"),
        "bytes": Entry("targetrun.serializers.builtin:BytesSerializer"),
        "text-or-json": Entry("targetrun.serializers.builtin:TextOrJsonSerializer"),
    },
)


def serializer(name: str) -> Serializer:
    cls = SERIALIZERS.get(name)
    return cls()  # type: ignore[no-any-return]
