"""The state store port: run records, task records and checkpoint records.

The engine records, in the coordinating process only, each run (started, finished,
status), each task that ran (state, duration, attempts, error) and each checkpoint it
wrote (location, size, content hash, serializer, run id). ``status`` reads the last
records; ``--resume`` reads a run's checkpoints. SQLite is the default; Redis shares one
store between machines.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import Enum

from targetrun.model import Checkpoint, TaskState
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


class StateStore(ABC):
    """One connection to one store, used by one run (or one status query)."""

    @abstractmethod
    def begin_run(self, record: RunRecord) -> None: ...

    @abstractmethod
    def finish_run(self, run_id: str, status: RunStatus, finished: float, counts: str) -> None: ...

    @abstractmethod
    def record_task(self, record: TaskRecord, checkpoint: Checkpoint | None) -> None:
        """Record a task that ran, and the checkpoint it wrote (atomically together)."""

    @abstractmethod
    def checkpoint(self, location: str) -> Checkpoint | None:
        """The latest checkpoint record written at ``location``."""

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
