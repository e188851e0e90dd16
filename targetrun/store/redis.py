"""A state store in Redis, shared by every machine and CI job that points at it.

Keys (prefix ``targetrun:``):

* ``run:RUN_ID`` (hash) and ``runs:PIPELINE`` (sorted set by start time): run records;
* ``last:PIPELINE`` (hash task -> JSON): each task's most recent record;
* ``runtasks:RUN_ID`` (hash task -> JSON): the records of the tasks one run ran (``report``);
* ``ckpt:LOCATION`` (JSON) and ``runckpt:RUN_ID`` (hash task -> JSON): checkpoint records
  (a local LOCATION inside the project is root-marked: ``ckpt:{root}/out/a.pkl``, see store/rooted.py);
* ``cache:KEY`` (hash variant -> JSON): cache entries; the key expires (Redis TTL) with its
  last entry, and every entry also carries its own expiry;
* ``blob:LOCATION``: values of tasks with ``result: inline``, and each run's outcome summary
  (``blob:targetrun-run:RUN_ID:outcomes``, see store/base.py);
* ``pending`` (hash staging -> JSON): checkpoint writes under way (see store/base.py);
* ``lock:NAME``: ``SET NX PX`` with the owner as value, released and renewed by Lua
  scripts that act only while the owner still holds it.

redis-py is imported with this module; without it the registry (``requires``) says "pip install 'targetrun[redis]'", and ``validate`` says so with the ``cache:`` line.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from functools import partial
from typing import Any
import redis

from targetrun import redact, stopping
from targetrun.errors import CacheError, UsageError
from targetrun.model import CacheEntry, Checkpoint, TaskState
from targetrun.store.base import (BAD_ROW, MALFORMED, PendingWrite, Recorded, RunRecord, RunStatus, StateStore,
                                  TaskRecord, check_store_url, finite, kept, outcomes_without_passwords, readable,
                                  text_or_none)
from targetrun.store.base import text as text_of  # "text" here is a record's JSON
from targetrun.store.sqlite import _decoded, checkpoint_of, dump_checkpoint, dump_entry, load_checkpoint, load_entry

PREFIX = "targetrun:"
# Set once every key an older targetrun wrote with a URL's password is rewritten (_drop_passwords).
BARE_LOCATIONS = f"{PREFIX}schema:bare-locations"
_OUTCOMES = re.compile(rf"{re.escape(PREFIX)}blob:targetrun-run:.*:outcomes", re.S)  # (store/statements.py outcomes_key)
_SCAN_PAGE = 1000
MAX_ENTRIES_PER_KEY = 32
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"
_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"
# Expire a cache key with its latest entry: move its expiry later, never earlier (Redis 6 has no PEXPIREAT GT).
_EXTEND = """
local ttl = redis.call('pttl', KEYS[1])
local now = redis.call('time')
local current = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) + ttl
if ttl < 0 or tonumber(ARGV[1]) > current then return redis.call('pexpireat', KEYS[1], ARGV[1]) end
return 0
"""
_ACQUIRE = """
local holder = redis.call('get', KEYS[1])
-- a lock without an expiry is no run's (each sets one): data another client left, not a hold
if holder == false or redis.call('pttl', KEYS[1]) == -1 then
  return redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2]) and 1 or 0
