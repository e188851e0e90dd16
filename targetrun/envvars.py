"""``${VAR}`` in storage options and in ``cache:`` comes from the environment.

So no password needs to live in the Pipelinefile. An unset ``${VAR}`` is an error (exit
2) naming the variable -- never sent on as the literal text ``${VAR}``, which would reach
a server as a wrong password or a wrong host. ``$VAR`` without braces is expanded when set
and otherwise left as written (a literal ``$`` in a password stays). The message names
the variable, never its value.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from targetrun.errors import SpecError

_VARIABLE = re.compile(r"\$\{([^}]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def expand_env(text: str, where: str, *, file: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """``text`` with ``${VAR}`` and set ``$VAR`` replaced from the environment (one pass,
    so an expanded value is never expanded again).

    >>> expand_env("redis://:${PW}@h:6379/0", "cache", environ={"PW": "s"})
    'redis://:s@h:6379/0'
    >>> expand_env("a$b ${C}", "cache", environ={"C": "$b"})
    'a$b $b'
    >>> expand_env("a${NOPE}b", "cache", environ={})
    Traceback (most recent call last):
    ...
    targetrun.errors.SpecError: cache: cache uses ${NOPE}, which is not set in the environment. Set it (export NOPE=...) or write the value without ${...}.
    """
    if "$" not in text:
        return text
    env = os.environ if environ is None else environ

    def one(match: re.Match[str]) -> str:
        if match[2] is not None:
            return env.get(match[2], match[0])
        name = match[1]
        if not _NAME.fullmatch(name):
            raise SpecError(f"{where} has ${{{name}}}, which is not a variable name", file=file, key=where,
                            hint="Write ${NAME} with letters, digits and _.")
        if name not in env:
            raise SpecError(f"{where} uses ${{{name}}}, which is not set in the environment", file=file, key=where,
                            hint=f"Set it (export {name}=...) or write the value without ${{...}}.")
        return env[name]

    return _VARIABLE.sub(one, text)
