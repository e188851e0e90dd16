"""The console reporter: one line per task event, coloured on a terminal.

Plain text when the stream is not a terminal or ``NO_COLOR`` is set, so CI logs have no
control codes. ``-v`` prints ``start`` when a worker begins a task (TaskStarted), not when
it is queued. The lines go to the real terminal even while the run's fds 1 and 2 are
captured (:class:`~targetrun.capture.TerminalStream`). Writing 10,000 lines through rich would cost about a second, so this
reporter writes plain lines itself and adds ANSI colours only when colour is on.
"""

from __future__ import annotations

import os
from typing import TextIO

from targetrun.durations import format_duration
from targetrun.capture import terminal
from targetrun.events import (
    Event,
    RunFinished,
    RunOutput,
    RunStarted,
    TaskBlocked,
    TaskFailed,
    TaskGathered,
    TaskPlanned,
    TaskQueued,
    TaskRetrying,
    TaskSkipped,
    TaskStarted,
    TaskSucceeded,
)
from targetrun.model import Decision, RunSummary, TaskState, also_stale, known_stale
from targetrun.redact import safe
from targetrun.paint import final_line, paint

QUIET, NORMAL, VERBOSE = 0, 1, 2


class ConsoleReporter:
    def __init__(self, stream: TextIO, *, verbosity: int = NORMAL, colour: bool = False, dates: bool = False) -> None:
        self.stream = terminal(stream)
        self.run_id = ""
        self.verbosity = verbosity
        self.colour = colour
        self.dates = dates  # a backfill: say which date each run is for
        self._width = 12
        self._said: dict[int, tuple[Decision, str]] = {}

    def _paint(self, text: str, style: str) -> str:
        return paint(text, style, self.colour)

    def _line(self, label: str, style: str, task: str, text: str = "") -> None:
        label = self._paint(f"{label:<8}", style)
        name = safe(task).ljust(self._width)
        self.stream.write(f"{label} {name} {safe(text)}".rstrip() + "\n")

    def _words(self, decision: Decision) -> str:
        """A decision's words, made once per decision object: the 10,000 skips of a
        no-op share one (the pair keeps the object, so its id is not reused meanwhile)."""
        said = self._said.get(id(decision))
        if said is None:
            said = self._said[id(decision)] = (decision, decision.describe())
        return said[1]

    def wants(self, kind: type) -> bool:
        """Every event but those this verbosity prints nothing for (events.Broadcast asks).
        Never a task queued: nothing is printed for one, and a reporter that acts on an
        event has the store commit what it kept first -- once more before every command."""
        if kind is TaskQueued:
            return False
        if kind is TaskSkipped or kind is TaskSucceeded or kind is TaskGathered or kind is TaskBlocked:
            return self.verbosity >= NORMAL
        if kind is TaskStarted:
            return self.verbosity >= VERBOSE
        return True

    def handle(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self._started(event)
        elif isinstance(event, TaskSkipped):
            if self.verbosity >= NORMAL:
                self._line("skipped", "dim", event.task, self._words(event.decision))
        elif isinstance(event, TaskPlanned):
            self._line("would run", "cyan", event.task,
                       event.decision.describe().removeprefix("will run: ") + also_stale(event.decision))
        elif isinstance(event, TaskStarted):
            if self.verbosity >= VERBOSE:
                attempt = f" (attempt {event.attempt})" if event.attempt > 1 else ""
                self._line("start", "cyan", event.task, event.decision.describe() + attempt)
        elif isinstance(event, TaskSucceeded):
            if self.verbosity >= NORMAL:
                self._line("ran", "green", event.task, f"in {format_duration(event.duration)}")
        elif isinstance(event, TaskRetrying):
            self._line("retry", "yellow", event.task,
                       f"attempt {event.attempt} failed: {event.error}; retrying in {format_duration(event.delay)}")
        elif isinstance(event, TaskFailed):
            self._failed(event)
        elif isinstance(event, TaskGathered):
            if self.verbosity >= NORMAL:
                self._line("mapped", "green", event.task, f"{event.children} children, {event.ran} ran")
        elif isinstance(event, TaskBlocked):
            if self.verbosity >= NORMAL:
                self._line("blocked", "yellow", event.task, event.cause)
        elif isinstance(event, RunOutput):
            self._stray(event.text)
        elif isinstance(event, RunFinished):
            self._finished(event.summary)
        self.stream.flush() if isinstance(event, (RunFinished, TaskFailed)) else None

    def _stray(self, text: str) -> None:
        if self.verbosity < NORMAL:
            return
        lines = len(text.rstrip("\n").splitlines())
        where = os.path.join(".targetrun", "logs", self.run_id, "unattributed.txt")
        self._line("output", "yellow", "(run)", f"{lines} line{'s' if lines != 1 else ''} of output no single task can "
                                                f"claim (tasks ran at once, or a worker's own); kept in {where}")

    def _started(self, event: RunStarted) -> None:
        self.run_id = event.run_id
        self._width = max(12, min(40, max((len(t) for t in event.requested), default=0) + 2))
        if self.dates:
            self.stream.write(self._paint(f"== {safe(event.date)} ==", "bold") + "\n")
        if self.verbosity >= VERBOSE:
            mode = "dry run" if event.dry_run else f"run {event.run_id}"
            self.stream.write(f"{safe(event.pipeline)}: {mode}, {event.to_run} of {event.planned} tasks to run\n")

    def _stale_unneeded(self, summary: RunSummary) -> None:
        """A dry run says what is stale where nothing requested needs it (an upstream of a
        kept target, a child of a mapped one), as ``status`` does: what ``--rebuild-stale``
        would rebuild."""
        for outcome in summary.outcomes:
            stale = known_stale(outcome.decision.stale)  # what cannot be told is not rebuilt
            if outcome.state is TaskState.NOT_NEEDED and stale:
                said = "; ".join(s.describe() for s in stale)
                self._line("stale", "yellow", outcome.task, f"not needed ({said}): --rebuild-stale rebuilds it")

    def _failed(self, event: TaskFailed) -> None:
        tries = f" after {event.attempts} attempts" if event.attempts > 1 else ""
        self._line("FAILED", "red", event.task, f"{event.error}{tries}")
        details = event.details.rstrip()
        if details:
            lines = details.splitlines()
            if self.verbosity < VERBOSE:
                lines = lines[-12:]
            for line in lines:
                self.stream.write(self._paint(f"    | {safe(line)}", "dim") + "\n")

    def _finished(self, summary: RunSummary) -> None:
        if summary.dry_run and self.verbosity >= NORMAL:
            self._stale_unneeded(summary)
        counts = {state.value: summary.count(state) for state in TaskState}
        took = format_duration(summary.finished - summary.started)
        self.stream.write(final_line(counts, took, colour=self.colour, dry_run=summary.dry_run))
