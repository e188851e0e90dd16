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
decided by existence alone as the run's certificate asks (no ``cache_for``, ``never_use``
or validator: :func:`targetrun.certify.decided_by_existence`), not mapped, local targets, templates fixed for the
day; plain text (no terminal, no ``--json``); no credential known to the process (the
replay could not mask it). Anything else, and any error here, returns None: the full
status answers, as if this module did not exist. Standard library only.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
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
    from targetrun.durations import format_duration

    # report/status.py's _Cells._age and _Cells._ran, inlined (10,000 rows): under a minute
    # a duration shows tenths, so each is put into words; from a minute on once per whole second
    ages: dict[int, str] = {}
    said: dict[str, dict[int, str]] = {}  # last runs by state, then whole second
    age_cells: list[str] = []
    last_cells: list[str] = []
    for mtime, state, end in zip(mtimes, ran, finished):
        if not mtime:
            age_cells.append("")
        elif (seconds := now - mtime) < 60:
            age_cells.append(format_duration(seconds if seconds > 0.0 else 0.0))
        else:
            found = ages.get(whole := int(seconds))
            if found is None:
                found = ages[whole] = format_duration(seconds)
            age_cells.append(found)
        if not state:
            last_cells.append("")
        elif (seconds := now - end) < 60:
            last_cells.append(f"{state} {format_duration(seconds if seconds > 0.0 else 0.0)} ago")
        else:
            by_second = said.get(state)
            if by_second is None:
                by_second = said[state] = {}
            words = by_second.get(whole := int(seconds))
            if words is None:
                words = by_second[whole] = f"{state} {format_duration(seconds)} ago"
            last_cells.append(words)
    line = f"%s%-{max(len(HEADERS[4]), *map(len, age_cells))}s  %s"
    # a line ends in its last run ("... ago"): only a line without one has padding to strip
    lines = [line % cells if cells[2] else (line % cells).rstrip() for cells in zip(prefixes, age_cells, last_cells)]
    return "\n".join([(line % (header, HEADERS[4], HEADERS[5])).rstrip(), *lines]) + "\n"
