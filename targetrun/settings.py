"""Every ``TARGETRUN_*`` environment variable, read and checked in one place.

The command line reads the environment once, before any command runs
(:func:`read_settings`), so a bad value is a usage error (exit 2) that names the
variable and says what it expected, instead of a traceback from deep in the engine or
an executor. The library API reads the same variables through the same functions when
its caller does not pass a value.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from targetrun.durations import parse_duration
from targetrun.errors import UsageError

NOW = "TARGETRUN_NOW"
LOCK_LEASE = "TARGETRUN_LOCK_LEASE"
SCHEDULER_TIMEOUT = "TARGETRUN_SCHEDULER_TIMEOUT"
TRUST = "TARGETRUN_TRUST"
STORE_TIMEOUT = "TARGETRUN_STORE_TIMEOUT"
SCHEDULER = "TARGETRUN_SCHEDULER"

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


@dataclass(frozen=True)
class Settings:
    """The environment's settings, checked."""

    now: float | None  # TARGETRUN_NOW: a fixed "current time" (epoch seconds)
    lock_lease: float  # seconds a task's lock lives without renewal
    scheduler_timeout: float  # seconds to wait for a remote Dask scheduler
    trust: bool  # read pickles that no run of this store recorded
    scheduler: str | None  # a Dask scheduler address
    store_timeout: float  # seconds to wait for another process's write lock on a SQLite store


