"""Hostile review, round 9: a result URL's password in the state store, control characters
in every line a command prints, recovery's "a live run writes it" guard, and hostile input,
state and environment."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

from targetrun import liveness
from targetrun.resolve import LOCAL
from targetrun.storage.base import staging_sibling
from targetrun.store.base import PendingWrite, RunRecord
from targetrun.store.rooted import RootedStore
from targetrun.store.sqlite import SqliteStore
from tests.clirun import in_process, write_project

ESCAPES = "b\x1b[2Jz\x07\u202e"  # clear screen, bell, right-to-left override


def test_paths_a_command_prints_have_their_control_characters_escaped(tmp_path):
    """``show --location`` printed a target rendered from a parameter as it was, and
    ``validate``, ``report`` and ``run --report`` the path they were given: an escape
    sequence in it acted on the terminal (cleared it, retitled it, reversed the text). Each
    is now shown with its control characters as escapes, as ``logs`` and ``status`` show them."""
    root = write_project(tmp_path / "p", "params: {x: a}\ntasks:\n  one: {run: 'steps:f', target: 'out/{params.x}.pkl'}\n",
                         **{"steps.py": "def f():\n    return 5\n"})
    weird = f"P{ESCAPES}.yaml"
    shutil.copy(root / "Pipelinefile.yaml", root / weird)
    said = [in_process(root, "run", "-p", f"x={ESCAPES}", "--report", f"r{ESCAPES}.html"),
            in_process(root, "show", "--location", "one", "-p", f"x={ESCAPES}"),
            in_process(root, "validate", "-f", weird),
            in_process(root, "report", "-o", f"q{ESCAPES}.html")]
    assert [done.returncode for done in said] == [0, 0, 0, 0], [done.stdout + done.stderr for done in said]
    assert said[1].stdout == f"{root}/out/b\\x1b[2Jz\\x07\\u202e.pkl\n"
    for done in said:
        assert not any(c in done.stdout + done.stderr for c in "\x1b\x07\u202e"), done
        assert "\\x1b[2Jz\\x07\\u202e" in done.stdout + done.stderr, done


# -- recovery: a half file of a dead run is kept while a live run writes the same target -----


def test_a_dead_runs_half_target_is_kept_while_a_live_run_writes_it(tmp_path):
    """Recovery removes what a dead run's attempt made at a target that was absent before it
    (engine/recovery.py ``_remove_made_target``) -- unless another run, alive now, is writing
    that target: the file there may be that run's own work in progress. A real second
    process runs the task (its lock held, its heartbeat renewed, its pending write
    recorded); a dead run's pending write of the same target, absent before it, is what the
    next command finds: the live run's file stays."""
    root = write_project(tmp_path, "name: shared\ntasks:\n"
                                   '  a: {shell: "printf half > o/a.txt; touch o/started; sleep 30", target: o/a.txt}\n')
    (root / "o").mkdir()
    live = subprocess.Popen([sys.executable, "-m", "targetrun", "run"], cwd=root, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not (root / "o/started").exists():
            assert live.poll() is None and time.monotonic() < deadline, live.communicate()[0]
            time.sleep(0.01)
        gone = subprocess.Popen(["true"])
        gone.wait()
        owner = liveness.owner_id().rsplit("/", 1)[0] + f"/{gone.pid}"  # this machine, a process that is gone
        target = str(root / "o/a.txt")
        store = RootedStore(SqliteStore(str(root / ".targetrun/state.db")), str(root), "shared")
        try:
            store.begin_run(RunRecord("20261201T000000-dead00", "shared", time.time(), owner=owner,
                                      heartbeat=time.time()))
            store.intend_write(PendingWrite("20261201T000000-dead00", target,
                                            staging_sibling(target, "20261201T000000-dead00-1-0a1b2c3d"), LOCAL,
                                            absent=True))
        finally:
            store.close()
        done = in_process(root, "status", "--json")
        assert done.returncode == 0, done.stdout + done.stderr
        assert (root / "o/a.txt").read_text() == "half", "recovery removed the target a live run is writing"
        assert json.loads(done.stdout)["tasks"][0]["state"].startswith("target exists"), done.stdout
    finally:
        os.killpg(live.pid, signal.SIGKILL)
        live.communicate(timeout=10)
