"""The state store port: run records, checkpoint records, cache entries and locks.

The engine records, in the coordinating process only, each run (started, finished,
status), each task that ran (state, duration, attempts, error), each checkpoint it wrote
(location, size, content hash, serializer, run id, input and parameter fingerprints) and
each cache entry (``cache_for``), and at a run's end every task's outcome in one compressed
record (``targetrun report`` shows what was skipped and why from it). ``status`` reads the
last records; ``--resume`` reads a run's checkpoints. Leased locks stop two runs computing the same target at once. SQLite
is the default; Redis shares one store between machines and CI jobs.

A store sees locations as the keys targetrun/store/rooted.py makes of them: a local path
inside the project arrives root-marked (``{root}/out/a.pkl``), so a moved or re-cloned
project finds its records; api.py wraps every store it opens in that translation.

Reading is defensive: a store is shared, outlives versions and can be edited by hand, so a
row with an unknown state, a malformed or non-finite number or unreadable JSON is skipped
with one warning line (:func:`skip_row`) -- as if it had never been written -- instead of
failing every later command.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import zlib
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from typing import NamedTuple, TypeVar

from targetrun import liveness
from targetrun.model import CacheEntry, Checkpoint, StaleKind, TaskOutcome, TaskState
from targetrun.errors import CacheError, SpecError
from targetrun.redact import printable, redact, without_passwords
from abc import ABC, abstractmethod  # noqa: E402
from targetrun.registry import Entry, Registry
from targetrun.store import statements
from targetrun.store.statements import outcomes_key


class RunStatus(Enum):
    RUNNING = "running"
    SUCCEEDED = statements.SUCCEEDED  # one spelling: the no-op replay writes it too
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    BROKEN = "broken"  # the runner itself hit a backend error
    DIED = "died"  # never recorded: a RUNNING run whose process is gone (see :func:`as_seen`)


@dataclass(frozen=True, slots=True)
class RunRecord:
    run_id: str
    pipeline: str
    started: float
    status: RunStatus = RunStatus.RUNNING
    finished: float | None = None
    requested: tuple[str, ...] = ()
    counts: str = ""  # "3 ran, 2 skipped, 1 failed"
    owner: str = ""  # the process running it, "host/pid-namespace/pid" (see targetrun/liveness.py)
    heartbeat: float | None = None  # renewed while the run is alive


@dataclass(frozen=True, slots=True)
class PendingWrite:
    """A checkpoint write under way: its staging file, and (once the attempt succeeded)
    the record it will commit with. See :meth:`StateStore.intend_write`."""

    run_id: str
    location: str
    staging: str
    storage: str  # the result location key, to reopen the storage
    checkpoint: Checkpoint | None = None
    entry: CacheEntry | None = None
    # Nothing was at the target (on local disk) when the attempt was staged: what is there
    # once its run died, no record vouching for it, its own code wrote (engine/recovery.py).
    absent: bool = False


@dataclass(frozen=True, slots=True)
class TaskRecord:
    run_id: str
    pipeline: str
    task: str
    state: TaskState
    finished: float
    duration: float = 0.0
    attempts: int = 0
    error: str | None = None
    target: str | None = None
    started: float | None = None  # when the (last) attempt started; None in records of older versions
    worker: str = ""  # where it ran, "host:pid[/thread]" (see engine/work.py); "" when unknown


class LastRun(NamedTuple):
    """What ``status`` shows of a task's most recent record ("succeeded 3 min ago", and
    in ``--json`` its run id and error): a tuple, as 10,000 of them are read in a no-op."""

    run_id: str
    state: TaskState
    finished: float
    error: str | None


class Recorded(NamedTuple):
    """What ``status`` reads of the record of an existing target planning did not read:
    the size the record says was written (None: it recorded no content, as a folder's),
    and the record itself when it keeps what the run that wrote it asked for
    (``made_with`` or ``made_for``: "made with city=berlin"), else None."""

    size: int | None
    made: Checkpoint | None

    @classmethod
    def of(cls, record: Checkpoint) -> Recorded:
        """What ``status`` reads of a decoded ``record``."""
        return cls(record.size if record.content_hash else None, record if record.made_with or record.made_for else None)


@dataclass(frozen=True, slots=True)
class OutcomeMark:
    """One task's place in a finished run, as the run's outcome summary keeps it: tasks
    that did not run (skipped, cache hit, not needed, upstream failed) have no task record."""

    task: str
    state: TaskState
    reason: str = ""  # the decision in words, e.g. "target exists", "will run: target missing"
    target: str | None = None


@dataclass(frozen=True, slots=True)
class RunOutcomes:
    """Every task's outcome of one run, and its run date (``--date``): one compact record per
    run (see :meth:`StateStore.record_outcomes`), read by ``targetrun report``."""

    date: str
    marks: tuple[OutcomeMark, ...]


def as_seen(run: RunRecord, now: float, lease: float) -> RunRecord:
    """The run as a user should see it: a run recorded as running whose process is gone
    (``kill -9``, a lost machine) has *died*; it does not run forever."""
    if run.status is RunStatus.RUNNING and liveness.is_dead(run.owner, run.heartbeat, now, lease):
        return replace(run, status=RunStatus.DIED)
    return run


Row = TypeVar("Row")
Parsed = TypeVar("Parsed")
# What decoding a row of the wrong shape raises: a missing field, a value of the wrong type,
# a number out of range. RecursionError: json.loads of a record nested deeper than Python's
# recursion limit ("[[[[...").
MALFORMED = (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError, RecursionError)
BAD_ROW = (*MALFORMED, CacheError)  # and a record a decoder already judged unreadable
_warned: set[tuple[str, str]] = set()
_warned_guard = threading.Lock()


def finite(value: object) -> float:
    """A number a record may hold: finite (``nan``, ``inf`` and text are malformed).

    >>> finite("1.5"), finite(2)
    (1.5, 2.0)
    >>> finite("inf")
    Traceback (most recent call last):
    ...
    ValueError: 'inf' is not a finite number
    """
    number = float(value)  # type: ignore[arg-type]  # ValueError/TypeError for anything else
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not a finite number")
    return number


def text(value: object) -> str:
    """A name or fingerprint a record may hold: text. SQLite keeps a BLOB as a BLOB in a TEXT
    column, and JSON holds numbers, lists and nulls: none of them is a name to show,
    compare or open (TypeError: the row is malformed, as :func:`readable` reports).

    >>> text("out/a.pkl")
    'out/a.pkl'
    >>> text(b"\\xff")
    Traceback (most recent call last):
    ...
    TypeError: expected text, found bytes
    """
    if type(value) is str:
        return value
    raise TypeError(f"expected text, found {type(value).__name__}")


def text_or_none(value: object) -> str | None:
    """:func:`text`, or None where a record may leave it out."""
    return None if value is None else text(value)


def skip_row(store: str, what: str, problem: BaseException | str) -> None:
    """Report a record that cannot be read: one warning line per store and kind of record
    per process, on stderr (never in ``--json`` output on stdout)."""
    with _warned_guard:
        if (store, what) in _warned:
            return
        _warned.add((store, what))
    text = problem.format() if isinstance(problem, CacheError) else f"{type(problem).__name__}: {problem}" \
        if isinstance(problem, BaseException) else problem
    sys.stderr.write(f"targetrun: warning: skipped an unreadable {what} in the state store {redact(store)} "
                     f"({printable(redact(text))}); if this repeats, clear it with `targetrun cache clear` "
                     f"or move the store aside\n")


def readable(store: str, what: str, rows: Iterable[Row], parse: Callable[[Row], Parsed]) -> list[Parsed]:
    """``parse`` applied to each row; a row it cannot parse is reported and left out."""
    parsed: list[Parsed] = []
    for row in rows:
        try:
            parsed.append(parse(row))
        except BAD_ROW as exc:
            skip_row(store, what, exc)
    return parsed


def kept(record: TaskRecord) -> TaskRecord:
    """The record as a store keeps it: its error text with every credential masked
    (``history``, ``status`` and other machines read it back)."""
    return replace(record, error=redact(record.error)) if record.error else record


@dataclass(frozen=True, slots=True)
class StoreOptions:
    """What the environment says about opening a store (read once, by the caller: see
    targetrun/settings.py); each store takes what it uses. Picklable: a worker process
    that reopens the store (``result: inline``) opens it the same way."""

    busy_timeout: float = 30.0  # seconds to wait for another process's write lock (TARGETRUN_STORE_TIMEOUT)


class StateStore(ABC):
    """One connection to one store, used by one run (or one status query)."""

    @classmethod
    def open(cls, location: str, options: StoreOptions) -> StateStore:
        """The store at ``location`` (what :meth:`address` returned), opened with ``options``."""
        return cls(location)  # type: ignore[call-arg]  # a store's constructor takes its location

    @abstractmethod
    def begin_run(self, record: RunRecord) -> None: ...

    @abstractmethod
    def finish_run(self, run_id: str, status: RunStatus, finished: float, counts: str) -> None: ...

    @abstractmethod
    def record_task(self, record: TaskRecord | None, checkpoint: Checkpoint | None, entry: CacheEntry | None = None,
                    *, staging: str | None = None) -> None:
        """Record a task that ran, the checkpoint it wrote and its cache entry (together);
        with ``staging``, this commits that pending write and ends it in the same step."""

    # -- group commit ------------------------------------------------------------------
    #
    # A run writes a few records per task; committing each on its own is most of what a tiny
    # shell task costs the coordinator. The writes that nothing depends on at once -- a task's
    # record after its target is in place (its prepared pending write already vouches for it:
    # a crash before the commit is made good by recovery), and the release of that task's lock
    # -- may be *kept* and committed in the same transaction as the calling thread's next
    # write, or at :meth:`flush` (the engine flushes before it waits, starts an attempt or
    # reports anything: see Engine._tell). So may the intent of a write whose staging place
    # nothing writes to before the caller's next write or flush. Kept writes commit in the
    # order they were kept, before that next write, and a read by the same thread sees them. A
    # store without group commit writes at once (these defaults).

    def record_task_soon(self, record: TaskRecord | None, checkpoint: Checkpoint | None,
                         entry: CacheEntry | None = None, *, staging: str | None = None) -> None:
        """:meth:`record_task`, kept to commit with this thread's next write (or :meth:`flush`)."""
        self.record_task(record, checkpoint, entry, staging=staging)

    def release_soon(self, name: str, owner: str) -> None:
        """:meth:`release`, kept to commit with this thread's next write (or :meth:`flush`)."""
        self.release(name, owner)

    def intend_write_soon(self, pending: PendingWrite) -> None:
        """:meth:`intend_write`, kept to commit with this thread's next write (the claim of
        the task's lock): the caller flushes before anything writes to the staging place."""
        self.intend_write(pending)

    def flush(self) -> None:
        """Commit the writes this thread kept (:meth:`record_task_soon`, :meth:`release_soon`)."""

    # -- two-phase checkpoint writes ---------------------------------------------------
    #
    # A checkpoint must never be visible at its target without a record that vouches for
    # its bytes. The engine therefore (1) records the *intent* before the worker writes to
    # a staging file, (2) *prepares* the record (size, sha256) once the attempt succeeded,
    # (3) moves the staging file onto the target, and (4) commits the record
    # (:meth:`record_task` with ``staging``), which ends the pending write. A run that
    # stops anywhere in between leaves a pending write that the next run resolves
    # (engine/recovery.py): a target whose bytes match the prepared record is committed,
    # anything else staged is removed. Readers accept bytes that match a prepared record
    # too, so a concurrent reader never mistakes a fresh output for a foreign one.

    @abstractmethod
    def intend_write(self, pending: PendingWrite) -> None: ...

    @abstractmethod
    def prepare_write(self, staging: str, checkpoint: Checkpoint, entry: CacheEntry | None) -> None: ...

    def prepare_writes(self, prepared: Sequence[tuple[str, Checkpoint, CacheEntry | None]]) -> None:
        """:meth:`prepare_write` of several ``(staging, checkpoint, entry)`` at once: all of
        them hold when it returns (a store that can commits them in one write)."""
        for staging, checkpoint, entry in prepared:
            self.prepare_write(staging, checkpoint, entry)

    @abstractmethod
    def pending_writes(self, location: str | None = None) -> list[PendingWrite]:
        """Pending writes (of one location, or all); unreadable rows are skipped."""

    @abstractmethod
    def drop_pending(self, staging: str) -> None: ...

    @abstractmethod
    def heartbeat(self, run_id: str, now: float) -> None:
        """Mark a running run as alive (see :attr:`RunRecord.heartbeat`)."""

    @abstractmethod
    def run(self, run_id: str) -> RunRecord | None: ...

    def restarted_since_begin(self) -> bool:
        """Whether the store may have lost what was written since :meth:`begin_run` (a
        Redis server that restarted in between, its data gone or only partly saved). A
        store on disk keeps what it committed: False."""
        return False

    @abstractmethod
    def checkpoints(self, locations: list[str]) -> dict[str, Checkpoint]:
        """The latest checkpoint record written at each location (one round trip)."""

    def checkpoint(self, location: str) -> Checkpoint | None:
        return self.checkpoints([location]).get(location)

    def checkpoints_that_differ(self, locations: list[str], code: str,
                                kinds: Collection[StaleKind]) -> dict[str, Checkpoint | None]:
        """Every record at ``locations``, as what judging it against the present needs:
        the record when something of ``kinds`` in it may differ (:func:`may_differ`), else
        None -- the record is there, its code fingerprint (as
        :func:`targetrun.fingerprint.canonical` text) is ``code``, and it keeps nothing
        else ``kinds`` compare, so nothing about it is stale. A location without a record
        is left out. A store may tell without decoding the records that are None (a no-op
        of 10,000 unchanged targets, or their ``status``, then decodes none)."""
        return {location: record if may_differ(record, code, kinds) else None
                for location, record in self.checkpoints(locations).items()}

    def checkpoints_that_differ_each(self, codes: Mapping[str, str],
                                     kinds: Collection[StaleKind]) -> dict[str, Checkpoint | None]:
        """:meth:`checkpoints_that_differ` of locations whose code fingerprints differ, each
        judged against its own (``codes``: location -> code): one round trip for a plan of
        10,000 tasks that each run another command, not one per command."""
        return {location: record if may_differ(record, codes[location], kinds) else None
                for location, record in self.checkpoints(list(codes)).items()}

    def recorded(self, locations: list[str]) -> dict[str, int | None]:
        """The ``locations`` that have a checkpoint record, each with the size its record
        says was written -- None when it recorded no content (a folder: no file to size):
        ``status`` tells a target a run recorded from one made by hand, by another tool,
        or whose record was lost, and one rewritten to another size since. One round trip;
        a store may tell without decoding the records."""
        return {location: record.size if record.content_hash else None
                for location, record in self.checkpoints(locations).items()}

    def recorded_for_status(self, locations: list[str]) -> dict[str, Recorded]:
        """:meth:`recorded` and :meth:`checkpoints_made_with` in one question: each of
        ``locations`` that has a checkpoint record, with the size it says was written and
        the record when it keeps parameter values or a date. One round trip; a store may
        tell without decoding the records that keep neither."""
        return {location: Recorded.of(record) for location, record in self.checkpoints(locations).items()}

    def checkpoints_made_with(self, locations: list[str]) -> dict[str, Checkpoint]:
        """The records at ``locations`` that keep what the run that wrote them asked for
        (``made_with`` or ``made_for``): the only ones ``status`` describes as "made with
        ...". A store may select them without decoding the others."""
        return {location: record for location, record in self.checkpoints(locations).items()
                if record.made_with or record.made_for}

    # -- cache entries ---------------------------------------------------------------

    @abstractmethod
    def cache_entries(self, keys: list[str]) -> dict[str, list[CacheEntry]]:
        """Every entry under each key, newest first (one round trip for all keys)."""

    def cache_generation(self) -> int | None:
        """A number that changes whenever any cache entry is added, changed or removed, or
        None: this store cannot tell (then no no-op that hit the cache is replayed)."""
        return None

    @abstractmethod
    def list_cache(self, pipeline: str | None = None) -> list[CacheEntry]: ...

    @abstractmethod
    def delete_cache(self, *, key: str | None = None, task: str | None = None, pipeline: str | None = None,
                     expired_before: float | None = None) -> int:
        """Delete matching entries (all of them when nothing is given); return how many."""

    # -- inline values (``result: inline``) -------------------------------------------

    @abstractmethod
    def put_blob(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def get_blob(self, key: str) -> bytes | None: ...

    @abstractmethod
    def delete_blob(self, key: str) -> None: ...

    # -- locks -----------------------------------------------------------------------

    @abstractmethod
    def acquire(self, name: str, owner: str, lease: float) -> bool:
        """Take the lock ``name`` for ``lease`` seconds unless someone else holds it."""

    def acquire_many(self, names: Sequence[str], owner: str, lease: float) -> set[str]:
        """:meth:`acquire` of each of ``names``: the ones taken (a store that can takes them
        in one write, with what this thread kept). Taken one by one, a failure part-way lets
        go of those taken before it, then raises: none is left held that nobody knows of."""
        taken: set[str] = set()
        try:
            for name in names:
                if self.acquire(name, owner, lease):
                    taken.add(name)
        except BaseException:
            for name in taken:
                try:
                    self.release(name, owner)
                except Exception:  # the store is failing: its lease ends it
                    pass
            raise
        return taken

    @abstractmethod
    def renew(self, names: list[str], owner: str, lease: float) -> None:
        """Extend the leases of locks ``owner`` holds. Called from a background thread."""

    @abstractmethod
    def release(self, name: str, owner: str) -> None:
        """Release ``name`` if ``owner`` still holds it (also: break a dead owner's lock)."""

    @abstractmethod
    def lock_owner(self, name: str) -> str | None:
        """Who holds ``name`` now (None when free or expired)."""

    @abstractmethod
    def lock_lease(self, name: str) -> tuple[str, float] | None:
        """Who holds ``name`` and how many seconds its lease has left (None when free or expired)."""

    @abstractmethod
    def run_checkpoints(self, run_id: str) -> dict[str, Checkpoint]:
        """Every checkpoint a run wrote, by task name."""

    @abstractmethod
    def last_task_records(self, pipeline: str) -> dict[str, TaskRecord]:
        """The most recent record of each task of a pipeline."""

    def last_runs(self, pipeline: str) -> dict[str, LastRun]:
        """What ``status`` shows of each task's most recent record (derived from
        :meth:`last_task_records`; a store may read less)."""
        return {task: LastRun(r.run_id, r.state, r.finished, r.error)
                for task, r in self.last_task_records(pipeline).items()}

    @abstractmethod
    def runs(self, pipeline: str, limit: int = 20) -> list[RunRecord]:
        """Recent runs, newest first."""

    @abstractmethod
    def forget_checkpoint(self, location: str) -> None: ...

    def close(self) -> None:
        pass

    def files(self) -> tuple[str, ...]:
        """The local files this store keeps its state in, journals included (none for a
        server): written by every run, so never anyone's dep."""
        return ()

    @classmethod
    def address(cls, url: str, root: str, *, file: str | None = None) -> str:
        """Where a `cache:` URL of this store's scheme points, as the constructor takes it
        (``root`` is the Pipelinefile's folder; ``file`` names it in errors). Checked here,
        before anything connects: a URL as given by default."""
        return url

    # -- housekeeping (``show`` by parameters, ``targetrun gc``) ------------------------

    @abstractmethod
    def task_checkpoints(self, pipeline: str, task: str, limit: int = 1000) -> list[Checkpoint]:
        """The checkpoints ``task`` wrote in the pipeline's recorded runs, newest run first
        (up to ``limit`` runs): ``show -p`` picks the one made with the parameters asked for."""

    @abstractmethod
    def prune_runs(self, pipeline: str, run_ids: list[str]) -> int:
        """Forget these runs: their run records and task records -- except each task's most
        recent record, which ``status`` shows as its last run. Checkpoint records are not
        touched here (a target's record vouches for its bytes; see :meth:`forget_checkpoint`).
        Return how many run records went."""

    # -- what ``targetrun report`` reads (derived; stores may do better) ---------------

    def task_records(self, run_id: str, pipeline: str) -> dict[str, TaskRecord]:
        """The records of the tasks that ran in one run, by task name. This fallback sees
        only each task's latest record; the built-in stores keep every run's."""
        return {task: r for task, r in self.last_task_records(pipeline).items() if r.run_id == run_id}

    def record_outcomes(self, run_id: str, outcomes: Iterable[TaskOutcome], date: str = "") -> None:
        """Keep every task's outcome of a finished run as one compressed blob (a few bytes
        per task): what was skipped and why is otherwise not recorded per task."""
        self.put_blob(outcomes_key(run_id), encode_outcomes(outcomes, date))

    def run_outcomes(self, run_id: str) -> RunOutcomes | None:
        """What :meth:`record_outcomes` kept, or None (a run killed before its end, a run of
        an older version, or an unreadable blob)."""
        data = self.get_blob(outcomes_key(run_id))
        return decode_outcomes(data) if data is not None else None



def may_differ(record: Checkpoint, code: str, kinds: Collection[StaleKind]) -> bool:
    """Whether judging ``record`` for ``kinds`` (targetrun.staleness.compare) can find
    something stale, when the task's code fingerprint is now ``code``: its code differs
    or was not kept, or it keeps parameter values or a date, input fingerprints or deps
    -- those of them that ``kinds`` compare."""
    from targetrun.fingerprint import canonical

    if record.code is None or canonical(record.code) != code:
        return True
    return (StaleKind.PARAMETERS in kinds and bool(record.made_with or record.made_for)) or \
        (StaleKind.INPUTS in kinds and bool(record.inputs)) or (StaleKind.DEPS in kinds and record.deps is not None)


_STATE_TEXT = {state: state.value for state in TaskState}


def encode_outcomes(outcomes: Iterable[TaskOutcome], date: str = "") -> bytes:
    """Outcomes as zlib-compressed JSON rows ``[task, state, reason, target]``.

    >>> from targetrun.model import Action, Decision, Reason
    >>> marks = decode_outcomes(encode_outcomes([TaskOutcome("a", TaskState.SKIPPED, Decision(Action.SKIP,
    ...     Reason.TARGET_EXISTS), "out/a.json")], "2026-11-30"))
    >>> marks.date, marks.marks[0].state, marks.marks[0].reason, marks.marks[0].target
    ('2026-11-30', <TaskState.SKIPPED: 'skipped'>, 'target exists', 'out/a.json')

    The JSON text is made and compressed a slice of :data:`_OUTCOME_SLICE` rows at a
    time: whole, the rows, the text and its bytes of a 100,000-task no-op were ~27 MB at
    once, the peak of the whole run.
    """
    words: dict[int, tuple[object, str]] = {}  # a no-op of 10,000 tasks shares one decision: describe it once
    state_text = _STATE_TEXT  # an enum member's .value is a descriptor call: look it up instead
    packer = zlib.compressobj(1)  # level 1: a third of level 6's time on this repetitive text, and about as small
    packed = [packer.compress(('{"v":1,"date":' + json.dumps(date) + ',"tasks":[').encode())]
    rows: list[list[object]] = []
    comma = b""
    for o in outcomes:
        said = words.get(id(o.decision))
        if said is None:  # the decision is kept in the pair, so its id is not reused meanwhile
            # recorded text, as a task's error is (see kept): no credential in it ("parameters changed (dsn: ...)")
            said = words[id(o.decision)] = (o.decision, redact(o.decision.describe()))
        rows.append([o.task, state_text[o.state], said[1], o.target])
        if len(rows) == _OUTCOME_SLICE:
            packed.append(packer.compress(comma + _json_rows(rows)))
            rows, comma = [], b","
    if rows:
        packed.append(packer.compress(comma + _json_rows(rows)))
    packed.append(packer.compress(b"]}"))
    packed.append(packer.flush())
    return b"".join(packed)


_OUTCOME_SLICE = 1000


def _json_rows(rows: list[list[object]]) -> bytes:
    """``rows`` as JSON array elements, without the brackets: the same text as in one array."""
    return json.dumps(rows, separators=(",", ":"))[1:-1].encode()


# What the outcomes of one run may inflate to (a million tasks' rows); a blob that inflates
# further is no record of targetrun's -- a forged row, a zip bomb -- and is not read on.
OUTCOMES_LIMIT = 256 * 1024 * 1024


def _inflated(data: bytes) -> bytes | None:
    """An outcomes blob inflated; None when it is not zlib or inflates past OUTCOMES_LIMIT."""
    try:
        inflater = zlib.decompressobj()
        text = inflater.decompress(data, OUTCOMES_LIMIT)
    except (zlib.error, TypeError):
        return None
    return None if inflater.unconsumed_tail else text


def outcomes_without_passwords(data: bytes) -> bytes:
    """An outcomes blob an older targetrun wrote, without a URL's password (the stores'
    rewrite of such rows: sqlite's schema 9, Redis's pass); ``data`` itself when it holds
    none, or is no blob of ours."""
    inflated = _inflated(data)
    try:
        text = inflated.decode("utf-8") if inflated is not None else ""
    except UnicodeDecodeError:
        return data
    bare = without_passwords(text) if "@" in text else text
    return data if bare == text else zlib.compress(bare.encode("utf-8"), 1)


def decode_outcomes(data: bytes) -> RunOutcomes | None:
    try:
        text = _inflated(data)
        if text is None:
            return None
        doc = json.loads(text)
        marks = tuple(OutcomeMark(str(t), TaskState(s), str(r), None if g is None else str(g))
                      for t, s, r, g in doc["tasks"])
        return RunOutcomes(str(doc.get("date", "")), marks)
    except (ValueError, KeyError, TypeError, RecursionError, zlib.error):
        return None


def check_store_url(url: str, *, file: str | None = None) -> None:
    """A ``redis://`` state store URL whose port and database are numbers, checked before
    connecting (the message never repeats the URL: it may hold a password).

    >>> check_store_url("redis://127.0.0.1:6379/0")
    >>> check_store_url("redis://:pw@host:abc/0")
    Traceback (most recent call last):
    ...
    targetrun.errors.SpecError: cache: the port 'abc' of the redis:// cache URL is not a number from 0 to 65535. Write it as redis://HOST:6379/0.
    """
    from urllib.parse import urlsplit

    from targetrun import redact

    if redact.unencoded_password(url):
        raise SpecError(f"the password in the {url.partition(':')[0]}:// cache URL has '/', '#' or '?' not "
                        "percent-encoded", file=file, key="cache", hint=redact.ENCODE_HINT)
    hint = "Write it as redis://HOST:6379/0."
    try:
        parts = urlsplit(url)
    except ValueError:  # "Invalid IPv6 URL": a '[' with no ']' (or the reverse) in the host
        raise SpecError(f"the host of the {url.partition(':')[0][:20]}:// cache URL has an unmatched '[' or ']'",
                        file=file, key="cache", hint="Write an IPv6 address as redis://[::1]:6379/0.") from None
    try:
        parts.port
    except ValueError:
        port = parts.netloc.rpartition("@")[2].rpartition(":")[2]
        raise SpecError(f"the port {port[:20]!r} of the {parts.scheme}:// cache URL is not a number from 0 to 65535",
                        file=file, key="cache", hint=hint) from None
    database = parts.path.strip("/")
    if parts.scheme != "unix" and database and not database.isdigit():
        raise SpecError(f"the database {database[:20]!r} of the {parts.scheme}:// cache URL is not a number",
                        file=file, key="cache", hint=hint)


# The registry is the one list of state stores and of the `cache:` URL schemes they serve
# ("" is a plain path); a plugin store serves URLs of its own name (``mystore://...``).
STORES = Registry(
    "state store",
    "targetrun.cache_stores",
    {
        "sqlite": Entry("targetrun.store.sqlite:SqliteStore", schemes=("", "file", "sqlite")),
        "redis": Entry("targetrun.store.redis:RedisStore", extra="redis", requires=("redis",),
                       schemes=("redis", "rediss", "unix")),
    },
)
