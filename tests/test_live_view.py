"""The live view (a terminal) and the plain lines (CI)."""

from __future__ import annotations

import io
import re

from rich.console import Console

from targetrun import api
from targetrun.events import RunStarted, TaskFailed, TaskSkipped, TaskStarted, TaskSucceeded
from targetrun.model import Action, Decision, Reason
from targetrun.report.live import LiveReporter

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def text_of(renderable) -> str:
    console = Console(file=io.StringIO(), width=100, record=True, force_terminal=True)
    console.print(renderable)
    return console.export_text()


def test_live_view_counts_while_running():
    ticks = iter(float(t) for t in range(100))
    screen = Console(file=io.StringIO(), force_terminal=True, width=100)
    live = LiveReporter(screen, clock=lambda: next(ticks), auto_refresh=False)
    skip = Decision(Action.SKIP, Reason.TARGET_EXISTS)
    live.handle(RunStarted("r1", "p", ("d",), planned=5, to_run=3, date="2026-11-01"))
    live.handle(TaskSkipped("a", skip))
    live.handle(TaskSkipped("b", skip))
    live.handle(TaskStarted("c", 1, Decision(Action.RUN, Reason.TARGET_MISSING)))
    live.handle(TaskStarted("d", 1, Decision(Action.RUN, Reason.TARGET_MISSING)))
    live.handle(TaskSucceeded("c", 0.5, 1))
    shown = text_of(live.render())
    assert "3/5" in shown and "done 1" in shown and "skipped 2" in shown and "running 1" in shown
    assert "2026-11-01" in shown and re.search(r"\bd\s+\d", shown)  # d is listed with its elapsed time
    live.handle(TaskFailed("d", "ValueError: no", 1, details="Traceback\n  line\nValueError: no"))
    shown = text_of(live.render())
    assert "4/5" in shown and "failed 1" in shown and "running 0" in shown
    assert "FAILED d: ValueError: no" in ANSI.sub("", screen.file.getvalue())


def test_live_view_drives_a_real_run(project, steps):
    proj = project("""
    tasks:
      a: {run: steps:const, args: {name: a}, target: out/a.json}
      b: {run: steps:inc, needs: {x: a}, args: {name: b}, target: out/b.json}
      c: {run: steps:fail, target: out/c.json}
    """, steps=steps)
    screen = Console(file=io.StringIO(), force_terminal=True, width=100)
    summary = api.run(str(proj.file), keep_going=True, reporter=LiveReporter(screen, auto_refresh=False))
    assert api.exit_code(summary) == 1
    output = ANSI.sub("", screen.file.getvalue())
    assert "3/3" in output and "done 2" in output and "failed 1" in output
    assert "FAILED c: RuntimeError: this task always fails" in output
    assert "2 ran, 1 failed" in output


def test_plain_output_off_a_terminal_has_no_escape_codes(project, steps):
    proj = project("""
    tasks:
      a: {run: steps:const, target: out/a.json}
      b: {run: steps:fail, target: out/b.json}
    """, steps=steps)
    result = proj.cli("run", "--keep-going")
    assert result.code == 1 and "ran      a" in result.out and "FAILED   b" in result.out
    assert "\x1b" not in result.out + result.err
    status = proj.cli("status")
    assert "\x1b" not in status.out
