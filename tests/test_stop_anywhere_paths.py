"""A stop at any moment of a run's writes, on the paths tests/test_stop_anywhere.py's pipeline
does not take: a failing task retried, the processes executor's end, and the recovery of
what a run killed with SIGKILL left half-way.

The same promises (DESIGN.md "Trust and containment"): the stopped run exits 130 (143),
leaves no staging file beside a target, no lock and no pending write of its own in the
store; no target is in place without a record that vouches for its bytes; the next run
exits 0, skips exactly the targets that exist, and then every target is trusted.

The pinned lines are seams of a sweep of the lines those paths reach (at the reach a failure
or a retry adds; in recovery, every line), with the SQLite store; mapped tasks and the
processes executor's attempts were swept too, and broke nothing the pins here do not cover.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.test_stop_anywhere import _hidden, _outputs, _store
from tests.test_trust_review import AT_FUNCTION_LINE, _env

STEPS = '''
import os


def make(name, **upstream):
    return {"name": name, "from": sorted(upstream)}


def flaky(**upstream):
    """Fails while the file `fails` says fewer than two failures, then succeeds."""
    n = int(open("fails").read()) if os.path.exists("fails") else 0
    if n < 2:
        open("fails", "w").write(str(n + 1))
        raise RuntimeError(f"failure {n + 1}")
    return "fine"
'''

RETRIED = """
name: retried
tasks:
  a: {shell: "echo a > {output}", target: out/a.txt}
  flaky: {run: "steps:flaky", needs: [a], target: out/flaky.json, max_retries: 2, retry_delay: 50ms}
  g: {run: "steps:make", args: {name: g}, needs: [flaky], target: out/g.json}
"""

PLAIN = """
name: plain
tasks:
  a: {run: "steps:make", args: {name: a}, target: out/a.json}
  b: {run: "steps:make", args: {name: b}, target: out/b.pkl}
  c: {run: "steps:make", args: {name: c}, needs: [a, b], target: out/c.json}
