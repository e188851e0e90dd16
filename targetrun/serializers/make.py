"""A serializer from its reference: ``csv+gz {"sep": ";"}`` is the csv serializer with
those options, compressed with gzip.

The one place that puts a format and a compression together, above both (the formats
know nothing of compression, and :mod:`~targetrun.serializers.compression` wraps any
:class:`~targetrun.serializers.base.Serializer`).
"""

from __future__ import annotations

from targetrun.serializers.base import SERIALIZERS, Ref, Serializer


def serializer(ref: str) -> Serializer:
    """The serializer a reference names, with its options and compression.

    >>> type(serializer("json")).__name__, type(serializer("json+gz")).__name__
    ('JsonSerializer', 'Compressed')
    """
    parsed = Ref.parse(ref)
    cls = SERIALIZERS.get(parsed.name)
    made: Serializer = cls(**parsed.options)
    if parsed.compression is None:
        return made
    from targetrun.serializers.compression import Compressed  # gzip, bz2, lzma: only when asked

    return Compressed(made, parsed.compression)