def read_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and check every variable; raise :class:`UsageError` naming the first bad one."""
    env = os.environ if environ is None else environ
    return Settings(now=now(env), lock_lease=lock_lease(env), scheduler_timeout=scheduler_timeout(env),
                    trust=trust(env), scheduler=scheduler(env), store_timeout=store_timeout(env))


def _bad(name: str, text: str, expected: str) -> UsageError:
    return UsageError(f"the environment variable {name}={text!r} is not {expected}",
                      hint=f"Fix or unset {name}.")


def now(environ: Mapping[str, str] | None = None) -> float | None:
    """``TARGETRUN_NOW``: epoch seconds or an ISO time (UTC unless it says otherwise).

    >>> now({"TARGETRUN_NOW": "2026-11-01T00:00:00"})
    1793491200.0
    >>> now({"TARGETRUN_NOW": "inf"})
    Traceback (most recent call last):
    ...
    targetrun.errors.UsageError: the environment variable TARGETRUN_NOW='inf' is not epoch seconds or an ISO time between 1970 and the year 9999. Fix or unset TARGETRUN_NOW.
    """
    env = os.environ if environ is None else environ
    text = env.get(NOW, "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        try:
            when = dt.datetime.fromisoformat(text)
        except ValueError:
            raise _bad(NOW, text, "epoch seconds or an ISO time") from None
        value = (when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)).timestamp()
    if not math.isfinite(value) or not 0 <= value < MAX_EPOCH:
        raise _bad(NOW, text, "epoch seconds or an ISO time between 1970 and the year 9999")
    return value


MAX_EPOCH = 253_402_300_800.0  # 10000-01-01: later times do not fit a datetime


def _positive_duration(env: Mapping[str, str], name: str, default: float) -> float:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = parse_duration(text)
    except ValueError:
        value = 0.0
    if value <= 0:
        raise _bad(name, text, "a duration above zero (seconds, or 30s, 2m, 1h)")
    return value


def lock_lease(environ: Mapping[str, str] | None = None) -> float:
    """``TARGETRUN_LOCK_LEASE``, default 60 seconds.

    >>> lock_lease({"TARGETRUN_LOCK_LEASE": "2m"}), lock_lease({})
    (120.0, 60.0)
    """
    return _positive_duration(os.environ if environ is None else environ, LOCK_LEASE, 60.0)


def scheduler_timeout(environ: Mapping[str, str] | None = None) -> float:
    """``TARGETRUN_SCHEDULER_TIMEOUT``, default 10 seconds."""
    return _positive_duration(os.environ if environ is None else environ, SCHEDULER_TIMEOUT, 10.0)


def scheduler(environ: Mapping[str, str] | None = None) -> str | None:
    """``TARGETRUN_SCHEDULER``: a Dask scheduler address, or None."""
    return (os.environ if environ is None else environ).get(SCHEDULER) or None


SCHEDULER_SCHEMES = ("tcp", "tls", "ws", "wss")
SCHEDULER_FORM = "tcp://HOST:PORT, e.g. tcp://10.0.0.5:8786"


def scheduler_problem(address: str) -> str | None:
    """What is wrong with a Dask scheduler address, or None: ``[SCHEME://]HOST:PORT`` with a
    scheme Dask connects to, a host that can be looked up and a port of 1-65535. Checked
    before Dask sees it, which raises ValueError, TypeError or UnicodeError of its own.

    >>> scheduler_problem("tcp://10.0.0.5:8786"), scheduler_problem("[::1]:8786")
    (None, None)
    >>> scheduler_problem("tcp://10.0.0.5")
    'names no port'
    """
    scheme, sep, location = address.partition("://")
    if not sep:
        scheme, location = "tcp", address
    if scheme == "inproc":  # a cluster in this very process (the Python API, tests): Dask's own form
        return None if location else "names no address"
    if scheme not in SCHEDULER_SCHEMES:
        return f"has the scheme {scheme!r}; Dask connects with {', '.join(SCHEDULER_SCHEMES)}"
    if "@" in location.split("/", 1)[0]:
        return ("holds user information (user:password@); Dask takes no credentials in an address "
                "-- it authenticates with TLS certificates (tls://HOST:PORT and Dask's TLS settings)")
    host, colon, port = location.rpartition(":")
    if not colon or host.startswith("[") != host.endswith("]"):
        return "names no port"
    if not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        return f"has the port {port!r}; a port is a number from 1 to 65535"
    host = host[1:-1] if host.startswith("[") else host
    if not host or any(c in host for c in "/[]@ \t"):
        return "names no host"
    try:
        host.encode("idna")
    except UnicodeError:
        return f"has the host {host[:60]!r}, which is not a host name"
    return None


def store_timeout(environ: Mapping[str, str] | None = None) -> float:
    """``TARGETRUN_STORE_TIMEOUT``, default 30 seconds (0: do not wait).

    >>> store_timeout({"TARGETRUN_STORE_TIMEOUT": "0.5"}), store_timeout({})
    (0.5, 30.0)
    """
    env = os.environ if environ is None else environ
    text = env.get(STORE_TIMEOUT, "").strip()
    if not text:
        return 30.0
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not math.isfinite(value) or value < 0:
        raise _bad(STORE_TIMEOUT, text, "a number of seconds (for example 30)")
    return value


def trust(environ: Mapping[str, str] | None = None) -> bool:
    """``TARGETRUN_TRUST``: 1/true/yes/on or 0/false/no/off (or unset)."""
    env = os.environ if environ is None else environ
    text = env.get(TRUST, "")
    if text.strip().lower() in _TRUE:
        return True
    if text.strip().lower() in _FALSE:
        return False
    raise _bad(TRUST, text, "1, true, yes, 0, false or no")


_VARIABLE = re.compile(r"\$(\w+)|\$\{([^}]*)\}")


def expand_env(text: str, where: str, environ: Mapping[str, str] | None = None) -> str:
    """``${VAR}`` (and a set ``$VAR``) from the environment (storage options, ``cache:``). An
    unset ``${VAR}`` is a usage error naming it and where it is used -- never the literal text
    ``${VAR}`` sent on as a password or a bucket name.

    >>> expand_env("${HOME_X}/a", "options", {"HOME_X": "/h"})
    '/h/a'
    >>> expand_env("${NOPE}", "results.lake.options.key", {})
    Traceback (most recent call last):
    ...
    targetrun.errors.UsageError: ${NOPE} in results.lake.options.key is not set in the environment. Export NOPE before running targetrun.
    """
    env = os.environ if environ is None else environ

    def value(match: re.Match[str]) -> str:
        name = match[1] or match[2]
        if match[1] and name not in env:
            return match[0]  # a bare $NAME that is not set stays as written, as in a shell's single quotes
        if name not in env:
            raise UsageError(f"${{{name}}} in {where} is not set in the environment",
                             hint=f"Export {name} before running targetrun.")
        return env[name]

    return _VARIABLE.sub(value, text)