end
if holder == ARGV[1] then redis.call('pexpire', KEYS[1], ARGV[2]) return 1 end
return 0
"""


def mask(url: str) -> str:
    """The URL with its credentials hidden (one rule for every output: :mod:`targetrun.redact`).

    >>> mask("redis://:secret@host:6379/0"), mask("rediss://user:p/w#?@h/1"), mask("redis://h:1/0")
    ('redis://:***@host:6379/0', 'rediss://***@h/1', 'redis://h:1/0')
    """
    return redact.redact(url)


def check_url(url: str) -> None:
    """Refuse a password that holds ``/``, ``#`` or ``?`` unencoded: a URL parser ends the
    host part there, so redis-py would quietly connect somewhere else (often localhost)."""
    if redact.unencoded_password(url):
        raise UsageError(f"the state store URL {mask(url)} has '/', '#' or '?' in its password, not percent-encoded",
                         hint=redact.ENCODE_HINT)


_PIPELINED = re.compile(r"Command # \d+ \(.*\) of pipeline caused error: ", re.DOTALL)


def _reply(exc: BaseException) -> str:
    """The server's reply alone: redis-py puts the pipelined command before it, arguments
    and all (a record, an inline value's first bytes), which is no output's business.

    >>> _reply(redis.ResponseError("Command # 1 (SET k v) of pipeline caused error: OOM no"))
    'OOM no'
    """
    return _PIPELINED.sub("", str(exc), count=1)


_NO_LOSS = "then run again (targets already made are kept)"


def _refusal(exc: BaseException) -> tuple[str, str] | None:
    """A running Redis that refuses every write, as (what, what to do) -- not a wrong URL
    or a server gone (what the generic message tells to check), and not a stop: the run's
    records cannot be written until someone changes the server."""
    text = _reply(exc)
    if isinstance(exc, redis.exceptions.OutOfMemoryError) or text.startswith("OOM ") or "maxmemory" in text:
        return ("is out of memory (maxmemory) and refuses writes",
                f"Free memory on that Redis server or raise its maxmemory (CONFIG SET maxmemory), {_NO_LOSS}.")
    if isinstance(exc, redis.exceptions.ReadOnlyError) or text.startswith("READONLY ") or "read only replica" in text:
        return ("is a read-only replica and refuses writes",
                f"Point `cache:` at the primary (or run REPLICAOF NO ONE on that server), {_NO_LOSS}.")
    if text.startswith("MISCONF "):
        return ("cannot save its data to its disk and refuses writes",
                f"Make room on the Redis server's disk (or fix its `dir` and `save` settings), {_NO_LOSS}.")
    return None


class RedisStore(StateStore):
    @classmethod
    def address(cls, url: str, root: str, *, file: str | None = None) -> str:
        """The URL itself, once its port and database are known to be numbers."""
        check_store_url(url, file=file)
        return url

    def __init__(self, url: str, *, timeout: float = 5.0) -> None:
        redact.register_url(url)
        check_url(url)
        self.url = url
        try:
            # Bytes that are not UTF-8 (another program's, a cut write) read as U+FFFD: the row is
            # then unreadable and skipped as a damaged one is, instead of redis-py's decode error
            # ending every command with a traceback. targetrun itself writes only UTF-8.
            self.client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                               decode_responses=True, encoding_errors="replace")
            self.client.ping()
            self._bytes = redis.Redis(connection_pool=redis.ConnectionPool.from_url(
                url, socket_timeout=timeout, socket_connect_timeout=timeout))  # undecoded, for inline values
        except (redis.RedisError, ValueError, OSError) as exc:
            raise self._broken(exc) from None
        self._silent = False  # it did not answer while the command was ending (see _call)
        self._server: str | None = None  # the server's run_id when a run began (see restarted_since_begin)
        self._release = self.client.register_script(_RELEASE)
        self._renew = self.client.register_script(_RENEW)
        self._acquire = self.client.register_script(_ACQUIRE)
        self._extend = self.client.register_script(_EXTEND)
        self._drop_passwords()

    # -- rows an older targetrun wrote with a URL's password ----------------------------

    def _drop_passwords(self) -> None:
        """Rewrite every key an older targetrun wrote with a URL's password in a location --
        in its name (``ckpt:``, ``lock:``), a hash's fields or values (``pending``, ``last:``,
        ``runtasks:``, ``runckpt:``, ``cache:``), a record or a run's outcomes -- without it,
        as store/rooted.py keeps a location now. Once per store: :data:`BARE_LOCATIONS` says it
        is done. Key by key, each in one transaction (WATCH): interrupted, every key is either
        as it was (still read) or rewritten, and the next command goes on; a key whose name
        without the password is taken (a newer targetrun wrote it since) goes, as does a
        hash field's. A page of keys costs three round trips to look at. A server that refuses
        a step (an ACL without SCAN or RENAME) leaves it for the next command: the store is
        still used, as it was before this rewrite."""
        try:
            self._rewrite_without_passwords()
        except CacheError as exc:
            if "NOPERM" not in str(exc) and "no permissions" not in str(exc):
                raise

    def _rewrite_without_passwords(self) -> None:
        if self._call(self.client.exists, BARE_LOCATIONS):
            return
        raw = self._bytes
        cursor = 0
        while True:
            cursor, keys = self._call(raw.scan, cursor, match=f"{PREFIX}*", count=_SCAN_PAGE)
            if keys:
                pipe = raw.pipeline(transaction=False)
                for key in keys:
                    pipe.type(key)
                kinds = self._call(pipe.execute)
                pipe = raw.pipeline(transaction=False)
                for key, kind in zip(keys, kinds):
                    (pipe.hgetall if kind == b"hash" else pipe.get if kind == b"string" else pipe.exists)(key)
                values = self._call(pipe.execute)
                for key, kind, value in zip(keys, kinds, values):
                    if _with_password(key, kind, value):
                        self._call(raw.transaction, partial(_rewrite_bare, key), key, _bare_name(key))
            if cursor == 0:
                break
        self._call(self.client.set, BARE_LOCATIONS, "1")

    def _broken(self, exc: BaseException) -> CacheError:
        if isinstance(exc, redis.AuthenticationError):  # a ConnectionError to redis-py, but not a network problem
            return CacheError(f"the state store {mask(self.url)} refused the credentials: {type(exc).__name__}: {exc}",
                              hint="Check the user and password in `cache:` (percent-encoded: %2F for /, %23 for #, "
                                   "%3F for ?, %40 for @, %3A for :).")
        if isinstance(exc, redis.ResponseError):
            refused = _refusal(exc)
            if refused is not None:
                what, hint = refused
                return CacheError(f"the state store {mask(self.url)} {what}: {_reply(exc)}", hint=hint)
            exc = type(exc)(_reply(exc))
        what = "cannot be reached" if isinstance(exc, (redis.ConnectionError, redis.TimeoutError, OSError)) else "failed"
        return CacheError(f"the state store {mask(self.url)} {what}: {type(exc).__name__}: {exc}",
                          hint="Check that Redis is running and the URL in `cache:` is right.")

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        ending = stopping.wait_until(math.inf) < math.inf  # a stop, or a fault, ends the command
        if ending and self._silent:
            # It did not answer once the command began to end: it must not cost the client's
            # whole timeout again for each record the command would still write.
            raise CacheError(f"the state store {mask(self.url)} did not answer; the command is ending without "
                             "waiting for it again", hint="Check that Redis is running and reachable.")
        try:
            return fn(*args, **kwargs)
        except redis.ResponseError as exc:
            if "WRONGTYPE" in str(exc):
                raise CacheError(f"the state store {mask(self.url)} holds a key of the wrong type: {exc}",
                                 hint=f"Something else wrote keys under '{PREFIX}'; delete them or use another db.") from None
            raise self._broken(exc) from None
        except (redis.RedisError, OSError) as exc:
            if ending and isinstance(exc, (redis.ConnectionError, redis.TimeoutError, OSError)):
                self._silent = True
            raise self._broken(exc) from None

    # -- runs and tasks ------------------------------------------------------------

    def begin_run(self, record: RunRecord) -> None:
        pipe = self.client.pipeline()
        pipe.hset(f"{PREFIX}run:{record.run_id}", mapping=_run_fields(record))  # type: ignore[arg-type]
        pipe.zadd(f"{PREFIX}runs:{record.pipeline}", {record.run_id: record.started})
        self._call(pipe.execute)
        if self._server is None:
            self._server = self._server_id()

    def _server_id(self) -> str:
        """The server's ``run_id``: a new one each time redis-server starts. "" when it cannot
        be read (INFO disabled): a restart then goes unseen, as before."""
        try:
            return str(self.client.info("server").get("run_id") or "")
        except (redis.RedisError, OSError):
            return ""

    def restarted_since_begin(self) -> bool:
        """The server restarted since the run began: what was written before may be gone
        (no persistence), or partly (the writes after its last snapshot)."""
        return bool(self._server) and self._server_id() not in ("", self._server)

    def finish_run(self, run_id: str, status: RunStatus, finished: float, counts: str) -> None:
        self._call(self.client.hset, f"{PREFIX}run:{run_id}",
                   mapping={"status": status.value, "finished": finished, "counts": counts})

    def heartbeat(self, run_id: str, now: float) -> None:
        self._call(self.client.hset, f"{PREFIX}run:{run_id}", "heartbeat", now)

    def run(self, run_id: str) -> RunRecord | None:
        fields = self._call(self.client.hgetall, f"{PREFIX}run:{run_id}")
        found = readable(self._name, "run record", [fields] if fields else [], lambda f: _run_record(run_id, f))
        return found[0] if found else None

    def intend_write(self, pending: PendingWrite) -> None:
        fields = {"run_id": pending.run_id, "location": pending.location, "storage": pending.storage}
        text = json.dumps({**fields, "absent": True} if pending.absent else fields)
        self._call(self.client.hset, f"{PREFIX}pending", pending.staging, text)

    def prepare_write(self, staging: str, checkpoint: Checkpoint, entry: CacheEntry | None) -> None:
        text = self._call(self.client.hget, f"{PREFIX}pending", staging)
        d = json.loads(text) if text else {"run_id": checkpoint.run_id, "location": checkpoint.location,
                                           "storage": checkpoint.storage}
        d.update(record=dump_checkpoint(checkpoint), entry=dump_entry(entry) if entry else None)
        self._call(self.client.hset, f"{PREFIX}pending", staging, json.dumps(d))

    def pending_writes(self, location: str | None = None) -> list[PendingWrite]:
        found = []
        for staging, text in self._call(self.client.hgetall, f"{PREFIX}pending").items():
            try:
                d = json.loads(text)
                if location is not None and d["location"] != location:
                    continue
                pending = PendingWrite(text_of(d["run_id"]), text_of(d["location"]), staging, text_of(d["storage"]),
                                       absent=d.get("absent") is True)
            except BAD_ROW:
                continue  # not ours to read; never committed
            try:
                pending = PendingWrite(pending.run_id, pending.location, staging, pending.storage,
                                       load_checkpoint(d["record"]) if d.get("record") else None,
                                       load_entry(d["entry"]) if d.get("entry") else None, pending.absent)
            except CacheError:
                pass
            found.append(pending)
        return found

    def drop_pending(self, staging: str) -> None:
        self._call(self.client.hdel, f"{PREFIX}pending", staging)

    def record_task(self, record: TaskRecord | None, checkpoint: Checkpoint | None, entry: CacheEntry | None = None,
                    *, staging: str | None = None) -> None:
        record = kept(record) if record is not None else None
        pipe = self.client.pipeline(transaction=True)
        if record is not None:
            pipe.hset(f"{PREFIX}last:{record.pipeline}", record.task, json.dumps(_task_fields(record)))
            pipe.hset(f"{PREFIX}runtasks:{record.run_id}", record.task, json.dumps(_task_fields(record)))
        if staging is not None:
            pipe.hdel(f"{PREFIX}pending", staging)
        if checkpoint is not None:
            text = dump_checkpoint(checkpoint)
            pipe.set(f"{PREFIX}ckpt:{checkpoint.location}", text)
            pipe.hset(f"{PREFIX}runckpt:{checkpoint.run_id}", checkpoint.task, text)
        if entry is not None:
            key = f"{PREFIX}cache:{entry.key}"
            pipe.hset(key, entry.variant, _entry_json(entry))
        self._call(pipe.execute)
        if entry is not None:
            key = f"{PREFIX}cache:{entry.key}"
            self._call(self._extend, keys=[key], args=[int(entry.expires * 1000)])
            self._prune(key)

    def _prune(self, key: str) -> None:
        variants = self._call(self.client.hgetall, key)
        if len(variants) <= MAX_ENTRIES_PER_KEY:
            return
        newest = sorted(variants, key=lambda v: _created(variants[v]), reverse=True)
        self._call(self.client.hdel, key, *newest[MAX_ENTRIES_PER_KEY:])

    def checkpoints(self, locations: list[str]) -> dict[str, Checkpoint]:
        if not locations:
            return {}
        values = self._call(self.client.mget, [f"{PREFIX}ckpt:{loc}" for loc in locations])
        rows = [(loc, v) for loc, v in zip(locations, values) if v is not None]
        return dict(readable(self._name, "checkpoint record", rows, lambda r: (r[0], load_checkpoint(r[1]))))

    def recorded_for_status(self, locations: list[str]) -> dict[str, Recorded]:
        """As the base class says: one MGET, the records decoded by one ``json.loads``, and
        made into checkpoints only where they keep parameter values or a date. A record
        that is not one JSON object, or whose size is not a whole number, is read as
        :meth:`checkpoints` reads it (a malformed one is reported and left out)."""
        if not locations:
            return {}
        values = self._call(self.client.mget, [f"{PREFIX}ckpt:{loc}" for loc in locations])
        rows = [(loc, v) for loc, v in zip(locations, values) if v is not None]
        docs = _decoded(rows, 1)
        if docs is None:  # row by row, as the base class reads them
            records = dict(readable(self._name, "checkpoint record", rows, lambda r: (r[0], load_checkpoint(r[1]))))
            return {location: Recorded.of(record) for location, record in records.items()}
        found: dict[str, Recorded] = {}
        kept: list[tuple[str, Any]] = []
        for (location, _), doc in zip(rows, docs):
            size, digest = doc.get("size"), doc.get("hash")
            sized = digest == "" or (type(size) is int and type(digest) is str)
            if doc.get("made_with") or doc.get("made_for") or not sized:
                kept.append((location, doc))
            else:
                found[location] = Recorded(size if digest else None, None)
        for location, record in readable(self._name, "checkpoint record", kept, lambda r: (r[0], checkpoint_of(r[1]))):
            found[location] = Recorded.of(record)
        return found

    def run_checkpoints(self, run_id: str) -> dict[str, Checkpoint]:
        rows = self._call(self.client.hgetall, f"{PREFIX}runckpt:{run_id}")
        return dict(readable(self._name, "checkpoint record", rows.items(), lambda r: (r[0], load_checkpoint(r[1]))))

    @property
    def _name(self) -> str:
        return mask(self.url)

    def forget_checkpoint(self, location: str) -> None:
        self._call(self.client.delete, f"{PREFIX}ckpt:{location}")

    def last_task_records(self, pipeline: str) -> dict[str, TaskRecord]:
        rows = self._call(self.client.hgetall, f"{PREFIX}last:{pipeline}")
        return {record.task: record for record in readable(self._name, "task record", rows.items(),
                                                            lambda row: _task_record(pipeline, row[0], row[1]))}

    def runs(self, pipeline: str, limit: int = 20) -> list[RunRecord]:
        ids = self._call(self.client.zrevrange, f"{PREFIX}runs:{pipeline}", 0, limit - 1)
        pipe = self.client.pipeline()
        for run_id in ids:
            pipe.hgetall(f"{PREFIX}run:{run_id}")
        rows = [(run_id, fields) for run_id, fields in zip(ids, self._call(pipe.execute)) if fields]
        return readable(self._name, "run record", rows, lambda r: _run_record(r[0], r[1]))

    # -- cache -----------------------------------------------------------------------

    def cache_entries(self, keys: list[str]) -> dict[str, list[CacheEntry]]:
        unique = list(dict.fromkeys(keys))
        pipe = self.client.pipeline()
        for key in unique:
            pipe.hgetall(f"{PREFIX}cache:{key}")
        found: dict[str, list[CacheEntry]] = {}
        for key, variants in zip(unique, self._call(pipe.execute)):
            entries = readable(self._name, "cache entry", variants.items(), partial(_load_entry, key))
            if entries:
                found[key] = sorted(entries, key=lambda e: e.checkpoint.written_at, reverse=True)
        return found

    def _all_entries(self) -> Iterable[CacheEntry]:
        for name in self._call(lambda: list(self.client.scan_iter(match=f"{PREFIX}cache:*", count=500))):
            key = name[len(f"{PREFIX}cache:"):]
            variants = self._call(self.client.hgetall, name).items()
            yield from readable(self._name, "cache entry", variants, partial(_load_entry, key))

    def list_cache(self, pipeline: str | None = None) -> list[CacheEntry]:
        entries = [e for e in self._all_entries() if pipeline is None or e.pipeline == pipeline]
        return sorted(entries, key=lambda e: (e.key, -e.checkpoint.written_at))

    def delete_cache(self, *, key: str | None = None, task: str | None = None, pipeline: str | None = None,
                     expired_before: float | None = None) -> int:
        doomed = [e for e in self._all_entries()
                  if (key is None or e.key == key) and (task is None or e.task == task)
                  and (pipeline is None or e.pipeline == pipeline)
                  and (expired_before is None or e.expires <= expired_before)]
        pipe = self.client.pipeline()
        for entry in doomed:
            pipe.hdel(f"{PREFIX}cache:{entry.key}", entry.variant)
        self._call(pipe.execute)
        return len(doomed)

    # -- inline values ---------------------------------------------------------------

    def put_blob(self, key: str, data: bytes) -> None:
        self._call(self._bytes.set, f"{PREFIX}blob:{key}", data)

    def get_blob(self, key: str) -> bytes | None:
        value = self._call(self._bytes.get, f"{PREFIX}blob:{key}")
        return bytes(value) if value is not None else None

    def delete_blob(self, key: str) -> None:
        self._call(self._bytes.delete, f"{PREFIX}blob:{key}")

    # -- locks -----------------------------------------------------------------------

    def acquire(self, name: str, owner: str, lease: float) -> bool:
        return bool(self._call(self._acquire, keys=[f"{PREFIX}lock:{name}"], args=[owner, int(lease * 1000)]))

    def renew(self, names: list[str], owner: str, lease: float) -> None:
        for name in names:
            self._call(self._renew, keys=[f"{PREFIX}lock:{name}"], args=[owner, int(lease * 1000)])

    def release(self, name: str, owner: str) -> None:
        self._call(self._release, keys=[f"{PREFIX}lock:{name}"], args=[owner])

    def lock_owner(self, name: str) -> str | None:
        owner = self._call(self.client.get, f"{PREFIX}lock:{name}")
        return str(owner) if owner is not None else None

    def lock_lease(self, name: str) -> tuple[str, float] | None:
        pipe = self.client.pipeline(transaction=True)
        pipe.get(f"{PREFIX}lock:{name}")
        pipe.pttl(f"{PREFIX}lock:{name}")
        owner, left = self._call(pipe.execute)
        return (str(owner), max(0, int(left)) / 1000) if owner is not None and int(left) > 0 else None

    def task_records(self, run_id: str, pipeline: str) -> dict[str, TaskRecord]:
        rows = self._call(self.client.hgetall, f"{PREFIX}runtasks:{run_id}")
        return {record.task: record for record in readable(self._name, "task record", rows.items(),
                                                            lambda row: _task_record(pipeline, row[0], row[1]))}

    def close(self) -> None:
        self.client.close()
        self._bytes.close()

    # -- housekeeping ------------------------------------------------------------------

    def task_checkpoints(self, pipeline: str, task: str, limit: int = 1000) -> list[Checkpoint]:
        ids = self._call(self.client.zrevrange, f"{PREFIX}runs:{pipeline}", 0, limit - 1)
        pipe = self.client.pipeline()
        for run_id in ids:
            pipe.hget(f"{PREFIX}runckpt:{run_id}", task)
        found = [(text,) for text in self._call(pipe.execute) if text is not None]
        return readable(self._name, "checkpoint record", found, lambda row: load_checkpoint(row[0]))

    def prune_runs(self, pipeline: str, run_ids: list[str]) -> int:
        # Task records live only as each task's latest (``last:PIPELINE``), which stays.
        runs = f"{PREFIX}runs:{pipeline}"
        pipe = self.client.pipeline(transaction=True)
        for run_id in run_ids:
            pipe.zrem(runs, run_id)
            pipe.delete(f"{PREFIX}run:{run_id}", f"{PREFIX}runckpt:{run_id}")
        done = self._call(pipe.execute)
        return sum(1 for found in done[0::2] if found)


def _run_fields(record: RunRecord) -> dict[str, Any]:
    return {"pipeline": record.pipeline, "started": record.started, "status": record.status.value,
            "finished": record.finished or "", "requested": "\n".join(record.requested), "counts": record.counts,
            "owner": record.owner, "heartbeat": record.heartbeat if record.heartbeat is not None else ""}


def _run_record(run_id: str, fields: dict[str, Any]) -> RunRecord:
    return RunRecord(text_of(run_id), text_of(fields.get("pipeline", "")), finite(fields["started"]),
                     RunStatus(fields["status"]), finite(fields["finished"]) if fields.get("finished") else None,
                     tuple(text_of(fields["requested"]).split("\n")) if fields.get("requested") else (),
                     text_of(fields.get("counts", "")), text_of(fields.get("owner", "")),
                     finite(fields["heartbeat"]) if fields.get("heartbeat") else None)


def _task_fields(record: TaskRecord) -> dict[str, Any]:
    return {"run_id": record.run_id, "state": record.state.value, "finished": record.finished,
            "duration": record.duration, "attempts": record.attempts, "error": record.error, "target": record.target,
            "started": record.started, "worker": record.worker}


def _task_record(pipeline: str, task: str, text: str) -> TaskRecord:
    d = json.loads(text)
    return TaskRecord(text_of(d["run_id"]), pipeline, text_of(task), TaskState(d["state"]), finite(d["finished"]),
                      finite(d["duration"]), int(d["attempts"]), text_or_none(d.get("error")),
                      text_or_none(d.get("target")), None if d.get("started") is None else finite(d["started"]),
                      text_of(d.get("worker") or ""))


def _entry_json(entry: CacheEntry) -> str:
    return json.dumps({"pipeline": entry.pipeline, "task": entry.task, "expires": entry.expires,
                       "created": entry.checkpoint.written_at, "checkpoint": json.loads(dump_checkpoint(entry.checkpoint))},
                      separators=(",", ":"))


def _created(text: str) -> float:
    """When an entry was written, for pruning; an unreadable one counts as oldest."""
    try:
        return finite(json.loads(text)["created"])
    except BAD_ROW:
        return float("-inf")


def _load_entry(key: str, row: tuple[str, str]) -> CacheEntry:
    variant, text = row
    try:
        d = json.loads(text)
        return CacheEntry(key, text_of(variant), text_of(d["pipeline"]), text_of(d["task"]),
                          checkpoint_of(d["checkpoint"]), finite(d["expires"]))
    except MALFORMED as exc:
        raise CacheError(f"a cache entry under {key!r} in Redis is not readable: {exc}",
                         hint=f"Clear it with `targetrun cache clear {key}`.") from None



# -- the rewrite of keys an older targetrun wrote with a URL's password ----------------------


def _utf8(raw: bytes) -> str | None:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _bare_name(key: bytes) -> bytes:
    name = _utf8(key)
    return key if name is None else redact.without_passwords(name).encode("utf-8")


def _bare_value(key: bytes, value: bytes) -> bytes:
    """A string key's value without a URL's password: a record's JSON, a run's outcomes
    (zlib-compressed JSON); an inline value (any bytes) and a lock's owner stay."""
    name = _utf8(key) or ""
    if name.startswith(f"{PREFIX}lock:") or (name.startswith(f"{PREFIX}blob:") and not _OUTCOMES.fullmatch(name)):
        return value
    if name.startswith(f"{PREFIX}blob:"):
        return outcomes_without_passwords(value)
    decoded = _utf8(value)
    return value if decoded is None else redact.without_passwords(decoded).encode("utf-8")


