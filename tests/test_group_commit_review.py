"""Group commit under a hostile review: what another process sees while a run keeps writes.

The SQLite store keeps a task's record and its lock's release for the run's next write
(store/base.py). These tests stop a real run exactly inside such a window -- in its
reporter, which may take any time (a terminal or pipe that does not read, a live view) --
and run real ``targetrun`` processes against the same project meanwhile.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from tests.test_group_commit import pickle_pair

PAUSER = """
import json, os, subprocess, sys
from targetrun import api
from targetrun.events import TaskSucceeded

root = sys.argv[1]

class OthersLookWhileItReports:
    # A reporter that takes its time (as a console writing to a pipe nobody reads does):
    # meanwhile other targetrun processes use the project.
    def handle(self, event):
        if isinstance(event, TaskSucceeded) and event.task == "a":
            seen = {}
            for name, command in (("run", ["run", "b"]), ("status", ["status"])):
                done = subprocess.run([sys.executable, "-m", "targetrun", *command], cwd=root,
                                      capture_output=True, text=True, timeout=120)
                seen[name] = [done.returncode, done.stdout + done.stderr]
            with open(os.path.join(root, "seen.json"), "w") as f:
                json.dump(seen, f)

api.run(os.path.join(root, "Pipelinefile.yaml"), tasks=["a"], reporter=OthersLookWhileItReports())
"""


def test_a_pickle_reported_done_is_trusted_by_another_process(tmp_path: Path) -> None:
    """While a run tells its reporter that 'a' succeeded, a's pickle is in place: another
    process's `run b` reads it and `status` shows it, without --trust (exit 0 both) --
    not 'a pickle checkpoint that no targetrun run recorded' (exit 2)."""
    env = pickle_pair(tmp_path, "gcr")
    (tmp_path / "pauser.py").write_text(PAUSER)
    first = subprocess.run([sys.executable, str(tmp_path / "pauser.py"), str(tmp_path)], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    seen = json.loads((tmp_path / "seen.json").read_text())
    assert seen["run"][0] == 0, seen["run"][1]
    assert seen["status"][0] == 0, seen["status"][1]
    assert "trust" not in seen["run"][1] + seen["status"][1]
    assert (tmp_path / "out" / "b.json").read_text().strip() == "42"


def test_a_background_process_left_holding_stderr_lives_on(tmp_path: Path) -> None:
    """A shell task that starts a background process which keeps the task's stderr: the
    task ends without waiting for it (exit 0) and the process goes on -- it is not killed
    by a broken pipe the next time it prints (as it was not when stderr was a file)."""
    (tmp_path / "Pipelinefile.yaml").write_text(textwrap.dedent("""
        name: bg
        tasks:
          a:
            shell: "sh -c 'sleep 1; echo late >&2; sleep 0.2; touch alive_after_printing' > /dev/null & echo started >&2"
        """))
    done = subprocess.run([sys.executable, "-m", "targetrun", "run"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not (tmp_path / "alive_after_printing").exists()  # the task did not wait for it
    deadline = time.monotonic() + 10
    while not (tmp_path / "alive_after_printing").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (tmp_path / "alive_after_printing").exists(), "the background process died when it printed"
    assert "started" in subprocess.run([sys.executable, "-m", "targetrun", "logs", "a"], cwd=tmp_path,
                                       capture_output=True, text=True, timeout=60).stdout


def test_a_run_waiting_for_another_runs_lock_does_not_stage_at_each_look(tmp_path: Path) -> None:
    """Two runs of one task: the second waits for the first's lock, then finds the target
    made (exit 0, nothing run twice). While it waits it records no intent to write after
    its first look (a pending row, then a staging file to remove -- one more store write and, on an object
    store, one more request at every look, 20 a second)."""
    (tmp_path / "Pipelinefile.yaml").write_text(textwrap.dedent("""
        name: wait
        tasks:
          a: {shell: "sleep 2; echo made > {output}", target: out/a.txt}
        """))
    first = subprocess.Popen([sys.executable, "-m", "targetrun", "run"], cwd=tmp_path, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    db = tmp_path / ".targetrun" / "state.db"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # until the first run holds a's lock
        try:
            with sqlite3.connect(db) as other:
                if other.execute("SELECT count(*) FROM locks").fetchone()[0]:
                    break
        except sqlite3.Error:
            pass
        time.sleep(0.02)
    with sqlite3.connect(db) as other:  # every intent to write, as it is recorded
        other.execute("CREATE TABLE seen_intents (run_id TEXT)")
        other.execute("CREATE TRIGGER seen_intent AFTER INSERT ON pending BEGIN "
                      "INSERT INTO seen_intents VALUES (new.run_id); END")
    second = subprocess.run([sys.executable, "-m", "targetrun", "run"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120)
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, out + err
    assert second.returncode == 0, second.stdout + second.stderr
    assert "skipped" in second.stdout or "target exists" in second.stdout, second.stdout
    assert (tmp_path / "out" / "a.txt").read_text() == "made\n"
    with sqlite3.connect(db) as other:
        runs = [r[0] for r in other.execute("SELECT run_id FROM runs ORDER BY rowid")]
        intents = other.execute("SELECT run_id, count(*) FROM seen_intents GROUP BY run_id").fetchall()
    assert len(runs) == 2
    assert dict(intents).get(runs[1], 0) <= 1, intents  # its first look, before it knew the lock was taken