"""

# AT_FUNCTION_LINE, importable: the processes executor's workers are spawned, and a spawned
# worker imports the main module -- which must not run targetrun again there.
GUARDED = "if __name__ == '__main__':\n" + textwrap.indent(AT_FUNCTION_LINE, "    ")


def _folder(tmp_path: Path, pipeline: str) -> Path:
    folder = tmp_path / "paths"
    folder.mkdir(parents=True)
    (folder / "steps.py").write_text(STEPS)
    (folder / "Pipelinefile.yaml").write_text(textwrap.dedent(pipeline))
    return folder


def _targetrun(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=folder, capture_output=True, text=True, timeout=120,
                          env=_env())


def _stop_at(folder: Path, function: str, line: str, *run: str, signum: int = signal.SIGINT) -> \
        subprocess.CompletedProcess[str]:
    (folder / "at.py").write_text(GUARDED.replace("signal.SIGINT", f"signal.{signal.Signals(signum).name}"))
    return _targetrun(folder, "at.py", function, line, "run", "-q", *run)


def _assert_stopped_cleanly(folder: Path, done: subprocess.CompletedProcess[str], signum: int,
                            *run: str, killed: frozenset[str] = frozenset()) -> None:
    """What a stopped run leaves (``killed``: the ids of runs killed before it, whose pending
    writes recovery keeps a while once their staging files are gone)."""
    said = f"stopped run: {done.stderr[-2000:]}"
    assert "SENT" in done.stderr, said  # the line ran (else this tests nothing)
    assert done.returncode == 128 + signum, said
    assert "Traceback" not in done.stderr, said
    if not killed:  # (a stop during recovery may leave what the killed run left: the next run resolves it)
        assert _hidden(folder) == [], said
        store = _store(folder)
        assert store["locks"] == [], said
        if "-j" in run and run[run.index("-j") + 1] == "1":  # (an attempt running elsewhere keeps its
            assert store["pending"] == [], said  # pending write, for the next run: recovery.py)
        assert [status for _, status in store["runs"]][-1:] in (["interrupted"], ["succeeded"]), said
    made = _outputs(folder)
    assert "UNTRUSTED" not in made.values(), (made, said)
    existing = {str(path.relative_to(folder)) for path in made if path.is_relative_to(folder / "out")}

    again = _targetrun(folder, "-m", "targetrun", "run", "--json", *run)
    assert again.returncode == 0, again.stderr
    assert "untrusted" not in again.stderr and "not recorded" not in again.stderr, again.stderr
    targets = {t["task"]: (os.path.relpath(t["target"], folder), t["state"])
               for t in json.loads(again.stdout)["tasks"] if t.get("target")}
    assert {task for task, (target, state) in targets.items() if (target in existing) != (state == "skipped")} \
        == set(), (existing, targets)  # what the stopped run made is kept, the rest made now
    store = _store(folder)
    # (a killed run's locks are leases that lapse: they stay until their target is claimed again)
    assert [owner for _, owner in store["locks"] if owner.split("/")[3] not in killed] == [], store["locks"]
    assert _hidden(folder) == []
    gone = killed | {run_id for run_id, status in store["runs"][:-1]}  # the stopped run and those before it
    assert {row[0] for row in store["pending"]} <= {row[0] for row in _pending_of(folder, gone)}
    assert set(_outputs(folder).values()) == {"recorded"}
    check = _targetrun(folder, "-m", "targetrun", "status", "--verify", "--check")
    assert check.returncode == 0, check.stdout + check.stderr


def _pending_of(folder: Path, runs: frozenset[str]) -> list[tuple[str, ...]]:
    """The pending writes of ``runs`` whose staging files are gone (kept a while: recovery.py)."""
    import sqlite3

    with sqlite3.connect(folder / ".targetrun/state.db", timeout=30) as db:
        rows = db.execute("SELECT staging, run_id FROM pending").fetchall()
    return [row for row in rows if row[1] in runs and not os.path.exists(row[0])]


@pytest.mark.parametrize("function, line, signum", [
    ("_attempt_failed", "self.writes.forget(name)", signal.SIGINT),  # a failure, before its staging goes
    ("_attempt_failed", "return", signal.SIGINT),  # its retry scheduled: the wait
    ("_release_due_retries", "progress.ready.append(name)", signal.SIGTERM),  # the retry's start
])
def test_a_stop_as_a_task_fails_and_is_retried_leaves_nothing_half_done(tmp_path, function, line, signum):
    folder = _folder(tmp_path, RETRIED)
    done = _stop_at(folder, function, line, "-j", "1", signum=signum)
    assert (folder / "fails").exists(), done.stderr  # it failed
    _assert_stopped_cleanly(folder, done, signum, "-j", "1")


@pytest.mark.parametrize("kill_in, kill_at, function, line", [
    # killed after its first target moved in (only a prepared record vouches for it):
    # recovery commits that record -- stopped before it does
    ("_record", "attempts = progress.attempts[name]", "recover",
     "store.record_task(None, pending.checkpoint, pending.entry, staging=pending.staging)"),
    # killed while attempts had staged: recovery removes the staging files -- stopped after one went
    ("_made", "checkpoint = Checkpoint(", "_discard", "if settled:"),
])
def test_a_stop_while_recovering_what_a_killed_run_left_leaves_nothing_half_done(
        tmp_path, kill_in, kill_at, function, line):
    folder = _folder(tmp_path, PLAIN)
    (folder / "kill.py").write_text(GUARDED.replace("signal.SIGINT", "signal.SIGKILL"))
    killed = _targetrun(folder, "kill.py", kill_in, kill_at, "run", "-q", "-j", "1")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert _store(folder)["pending"], "the killed run left no pending write"
    runs = frozenset(run_id for run_id, _ in _store(folder)["runs"])
    done = _stop_at(folder, function, line, "-j", "1")
    _assert_stopped_cleanly(folder, done, signal.SIGINT, "-j", "1", killed=runs)


@pytest.mark.parametrize("line", [
    "if not wait:",  # the run is over, the workers not yet told to go
    "self._pool.shutdown(wait=False, cancel_futures=not wait)",  # telling them to go
    "process.join(max(0.0, deadline - time.monotonic()))",  # waiting for them to go
])
def test_a_stop_as_the_worker_processes_are_shut_down_leaves_none_of_them_running(tmp_path, line):
    """The run has ended and its worker processes are being shut down when the stop lands:
    none of them outlives the stopped run -- an idle worker waits for work forever, and
    it and its resource tracker hold the run's stdout and stderr open (`targetrun run |
    tee log` would never end)."""
    folder = _folder(tmp_path, PLAIN)
    (folder / "at.py").write_text(GUARDED)
    stopped = subprocess.Popen([sys.executable, "at.py", "shutdown", line, "run", "-q", "-j", "2", "--executor",
                                "processes"], cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=_env(), start_new_session=True)
    try:
        assert stopped.wait(timeout=120) == 130
        try:
            _, stderr = stopped.communicate(timeout=20)  # the end of its output: no process holds it any more
        except subprocess.TimeoutExpired:
            pytest.fail("a worker process of the stopped run still holds its output")
        assert "SENT" in stderr and "Traceback" not in stderr, stderr
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(stopped.pid, signal.SIGKILL)  # (its session: whatever it left running)
