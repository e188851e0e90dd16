"""The no-op replay: ``targetrun run -q`` answered without loading the Pipelinefile, when
the last identical command found nothing to do and nothing its decisions rested on has
changed since.

Why: a no-op over 10,000 targets is mostly fixed cost -- importing targetrun, loading the
Pipelinefile, rendering and deciding every task -- spent to learn again what the last
run learned; make answers the same question in a tenth of the time. So when a run of
``targetrun run -q`` ran nothing, it leaves a *certificate* in ``.targetrun/replay/``
(:mod:`targetrun.certify` decides when, and writes it), and the next command reads it
before anything else of targetrun is imported (``targetrun/_entry.py``).

A certificate holds:

* its **key**: what every decision depended on besides the files and the cache below --
  the command line (only ``-q``, ``-f``, ``-p``, ``--date``, ``-j``, ``--executor`` and
  task names qualify), the current folder, the Pipelinefile's path and bytes, the
  environment (less a few names a shell changes on every command, unless the
  Pipelinefile names them: ``cache: ${PWD}/state.db``), the Python (version, interpreter
  and environment), the size and modification time of every source file of targetrun,
  and the modification time of every folder Python imports from (installing or removing
  a package -- a plugin executor or serializer -- changes what the full run accepts);
* the run **date** (a day: no template of those tasks renders the time or the run id);
* the project's **sources** the Python tasks' code was read from, by size and
  modification time: a task whose code no longer parses is never kept by the full run,
  and a cache hit under a ``code`` validator rests on that code;
* the local **files** whose existence the decisions rested on: the targets found, and the
  values of the cache hits; and the real path of every folder holding one (the full run
  refuses a target whose folder a symlink has since led out of its result location);
* for **cache hits** (tasks without a target or needs): the cache's generation (a
  random tag the store gives it anew on every change of any entry), and the window of
  time in which each hit stays valid and no entry under their keys is "from the future";
* what the run **recorded**: pipeline, requested tasks, counts, the outcomes blob.

The replay answers only when all of it holds: the same key, today's date (unless
``--date`` fixed it), now inside the window, every file there, the store of the same
schema with no pending checkpoint write (the full run would settle those first) and the
same cache generation (a new entry could change which one hits). It then records the run as
the full run does -- the run row and its outcomes, in one transaction -- printing the
final line before that transaction commits: output that cannot be written (a closed
pipe, a full disk, no stdout at all) rolls the record back, and the full run answers --
and fails -- as it would have. Once the line is printed, the command is the replay's:
a COMMIT that must wait for another process waits as the full run would, and one that
fails (a full disk) is exit 3 with the store's error -- never the full run, which would
print the line again. Anything else before the line, and any error, returns None: the full run
answers, as if this module did not exist. The replay can be stricter than the full run,
never looser.

Standard library only, and the stdlib-only modules of targetrun it shares with the full
run: the final line, run ids and owners, the store's statements, finding the Pipelinefile.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO

from targetrun.regularfile import open_regular, read_upto
from targetrun.wholewrite import write_whole

FORMAT = 3  # of the certificate file; another one is ignored
FOLDER = os.path.join(".targetrun", "replay")
# A certificate larger than this is not read: 10,000 targets' are ~1 MB (a status's ~0.9 MB,
# a run's ~0.4 MB), so this is ~300,000 targets. A file planted at 256 MB cost a status 13 s
# and 1.5 GB of memory to parse before it could be found wanting.
MAX_BYTES = 32 << 20
BUSY_TIMEOUT = 0.5  # seconds to wait for the store's write lock before leaving it to the full run

# Options of `run` a replayable command may have, and whether each takes a value.
_OPTIONS = {"-q": False, "--quiet": False, "-f": True, "--file": True, "-p": True, "--param": True,
            "--date": True, "-j": True, "--jobs": True, "--executor": True}
_QUIET = ("-q", "--quiet")
# Executors that start nothing when created: the full run creates its executor before it
# decides anything, and one that reaches a cluster (dask, a plugin) can fail there even
# for a no-op -- which a replay, creating none, would not.
_EXECUTORS = frozenset(("inline", "threads", "processes"))
# Names a shell sets anew for every command: they cannot change a decision.
_VOLATILE = frozenset(("_", "OLDPWD", "SHLVL", "PWD", "COLUMNS", "LINES", "TERM_SESSION_ID", "WINDOWID"))
# Where Python imports from, as it started (a Python task's import later puts the
# Pipelinefile's folder first): the first entry is the script's or current folder.
_IMPORT_PATH = tuple(sys.path[1:])


class Command:
    """A command line the replay may answer: ``run -q`` with options that only choose the
    file, parameters, date, tasks or a built-in executor that starts nothing when created
    (every word of it is in the key)."""

    __slots__ = ("argv", "file", "dated")

    def __init__(self, argv: Sequence[str], file: str | None, dated: bool) -> None:
        self.argv = tuple(argv)
        self.file = file  # -f's value, if given
        self.dated = dated  # --date given: the run date is not today's

    @classmethod
    def parse(cls, argv: Sequence[str]) -> Command | None:
        options = command_options(argv, "run", _OPTIONS)  # anything else (--force, --json, -qv, ...): None
        if options is None:
            return None
        file, dated, quiet = None, False, False
        for name, value in options:
            if name == "--executor" and value not in _EXECUTORS:
                return None
            quiet = quiet or name in _QUIET
            dated = dated or name == "--date"
            if name in ("-f", "--file"):
                file = value
        return cls(argv, file, dated) if quiet else None


def command_options(argv: Sequence[str], command: str,
                    known: Mapping[str, bool]) -> list[tuple[str, str]] | None:
    """The options of ``argv`` (``targetrun COMMAND ...``) with their values ("" for a
    flag), when every one is ``known`` (name -> whether it takes a value); None for
    another command, an unknown option, or one whose value is missing: the full command
    answers those. Task names are skipped.

    >>> command_options(["status", "-f", "x.yaml", "report", "--check"], "status", {"-f": True, "--check": False})
    [('-f', 'x.yaml'), ('--check', '')]
    >>> command_options(["status", "--json"], "status", {"-f": True}), command_options(["run", "-f"], "run", {"-f": True})
    (None, None)
    """
    if not argv or argv[0] != command:
        return None
    found: list[tuple[str, str]] = []
    words = iter(argv[1:])
    for word in words:
        if not word.startswith("-"):
            continue  # a task name
        name, equals, value = word.partition("=") if word.startswith("--") else (word, "", "")
        takes = known.get(name)
        if takes is None or (equals and not takes):
            return None
        if takes and not equals:
            following = next(words, None)
            if following is None:
                return None
            value = following
        found.append((name, value))
    return found


def code_identity() -> str:
    """Every source file of targetrun by size and modification time: other code may decide
    differently (an upgrade, an edit of a checkout)."""
    package = os.path.dirname(os.path.abspath(__file__))
    parts = []
    for folder, subfolders, files in os.walk(package):
        subfolders[:] = sorted(d for d in subfolders if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                st = os.stat(os.path.join(folder, name))
                parts.append(f"{os.path.relpath(os.path.join(folder, name), package)}:{st.st_size}:{st.st_mtime_ns}")
    return "\n".join(parts)


def installed() -> str:
    """Every folder Python imports from, by modification time: installing, upgrading or
    removing a package adds or removes entries there (its ``.dist-info`` folder, where a
    plugin's entry points live), so what the full run accepts may have changed."""
    parts = []
    for folder in _IMPORT_PATH:
        try:
            parts.append(f"{folder}:{os.stat(folder).st_mtime_ns}")
        except (OSError, ValueError):
            parts.append(f"{folder}:-")
    return "\n".join(parts)


def _counts(name: str, data: bytes) -> bool:
    """Whether the environment variable ``name`` is in the key: all are, but the ones a
    shell sets anew for every command -- unless the Pipelinefile names them (``${PWD}``
    in ``cache:`` decides which store the full run opens)."""
    return name not in _VOLATILE or name.encode() in data


def key(command: Command, cwd: str, pipelinefile: str, data: bytes, environ: Mapping[str, str]) -> str:
    """What a certificate is for (see the module docstring); one digest."""
    digest = hashlib.sha256()
    words = [str(FORMAT), sys.version, sys.executable, sys.prefix, code_identity(), installed(), cwd, pipelinefile,
             str(len(command.argv)), *command.argv]
    words += [f"{name}={value}" for name, value in sorted(environ.items()) if _counts(name, data)]
    for word in words:  # no word can hold a NUL (argv, paths and the environment cannot)
        digest.update(word.encode("utf-8", "surrogateescape") + b"\0")
    digest.update(data)
    return digest.hexdigest()


def certificate_path(command: Command, cwd: str, pipelinefile: str) -> str:
    """One file per Pipelinefile, folder and command line: a new day or an edit replaces it."""
    name = hashlib.sha256("\0".join((cwd, pipelinefile, *command.argv)).encode("utf-8", "surrogateescape"))
    return os.path.join(os.path.dirname(pipelinefile), FOLDER, name.hexdigest()[:32])


def utc_day(when: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(when))


class Ticket:
    """What the full run needs to certify itself: the command, where the certificate goes
    and its key (taken before the Pipelinefile is loaded, checked again after the run)."""

    __slots__ = ("command", "cwd", "pipelinefile", "environ", "key", "_read", "spoke")

    def __init__(self, command: Command, cwd: str, pipelinefile: str, environ: Mapping[str, str]) -> None:
        self.command = command
        self.cwd = cwd
        self.pipelinefile = pipelinefile
        self.environ = dict(environ)
        data = _contents(pipelinefile)
        self.key = key(command, cwd, pipelinefile, data, self.environ)
        self._read = hashlib.sha256(data).digest()  # the Pipelinefile as this command read it
        # Whether the command wrote anything on stderr (the caller says how to tell): a
        # warning the full run gives every time -- an unreadable record it skips -- is
        # one the replay would not give, so such a run is not certified.
        self.spoke: Callable[[], bool] = lambda: False

    @classmethod
    def take(cls, argv: Sequence[str], environ: Mapping[str, str] | None = None) -> Ticket | None:
        """A ticket for this command line, or None (not replayable, no readable file)."""
        command = Command.parse(argv)
        env = os.environ if environ is None else environ
        if command is None or "TARGETRUN_NOW" in env:
            return None
        try:
            from targetrun.locate import pipelinefile

            return cls(command, os.getcwd(), os.path.abspath(pipelinefile(command.file)), env)
        except Exception:  # a missing file and the like: the full run says what is wrong
            return None

    def unchanged(self) -> bool:
        """Whether the Pipelinefile still holds what this command read: the run loaded it
        after the key was taken. (The rest of the key is the state the run started in; a
        change since shows when the next command takes its own key.)"""
        try:
            return hashlib.sha256(_contents(self.pipelinefile)).digest() == self._read
        except OSError:
            return False

    @property
    def path(self) -> str:
        return certificate_path(self.command, self.cwd, self.pipelinefile)


def _contents(pipelinefile: str) -> bytes:
    """The Pipelinefile's bytes, when it is a regular file the full run would read: not a
    pipe (``-f <(generate)``: reading it here would leave the full run an empty stream)
    nor one larger than the full run accepts (refused unread). OSError otherwise."""
    from targetrun.locate import MAX_FILE_BYTES

    with open_regular(pipelinefile) as f:  # a pipe or a device: NotRegularFile, an OSError
        if os.fstat(f.fileno()).st_size > MAX_FILE_BYTES:
            raise OSError(f"{pipelinefile}: more than {MAX_FILE_BYTES} bytes")
        return read_upto(f, MAX_FILE_BYTES)


def write(path: str, certificate: Mapping[str, Any]) -> None:
    """Write a certificate whole or not at all (a reader never sees half of one). JSON: a
    damaged or hostile file can only fail to parse, never run or crash anything."""
    # dumps: json.dump encodes in Python
    write_bytes(path, json.dumps(dict(certificate, format=FORMAT), separators=(",", ":")).encode("utf-8"))


def json_line(fields: Mapping[str, Any]) -> bytes:
    """``fields`` as one line of JSON (ASCII: every line break in a string is escaped)."""
    return json.dumps(fields, separators=(",", ":")).encode("ascii") + b"\n"


def write_bytes(path: str, data: bytes) -> None:
    """Write a certificate's bytes whole or not at all: a temporary sibling, then a rename."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temporary = f"{path}.{os.getpid()}.tmp"
    try:
        with open(temporary, "wb") as f:
            f.write(data)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def read(path: str) -> Any:
    """The certificate at ``path``, parsed; None when it is not one (see :func:`read_bytes`)."""
    data = read_bytes(path)
    return None if data is None else json.loads(data)


def read_bytes(path: str) -> bytes | None:
    """The bytes of the certificate at ``path``; None when it is not a regular file of at
    most :data:`MAX_BYTES` (itself: a symlink is not followed). A FIFO, a device or a
    symlink planted there (to ``/dev/zero``, say) must not hang the command or fill its memory."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    with os.fdopen(os.open(path, flags), "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_BYTES:
            return None
        data = read_upto(f, MAX_BYTES)
    return data if len(data) <= MAX_BYTES else None


# -- the replay --------------------------------------------------------------------------


def replay(argv: Sequence[str], out: TextIO | None, environ: Mapping[str, str] | None = None,
           now: float | None = None) -> int | None:
    """Answer the command from its certificate: the exit code, or None for the full run.
    ``now``: the time to judge the certificate by (default: the clock's)."""
    started = time.time() if now is None else now
    try:
        ticket = Ticket.take(argv, environ)
        if ticket is None or out is None:  # no stdout at all: the full run says what happens then
            return None
        certificate = read(ticket.path)
        if not _holds(certificate, ticket, started):
            return None
        return _record(certificate, started, out, busy_timeout(ticket.environ), ticket.environ)
    except Exception:  # no certificate, a changed file, a busy store, anything: the full run
        return None


def _announce(certificate: Mapping[str, Any], started: float, finished: float, out: TextIO) -> bool:
    """Print the final line as the full run prints it; False when it cannot be written
    (a closed pipe, a full disk): the full run then answers, and fails, as it would."""
    from targetrun.durations import format_duration
    from targetrun.paint import colour_enabled, final_line

    try:
        write_whole(out, final_line(certificate["final"], format_duration(finished - started), colour=colour_enabled(out)))
        out.flush()
    except Exception:
        return False
    return True


# Every field of a certificate and its type: a damaged file is not used.
_FIELDS = {"format": int, "key": str, "day": str, "files": list, "folders": dict, "sources": dict, "cache_generation": int,
           "not_before": float, "not_after": float, "store": str, "schema": int, "pipeline": str,
           "requested": str, "counts": str, "outcomes": str, "final": dict}
_STATES = frozenset(("skipped", "cached", "not needed"))  # what a no-op's tasks end as


def well_formed(certificate: object) -> bool:
    """Whether ``certificate`` has every field, of its type (floats may be written as ints)."""
    if not isinstance(certificate, dict) or set(certificate) != set(_FIELDS):
        return False
    for name, kind in _FIELDS.items():
        value = certificate[name]
        if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else kind):
            return False
    final = certificate["final"]
    folders = certificate["folders"]
    if not all(isinstance(real, str) for real in folders.values()):
        return False
    if not all(isinstance(stamp, str) for stamp in certificate["sources"].values()):
        return False
    return all(isinstance(path, str) for path in certificate["files"]) and set(final) <= _STATES and \
        all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in final.values())


