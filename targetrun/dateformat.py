"""Date format specs as Prefect 1 renders them: its ``date`` is a pendulum DateTime.

``format(pendulum_datetime, spec)`` (pendulum 2, Prefect 1's) does three things, and so does
:func:`render`:

* no spec (``{date}``): ISO 8601 with a ``T`` -- ``2026-12-01T22:08:40.123456+00:00``;
* a spec with a ``%`` anywhere: ``strftime`` (``{date:%Y/%m/%d}``);
* any other spec: pendulum's tokens (``{date:YYYY-MM-DD}``, ``{date:dddd Do MMMM}``),
  ``[text]`` and ``\\x`` for literal text, everything else as it stands.

Locale-dependent tokens are English, pendulum's default. The tokens pendulum 2 renders as
nothing, or as their own letters (``w``, ``W``, ``gggg``, ``GGGG``, ``k``, ``EE``, ``a``,
seven or more ``S``), are refused (:func:`check`): a target named with one would silently
be the same for every date.

Pure: standard library only.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

# pendulum.formatting.Formatter._TOKENS: [literal], \x, or a token (longest first)
_TOKENS = re.compile(
    r"\[([^\[]*)\]|\\(.)|("
    r"Mo|MM?M?M?|Do|DDDo|DD?D?D?|ddd?d?|do?|E{1,4}|w[o|w]?|W[o|W]?|Qo?|YYYY|YY|Y"
    r"|gg(?:ggg?)?|GG(?:GGG?)?|a|A|hh?|HH?|kk?|mm?|ss?|S{1,9}|x|X|zz?|ZZ?|LTS|LT|LL?L?L?)",
    re.DOTALL,
)

_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")
_DAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")  # pendulum's day_of_week: Sunday is 0

# the English locale's long formats (pendulum.locales.en: custom.date_formats)
_LONG = {"LTS": "h:mm:ss A", "LT": "h:mm A", "L": "MM/DD/YYYY", "LL": "MMMM D, YYYY",
         "LLL": "MMMM D, YYYY h:mm A", "LLLL": "dddd, MMMM D, YYYY h:mm A"}
# tokens that print the hour or something finer (so two runs of one day may differ)
_FINER_THAN_A_DAY = frozenset(("H", "HH", "h", "hh", "A", "m", "mm", "s", "ss", "X", "x", "LT", "LTS", "LLL", "LLLL"))


def _day_of_week(d: dt.datetime) -> int:
    return d.isoweekday() % 7


def _ordinal(n: int) -> str:
    """English ordinals, as pendulum's ``en`` locale ordinalizes.

    >>> [_ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 112)]
    ['1st', '2nd', '3rd', '4th', '11th', '12th', '13th', '21st', '112th']
    """
    if n % 100 in (11, 12, 13):
        return f"{n}th"
    return f"{n}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th') }"


def _offset(d: dt.datetime, separator: str) -> str:
    offset = d.utcoffset()
    if offset is None:
        return ""
    minutes = int(offset.total_seconds() // 60)
    hours, minute = divmod(abs(minutes), 60)
    return f"{'-' if minutes < 0 else '+'}{hours:02d}{separator}{minute:02d}"


def _zone(d: dt.datetime) -> str:
    offset = d.utcoffset()
    if offset is None:
        return ""
    return "UTC" if not offset else _offset(d, ":")


def _quarter(d: dt.datetime) -> int:
    return (d.month - 1) // 3 + 1


def _day_of_year(d: dt.datetime) -> int:
    return d.timetuple().tm_yday


def _timestamp(d: dt.datetime) -> int:
    return int((d if d.tzinfo else d.replace(tzinfo=dt.timezone.utc)).timestamp())


_RULES: dict[str, Callable[[dt.datetime], str]] = {
    "YYYY": lambda d: f"{d.year:d}",
    "YY": lambda d: f"{d.year:d}"[2:],  # pendulum's: the year's text from its third digit
    "Y": lambda d: f"{d.year:d}",
    "Q": lambda d: f"{_quarter(d)}",
    "Qo": lambda d: _ordinal(_quarter(d)),
    "M": lambda d: f"{d.month:d}",
    "MM": lambda d: f"{d.month:02d}",
    "MMM": lambda d: _MONTHS[d.month - 1][:3],
    "MMMM": lambda d: _MONTHS[d.month - 1],
    "Mo": lambda d: _ordinal(d.month),
    "D": lambda d: f"{d.day:d}",
    "DD": lambda d: f"{d.day:02d}",
    "Do": lambda d: _ordinal(d.day),
    "DDD": lambda d: f"{_day_of_year(d):d}",
    "DDDD": lambda d: f"{_day_of_year(d):03d}",
    "DDDo": lambda d: _ordinal(_day_of_year(d)),
    "d": lambda d: f"{_day_of_week(d)}",
    "do": lambda d: _ordinal(_day_of_week(d)),
    "dd": lambda d: _DAYS[_day_of_week(d)][:2],
    "ddd": lambda d: _DAYS[_day_of_week(d)][:3],
    "dddd": lambda d: _DAYS[_day_of_week(d)],
    "E": lambda d: f"{d.isoweekday()}",
    "H": lambda d: f"{d.hour:d}",
    "HH": lambda d: f"{d.hour:02d}",
    "h": lambda d: f"{d.hour % 12 or 12:d}",
    "hh": lambda d: f"{d.hour % 12 or 12:02d}",
    "A": lambda d: "PM" if d.hour >= 12 else "AM",
    "m": lambda d: f"{d.minute:d}",
    "mm": lambda d: f"{d.minute:02d}",
    "s": lambda d: f"{d.second:d}",
    "ss": lambda d: f"{d.second:02d}",
    **{"S" * n: (lambda n: lambda d: f"{d.microsecond // 10 ** (6 - n):0{n}d}")(n) for n in range(1, 7)},
    "X": lambda d: f"{_timestamp(d)}",
    "x": lambda d: f"{_timestamp(d) * 1000 + d.microsecond // 1000}",
    "Z": lambda d: _offset(d, ":"),
    "ZZ": lambda d: _offset(d, ""),
    "z": _zone,
    "zz": _zone,
    **{name: (lambda fmt: lambda d: _tokens(d, fmt))(fmt) for name, fmt in _LONG.items()},
}


def _as_datetime(value: dt.date) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    return dt.datetime(value.year, value.month, value.day, tzinfo=dt.timezone.utc)


def _tokens(d: dt.datetime, spec: str) -> str:
    def one(match: re.Match[str]) -> str:
        literal, escaped, token = match.groups()
        if token is None:
            return literal if literal is not None else escaped
        return _RULES[token](d)

    return _TOKENS.sub(one, spec)


# A strftime code Python 3.11 and the C library (glibc, macOS) both render: an optional flag
# (``-_0^#``), a width of at most MAX_STRFTIME_WIDTH and an ``E``/``O`` alternative form. Any
# other code comes out as its own letters (``%Q``, ``%+``, a lone ``%`` at the end) and a wide
# field as nothing: the same text for every date.
MAX_STRFTIME_WIDTH = 64
_STRFTIME_CODE = re.compile(
    r"%(?:(?P<flag>[-_0^#]?)(?P<width>\d*)(?:E[cCxXyY]|O[deHImMSuUVwWy]|[aAbBcCdDeFfgGhHIjklmMnpPrRsStTuUVwWxXyYzZ])|%)"
)


def check(spec: str) -> None:
    """Raise ValueError if ``spec`` would render the same for every date: a pendulum token
    it renders as nothing or as its own letters, or a strftime code (a spec with a ``%``)
    that the C library prints as it stands or, too wide, as nothing.

    >>> check("YYYY-MM-DD"), check("%G-W%V"), check("%-d %Ey %10Y %%")
    (None, None, None)
    >>> check("YYYY-ww")
    Traceback (most recent call last):
    ...
    ValueError: the date format 'YYYY-ww' uses the token 'ww', which Prefect 1's pendulum renders as nothing or as the letters themselves
    >>> check("%Y-%Q")
    Traceback (most recent call last):
    ...
    ValueError: the date format '%Y-%Q' uses '%Q', which strftime renders as the letters themselves, the same for every date
    """
    if not spec:
        return
    if "%" in spec:
        _check_strftime(spec)
    else:
        for match in _TOKENS.finditer(spec):
            token = match.group(3)
            if token is not None and token not in _RULES:
                raise ValueError(f"the date format {spec!r} uses the token {token!r}, which Prefect 1's pendulum "
                                 "renders as nothing or as the letters themselves")
    _check_names_the_date(spec)


# Two moments that differ in every field a format can show (year, month, day, weekday, hour,
# minute, second, fraction, AM/PM, time zone): a spec that renders both alike names no part
# of the date. (The zone counts: `--date 2026-11-01T06:00+02:00` keeps its offset, and
# pendulum's Z / zz name it, as Prefect 1 renders them.)
_APART = (dt.datetime(2001, 2, 3, 4, 5, 6, 7000, tzinfo=dt.timezone.utc),
          dt.datetime(2012, 11, 25, 17, 38, 49, 123000, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))))


def _check_names_the_date(spec: str) -> None:
    """A spec made only of literal text (`%%`, `[text]`, `-`) gives every date one target,
    as a code printed as its own letters does."""
    first, second = (when.strftime(spec) if "%" in spec else _tokens(when, spec) for when in _APART)
    if first == second:
        raise ValueError(f"the date format {spec!r} names no part of the date: it renders as {first!r}, the same "
                         "for every date")


def _check_strftime(spec: str) -> None:
    at = 0
    while (start := spec.find("%", at)) >= 0:
        code = _STRFTIME_CODE.match(spec, start)
        if code is None:
            bad = re.match(r"%[-_0^#]?\d*[EO:]?.?", spec[start:], re.DOTALL)
            shown = bad.group(0) if bad else "%"
            raise ValueError(f"the date format {spec!r} uses {shown!r}, which strftime renders as the letters "
                             "themselves, the same for every date")
        if code.group("width") and int(code.group("width")) > MAX_STRFTIME_WIDTH:
            raise ValueError(f"the date format {spec!r} uses {code.group(0)!r}, a field wider than "
                             f"{MAX_STRFTIME_WIDTH} characters, which strftime renders as nothing, the same for every date")
        at = code.end()


def render(value: dt.date, spec: str) -> str:
    """``format(value, spec)`` as it would be for the same pendulum date (ValueError: a
    token :func:`check` refuses).

    >>> when = dt.datetime(2026, 12, 1, 22, 8, 40, tzinfo=dt.timezone.utc)
    >>> render(when, ""), render(when, "%Y/%m/%d"), render(when, "YYYY-MM-DD [at] HH:mm")
    ('2026-12-01T22:08:40+00:00', '2026/12/01', '2026-12-01 at 22:08')
    """
    if not spec:
        return value.isoformat()
    if "%" in spec:
        return value.strftime(spec)
    check(spec)
    return _tokens(_as_datetime(value), spec)


def finer_than_a_day(spec: str) -> bool | None:
    """Whether a pendulum spec prints the time of day (None: not a pendulum spec).

    >>> finer_than_a_day("YYYY-MM-DD"), finer_than_a_day("LLL"), finer_than_a_day("[HH]"), finer_than_a_day("%H")
    (False, True, False, None)
    """
    if not spec or "%" in spec:
        return None
    return any(m.group(3) in _FINER_THAN_A_DAY for m in _TOKENS.finditer(spec))
