"""Task logs: what each task printed, kept in ``.targetrun/logs/RUN_ID/TASK.log``.

An observer like the other reporters: it writes the ``log`` that TaskSucceeded,
TaskRetrying and TaskFailed events carry, one section per attempt. A task that printed
nothing gets no file; once a task has one in a run, each later attempt gets its section,
even empty, so the last section is always the latest attempt. What the run's processes
printed that cannot be told to be one task's (RunOutput: tasks ran at once in one
process) goes to ``unattributed.txt`` there.

:func:`find_log` is what ``targetrun logs TASK`` shows: the latest attempt of the latest
run in which the task ran (the state store knows which), or every attempt of it. Credentials known to the run are masked in
what is kept.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from targetrun.events import Event, RunOutput, RunStarted, TaskFailed, TaskRetrying, TaskSucceeded
from targetrun.errors import UsageError
from targetrun.redact import printable, redact
from targetrun.regularfile import LeadsOutside, NotRegularFile, kind_of, open_regular
from targetrun.resolve import LOGS, log_path

UNATTRIBUTED = "unattributed.txt"  # not a task's name: task logs end in .log
_LOGGED = frozenset((RunStarted, TaskSucceeded, TaskRetrying, TaskFailed, RunOutput))


class LogFileReporter:
    def __init__(self, root: str) -> None:
        self.root = root
        self.run_id = ""
        self._written: set[str] = set()  # logs this reporter wrote in this run (each run has its folder)
        self._failed = False  # a log of this run could not be written (and that was said)

    def wants(self, kind: type) -> bool:
        """Only the events that carry what a task printed (events.Broadcast asks)."""
        return kind in _LOGGED

    def acts_on(self, event: Event) -> bool:
        """A success of a task that printed nothing (and has no log yet in this run) is ignored."""
        if isinstance(event, TaskSucceeded):
            return self._logs(event.task, event.log)
        return type(event) in _LOGGED

    def _logs(self, task: str, text: str) -> bool:
        return bool(self.run_id) and (bool(text.strip()) or task in self._written)

    def handle(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.run_id = event.run_id
            self._written.clear()
            self._failed = False
        elif isinstance(event, TaskSucceeded):
            self._write(event.task, event.attempts, event.log, "succeeded")
        elif isinstance(event, TaskRetrying):
            self._write(event.task, event.attempt, event.log, f"failed: {event.error}")
        elif isinstance(event, TaskFailed):
            extra = f"\n{event.details}" if event.details and event.details not in event.log else ""
            self._write(event.task, event.attempts, event.log + extra, f"failed: {event.error}")
        elif isinstance(event, RunOutput) and self.run_id:
            self._append(os.path.join(self.root, LOGS, self.run_id, UNATTRIBUTED), redact(event.text))

    def _write(self, task: str, attempt: int, text: str, outcome: str) -> None:
        if not self._logs(task, text):  # a quiet task: no file, and no look for one
            return
        path = log_path(self.root, self.run_id, task)
        self._written.add(task)
        section = f"--- attempt {attempt}: {printable(outcome)} ---\n{text}"
        self._append(path, redact(section if not text or text.endswith("\n") else section + "\n"))  # logs are often CI artifacts

    def _append(self, path: str, text: str) -> None:
        """Add ``text`` to the log at ``path``, whole or not at all: a write the disk refuses
        (full, read-only, over quota) is undone to the sections before it -- a half section
        read as the attempt's whole output -- and said once per run on stderr. It does not
        fail the run: a log is no target."""
        size: int | None = None
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "ab") as f:
                size = f.tell()
                f.write(text.encode("utf-8", errors="replace"))
        except OSError as exc:
            with contextlib.suppress(OSError):
                if size == 0:
                    os.remove(path)
                elif size is not None:
                    os.truncate(path, size)
            if not self._failed:
                self._failed = True
                why = "the disk is full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else exc.strerror or str(exc)
                sys.stderr.write(f"targetrun: warning: cannot write the task log {printable(path)} ({why}): what "
                                 "the task printed is not kept, nor what later tasks print while this lasts\n")



_SECTION = re.compile(r"^--- attempt (\d+): .* ---$", re.MULTILINE)


@dataclass(frozen=True)
class TaskLog:
    path: str  # the log file (it may not exist: the attempt printed nothing)
    attempt: int | None  # the attempt shown; None: every attempt
    text: str  # its sections, headers included; "" when it printed nothing


def sections(text: str) -> list[tuple[int, str]]:
    """A log file's sections, ``(attempt, text with its header)``, in the order written.

    >>> sections("--- attempt 1: failed: x ---\\nboom\\n--- attempt 2: succeeded ---\\nok\\n")
    [(1, '--- attempt 1: failed: x ---\\nboom\\n'), (2, '--- attempt 2: succeeded ---\\nok\\n')]
    """
    starts = list(_SECTION.finditer(text))
    return [(int(m.group(1)), text[m.start():starts[i + 1].start() if i + 1 < len(starts) else len(text)])
            for i, m in enumerate(starts)]


def find_log(root: str, task: str, runs: Sequence[str], *, last_attempt: int | None = None,
             every_attempt: bool = False) -> TaskLog | None:
    """The log to show for ``task``: from the first of ``runs`` (newest first) with one.

    ``last_attempt`` is the store's count of attempts for ``runs[0]`` when the task is known
    to have run there: then a run whose latest attempt printed nothing shows that (empty),
    rather than an older attempt's or run's output. None: the first run with a log file.
    """
    for index, run_id in enumerate(runs):
        path = log_path(root, run_id, task)
        known = last_attempt if index == 0 else None
        if not os.path.exists(path):
            if known is not None:
                return TaskLog(path, known, "")  # it ran there, silently
            continue
        text = _read_log(path, os.path.join(root, LOGS))
        parts = sections(text)
        if every_attempt or not parts:
            return TaskLog(path, None, text)
        attempt, section = parts[-1]
        if known is not None and attempt != known:  # the latest attempt printed nothing
            return TaskLog(path, known, "")
        return TaskLog(path, attempt, section)
    return None


def _read_log(path: str, logs: str) -> str:
    """A task's log as text. Something put in its place that is no regular file is not read:
    a FIFO would wait for a writer forever, ``/dev/zero`` never ends."""
    try:
        with open_regular(path, inside=logs) as f:  # a link planted there (to ~/.aws/credentials) is not followed
            return f.read().decode("utf-8", errors="replace")
    except LeadsOutside:
        raise UsageError(f"the log {path} is a symlink, or in a folder that leads out of {LOGS}/: targetrun does not "
                         "read through it", hint="Move it away; targetrun writes logs as regular files.") from None
    except NotRegularFile as exc:
        raise UsageError(f"the log {path} is {kind_of(exc.mode)}, not a regular file: targetrun does not read it",
                         hint="Move it away; targetrun writes logs as regular files.") from None
