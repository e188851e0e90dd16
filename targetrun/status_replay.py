"""``targetrun status`` answered from the last identical status's certificate, when
nothing its table rested on has changed since: the status counterpart of
:mod:`targetrun.replay` (read that first; this module shares its key and its checks).

Why: a status over 10,000 targets loads the Pipelinefile, plans every task, reads the
records and renders the table (~0.5 s) to say again what the last one said; only two
columns, the ages, move with the clock. So a status whose table rested only on what can
be checked again cheaply leaves a certificate (written by :func:`targetrun.certify.certify_status`),
and the next status reads it before anything else of targetrun is imported.

A status certificate holds, besides the replay's **key** (the command line, folder,
Pipelinefile bytes, environment, Python and targetrun's own sources) and **day**:

* every row's cells that do not move with the clock (task, target, state, size), and
  for every target the **stat signature** it had (size, modification and change time in
  nanoseconds: a file put in its place, a folder or a FIFO, is made later) or that it was missing -- every target is looked at again, so a
  target deleted, created or rewritten since makes the full status answer; the real path
  of every folder holding one;
* the state store's **generations** of records (every checkpoint or task record written,
  replaced or removed tags them anew, at random: schema 7) and of the cache, so a run, an
  ``invalidate``, a ``gc`` by another process or another store put in place since makes
  the full status answer; and no pending write
  (the full status would settle it first);
* each row's last run (its state and when it finished): the age columns are computed
  from them and the clock, as the full status computes them.

Only a status whose every task is decided by its target's existence and the store alone
is certified: shell tasks (their code is the command, in the Pipelinefile), no ``deps``,
no ``cache_for`` or ``never_use``, not mapped, local targets, templates fixed for the
day; plain text (no terminal, no ``--json``); no credential known to the process (the
replay could not mask it). Anything else, and any error here, returns None: the full
status answers, as if this module did not exist. Standard library only.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO

from targetrun import replay

FORMAT = replay.FORMAT  # replay.write writes it; a status certificate is told apart by its fields
HEADERS = ("task", "target", "state", "size", "age", "last run")  # targetrun/report/status.py's
# Options of `status` a replayable command may have, and whether each takes a value.
_OPTIONS = {"-f": True, "--file": True, "-p": True, "--param": True, "--date": True, "--check": False}


def parse(argv: Sequence[str]) -> tuple[replay.Command, bool] | None:
    """The command (as the replay keys one) and whether ``--check`` was given, or None:
    not a status this module answers (``--json``, ``--verify``, a date range, ...)."""
    options = replay.command_options(argv, "status", _OPTIONS)
    if options is None:
        return None
    file, dated, check = None, False, False
    for name, value in options:
        if name == "--date":
            if dated or ".." in value:
                return None  # several dates: several tables
            dated = True
        check = check or name == "--check"
        if name in ("-f", "--file"):
            file = value
    return replay.Command(argv, file, dated), check


def ticket(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> replay.Ticket | None:
    """A ticket for this status command line (see :class:`targetrun.replay.Ticket`), or None."""
    parsed = parse(argv)
    env = os.environ if environ is None else environ
    if parsed is None or "TARGETRUN_NOW" in env:
        return None
    try:
        from targetrun.locate import pipelinefile

        return replay.Ticket(parsed[0], os.getcwd(), os.path.abspath(pipelinefile(parsed[0].file)), env)
    except Exception:
        return None


def signature(st: os.stat_result) -> int:
    """What a target must still be for the certified row to hold, as one number: a digest
    of its size and its modification and change times in nanoseconds (a rewrite changes the
    change time even when it keeps the size and sets the modification time back). Python's
    hash of a tuple of integers is the same in every process of one Python (the key pins
    it), never -1 (:data:`MISSING`), and two stats that differ share it once in 2**61."""
    return hash((st.st_size, st.st_mtime_ns, st.st_ctime_ns))


def answer(argv: Sequence[str], out: TextIO | None, environ: Mapping[str, str] | None = None,
           now: float | None = None) -> int | None:
    """Print the status from its certificate: the exit code, or None for the full status."""
    try:
        from targetrun.paint import colour_enabled

        env = os.environ if environ is None else environ
        parsed = parse(argv)
        if parsed is None or out is None or colour_enabled(out, env):
            return None
        found = ticket(argv, env)
        if found is None:
            return None
        certificate = replay.read(found.path)
        when = time.time() if now is None else now
        if not _holds(certificate, found, when):
            return None
        rows = columns(certificate)
        if rows is None:
            return None
        prefixes, urls, signatures, ran, finished = rows
        mtimes = _look(urls, signatures)
        if mtimes is None or not _store_unchanged(certificate):
            return None
        if not _print(out, render(certificate["header"], prefixes, ran, finished, mtimes, when), certificate["footer"]):
            from targetrun.errors import EXIT_OUTPUT_CLOSED

            return EXIT_OUTPUT_CLOSED
        return 1 if parsed[1] and certificate["would"] else 0
    except Exception:
        return None


def _print(out: TextIO, table: str, footer: str) -> bool:
    """Write the table, then the final line, as the full status writes them; False when
    the reader went away (``| head -1``): the full status then exits 141, quietly. Two
    writes, each flushed, because of what a pipe's reader going away does to the first: the
    kernel cuts the table's write short, which Python reports as no error at all (the rest
    is lost) -- it is the final line's write that fails, as the full status's does."""
    try:
        out.write(table)
        out.flush()
        out.write(footer)
        out.flush()
    except BrokenPipeError:
        return False
    return True


# Every field of a status certificate and its type. The rows are columns, which JSON reads
# many times faster than a list a row: ``prefixes`` (lines of safe text) joined by newlines;
# ``urls`` (paths) joined by NULs, "" for a task without a target; ``ran`` (the last run's
# state) joined by newlines, "" for none; and, packed (little-endian, base64: exact, and
# read without parsing 40,000 numbers), ``finished`` (when each last run ended, doubles, 0
# for none) and ``signatures`` (64-bit integers, see :func:`signature`; MISSING for a
# target that is not there, or none).
_FIELDS = {"format": int, "key": str, "day": str, "store": str, "schema": int, "records": int, "cache": int,
           "header": str, "prefixes": str, "urls": str, "signatures": str, "ran": str, "finished": str,
           "folders": dict, "footer": str, "would": int}
MISSING = -1  # the signature of a row whose target is not there, or that has none (no hash is -1)


def pack(numbers: Sequence[float], kind: str) -> str:
    """``numbers`` as a certificate holds them: ``kind`` "q" (64-bit integers) or "d" (doubles)."""
    import binascii
    import struct

    return binascii.b2a_base64(struct.pack(f"<{len(numbers)}{kind}", *numbers), newline=False).decode("ascii")


def _unpack(text: str, kind: str) -> tuple[Any, ...]:
    import binascii
    import struct

    data = binascii.a2b_base64(text)
    return struct.unpack(f"<{len(data) // 8}{kind}", data)


def columns(certificate: Mapping[str, Any]) -> tuple[list[str], list[str], tuple[int, ...], list[str],
                                                      tuple[float, ...]] | None:
    """The rows' columns (prefixes, urls, signatures, last runs' states and ends), or None
    when they do not hold one entry a row."""
    prefixes, urls, ran = (certificate["prefixes"].split("\n"), certificate["urls"].split("\0"),
                           certificate["ran"].split("\n"))
    signatures, finished = _unpack(certificate["signatures"], "q"), _unpack(certificate["finished"], "d")
    rows = len(prefixes)
    if not len(urls) == len(ran) == len(finished) == rows or len(signatures) != rows:
        return None
    return prefixes, urls, signatures, ran, finished


def _holds(certificate: Any, ticket: replay.Ticket, now: float) -> bool:
    if not isinstance(certificate, dict) or set(certificate) != set(_FIELDS):
        return False
    if not all(isinstance(certificate[name], kind) and not isinstance(certificate[name], bool)
               for name, kind in _FIELDS.items()):
        return False
    if certificate["format"] != FORMAT or certificate["key"] != ticket.key:
        return False
    if not ticket.command.dated and certificate["day"] != replay.utc_day(now):
        return False
    realpath = os.path.realpath
    return all(realpath(folder) == real for folder, real in certificate["folders"].items())


def _look(urls: list[str], signatures: Sequence[int]) -> list[float] | None:
    """Every target's modification time now (0 when there is none), or None: one is not as
    certified (created, deleted, rewritten, or it cannot be looked at)."""
    stat = os.stat
    mtimes: list[float] = []
    append = mtimes.append
    for url, certified in zip(urls, signatures):
        if not url:
            if certified != MISSING:
                return None
            append(0.0)
            continue
        try:
            st = stat(url)
        except FileNotFoundError:
            if certified != MISSING:
                return None
            append(0.0)
            continue
        if hash((st.st_size, st.st_mtime_ns, st.st_ctime_ns)) != certified:  # signature(st), inlined
            return None
        append(st.st_mtime)
    return mtimes


def _store_unchanged(certificate: Mapping[str, Any]) -> bool:
    """The store of the same schema, no pending write, the same generations (read in one
    transaction, so all three describe one moment)."""
    import sqlite3

    from targetrun.store import statements

    os.stat(certificate["store"])  # connecting would create a missing one
    db = sqlite3.connect(certificate["store"], timeout=replay.BUSY_TIMEOUT, isolation_level=None)
    try:
        if db.execute("PRAGMA user_version").fetchone()[0] != certificate["schema"]:
            return False
        db.execute("BEGIN")
        try:
            pending = db.execute(statements.ANY_PENDING).fetchone()[0]
            records = db.execute(statements.RECORDS_GENERATION).fetchone()[0]
            cache = db.execute(statements.CACHE_GENERATION).fetchone()[0]
        finally:
            db.execute("COMMIT")
        return not pending and records == certificate["records"] and cache == certificate["cache"]
    finally:
        db.close()


def render(header: str, prefixes: list[str], ran: list[str], finished: Sequence[float], mtimes: list[float],
           now: float) -> str:
    """The table as targetrun/report/status.py renders it in plain text. ``header`` and
    ``prefixes``: each line's first four cells (task, target, state, size), made safe and
    padded as that table pads them, and the two spaces after; the ages are computed here
    from each target's modification time (0: no age) and each row's last run (its state,
    "" for none, and its end)."""
    ages = _ages(mtimes, now)
    width = max(len(HEADERS[4]), *(len(words) for words, _rows in ages))
    padded = _by_row(len(prefixes), [(f"{words:<{width}}  ", rows) for words, rows in ages])
    last_runs = _last_runs(ran, finished, now)
    lines = list(map("".join, zip(prefixes, padded, _by_row(len(prefixes), last_runs))))
    for row in _rows_without(last_runs):  # rare: a line ends in its last run ("... ago"), or is stripped
        lines[row] = (prefixes[row] + padded[row]).rstrip()
    return "\n".join([f"{header}{HEADERS[4]:<{width}}  {HEADERS[5]}", *lines]) + "\n"


# The age columns, 10,000 rows at a time. A duration in words is a step function of the
# seconds: each of its words covers one interval of them, and no two intervals share words
# (report/status.py's "1.5s", "12s", "3m5s": targetrun/durations.py). So over rows in order
# of their seconds, equal words are adjacent, and a run of them is found by putting a few
# rows into words -- galloping ahead, then bisecting to the run's end -- not every row:
# 10,000 targets made within a minute share ~100 words.
_Run = tuple[str, list[int]]  # words, and the rows they are said of


def _ages(mtimes: Sequence[float], now: float) -> list[_Run]:
    """report/status.py's _Cells._age of every row (0: no target, no age), in runs."""
    from bisect import bisect_left, bisect_right

    from targetrun.durations import format_duration

    def words(row: int) -> str:
        seconds = now - mtimes[row]
        return format_duration(seconds if seconds > 0.0 else 0.0)

    order = sorted(range(len(mtimes)), key=mtimes.__getitem__)
    # rows without an age, together in that order (a modification time before 1970 comes first)
    lo, hi = bisect_left(order, 0.0, key=mtimes.__getitem__), bisect_right(order, 0.0, key=mtimes.__getitem__)
    return [*_runs(order[:lo], words), ("", order[lo:hi]), *_runs(order[hi:], words)]


