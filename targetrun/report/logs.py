"""Task logs: what each task printed, kept in ``.targetrun/logs/RUN_ID/TASK.log``.

An observer like the other reporters: it writes the ``log`` that TaskSucceeded,
TaskRetrying and TaskFailed events carry, one section per attempt. A task that printed
nothing gets no file. What the run's processes printed that cannot be told to be one
task's (RunOutput: tasks ran at once in one process) goes to ``unattributed.txt`` there.
"""

from __future__ import annotations

import contextlib
import os

from targetrun.events import Event, RunOutput, RunStarted, TaskFailed, TaskRetrying, TaskSucceeded

LOGS = os.path.join(".targetrun", "logs")
UNATTRIBUTED = "unattributed.txt"  # not a task's name: task logs end in .log


def log_path(root: str, run_id: str, task: str) -> str:
    safe = task.replace("/", "_").replace(os.sep, "_")
    return os.path.join(root, LOGS, run_id, f"{safe}.log")


class LogFileReporter:
    def __init__(self, root: str) -> None:
        self.root = root
        self.run_id = ""

    def handle(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.run_id = event.run_id
        elif isinstance(event, TaskSucceeded):
            self._write(event.task, event.attempts, event.log, "succeeded")
        elif isinstance(event, TaskRetrying):
            self._write(event.task, event.attempt, event.log, f"failed: {event.error}")
        elif isinstance(event, TaskFailed):
            extra = f"\n{event.details}" if event.details and event.details not in event.log else ""
            self._write(event.task, event.attempts, event.log + extra, f"failed: {event.error}")
        elif isinstance(event, RunOutput) and self.run_id:
            path = os.path.join(self.root, LOGS, self.run_id, UNATTRIBUTED)
            with contextlib.suppress(OSError):
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "a", encoding="utf-8") as f:
                    f.write(event.text)

    def _write(self, task: str, attempt: int, text: str, outcome: str) -> None:
        if not text.strip() or not self.run_id:
            return
        path = log_path(self.root, self.run_id, task)
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "a", encoding="utf-8") as f:
                f.write(f"--- attempt {attempt}: {outcome} ---\n{text}")
                if not text.endswith("\n"):
                    f.write("\n")
        except OSError:
            pass  # a log that cannot be written must not fail the run

