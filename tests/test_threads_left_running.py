"""A thread a task's code leaves running does not hold the run's end.

Python's exit waits for every thread that is no daemon, and so does a worker process's:
a task that started one and returned (a library's background thread, a pool it never
shut down) held ``targetrun run`` for as long as that thread lived -- the work done and
reported, the command not over, a CI job waiting. Now the command ends with its exit
code (an in-process thread named in a warning), and a worker that does not end
within a moment once its work is done is ended.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.clirun import targetrun, write_project

TASKS = """
import threading, time

def leaves_a_thread():
    threading.Thread(target=time.sleep, args=(60,), name="left-behind").start()
    return 1

def names_a_secret():
    threading.Thread(target=time.sleep, args=(60,), name="db-postgres://bob:Hunter2Secret99@db/x\x1b[2J").start()
    return 1
"""


@pytest.mark.parametrize("executor", ["inline", "threads", "processes"])
def test_the_run_ends_when_its_work_does(tmp_path: Path, executor: str) -> None:
    write_project(tmp_path, "tasks:\n  a: {run: 'tasks:leaves_a_thread', target: a.json}\n",
                  **{"tasks.py": TASKS})
    started = time.monotonic()
    done = targetrun(tmp_path, "run", "--executor", executor, timeout=60)
    took = time.monotonic() - started
    assert done.returncode == 0 and "1 ran" in done.stdout, done.stdout + done.stderr
    assert took < 20, f"{took:.1f} s"  # before: 60 s, the thread's lifetime
    assert (tmp_path / "a.json").read_text().strip() == "1"
    if executor != "processes":  # (a worker's threads are its own: it is ended without a word)
        assert "warning: 1 thread a task started still runs (left-behind); targetrun exits without waiting" \
            in done.stderr


def test_a_left_threads_name_is_masked_and_on_one_line(tmp_path: Path) -> None:
    write_project(tmp_path, "tasks:\n  a: {run: 'tasks:names_a_secret', target: a.json}\n", **{"tasks.py": TASKS})
    done = targetrun(tmp_path, "run", timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Hunter2Secret99" not in done.stderr and "\x1b" not in done.stderr
    assert "still runs (db-postgres://***@db/x\\x1b[2J); targetrun exits without waiting" in done.stderr