def _last_runs(ran: Sequence[str], finished: Sequence[float], now: float) -> list[_Run]:
    """report/status.py's _Cells._ran of every row ("" for none), in runs: rows in order of
    their state, then of their end (words never equal across states: "failed 5s ago")."""
    from targetrun.durations import format_duration

    def words(row: int) -> str:
        state = ran[row]
        if not state:
            return ""
        seconds = now - finished[row]
        return f"{state} {format_duration(seconds if seconds > 0.0 else 0.0)} ago"

    order = sorted(range(len(ran)), key=finished.__getitem__)
    order.sort(key=ran.__getitem__)  # stable: by state, then by end
    return _runs(order, words)


def _runs(order: list[int], words: Callable[[int], str]) -> list[_Run]:
    """The rows of ``order`` with their words, as runs of equal words, when equal words are
    adjacent in that order; putting ~2 log2(n) rows of a run of n into words, and each row
    at most once."""
    runs: list[_Run] = []
    count = len(order)
    start, said = 0, words(order[0]) if order else ""
    while start < count:
        same, step, differs, then = start, 1, count, ""  # rows [start, same] say `said`; `differs` does not
        while same + step < count:
            found = words(order[same + step])
            if found != said:
                differs, then = same + step, found
                break
            same, step = same + step, step * 2
        while differs - same > 1:
            middle = (same + differs) // 2
            found = words(order[middle])
            if found == said:
                same = middle
            else:
                differs, then = middle, found
        runs.append((said, order[start:differs]))
        start, said = differs, then
    return runs


def _by_row(count: int, runs: list[_Run]) -> list[str]:
    cells = [""] * count
    for words, rows in runs:
        for row in rows:
            cells[row] = words
    return cells


def _rows_without(runs: list[_Run]) -> list[int]:
    return [row for words, rows in runs if not words for row in rows]
