"""The state store port: run records, checkpoint records, cache entries and locks.

The engine records, in the coordinating process only, each run (started, finished,
status), each task that ran (state, duration, attempts, error), each checkpoint it wrote
(location, size, content hash, serializer, run id, input and parameter fingerprints) and
each cache entry (``cache_for``). ``status`` reads the last records; ``--resume`` reads a
run's checkpoints. Leased locks stop two runs computing the same target at once. SQLite
is the default; Redis shares one store between machines and CI jobs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from dataclasses import replace
from enum import Enum

from targetrun.model import CacheEntry, Checkpoint, TaskState
from targetrun.redact import redact
from targetrun.registry import Entry, Registry


class RunStatus(Enum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    BROKEN = "broken"  # the runner itself hit a backend error


@dataclass(frozen=True, slots=True)
class RunRecord:
    run_id: str
    pipeline: str
    started: float
    status: RunStatus = RunStatus.RUNNING
    finished: float | None = None
    requested: tuple[str, ...] = ()
    counts: str = ""  # "3 ran, 2 skipped, 1 failed"


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


def kept(record: TaskRecord) -> TaskRecord:
    """The record as a store keeps it: its error text with every credential masked
    (``history``, ``status`` and other machines read it back)."""
    return replace(record, error=redact(record.error)) if record.error else record


class StateStore(ABC):
    """One connection to one store, used by one run (or one status query)."""

    @abstractmethod
    def begin_run(self, record: RunRecord) -> None: ...

    @abstractmethod
    def finish_run(self, run_id: str, status: RunStatus, finished: float, counts: str) -> None: ...

    @abstractmethod
    def record_task(self, record: TaskRecord, checkpoint: Checkpoint | None, entry: CacheEntry | None = None) -> None:
        """Record a task that ran, the checkpoint it wrote and its cache entry (together)."""

    @abstractmethod
    def checkpoints(self, locations: list[str]) -> dict[str, Checkpoint]:
        """The latest checkpoint record written at each location (one round trip)."""

    def checkpoint(self, location: str) -> Checkpoint | None:
        return self.checkpoints([location]).get(location)

    # -- cache entries ---------------------------------------------------------------

    @abstractmethod
    def cache_entries(self, keys: list[str]) -> dict[str, list[CacheEntry]]:
        """Every entry under each key, newest first (one round trip for all keys)."""

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
    def run_checkpoints(self, run_id: str) -> dict[str, Checkpoint]:
        """Every checkpoint a run wrote, by task name."""

    @abstractmethod
    def last_task_records(self, pipeline: str) -> dict[str, TaskRecord]:
        """The most recent record of each task of a pipeline."""

    @abstractmethod
    def runs(self, pipeline: str, limit: int = 20) -> list[RunRecord]:
        """Recent runs, newest first."""

    @abstractmethod
    def forget_checkpoint(self, location: str) -> None: ...

    def close(self) -> None:
        pass


STORES = Registry(
    "state store",
    "targetrun.cache_stores",
    {
        "sqlite": Entry("targetrun.store.sqlite:SqliteStore"),
        "redis": Entry("targetrun.store.redis:RedisStore", "Install targetrun[redis] to use a redis:// state store."),
    },
)
