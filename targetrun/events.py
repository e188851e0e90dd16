"""Typed engine events and the :class:`Reporter` protocol.

The engine emits one event per thing that happens; reporters (console, JSON, tests'
:class:`RecordingReporter`) observe them and nothing else prints. Events are emitted from
the coordinating process only, in the order things happened.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Union

from targetrun.model import Checkpoint, Decision, RunSummary, TaskState


@dataclass(frozen=True, slots=True)
class RunStarted:
    run_id: str
    pipeline: str
    requested: tuple[str, ...]
    planned: int  # tasks in the plan (skipped ones included)
    to_run: int
    dry_run: bool = False
    date: str = ""  # the run date, YYYY-MM-DD


@dataclass(frozen=True, slots=True)
class TaskSkipped:
    """Not run: target exists, cache hit, resumed checkpoint, or not needed."""

    task: str
    decision: Decision
    target: str | None = None


@dataclass(frozen=True, slots=True)
class TaskPlanned:
    """Dry run only: the task would run."""

    task: str
    decision: Decision
    target: str | None = None


@dataclass(frozen=True, slots=True)
class TaskQueued:
    """Submitted to the executor: waiting for a worker (TaskStarted follows when one begins it)."""

    task: str
    attempt: int
    decision: Decision
    target: str | None = None


@dataclass(frozen=True, slots=True)
class TaskStarted:
    """A worker began the attempt (for executors that cannot tell: it was submitted)."""

    task: str
    attempt: int
    decision: Decision
    target: str | None = None


@dataclass(frozen=True, slots=True)
class TaskRetrying:
    task: str
    attempt: int
    error: str
    delay: float
    log: str = ""  # what the failed attempt printed


@dataclass(frozen=True, slots=True)
class TaskSucceeded:
    task: str
    duration: float
    attempts: int
    checkpoint: Checkpoint | None = None
    log: str = ""  # what the task printed


@dataclass(frozen=True, slots=True)
class TaskFailed:
    task: str
    error: str
    attempts: int
    details: str = ""  # traceback or the command's last stderr lines
    log: str = ""  # what the last attempt printed


@dataclass(frozen=True, slots=True)
class TaskGathered:
    """A mapped task is complete: all its children are done (``ran`` of them ran)."""

    task: str
    children: int
    ran: int


@dataclass(frozen=True, slots=True)
class TaskBlocked:
    """Not started: an upstream task failed, or the run stopped after a failure."""

    task: str
    state: TaskState
    cause: str


@dataclass(frozen=True, slots=True)
class RunOutput:
    """What reached the process's stdout or stderr during the run and cannot be told to be
    one task's (several tasks ran at once in the process, or none did). Before RunFinished."""

    text: str


@dataclass(frozen=True, slots=True)
class RunFinished:
    summary: RunSummary


Event = Union[
    RunStarted, TaskSkipped, TaskPlanned, TaskQueued, TaskStarted, TaskRetrying, TaskSucceeded, TaskFailed,
    TaskGathered, TaskBlocked, RunOutput, RunFinished,
]


class Reporter(Protocol):
    def handle(self, event: Event) -> None: ...


@dataclass
class RecordingReporter:
    """Keeps every event; tests assert on the list."""

    events: list[Event] = field(default_factory=list)

    def handle(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: type) -> list[Event]:
        return [e for e in self.events if isinstance(e, kind)]

    def tasks(self, kind: type) -> list[str]:
        return [e.task for e in self.events if isinstance(e, kind)]  # type: ignore[union-attr]


class Broadcast:
    """Sends each event to several reporters.

    A reporter may say which kinds of event it acts on (a ``wants(kind) -> bool``
    method, asked once per kind): the others are not sent to it. A no-op run of 10,000
    tasks emits 10,000 TaskSkipped events that the log writer, ``-q``'s console and the
    run-id observer all ignore; routing by kind spares 30,000 calls that do nothing.
    A reporter without ``wants`` gets every event.
    """

    def __init__(self, *reporters: Reporter) -> None:
        self.reporters = reporters
        self._routes: dict[type, tuple[Reporter, ...]] = {}

    def handle(self, event: Event) -> None:
        for reporter in self._route(type(event)):
            reporter.handle(event)

    def wants(self, kind: type) -> bool:
        """Whether any of its reporters acts on events of this kind: an emitter may skip
        making events nobody would see (10,000 TaskSkipped under ``-q``)."""
        return bool(self._route(kind))

    def acts_on(self, event: Event) -> bool:
        """Whether any of its reporters does something with this very event."""
        return any(acts_on(reporter, event) for reporter in self._route(type(event)))

    def _route(self, kind: type) -> tuple[Reporter, ...]:
        route = self._routes.get(kind)
        if route is None:
            route = self._routes[kind] = tuple(r for r in self.reporters if wanted(r, kind))
        return route


def wanted(reporter: Reporter, kind: type) -> bool:
    """Whether ``reporter`` acts on events of ``kind`` (one without ``wants`` takes all)."""
    wants = getattr(reporter, "wants", None)
    return True if wants is None else bool(wants(kind))


def acts_on(reporter: Reporter, event: Event) -> bool:
    """Whether ``reporter`` does something with ``event``: its ``acts_on(event)`` when it
    has one (the log writer ignores a task that printed nothing), else :func:`wanted`.
    The engine commits the writes it keeps before telling a reporter that acts (a reporter
    may take any time); one that ignores the event costs no commit."""
    check = getattr(reporter, "acts_on", None)
    return wanted(reporter, type(event)) if check is None else bool(check(event))


class NullReporter:
    def handle(self, event: Event) -> None:
        pass
