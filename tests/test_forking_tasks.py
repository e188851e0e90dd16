"""A child a Python task forks that returns into targetrun is no second copy of the run.

``os.fork()`` in a task's code, the child returning (or raising) instead of exiting: the
child went on running targetrun -- it wrote the task's staging file (the parent's write
then failed), or recorded the task again, ran its dependents on the child's value and left
their targets made from a value no record vouches for, and printed a second summary. Now
the child ends where the task's function returns: status 0, or 1 when it raised, without
the process's exit handlers.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.clirun import targetrun, write_project

TASKS = """
import os

def forks(raises):
    pid = os.fork()
    if pid == 0:  # the child comes back into targetrun, as a value or as an error
        if raises:
            raise ValueError("the child's own failure")
        return {"who": "child"}
    _, status = os.waitpid(pid, 0)
    return {"who": "parent", "child": os.waitstatus_to_exitcode(status)}

def after(x):
    return x
"""

PIPELINE = """
tasks:
  a: {run: "tasks:forks", args: {raises: RAISES}, target: a.json}
  b: {run: "tasks:after", needs: {x: a}, target: b.json}
"""


@pytest.mark.parametrize("raises", [False, True])
@pytest.mark.parametrize("executor", ["inline", "threads", "processes"])
def test_a_forked_child_that_returns_ends_there(tmp_path: Path, executor: str, raises: bool) -> None:
    write_project(tmp_path, PIPELINE.replace("RAISES", str(raises).lower()), **{"tasks.py": TASKS})
    done = targetrun(tmp_path, "run", "--executor", executor, "-j", "2" if executor != "inline" else "1")
    assert done.returncode == 0, done.stdout + done.stderr
    made = {"who": "parent", "child": 1 if raises else 0}
    assert json.loads((tmp_path / "a.json").read_text()) == made
    assert json.loads((tmp_path / "b.json").read_text()) == made  # made from the parent's value
    assert done.stdout.count(" ran in ") == 1, done.stdout  # one summary: one run
    with sqlite3.connect(tmp_path / ".targetrun" / "state.db") as db:
        assert db.execute("SELECT count(*) FROM runs").fetchone() == (1,)
        assert db.execute("SELECT count(*) FROM pending").fetchone() == (0,)
    assert sorted(p.name for p in tmp_path.iterdir() if ".targetrun-" in p.name) == []


EXITS = """
import os, sys

def forks():
    codes = []
    for code in (0, 5, None):
        pid = os.fork()
        if pid == 0:
            sys.exit(code)  # comes back into targetrun as SystemExit
        codes.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
    return codes
"""


def test_a_forked_childs_sys_exit_code_is_its_status(tmp_path: Path) -> None:
    write_project(tmp_path, "tasks:\n  a: {run: 'tasks:forks', target: a.json}\n", **{"tasks.py": EXITS})
    done = targetrun(tmp_path, "run")
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads((tmp_path / "a.json").read_text()) == [0, 5, 0]  # as Python's own exit gives them
