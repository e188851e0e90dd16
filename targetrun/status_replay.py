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
* each row's last run (its state and when it finished) and its target's modification
  time: the age columns are computed from them and the clock, as the full status
  computes them.

The file is one line of JSON (the small fields) and then the columns, raw: the table as a
``%`` template (two ``%s`` a row, where its ages go), the targets' paths and signatures,
and the rows in order of their modification time and of their last run, with those
times. Read as they are -- no JSON string to scan, no base64, no list of 10,000 strings a
column -- because on this machine class every megabyte a command touches anew costs it
~1 ms of page faults.

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
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO

from targetrun import replay
from targetrun.wholewrite import write_whole

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
        data = replay.read_bytes(found.path)
        certificate = None if data is None else Certificate.decode(data)
        when = time.time() if now is None else now
        if certificate is None or not _holds(certificate.fields, found, when):
            return None
        if not _look(certificate.fields["looked"], certificate.names(), certificate.signatures) \
                or not _store_unchanged(certificate.fields):
            return None
        if not _print(out, certificate.render(when), certificate.fields["footer"]):
            from targetrun.errors import EXIT_OUTPUT_CLOSED

            return EXIT_OUTPUT_CLOSED
        return 1 if parsed[1] and certificate.fields["would"] else 0
    except Exception:
        return None


def _print(out: TextIO, table: str, footer: str) -> bool:
    """Write the table, then the final line, as the full status writes them; False when
    the reader went away (``| head -1``): the full status then exits 141, quietly. Two
    writes, each flushed, because of what a pipe's reader going away does to the first: the
    kernel cuts the table's write short, which Python reports as no error at all (the rest
    is lost) -- it is the final line's write that fails, as the full status's does."""
    try:
        write_whole(out, table)
        out.flush()
        write_whole(out, footer)
        out.flush()
    except BrokenPipeError:
        return False
    return True


# Every field of a status certificate's first line and its type; "states": the last runs'
# states in the order the rows are listed by them, each with how many rows it has ("" for
# no last run); "sizes": the byte length of each column (see Certificate).
_FIELDS = {"format": int, "key": str, "day": str, "store": str, "schema": int, "records": int, "cache": int,
           "header": str, "footer": str, "would": int, "folders": dict, "looked": list, "rows": int, "states": list,
           "sizes": list}
MISSING = -1  # the signature of a target that is not there (no hash is -1)
_COLUMNS = ("template", "names", "signatures", "aged", "mtimes", "by_last_run", "finished")


