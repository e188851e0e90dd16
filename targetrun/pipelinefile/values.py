"""Limits every parameter value obeys, wherever it comes from.

A parameter reaches a run from the Pipelinefile's ``params:``, from ``-p NAME=VALUE``,
from ``--params-file`` or from the Python API (:func:`targetrun.api.run`). Whatever the
source, :func:`check_param_name` and :func:`check_param_value` hold it to the same rules
before anything is planned: a plain name that is not a dunder, no NUL byte in any text
(no file name or shell word can hold one), at most :data:`MAX_VALUES` values counted
with every repeat of a shared part (the YAML "billion laughs" shape), and at most
:data:`MAX_DEPTH` levels of nesting.

No third-party imports: :mod:`targetrun.api` checks Python API values with it on every run.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from targetrun.errors import UsageError

MAX_VALUES = 100_000
MAX_DEPTH = 64
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_param_name(name: object) -> str:
    """A parameter name: letters, digits and ``_``, not starting with ``__``.

    >>> check_param_name("city")
    'city'
    >>> check_param_name("__init__")
    Traceback (most recent call last):
    ...
    targetrun.errors.UsageError: parameter name '__init__' starts with '__'; such names are reserved. Use a plain name such as city.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise UsageError(f"parameter name {name!r} is not a plain name (letters, digits, _)",
                         hint="Use a plain name such as city.")
    if name.startswith("__"):
        raise UsageError(f"parameter name {name!r} starts with '__'; such names are reserved",
                         hint="Use a plain name such as city.")
    return name


def check_param_value(name: str, value: object) -> None:
    """Refuse a value with a NUL byte, more than MAX_VALUES parts or deeper than MAX_DEPTH.

    >>> check_param_value("x", {"a": [1, "two", None]})
    >>> check_param_value("x", ["ok", "b\\0d"])
    Traceback (most recent call last):
    ...
    targetrun.errors.UsageError: parameter 'x' holds a NUL byte (in x[1]); no path or command can hold one
    """
    budget = MAX_VALUES
    stack: list[tuple[object, str, int]] = [(value, name, 0)]
    while stack:
        item, where, depth = stack.pop()
        budget -= 1
        if budget < 0:
            raise UsageError(f"parameter {name!r} has more than {MAX_VALUES:,} values (counting each repeat of a "
                             "shared or aliased part)", hint="Pass a smaller value; YAML aliases must not multiply it.")
        if depth > MAX_DEPTH:
            raise UsageError(f"parameter {name!r} nests deeper than {MAX_DEPTH} levels")
        if isinstance(item, str):
            if "\0" in item:
                raise UsageError(f"parameter {name!r} holds a NUL byte (in {where}); no path or command can hold one")
            if not _utf8(item):
                raise UsageError(f"parameter {name!r} is not UTF-8 text (in {where}): it holds a lone surrogate "
                                 "(bytes that were not UTF-8)", hint="Pass the value as UTF-8 text.")
        elif isinstance(item, Mapping):
            for key, child in item.items():
                stack.append((key, f"{where} key", depth + 1))
                stack.append((child, f"{where}[{key!r}]", depth + 1))
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend((child, f"{where}[{i}]", depth + 1) for i, child in enumerate(item))
