"""Records of local files keyed relative to the project, so a moved project keeps them.

A local target is an absolute path (``/home/me/proj/out/a.pkl``), but what the state
store keeps about it -- the checkpoint record, a pending write, the place a cache entry
points to, the target named in a task record or a run's outcomes -- must survive moving or
re-cloning the project folder together with its ``.targetrun/``. So every local path under
the Pipelinefile's folder is stored *root-marked*, ``{root}/out/a.pkl``, and read back
against wherever the folder is now. Anything else is stored as it is: ``s3://`` and other
URLs (they name the same object from anywhere) and local paths outside the project
(``result: /data/lake``: they do not move with it).

:class:`Keys` is the one translation, and :class:`RootedStore` the one place it is applied:
the composition root (api.py) wraps every store it opens, so every reader and writer --
planning, the run, recovery, ``status``, ``show``, ``report``, ``history``, ``gc`` -- goes
through it, and a plugin store gets it too. Store adapters keep seeing plain strings.

Two records are read by *other* projects sharing the store: a cache entry (``cache_key``
may be shared between pipelines) and a pending write (recovery reads them all). Their
places also keep the root they were written from (``{root:/home/me/proj}/out/a.pkl``):
the pipeline that wrote them (the entry's pipeline, the pending write's run's) reads them
inside its folder as it is now, any other where they were written -- as before. A
checkpoint another pipeline's cache entry points to is vouched for by that entry (its
record is keyed relative to a folder the reader cannot know).

A URL that names a server with a password (``ftp://user:pw@host/``, a ``results:`` URL) is
stored without the password -- in keys, records, pending writes, outcomes and lock names --:
a user shares state.db, many share a Redis store. What is read back gets the password this
process was given (the Pipelinefile's result and target URLs, every location it stored).
Rows an older targetrun wrote with the password are rewritten without it when the store is
opened (store/sqlite.py schema 9, store/redis.py ``_drop_passwords``): that needs no project's
folder, only the text.

Lock names are not translated otherwise: a lock says "this file is being computed", and two clones
at different paths sharing a Redis store write different files.

Records written before this (keyed by the absolute path) are still found while the
project has not moved: a location inside the project whose root-marked key has no record
is looked up once more under its absolute path (one more batched lookup, only for those).
Rewriting the old keys instead (a schema migration) is not possible: a store does not know
which project's folder its paths are under -- several projects may share one store. An
old record is shadowed by a root-marked one when its target is rewritten, and forgotten
with it; an old pending write is ended under the key it was written with.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Optional, TypeVar
from urllib.parse import quote, unquote

from targetrun import liveness, redact
from targetrun.model import CacheEntry, Checkpoint, StaleKind, TaskOutcome
from targetrun.store.base import (LastRun, OutcomeMark, PendingWrite, Recorded, RunOutcomes, RunRecord, RunStatus,
                                  StateStore, TaskRecord, may_differ)

# A record as a lookup returns it: checkpoints() always one, checkpoints_that_differ() None for a record with nothing to judge
_Record = TypeVar("_Record", Checkpoint, Optional[Checkpoint])
ROOT_MARK = "{root}/"  # never the start of an absolute path or of a URL
_PLACED = "{root:"  # ... nor is this: "{root:/quoted/writer/root}/rel/path"


class Keys:
    """The translation between a location (an absolute local path or a URL) and what a
    state store keeps, for the project whose Pipelinefile is in ``root``.

    A location a record is *looked up by* is stored as a root-marked key, the same for every
    copy of the project (:meth:`stored`). A location inside a record that another project
    may read -- a cache entry's checkpoint (``cache_key`` is shared between pipelines) and a
    pending write (recovery reads them all) -- also keeps the root it was written from
    (:meth:`placed`), so another project finds the file where it was written, and this one
    (or its moved copy) where it is now.

    >>> keys = Keys("/w/proj", "demo")
    >>> keys.stored("/w/proj/out/a.pkl"), keys.located("{root}/out/a.pkl")
    ('{root}/out/a.pkl', '/w/proj/out/a.pkl')
    >>> keys.stored("/w/other/a.pkl"), keys.stored("s3://b/out/a.pkl"), keys.stored("/w/proj2/a")
    ('/w/other/a.pkl', 's3://b/out/a.pkl', '/w/proj2/a')
    >>> moved = Keys("/elsewhere/clone", "demo")
    >>> moved.located("{root}/out/a.pkl")
    '/elsewhere/clone/out/a.pkl'
    >>> keys.placed("/w/proj/out/a.pkl")
    '{root:/w/proj}/out/a.pkl'
    >>> moved.located(keys.placed("/w/proj/out/a.pkl")), moved.located(keys.placed("/w/proj/out/a.pkl"), own=False)
    ('/elsewhere/clone/out/a.pkl', '/w/proj/out/a.pkl')
    """

    def __init__(self, root: str, pipeline: str, logins: Iterable[str] = ()) -> None:
        self.root = os.path.abspath(root)
        self.pipeline = pipeline
        self._inside = self.root.rstrip(os.sep) + os.sep
        self._placed = f"{_PLACED}{quote(self.root, safe='/')}}}/"
        # A server's URL start without its password -> with it: learned from every location
        # given (and ``logins``: the pipeline's result and target URLs), never kept in the store.
        self._logins: dict[str, str] = {}
        for url in logins:
            found = redact.login(url)
            if found is not None and "{" not in found[0]:  # a template's server is learned once it is rendered
                self._logins[found[1]] = found[0]

    def _bare(self, location: str) -> str:
        """``location`` without the password of its server (a store never keeps it: a user
        shares state.db, many share a Redis store); the password is remembered, in this
        process only, to give back what is read (:meth:`_dressed`)."""
        found = redact.login(location)
        if found is None:
            return location
        whole, bare = found
        self._logins[bare] = whole
        return bare + location[len(whole):]

    def _dressed(self, key: str) -> str:
        """A URL key with its server's password back, when this process was given it.

        >>> keys = Keys("/w", "p", ["ftp://u:pw@h:21/data"])
        >>> keys.stored("ftp://u:pw@h:21/data/a.txt"), keys.located("ftp://u@h:21/data/a.txt")
        ('ftp://u@h:21/data/a.txt', 'ftp://u:pw@h:21/data/a.txt')
        >>> keys.located("ftp://v@h:21/a.txt"), keys.located("s3://b/k@x")
        ('ftp://v@h:21/a.txt', 's3://b/k@x')
        >>> Keys("/w", "p", ["ftp://v:{params.pw}@h/{x}"]).located("ftp://v@h/a.txt")  # a template: not a password
        'ftp://v@h/a.txt'
        """
        scheme, sep, rest = key.partition("://")
        if not sep or not self._logins:
            return key
        cut = redact.authority_end(rest)
        whole = self._logins.get(key[:len(scheme) + 3 + cut])
        return key if whole is None else whole + rest[cut:]

    def _rest(self, location: str) -> str | None:
        """``location`` relative to the project's folder, with ``/`` separators; None outside it."""
        if not location.startswith(self._inside):
            return None
        rest = location[len(self._inside):]
        return rest.replace(os.sep, "/") if os.sep != "/" else rest

    def stored(self, location: str) -> str:
        """The key a record of ``location`` is looked up by: root-marked inside the project."""
        rest = self._rest(location)
        if rest is None:
            return self._bare(location) if "@" in location else location
        return ROOT_MARK + rest

    def stored_all(self, locations: list[str]) -> list[str]:
        """:meth:`stored` of each of ``locations`` (a lookup of 10,000 records at once).

        >>> Keys("/w/proj", "demo").stored_all(["/w/proj/out/a.pkl", "/w/proj2/a", "s3://b/k"])
        ['{root}/out/a.pkl', '/w/proj2/a', 's3://b/k']
        """
        if os.sep != "/":
            return list(map(self.stored, locations))
        inside, cut, bare = self._inside, len(self._inside), self._bare
        return [ROOT_MARK + location[cut:] if location.startswith(inside) else bare(location) if "@" in location
                else location for location in locations]

    def placed(self, location: str) -> str:
        """``location`` as a record another project may read keeps it: root-marked, with this root."""
        rest = self._rest(location)
        if rest is None:
            return self._bare(location) if "@" in location else location
        return self._placed + rest

    def located(self, key: str, *, own: bool = True) -> str:
        """The location a stored key names: inside this project as it is now, or (``own``
        false: a record another project wrote) where its writer was."""
        if key.startswith(ROOT_MARK):
            return self._inside_at(key[len(ROOT_MARK):])
        placed = _split_placed(key)
        if placed is None:
            return self._dressed(key) if "@" in key else key
        writer, rest = placed
        return self._inside_at(rest) if own else _joined(writer.rstrip(os.sep) + os.sep, rest)

    def _inside_at(self, rest: str) -> str:
        """The place ``rest`` (a key's path below its root, ``/``-separated) names in this project."""
        return _joined(self._inside, rest)

    def writer(self, key: str) -> str | None:
        """The root a :meth:`placed` key was written from (None for any other key)."""
        placed = _split_placed(key)
        return placed[0] if placed is not None else None

    def checkpoint_out(self, checkpoint: Checkpoint, *, placed: bool = False) -> Checkpoint:
        key = (self.placed if placed else self.stored)(checkpoint.location)
        return checkpoint if key == checkpoint.location else _at(checkpoint, key)

    def checkpoint_in(self, checkpoint: Checkpoint, *, own: bool = True) -> Checkpoint:
        location = self.located(checkpoint.location, own=own)
        return checkpoint if location == checkpoint.location else _at(checkpoint, location)

    def entry_out(self, entry: CacheEntry) -> CacheEntry:
        checkpoint = self.checkpoint_out(entry.checkpoint, placed=True)
        return entry if checkpoint is entry.checkpoint else replace(entry, checkpoint=checkpoint)

    def entry_in(self, entry: CacheEntry) -> CacheEntry:
        """A cache entry of this pipeline points into this project; another pipeline's
        (a shared ``cache_key``) to where that pipeline wrote it."""
        checkpoint = self.checkpoint_in(entry.checkpoint, own=entry.pipeline == self.pipeline)
        return entry if checkpoint is entry.checkpoint else replace(entry, checkpoint=checkpoint)

    def target_in(self, record: TaskRecord) -> TaskRecord:
        r, target = record, record.target
        if target is not None and "@" in target and not target.startswith(ROOT_MARK):
            return replace(r, target=self._dressed(target))
        if target is None or not target.startswith(ROOT_MARK):
            return r
        # as located(target); a new record rather than replace(record, target=...), which
        # costs three times as much: status reads a record per task
        return TaskRecord(r.run_id, r.pipeline, r.task, r.state, r.finished, r.duration, r.attempts, r.error,
                          self._inside_at(target[len(ROOT_MARK):]), r.started, r.worker)