class Certificate:
    """A status certificate as :func:`answer` uses it: its first line's ``fields``, and its
    columns, read where they lie in the file (numbers through memoryviews: no list of
    10,000 of them is made). The columns, in the file's order:

    * ``template``: ``%s`` where the header line goes, then the table's lines, each line's
      first four cells as printed and ``%s%s`` where its age and last run go (``%`` written
      ``%%``); a line without a last run is cut where the full status strips it;
    * ``names``: every target's name in its folder (``os.fsencode``), NUL-separated, by
      folder (``fields["looked"]`` lists each with how many names it holds: a target is
      looked at from its folder, opened once, not along its whole path), and
      ``signatures`` (64-bit, :func:`signature`; :data:`MISSING` for one not there), in
      the same order;
    * ``aged``: the rows with an age, in order of their modification time, and ``mtimes``,
      those times in that order;
    * ``by_last_run``: every row, in order of its last run's state (as ``fields["states"]``
      lists them), then its end, and ``finished``: those ends in that order.
    """

    __slots__ = ("fields", "template", "_names", "signatures", "aged", "mtimes", "by_last_run", "finished")

    def __init__(self, fields: dict[str, Any], template: str, names: bytes, signatures: Sequence[int],
                 aged: Sequence[int], mtimes: Sequence[float], by_last_run: Sequence[int],
                 finished: Sequence[float]) -> None:
        self.fields = fields
        self.template = template
        self._names = names
        self.signatures, self.aged, self.mtimes = signatures, aged, mtimes
        self.by_last_run, self.finished = by_last_run, finished

    def names(self) -> list[bytes]:
        return self._names.split(b"\0") if self._names else []

    @staticmethod
    def encode(fields: Mapping[str, Any], prefixes: Sequence[str], urls: Sequence[str | None],
               signatures: Sequence[int], ran: Sequence[str], finished: Sequence[float],
               mtimes: Sequence[float]) -> bytes:
        """The certificate of a table: ``fields`` (the first line's, less the ones made here),
        and a row's first four cells padded to where the ages begin (``prefixes``), its
        target (None: none) with its signature, its last run's state ("" none) and end, and
        its target's modification time (0: no age)."""
        from array import array
        from collections import Counter

        rows = range(len(prefixes))
        aged = sorted((row for row in rows if mtimes[row]), key=mtimes.__getitem__)
        by_last_run = sorted(rows, key=finished.__getitem__)
        by_last_run.sort(key=ran.__getitem__)  # stable: by state, then by end
        states: list[list[Any]] = []
        for row in by_last_run:
            if states and states[-1][0] == ran[row]:
                states[-1][1] += 1
            else:
                states.append([ran[row], 1])
        lines = [(prefix if ran[row] or mtimes[row] else prefix.rstrip()).replace("%", "%%") + "%s%s\n"
                 for row, prefix in enumerate(prefixes)]
        looked, names, sigs = _by_folder(urls, signatures)
        if not all(looked) or not all(names):
            raise ValueError("a target without a folder or a name")  # never: a target is a file's absolute path
        joined = "\0".join(names)
        if joined.count("\0") != max(len(names) - 1, 0):
            raise ValueError("a path with a NUL")  # never: a path cannot hold one
        columns = {
            "template": "".join(["%s", *lines]).encode("utf-8"),  # the header line first
            # encoded whole: a file system's encoding (UTF-8, or an ASCII-based one of the locale) encodes each
            # character alone, so the whole is the names' encodings joined
            "names": os.fsencode(joined),
            "signatures": array("q", sigs).tobytes(),
            "aged": array("I", aged).tobytes(),
            "mtimes": array("d", [mtimes[row] for row in aged]).tobytes(),
            "by_last_run": array("I", by_last_run).tobytes(),
            "finished": array("d", [finished[row] for row in by_last_run]).tobytes(),
        }
        folders = [[folder, count] for folder, count in Counter(looked).items()]  # in order: looked is by folder
        first = dict(fields, format=FORMAT, looked=folders, rows=len(prefixes), states=states,
                     sizes=[len(columns[name]) for name in _COLUMNS])
        return b"".join([replay.json_line(first), *(columns[name] for name in _COLUMNS)])

    @classmethod
    def decode(cls, data: bytes) -> Certificate | None:
        """The certificate in ``data``, or None: not one, or not whole."""
        import json

        end = data.find(b"\n") + 1
        fields = json.loads(data[:end]) if end else None
        if not isinstance(fields, dict) or set(fields) != set(_FIELDS) or not all(
                isinstance(fields[name], kind) and not isinstance(fields[name], bool) for name, kind in _FIELDS.items()):
            return None
        sizes, rows = fields["sizes"], fields["rows"]
        if len(sizes) != len(_COLUMNS) or not all(type(size) is int and size >= 0 for size in sizes) \
                or end + sum(sizes) != len(data):
            return None
        if not all(isinstance(state, list) and len(state) == 2 and isinstance(state[0], str) and type(state[1]) is int
                   for state in fields["states"]) or sum(count for _state, count in fields["states"]) != rows:
            return None
        view = memoryview(data)
        columns: dict[str, memoryview] = {}
        for name, size in zip(_COLUMNS, sizes):
            columns[name] = view[end:end + size]
            end += size
        aged, mtimes = columns["aged"].cast("I"), columns["mtimes"].cast("d")
        by_last_run, finished = columns["by_last_run"].cast("I"), columns["finished"].cast("d")
        if not len(aged) == len(mtimes) <= rows or not len(by_last_run) == len(finished) == rows:
            return None
        return cls(fields, str(columns["template"], "utf-8"), bytes(columns["names"]), columns["signatures"].cast("q"),
                   aged, mtimes, by_last_run, finished)

    def render(self, now: float) -> str:
        """The table as targetrun/report/status.py renders it in plain text, its ages taken at ``now``."""
        from itertools import chain

        rows, aged, by_last_run = self.fields["rows"], self.aged, self.by_last_run
        ages = _runs(len(aged), _age_words(self.mtimes, now))
        width = max([len(HEADERS[4]), *(len(words) for words, _start, _end in ages)])
        age_cells = [" " * (width + 2)] * rows  # no age
        for words, start, end in ages:
            padded = f"{words:<{width}}  "
            for row in aged[start:end]:
                age_cells[row] = padded
        last_cells = [""] * rows
        first = 0
        for state, count in self.fields["states"]:
            if state:
                for words, start, end in _runs(count, _last_run_words(state, self.finished[first:], now)):
                    for row in by_last_run[first + start:first + end]:
                        last_cells[row] = words
            else:  # a line without a last run ends at its age (the template cut one without either)
                for row in by_last_run[first:first + count]:
                    age_cells[row] = age_cells[row].rstrip()
            first += count
        header = f"{self.fields['header']}{HEADERS[4]:<{width}}  {HEADERS[5]}\n"
        return self.template % (header, *chain.from_iterable(zip(age_cells, last_cells)))  # one copy of the table


