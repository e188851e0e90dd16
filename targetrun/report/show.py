"""``targetrun show TASK``: how a task's checkpointed value is printed.

:func:`targetrun.api.show` finds and reads the value (checked like every other read);
this module only turns it into text: a str or bytes as it is, anything JSON can write as
indented JSON, the rest as :func:`pprint.pformat` gives it -- line by line, with control
characters escaped.
"""

from __future__ import annotations

import json
import pprint
from typing import TextIO

from targetrun.redact import printable


def render_value(value: object, out: TextIO) -> None:
    """The value's own lines, each with its control characters escaped (a stored value
    cannot move the cursor or hide text in a terminal or CI log)."""
    out.write("\n".join(printable(line) for line in format_value(value).split("\n")) + "\n")


def format_value(value: object) -> str:
    """
    >>> format_value("line\\n"), format_value({"a": [1]}), format_value({1, 2})
    ('line', '{\\n  "a": [\\n    1\\n  ]\\n}', '{1, 2}')
    """
    if isinstance(value, str):
        return value.rstrip("\n")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace").rstrip("\n")
    try:
        return json.dumps(value, indent=2, ensure_ascii=False)
    except (TypeError, ValueError):
        return pprint.pformat(value)