def _joined(root: str, rest: str) -> str:
    """``root`` (ending in a separator) and a ``/``-separated path below it, as this system writes paths."""
    return root + (rest.replace("/", os.sep) if os.sep != "/" else rest)


def _split_placed(key: str) -> tuple[str, str] | None:
    """A :meth:`Keys.placed` key as (the root it was written from, the rest); None for any other key."""
    if not key.startswith(_PLACED) or "}/" not in key:
        return None
    writer, _, rest = key[len(_PLACED):].partition("}/")
    return unquote(writer), rest


def _at(c: Checkpoint, location: str) -> Checkpoint:
    """``c`` at another location: ``status`` of 10,000 targets reads 10,000 records, and
    this is twice as fast as :func:`dataclasses.replace`."""
    return Checkpoint(c.task, location, c.serializer, c.size, c.content_hash, c.run_id, c.written_at, c.duration,
                      c.inputs, c.params, c.storage, c.made_with, c.made_for, c.code, c.deps, c.dep_stats)


class RootedStore(StateStore):
    """A state store seen through :class:`Keys`: every location written is stored as its
    key, every key read is returned as a location (see the module docstring)."""

    def __init__(self, inner: StateStore, root: str, pipeline: str, logins: Iterable[str] = ()) -> None:
        self.inner = inner
        self.keys = Keys(root, pipeline, logins)
        # The key each pending write read here was stored under (by its staging location):
        # it is ended under that key, whatever root or format it was written with.
        self._pending_keys: dict[str, str] = {}
        # The checkpoints of other pipelines' cache entries read here, by location (see _entry_in).
        self._foreign: dict[str, Checkpoint] = {}

    # -- runs --------------------------------------------------------------------------

    def begin_run(self, record: RunRecord) -> None:
        self.inner.begin_run(record)

    def finish_run(self, run_id: str, status: RunStatus, finished: float, counts: str) -> None:
        self.inner.finish_run(run_id, status, finished, counts)

    def heartbeat(self, run_id: str, now: float) -> None:
        self.inner.heartbeat(run_id, now)

    def restarted_since_begin(self) -> bool:
        return self.inner.restarted_since_begin()

    def run(self, run_id: str) -> RunRecord | None:
        return self.inner.run(run_id)

    def runs(self, pipeline: str, limit: int = 20) -> list[RunRecord]:
        return self.inner.runs(pipeline, limit)

    def prune_runs(self, pipeline: str, run_ids: list[str]) -> int:
        return self.inner.prune_runs(pipeline, run_ids)

    # -- what a task wrote -------------------------------------------------------------

    def record_task(self, record: TaskRecord | None, checkpoint: Checkpoint | None, entry: CacheEntry | None = None,
                    *, staging: str | None = None) -> None:
        record, checkpoint, entry, staging = self._task_out(record, checkpoint, entry, staging)
        self.inner.record_task(record, checkpoint, entry, staging=staging)

    def record_task_soon(self, record: TaskRecord | None, checkpoint: Checkpoint | None,
                         entry: CacheEntry | None = None, *, staging: str | None = None) -> None:
        record, checkpoint, entry, staging = self._task_out(record, checkpoint, entry, staging)
        self.inner.record_task_soon(record, checkpoint, entry, staging=staging)

    def flush(self) -> None:
        self.inner.flush()

    def _task_out(self, record: TaskRecord | None, checkpoint: Checkpoint | None, entry: CacheEntry | None,
                  staging: str | None) -> tuple[TaskRecord | None, Checkpoint | None, CacheEntry | None, str | None]:
        """What :meth:`record_task` is given, as the inner store keeps it."""
        if record is not None and record.target is not None:
            key = self.keys.stored(record.target)
            if key != record.target:  # a new record rather than replace(): every task's record comes here
                r = record
                record = TaskRecord(r.run_id, r.pipeline, r.task, r.state, r.finished, r.duration, r.attempts, r.error,
                                    key, r.started, r.worker)
        return (record, self.keys.checkpoint_out(checkpoint) if checkpoint is not None else None,
                self.keys.entry_out(entry) if entry is not None else None,
                self._staging_key(staging) if staging is not None else None)

    def intend_write(self, pending: PendingWrite) -> None:
        self.inner.intend_write(self._pending_out(pending))

    def intend_write_soon(self, pending: PendingWrite) -> None:
        self.inner.intend_write_soon(self._pending_out(pending))

    def _pending_out(self, pending: PendingWrite) -> PendingWrite:
        placed = self.keys.placed
        # a new record rather than replace(), which costs three times as much: every task stages one
        return PendingWrite(
            pending.run_id, placed(pending.location), placed(pending.staging), pending.storage,
            self.keys.checkpoint_out(pending.checkpoint, placed=True) if pending.checkpoint is not None else None,
            self.keys.entry_out(pending.entry) if pending.entry is not None else None, pending.absent)

    def prepare_write(self, staging: str, checkpoint: Checkpoint, entry: CacheEntry | None) -> None:
        self.inner.prepare_write(self._staging_key(staging), self.keys.checkpoint_out(checkpoint, placed=True),
                                 self.keys.entry_out(entry) if entry is not None else None)

    def prepare_writes(self, prepared: Sequence[tuple[str, Checkpoint, CacheEntry | None]]) -> None:
        checkpoint_out, entry_out = self.keys.checkpoint_out, self.keys.entry_out
        self.inner.prepare_writes([(self._staging_key(staging), checkpoint_out(checkpoint, placed=True),
                                    entry_out(entry) if entry is not None else None)
                                   for staging, checkpoint, entry in prepared])

    def pending_writes(self, location: str | None = None) -> list[PendingWrite]:
        if location is None:
            found = self.inner.pending_writes()
        else:  # written from this root, or before root-marked keys
            keys = dict.fromkeys([self.keys.placed(location), location])
            found = [pending for key in keys for pending in self.inner.pending_writes(key)]
        runs: dict[str, bool] = {}
        return [self._pending_in(pending, runs) for pending in found]

    def drop_pending(self, staging: str) -> None:
        self.inner.drop_pending(self._staging_key(staging))

    def _pending_in(self, pending: PendingWrite, runs: dict[str, bool]) -> PendingWrite:
        """A pending write as a location: this project's (written here, or from where the
        project was before it moved) is inside the project as it is now; any other is where
        its writer wrote it. Written from another folder, it is this project's only if its
        run is of this pipeline, ran on this machine, and that folder is gone: a clone that
        still stands there (or on another machine) keeps its own pending writes."""
        writer = self.keys.writer(pending.staging)
        own = True
        if writer is not None and writer != self.keys.root:
            if pending.run_id not in runs:
                run = self.inner.run(pending.run_id)
                runs[pending.run_id] = run is not None and run.pipeline == self.keys.pipeline \
                    and run.owner.split("/", 1)[0] in ("", liveness.host()) and not os.path.isdir(writer)
            own = runs[pending.run_id]
        located = self.keys.located
        staging = located(pending.staging, own=own)
        self._pending_keys[staging] = pending.staging
        return replace(pending, location=located(pending.location, own=own), staging=staging,
                       checkpoint=self.keys.checkpoint_in(pending.checkpoint, own=own) if pending.checkpoint is not None
                       else None,
                       entry=self.keys.entry_in(pending.entry) if pending.entry is not None else None)

    def _staging_key(self, staging: str) -> str:
        return self._pending_keys.get(staging) or self.keys.placed(staging)

    # -- checkpoint records ------------------------------------------------------------

    def checkpoints(self, locations: list[str]) -> dict[str, Checkpoint]:
        return self._lookup(locations, self.inner.checkpoints)

    def checkpoints_that_differ(self, locations: list[str], code: str,
                                kinds: Collection[StaleKind]) -> dict[str, Checkpoint | None]:
        records = self._lookup(locations, lambda keys: self.inner.checkpoints_that_differ(keys, code, kinds))
        for location in self._foreign.keys() & records.keys():  # judged here, as the store judges its own
            record = records[location]
            if record is not None and not may_differ(record, code, kinds):
                records[location] = None
        return records

    def checkpoints_that_differ_each(self, codes: Mapping[str, str],
                                     kinds: Collection[StaleKind]) -> dict[str, Checkpoint | None]:
        locations = list(codes)
        code_of = dict(codes)  # by key too: the lookup asks by key, then an older record by location
        code_of.update(zip(self.keys.stored_all(locations), codes.values()))
        records = self._lookup(locations, lambda keys: self.inner.checkpoints_that_differ_each(
            {key: code_of[key] for key in keys}, kinds))
        for location in self._foreign.keys() & records.keys():  # judged here, as the store judges its own
            record = records[location]
            if record is not None and not may_differ(record, codes[location], kinds):
                records[location] = None
        return records

    def checkpoints_made_with(self, locations: list[str]) -> dict[str, Checkpoint]:
        return self._lookup(locations, self.inner.checkpoints_made_with)

    def recorded(self, locations: list[str]) -> dict[str, int | None]:
        """As :meth:`_lookup` finds records: by key, then an older record by its absolute path."""
        keyed = dict(zip(self.keys.stored_all(locations), locations))
        found = self.inner.recorded(list(keyed))
        sizes = {keyed[key]: size for key, size in found.items()}
        older = [location for key, location in keyed.items() if key not in found and key != location]
        if older:
            sizes.update(self.inner.recorded(older))
        for location in self._foreign.keys() & keyed.keys():
            foreign = self._foreign[location]
            sizes.setdefault(location, foreign.size if foreign.content_hash else None)
        return sizes

    def recorded_for_status(self, locations: list[str]) -> dict[str, Recorded]:
        """As :meth:`_lookup` finds records: by key, then an older record by its absolute path."""
        keyed = dict(zip(self.keys.stored_all(locations), locations))
        found = self.inner.recorded_for_status(list(keyed))
        answers: dict[str, Recorded] = {}
        for key, answer in found.items():
            location, made = keyed[key], answer.made
            answers[location] = answer if made is None or made.location == location else \
                Recorded(answer.size, _at(made, location))
        older = [location for key, location in keyed.items() if key not in found and key != location]
        if older:
            answers.update(self.inner.recorded_for_status(older))
        for location in self._foreign.keys() & keyed.keys():
            if location not in answers:
                answers[location] = Recorded.of(self._foreign[location])
        return answers

    def _lookup(self, locations: list[str], fetch: Callable[[list[str]], Mapping[str, _Record]]) -> dict[str, _Record]:
        """The records of ``locations``, fetched by their keys; a location inside the project
        with none is fetched once more by its absolute path: a record written before
        root-marked keys, found while the project has not moved. (A None that
        ``checkpoints_that_differ`` gives is a record found.)"""
        keyed = dict(zip(self.keys.stored_all(locations), locations))
        found = fetch(list(keyed))
        records: dict[str, _Record] = {}
        for key, record in found.items():
            location = keyed[key]  # a record found by a location's key is that location's
            records[location] = record if record is None or record.location == location else _at(record, location)
        older = [location for key, location in keyed.items() if key not in found and key != location]
        if older:
            records.update(fetch(older))
        for location in self._foreign.keys() & keyed.keys():  # a location that is its own key
            if location not in records:
                records[location] = self._foreign[location]
        return records

    def run_checkpoints(self, run_id: str) -> dict[str, Checkpoint]:
        return {task: self.keys.checkpoint_in(record) for task, record in self.inner.run_checkpoints(run_id).items()}

    def task_checkpoints(self, pipeline: str, task: str, limit: int = 1000) -> list[Checkpoint]:
        return [self.keys.checkpoint_in(record) for record in self.inner.task_checkpoints(pipeline, task, limit)]

    def forget_checkpoint(self, location: str) -> None:
        key = self.keys.stored(location)
        self.inner.forget_checkpoint(key)
        if key != location:
            self.inner.forget_checkpoint(location)  # and a record written before root-marked keys

    # -- task records ------------------------------------------------------------------

    def last_task_records(self, pipeline: str) -> dict[str, TaskRecord]:
        target_in = self.keys.target_in
        return {task: target_in(record) for task, record in self.inner.last_task_records(pipeline).items()}

    def last_runs(self, pipeline: str) -> dict[str, LastRun]:
        return self.inner.last_runs(pipeline)  # no target in them to locate

    def task_records(self, run_id: str, pipeline: str) -> dict[str, TaskRecord]:
        return {task: self.keys.target_in(record) for task, record in self.inner.task_records(run_id, pipeline).items()}

    def record_outcomes(self, run_id: str, outcomes: Iterable[TaskOutcome], date: str = "") -> None:
        stored = self.keys.stored
        # new outcomes rather than replace(), which costs three times as much: a no-op of
        # 10,000 tasks records 10,000 of them (40 ms of its 0.9 s, profiled)
        self.inner.record_outcomes(run_id, (o if o.target is None else TaskOutcome(
            o.task, o.state, o.decision, stored(o.target), o.duration, o.attempts, o.error, o.checkpoint,
            o.backend_error, o.usage_error) for o in outcomes), date)

    def run_outcomes(self, run_id: str) -> RunOutcomes | None:
        found = self.inner.run_outcomes(run_id)
        if found is None:
            return None
        located = self.keys.located
        return RunOutcomes(found.date, tuple(m if m.target is None else OutcomeMark(m.task, m.state, m.reason,
                                                                                     located(m.target))
                                             for m in found.marks))

    # -- cache entries -----------------------------------------------------------------

    def cache_generation(self) -> int | None:
        return self.inner.cache_generation()

    def cache_entries(self, keys: list[str]) -> dict[str, list[CacheEntry]]:
        return {key: [self._entry_in(entry) for entry in entries]
                for key, entries in self.inner.cache_entries(keys).items()}

    def list_cache(self, pipeline: str | None = None) -> list[CacheEntry]:
        return [self._entry_in(entry) for entry in self.inner.list_cache(pipeline)]

    def _entry_in(self, entry: CacheEntry) -> CacheEntry:
        """An entry as a location; another pipeline's local checkpoint (a shared ``cache_key``)
        is remembered as a record of its location: that pipeline keyed its record relative
        to its own folder, which a reader of the location cannot know."""
        located = self.keys.entry_in(entry)
        if located is not entry and entry.pipeline != self.keys.pipeline:
            self._foreign[located.checkpoint.location] = located.checkpoint
        return located

    def delete_cache(self, *, key: str | None = None, task: str | None = None, pipeline: str | None = None,
                     expired_before: float | None = None) -> int:
        return self.inner.delete_cache(key=key, task=task, pipeline=pipeline, expired_before=expired_before)

    # -- inline values and locks: keys that are not local paths ------------------------

    def put_blob(self, key: str, data: bytes) -> None:
        self.inner.put_blob(key, data)

    def get_blob(self, key: str) -> bytes | None:
        return self.inner.get_blob(key)

    def delete_blob(self, key: str) -> None:
        self.inner.delete_blob(key)

    # A lock's name ("target:LOCATION") is kept without a server's password, as a location is.

    def _lock(self, name: str) -> str:
        kind, colon, location = name.partition(":")
        return kind + colon + self.keys._bare(location) if "@" in location else name

    def acquire(self, name: str, owner: str, lease: float) -> bool:
        return self.inner.acquire(self._lock(name), owner, lease)

    def acquire_many(self, names: Sequence[str], owner: str, lease: float) -> set[str]:
        stored = {self._lock(name): name for name in names}
        return {stored[name] for name in self.inner.acquire_many(list(stored), owner, lease)}

    def renew(self, names: list[str], owner: str, lease: float) -> None:
        self.inner.renew([self._lock(name) for name in names], owner, lease)

    def release(self, name: str, owner: str) -> None:
        self.inner.release(self._lock(name), owner)

    def release_soon(self, name: str, owner: str) -> None:
        self.inner.release_soon(self._lock(name), owner)

    def lock_owner(self, name: str) -> str | None:
        return self.inner.lock_owner(self._lock(name))

    def lock_lease(self, name: str) -> tuple[str, float] | None:
        return self.inner.lock_lease(self._lock(name))

    def close(self) -> None:
        self.inner.close()

    def files(self) -> tuple[str, ...]:
        return self.inner.files()