def _by_folder(urls: Sequence[str | None], signatures: Sequence[int]) -> tuple[list[str], list[str], list[int]]:
    """Every target's folder and name (as ``os.path.split`` splits its path) and its signature,
    in order of folder (stable; a row without a target left out). The folder is worked out
    once per distinct part before the name (10,000 targets share a few folders)."""
    targets = [row for row, url in enumerate(urls) if url is not None]
    paths = [url for url in urls if url is not None]
    if os.altsep is None:  # one separator: the name is what follows the last one
        sep = os.sep
        cuts = [path.rfind(sep) + 1 for path in paths]
        heads = [path[:cut] for path, cut in zip(paths, cuts)]
        names = [path[cut:] for path, cut in zip(paths, cuts)]
        folder_of = {head: os.path.split(head + "x")[0] for head in dict.fromkeys(heads)}  # "x": any name
        folders = list(map(folder_of.__getitem__, heads))
    else:
        split = [os.path.split(path) for path in paths]
        folders, names = [folder for folder, _name in split], [name for _folder, name in split]
    order = sorted(range(len(paths)), key=folders.__getitem__)
    return ([folders[i] for i in order], [names[i] for i in order], [signatures[targets[i]] for i in order])


def _holds(certificate: Mapping[str, Any], ticket: replay.Ticket, now: float) -> bool:
    if certificate["format"] != FORMAT or certificate["key"] != ticket.key:
        return False
    if not ticket.command.dated and certificate["day"] != replay.utc_day(now):
        return False
    realpath = os.path.realpath
    return all(realpath(folder) == real for folder, real in certificate["folders"].items())


def _look(folders: list[Any], names: list[bytes], signatures: Sequence[int]) -> bool:
    """Whether every target is as certified: there with the same signature, or missing
    (False also when one cannot be looked at). ``folders``: each with how many of
    ``names`` it holds, in order."""
    if len(names) != len(signatures) or sum(count for _folder, count in folders) != len(names):
        return False
    first = 0
    for folder, count in folders:
        if not _look_in(folder, names[first:first + count], signatures[first:first + count]):
            return False
        first += count
    return True


def _look_in(folder: str, names: list[bytes], signatures: Sequence[int]) -> bool:
    """:func:`_look` for the targets in one folder: each looked at from the folder, opened
    once (the kernel then walks one name, not the whole path); a missing folder holds none."""
    stat = os.stat
    if stat not in os.supports_dir_fd or not hasattr(os, "O_DIRECTORY"):  # where there is none: the whole path
        names, where = [os.path.join(os.fsencode(folder), name) for name in names], None
    else:
        try:
            where = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            return all(certified == MISSING for certified in signatures)
    try:
        for name, certified in zip(names, signatures):
            try:
                st = stat(name, dir_fd=where)
            except FileNotFoundError:
                if certified != MISSING:
                    return False
                continue
            if hash((st.st_size, st.st_mtime_ns, st.st_ctime_ns)) != certified:  # signature(st), inlined
                return False
        return True
    finally:
        if where is not None:
            os.close(where)


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


# The age columns, 10,000 rows at a time. A duration in words is a step function of the
# seconds: each of its words covers one interval of them, and no two intervals share words
# (report/status.py's "1.5s", "12s", "3m5s": targetrun/durations.py). So over rows in order
# of their seconds, equal words are adjacent, and a run of them is found by putting a few
# rows into words -- galloping ahead, then bisecting to the run's end -- not every row:
# 10,000 targets made within a minute share ~100 words.
_Run = tuple[str, int, int]  # words, and the positions [start, end) they are said of


def _age_words(mtimes: Sequence[float], now: float) -> Callable[[int], str]:
    """report/status.py's _Cells._age of the target modified at ``mtimes[position]``."""
    from targetrun.durations import format_duration

    def words(position: int) -> str:
        seconds = now - mtimes[position]
        return format_duration(seconds if seconds > 0.0 else 0.0)

    return words


def _last_run_words(state: str, finished: Sequence[float], now: float) -> Callable[[int], str]:
    """report/status.py's _Cells._ran of a last run in ``state`` that ended at ``finished[position]``."""
    from targetrun.durations import format_duration

    def words(position: int) -> str:
        seconds = now - finished[position]
        return f"{state} {format_duration(seconds if seconds > 0.0 else 0.0)} ago"

    return words


def _runs(count: int, words: Callable[[int], str]) -> list[_Run]:
    """Positions 0 to ``count`` with their words, as runs of equal words, when equal words
    are adjacent; putting ~2 log2(n) positions of a run of n into words, each at most once."""
    runs: list[_Run] = []
    start, said = 0, words(0) if count else ""
    while start < count:
        same, step, differs, then = start, 1, count, ""  # [start, same] say `said`; `differs` does not
        while same + step < count:
            found = words(same + step)
            if found != said:
                differs, then = same + step, found
                break
            same, step = same + step, step * 2
        while differs - same > 1:
            middle = (same + differs) // 2
            found = words(middle)
            if found == said:
                same = middle
            else:
                differs, then = middle, found
        runs.append((said, start, differs))
        start, said = differs, then
    return runs