def _holds(certificate: Any, ticket: Ticket, now: float) -> bool:
    if not well_formed(certificate) or certificate["format"] != FORMAT or certificate["key"] != ticket.key:
        return False
    if not ticket.command.dated and certificate["day"] != utc_day(now):
        return False
    if not certificate["not_before"] <= now < certificate["not_after"]:
        return False
    lookup = os.stat
    for path in certificate["files"]:
        lookup(path)  # missing (or unreadable): raises, and the full run decides
    for path, stamp in certificate["sources"].items():
        if source_stamp(path) != stamp:  # the task code changed (or no longer parses): the full run judges it
            return False
    realpath = os.path.realpath
    return all(realpath(folder) == real for folder, real in certificate["folders"].items())


def source_stamp(path: str) -> str:
    """A project source file by size and modification time (as :func:`code_identity`)."""
    st = os.stat(path)
    return f"{st.st_size}:{st.st_mtime_ns}"


def folders_of(files: Sequence[str]) -> dict[str, str]:
    """The real path of every folder holding one of ``files``: the full run refuses a
    target that a symlink leads out of its result location, so a folder that resolves
    elsewhere than when the certificate was written is not replayed."""
    if os.altsep is None:  # one separator: a path's folder rests on what precedes its last one alone
        sep = os.sep
        heads = dict.fromkeys([path[:path.rfind(sep) + 1] for path in files])  # 10,000 files share a few
        folders = dict.fromkeys(os.path.dirname(head) for head in heads)  # dirname("/a/b/") is dirname("/a/b/c")
    else:
        folders = dict.fromkeys(os.path.dirname(path) for path in files)
    return {folder: os.path.realpath(folder) for folder in folders}


