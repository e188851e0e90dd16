"""Durations as the Pipelinefile writes them: ``30s``, ``10m``, ``1h30m``, ``2d``, or seconds.

A duration is at most :data:`MAX_SECONDS` (1,000 years): an expiry time is a date, and
``cache_for: 99999999999999999999d`` would be a date no calendar holds.
"""

from __future__ import annotations

import math
import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
MAX_SECONDS = 1000 * 365 * 86400.0
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")


def parse_duration(raw: object) -> float:
    """Seconds in a duration.

    >>> parse_duration("1h30m"), parse_duration("10s"), parse_duration(5), parse_duration("250ms")
    (5400.0, 10.0, 5.0, 0.25)
    >>> parse_duration(float("nan"))
    Traceback (most recent call last):
    ...
    ValueError: expected a finite duration of 0 or more, found nan
    >>> parse_duration("99999999999999999999d")
    Traceback (most recent call last):
    ...
    ValueError: the duration '99999999999999999999d' is longer than 1,000 years
    >>> parse_duration("soon")
    Traceback (most recent call last):
    ...
    ValueError: expected a duration such as 30s, 10m, 1h or 2d, found 'soon'
    """
    seconds = _seconds(raw)
    if seconds > MAX_SECONDS:
        shown = repr(raw) if len(repr(raw)) <= 40 else repr(str(raw)[:30] + "...")
        raise ValueError(f"the duration {shown} is longer than 1,000 years")
    return seconds


def _seconds(raw: object) -> float:
    if isinstance(raw, bool):
        raise ValueError(f"expected a duration such as 30s, 10m, 1h or 2d, found {raw!r}")
    if isinstance(raw, (int, float)):
        if isinstance(raw, int) and raw > MAX_SECONDS:
            return float("inf")  # float(10**400) would overflow
        if not math.isfinite(raw) or raw < 0:
            raise ValueError(f"expected a finite duration of 0 or more, found {raw!r}")
        return float(raw)
    text = str(raw).strip().lower().replace(" ", "")
    if text and _PART.sub("", text) == "" and _PART.match(text):
        return math.fsum(float(n) * _UNITS[unit] for n, unit in _PART.findall(text))
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"expected a duration such as 30s, 10m, 1h or 2d, found {raw!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"expected a finite duration of 0 or more, found {raw!r}")
    return value


def format_duration(seconds: float) -> str:
    """Short human form.

    >>> format_duration(0.0123), format_duration(75), format_duration(7260)
    ('12ms', '1m15s', '2h1m')
    """
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{seconds:.0f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes}m"
    return f"{hours // 24}d{hours % 24}h"
