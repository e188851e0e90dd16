"""A task's code that replaces the stop handlers does not leave the run unstoppable.

A Python task runs in targetrun's main thread (inline executor) or a worker process's
(processes). One that set SIGINT and SIGTERM to SIG_IGN -- or to a handler of its own, as
some libraries do on import -- left the rest of the run deaf to Ctrl-C and to `kill`:
only `kill -9` ended it, with nothing cleaned up. The handlers targetrun had are put back
when the task's code returns (while it runs, what it chose holds, as for a command that
ignores the signal under make).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from targetrun import callables
from tests.clirun import targetrun, write_project

TASKS = """
import os, signal, time

def ignores():
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: None)
    return 1

def waits(x):
    open(os.path.join(os.path.dirname(__file__), "waiting"), "w").close()
    time.sleep(60)
    return x
"""

PIPELINE = """
tasks:
  deaf: {run: "tasks:ignores", target: deaf.json}
  slow: {run: "tasks:waits", needs: {x: deaf}, target: slow.json}
"""


@pytest.mark.parametrize("signum, executor", [(signal.SIGINT, "inline"), (signal.SIGTERM, "inline"),
                                              (signal.SIGTERM, "processes")])
def test_a_run_stops_after_a_task_replaced_its_stop_handlers(tmp_path: Path, signum: int, executor: str) -> None:
    write_project(tmp_path, PIPELINE, **{"tasks.py": TASKS})
    run = subprocess.Popen([sys.executable, "-m", "targetrun", "run", "--executor", executor, "-j", "1"],
                           cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "waiting").exists():
            assert run.poll() is None and time.monotonic() < deadline, run.communicate()
            time.sleep(0.02)
        run.send_signal(signum)
        out, err = run.communicate(timeout=15)  # before: never, but for kill -9
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    assert run.returncode == 128 + signum, out + err
    assert (tmp_path / "deaf.json").exists() and not (tmp_path / "slow.json").exists()
    (tmp_path / "tasks.py").write_text(TASKS.replace("time.sleep(60)", "pass"))
    again = targetrun(tmp_path, "run")  # no --trust: the stop left nothing half-way
    assert again.returncode == 0 and "ran      slow" in again.stdout, again.stdout + again.stderr


def test_a_closed_outputs_handler_is_put_back_too() -> None:
    before = signal.getsignal(signal.SIGPIPE)
    with callables.user_code():
        signal.signal(signal.SIGPIPE, signal.SIG_DFL if before is not signal.SIG_DFL else signal.SIG_IGN)
    assert signal.getsignal(signal.SIGPIPE) is before