def busy_timeout(environ: Mapping[str, str]) -> float:
    """How long to wait for the store's write lock: :data:`BUSY_TIMEOUT`, or less when
    ``TARGETRUN_STORE_TIMEOUT`` says less -- the full run gives up then (exit 3), so a
    replay that waited longer could answer where it would not. A bad value raises: the
    full run says what is wrong with it. (targetrun/settings.py reads it, as every
    ``TARGETRUN_*`` variable; imported only when it is set: start-up time.)"""
    if "TARGETRUN_STORE_TIMEOUT" not in environ:
        return BUSY_TIMEOUT
    from targetrun import settings

    return min(settings.store_timeout(environ), BUSY_TIMEOUT)


def _record(certificate: dict[str, Any], started: float, out: TextIO, timeout: float,
            environ: Mapping[str, str]) -> int | None:
    """Record the run as the full run would, in one transaction, and print its final line
    before that commits: 0, or None (the store is not as the certificate needs it, or
    the line could not be written) and nothing is recorded. Once the line is printed the
    command is answered here, whatever the COMMIT meets (:func:`_commit`)."""
    import sqlite3

    from targetrun import liveness
    from targetrun.store import statements

    os.stat(certificate["store"])  # connecting would create a missing one
    db = sqlite3.connect(certificate["store"], timeout=timeout, isolation_level=None)
    try:
        if db.execute("PRAGMA user_version").fetchone()[0] != certificate["schema"]:
            return None
        db.execute("PRAGMA synchronous=NORMAL")  # as the store's own connections (WAL is the file's)
        db.execute("BEGIN IMMEDIATE")
        if db.execute(statements.ANY_PENDING).fetchone()[0]:
            db.execute("ROLLBACK")
            return None
        generation = certificate["cache_generation"]
        if generation >= 0 and db.execute(statements.CACHE_GENERATION).fetchone()[0] != generation:
            db.execute("ROLLBACK")  # some cache entry changed: which one hits may have
            return None
        run_id, finished = liveness.new_run_id(started), time.time()
        db.execute(statements.INSERT_RUN, (run_id, certificate["pipeline"], started, finished, statements.SUCCEEDED,
                                           certificate["requested"], certificate["counts"], liveness.owner_id(), started))
        db.execute(statements.PUT_BLOB, (statements.outcomes_key(run_id), bytes.fromhex(certificate["outcomes"])))
        if not _announce(certificate, started, finished, out):
            db.execute("ROLLBACK")
            return None
        return _commit(db, certificate["store"], environ)
    finally:
        db.close()


