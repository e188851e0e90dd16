"""The live view on a terminal: progress bar, counts, ETA and the tasks running now.

A task is *queued* from TaskQueued (submitted, waiting for a worker) and *running* from
TaskStarted (a worker began it); the view counts them apart and lists only running ones.
The view writes to the real terminal even while the run's fds 1 and 2 are captured.

An observer of engine events like the other reporters. Events only update counters; rich
redraws the view a few times a second from :meth:`LiveReporter.render`, so ten thousand
skipped tasks cost ten thousand counter updates, not ten thousand redraws. A failure is
printed above the view as it happens, with the task's last lines of output.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from targetrun.redact import safe
from targetrun.durations import format_duration
from targetrun.capture import terminal
from targetrun.events import (
    Event,
    RunFinished,
    RunOutput,
    RunStarted,
    TaskBlocked,
    TaskFailed,
    TaskQueued,
    TaskRetrying,
    TaskSkipped,
    TaskStarted,
    TaskSucceeded,
)
from targetrun.report.console import ConsoleReporter

SHOWN_RUNNING = 8  # running tasks listed under the bar
FAILURE_LINES = 12


class LiveReporter:
    def __init__(self, console: Console, *, clock: Callable[[], float] = time.monotonic,
                 auto_refresh: bool = True) -> None:
        console.file = terminal(console.file)  # on the terminal even while tasks' output is captured
        self.console = console
        self.clock = clock
        self.auto_refresh = auto_refresh
        self.live: Live | None = None
        self.date = ""
        self.total = self.done = self.skipped = self.failed = self.blocked = self.retries = 0
        self.running: dict[str, float] = {}
        self.queued: set[str] = set()
        self.started = 0.0
        self._summary = ConsoleReporter(console.file, colour=console.is_terminal and not console.no_color)

    def handle(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self._start(event)
        elif isinstance(event, TaskSkipped):
            self.skipped += 1
        elif isinstance(event, TaskQueued):
            self.queued.add(event.task)
        elif isinstance(event, TaskStarted):
            self.queued.discard(event.task)
            self.running[event.task] = self.clock()
        elif isinstance(event, TaskSucceeded):
            self._ended(event.task)
            self.done += 1
        elif isinstance(event, TaskRetrying):
            self._ended(event.task)
            self.retries += 1
        elif isinstance(event, TaskFailed):
            self._ended(event.task)
            self.failed += 1
            self._print_failure(event)
        elif isinstance(event, TaskBlocked):
            self.blocked += 1
        elif isinstance(event, RunOutput):
            self._summary.handle(event)
        elif isinstance(event, RunFinished):
            self._stop()
            self._summary.handle(event)

    def _ended(self, task: str) -> None:
        self.running.pop(task, None)
        self.queued.discard(task)

    def _start(self, event: RunStarted) -> None:
        self.total, self.date, self.started = event.planned, event.date, self.clock()
        self.done = self.skipped = self.failed = self.blocked = self.retries = 0
        self.running.clear()
        self.queued.clear()
        self.live = Live(get_renderable=self.render, console=self.console, refresh_per_second=4,
                         auto_refresh=self.auto_refresh, transient=False, redirect_stdout=False,
                         redirect_stderr=False)
        self.live.start()

    def _stop(self) -> None:
        if self.live is not None:
            self.live.refresh()
            self.live.stop()
            self.live = None

    def _print_failure(self, event: TaskFailed) -> None:
        lines = (event.details or event.log).rstrip().splitlines()[-FAILURE_LINES:]
        text = Text(f"FAILED {safe(event.task)}: {safe(event.error)}", style="bold red")
        for line in lines:
            text.append(f"\n    | {safe(line)}", style="dim")
        self.console.print(text)

    @property
    def finished(self) -> int:
        return self.done + self.skipped + self.failed + self.blocked

    def eta(self) -> str:
        ran = self.done + self.failed
        left = self.total - self.finished
        if ran == 0 or left <= 0:
            return "-"
        return format_duration((self.clock() - self.started) / ran * left)

    def render(self) -> RenderableType:
        counts = Text.assemble(
            (f"{self.finished}/{self.total}", "bold"),
            "  done ", (str(self.done), "green"),
            "  skipped ", (str(self.skipped), "dim"),
            "  failed ", (str(self.failed), "red" if self.failed else ""),
            "  queued ", (str(len(self.queued)), ""),
            "  running ", (str(len(self.running)), "cyan"),
            f"  ETA {self.eta()}",
        )
        if self.date:
            counts = Text.assemble((f"{self.date}  ", "bold"), counts)
        line = Table.grid(padding=(0, 1))  # the bar, then the counts beside it (wrapped, never cut)
        line.add_row(ProgressBar(total=max(self.total, 1), completed=self.finished, width=40), counts)
        parts: list[Any] = [line]
        if self.running:
            table = Table.grid(padding=(0, 2))
            now = self.clock()
            for name, since in list(self.running.items())[:SHOWN_RUNNING]:
                table.add_row(Text(safe(name), style="cyan"), format_duration(now - since))
            if len(self.running) > SHOWN_RUNNING:
                table.add_row(Text(f"... and {len(self.running) - SHOWN_RUNNING} more", style="dim"), "")
            parts.append(table)
        return Group(*parts)