def _with_password(key: bytes, kind: bytes, value: Any) -> bool:
    if _bare_name(key) != key:
        return True
    if kind == b"hash":
        return any(_bare_name(f) != f or _bare_name(v) != v for f, v in value.items())
    return kind == b"string" and value is not None and _bare_value(key, value) != value


def _rewrite_bare(key: bytes, pipe: Any) -> None:
    """One key without a URL's password (see :meth:`RedisStore._drop_passwords`), inside
    ``redis.transaction``'s WATCH of it and of its new name: read, then MULTI, then write."""
    new = _bare_name(key)
    kind = pipe.type(key)
    taken = new != key and bool(pipe.exists(new))
    if kind == b"hash":
        fields = pipe.hgetall(key)
        pipe.multi()
        for field, value in fields.items():
            bare_field, bare_value = _bare_name(field), _bare_name(value)
            if bare_field != field:
                pipe.hdel(key, field)
                pipe.hsetnx(key, bare_field, bare_value)  # a field a newer targetrun wrote stays
            elif bare_value != value:
                pipe.hset(key, field, bare_value)
    elif kind == b"string":
        value = pipe.get(key)
        pipe.multi()
        if value is not None and _bare_value(key, value) != value:
            pipe.set(key, _bare_value(key, value), keepttl=True)
    else:
        pipe.multi()
    if new != key:
        if taken:
            pipe.delete(key)
        else:
            pipe.rename(key, new)  # (keeps its expiry)