COMMIT_SLICE = 0.05  # seconds SQLite waits on its own at the COMMIT before the clock is read again


def _commit(db: Any, store: str, environ: Mapping[str, str]) -> int:
    """Commit the replay's record, its final line already printed: from here on the
    command is answered here -- handing it to the full run would print the line twice.
    The COMMIT can still meet another process (a store not in WAL mode that another
    process reads) or a full disk: it waits as long as the full run would wait for the
    store (``TARGETRUN_STORE_TIMEOUT``, in short slices, so Ctrl-C ends it at once), and
    a record it cannot commit is the full run's error: one paragraph on stderr, exit 3."""
    import sqlite3

    from targetrun.store import statements

    limit: float | None = None
    slices = False
    while True:
        try:
            if not slices:  # inside the try: nothing after the line may hand the command to the full run
                db.execute(f"PRAGMA busy_timeout = {int(COMMIT_SLICE * 1000)}")
                slices = True
            db.execute("COMMIT")
            return 0
        except sqlite3.OperationalError as exc:
            busy = statements.busy(exc)
            if busy and limit is None:
                try:
                    from targetrun import settings

                    limit = time.monotonic() + settings.store_timeout(environ)
                except Exception:  # a bad value: the full run would have refused it; wait no longer
                    limit = time.monotonic()
            if not busy or limit is None or time.monotonic() >= limit or not db.in_transaction:
                return _not_recorded(store, exc, busy)
            time.sleep(0.01)
        except Exception as exc:
            return _not_recorded(store, exc, False)


def _not_recorded(store: str, exc: BaseException, busy: bool) -> int:
    """The no-op was answered (its line is printed) but the state store did not take its
    record: say so as the full run says a store error (the same hints), and exit 3."""
    from targetrun.store import statements

    if busy:
        what, hint = "stayed locked by another process", statements.BUSY_HINT
    else:
        what, hint = statements.failure(exc, store)
    what += "; this run was not recorded"
    try:
        from targetrun.redact import printable, redact  # as every message the CLI writes

        sys.stderr.write(f"targetrun: error: {printable(redact(f'the state store {store} {what}. {hint}'))}\n")
        sys.stderr.flush()
    except Exception:  # no stderr (started with it closed): the exit code says it
        pass
    return 3
