"""A stop at any moment of a run's writes: the promises of DESIGN.md "Trust and containment".

A real SIGINT (or SIGTERM) lands at a chosen line of the run -- sent by the process to
itself from a tracer (tests/test_trust_review.py's AT_FUNCTION_LINE, or STOP_AT_LINE
here), so where it lands does not depend on timing. Whatever the line, the stopped run
exits 130 (143), leaves no staging file beside a target, no lock and no pending write in
the store, and no target in place without a record that vouches for its bytes; it is
recorded as ended, not left 'running'; the next run skips exactly the targets that exist
and makes the rest (exit 0), and then every target is trusted.

The pinned lines are the seams a sweep of every line of the write path (each reached
once, -j 1 and -j 2) found broken; the sampled ones keep the rest of the sweep alive.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.test_trust_review import AT_FUNCTION_LINE, _env

STEPS = '''
import os


def make(name, **upstream):
    return {"name": name, "from": sorted(upstream)}


def total(**upstream):
    return {"count": len(upstream)}


def flaky():
    """Fails while the file `fail-once` is there, which it removes: the next run makes it."""
    if os.path.exists("fail-once"):
        os.remove("fail-once")
        raise RuntimeError("failed once")
    return "fine"
'''

# Shell tasks writing {output} and printing their value, Python tasks returning pickles and
# JSON, a cache_for task without a target, a chain and a fan-out; `flaky` runs first.
PIPELINE = """
name: anywhere
tasks:
  flaky: {run: "steps:flaky", target: out/flaky.json}
  a: {shell: "echo a > {output}", target: out/a.txt}
  b: {shell: "cat {needs.a}; echo b", needs: [a], target: out/b.txt}
  c: {run: "steps:make", args: {name: c}, needs: [b], target: out/c.pkl}
  d: {run: "steps:make", args: {name: d}, needs: [c], cache_for: 1h}
  f1: {shell: "echo f1 > {output}", needs: [a], target: out/f1.txt}
  f2: {shell: "echo f2", needs: [a], target: out/f2.txt}
  p: {run: "steps:make", args: {name: p}, target: out/p.pkl}
  g: {run: "steps:total", needs: [d, f1, f2, p], target: out/g.json}
"""
TASKS = ("flaky", "a", "b", "c", "d", "f1", "f2", "p", "g")

# Records each line the run's main thread reaches in the write path once the run has begun
# (`record OUT`), or sends the process a real signal the first time it reaches one of them
# (`stop FILE LINE SIGNUM`) -- the same lines, found the same way.
STOP_AT_LINE = """
import json, os, sys
import targetrun
from targetrun.store.sqlite import SqliteStore

FILES = {os.path.join(os.path.dirname(targetrun.__file__), name) for name in (
    "engine/run.py", "engine/writes.py", "engine/locks.py", "store/sqlite.py", "storage/local.py")}
begun = False
begin_run = SqliteStore.begin_run

def beginning(self, record):
    global begun
    begun = True
    return begin_run(self, record)

SqliteStore.begin_run = beginning
if sys.argv[1] == "record":
    out, rest, seen = sys.argv[2], sys.argv[3:], {}

    def local(frame, event, arg):
        if event == "line" and begun:
            seen.setdefault(f"{frame.f_code.co_filename}:{frame.f_lineno}", None)
        return local

    import atexit
    atexit.register(lambda: open(out, "w").write(json.dumps(list(seen))))
else:
    file, line, signum, rest = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5:]

    def local(frame, event, arg):
        if event == "line" and begun and frame.f_lineno == line and frame.f_code.co_filename == file:
            sys.settrace(None)
            print("SENT", file=sys.stderr, flush=True)
            os.kill(os.getpid(), signum)
            [None for _ in range(3)]  # the interpreter handles it here, at this very line
            return None
        return local

def tracer(frame, event, arg):
    return local if frame.f_code.co_filename in FILES else None

sys.settrace(tracer)
sys.argv = ["targetrun", *rest]
from targetrun.cli import main
main()
"""


def _folder(tmp_path: Path, fail_once: bool = False) -> Path:
    folder = tmp_path / "anywhere"
    folder.mkdir(parents=True)
    (folder / "steps.py").write_text(STEPS)
    (folder / "Pipelinefile.yaml").write_text(textwrap.dedent(PIPELINE))
    (folder / "at.py").write_text(AT_FUNCTION_LINE)
    (folder / "stop_at_line.py").write_text(STOP_AT_LINE)
    if fail_once:
        (folder / "fail-once").write_text("")
    return folder


def _targetrun(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=folder, capture_output=True, text=True, timeout=120,
                          env=_env())


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _unmarked(location: str) -> str:
    """A store key without its root mark: `{root}/out/a.txt` -> `out/a.txt`."""
    return re.sub(r"^\{root(:[^}]*)?\}/", "", location)


def _store(folder: Path) -> dict[str, list[tuple[str, ...]]]:
    with sqlite3.connect(folder / ".targetrun/state.db", timeout=30) as db:
        return {table: db.execute(query).fetchall() for table, query in (
            ("locks", "SELECT name, owner FROM locks"),
            ("pending", "SELECT staging, location, record FROM pending"),
            ("checkpoints", "SELECT location, record FROM checkpoints"),
            ("runs", "SELECT run_id, status FROM runs ORDER BY rowid"),
        )}


def _outputs(folder: Path) -> dict[Path, str]:
    """Every file a run of the pipeline may have made (targets, the no-target task's value):
    path -> 'recorded' (its record vouches for its bytes), 'prepared' (its pending write
    does, which the next run commits) or 'UNTRUSTED'."""
    store = _store(folder)
    recorded = {_unmarked(loc): json.loads(rec)["hash"] for loc, rec in store["checkpoints"]}
    prepared = {_unmarked(loc): json.loads(rec)["hash"] for _, loc, rec in store["pending"] if rec}
    found: dict[Path, str] = {}
    for where in (folder / "out", folder / ".targetrun/results"):
        for path in sorted(where.rglob("*")) if where.exists() else ():
            if path.is_file() and not path.name.startswith("."):
                key, digest = str(path.relative_to(folder)), _sha256(path)
                found[path] = "recorded" if recorded.get(key) == digest else \
                    "prepared" if prepared.get(key) == digest else "UNTRUSTED"
    return found


def _hidden(folder: Path) -> list[str]:
    """Staging and temporary files: hidden names beside the targets and results."""
    return [str(p.relative_to(folder)) for where in (folder / "out", folder / ".targetrun/results") if where.exists()
            for p in where.rglob(".*")]


def _assert_stopped_cleanly(folder: Path, done: subprocess.CompletedProcess[str], signum: int, jobs: int) -> None:
    """What a stopped run leaves: nothing half-done, and the next run finishes the job."""
    said = f"stopped run: {done.stderr[-2000:]}"
    assert "SENT" in done.stderr, said  # the line ran (else this tests nothing)
    assert done.returncode == 128 + signum, said
    assert "Traceback" not in done.stderr, said
    assert _hidden(folder) == [], said
    store = _store(folder)
    assert store["locks"] == [], said
    if jobs == 1:  # (with -j 2 an attempt still running in a thread keeps its pending write, for the next run)
        assert store["pending"] == [], said
    assert [status for _, status in store["runs"]][-1:] in (["interrupted"], ["succeeded"]), said
    made = _outputs(folder)
    assert "UNTRUSTED" not in made.values(), (made, said)
    targets = {path.stem for path in made if path.parent == folder / "out"}

    again = _targetrun(folder, "-m", "targetrun", "run", "--json", "-j", str(jobs))
    assert again.returncode == 0, again.stderr
    assert "untrusted" not in again.stderr and "not recorded" not in again.stderr, again.stderr
    states = {t["task"]: t["state"] for t in json.loads(again.stdout)["tasks"]}
    assert {task for task in targets if states.get(task, "not needed") not in ("skipped", "not needed")} == set(), \
        (targets, states)  # what the stopped run made is kept
    assert {task for task, state in states.items() if state == "skipped"} <= targets, (targets, states)
    store = _store(folder)
    assert store["locks"] == [] and _hidden(folder) == []
    if jobs == 1:  # (an attempt's kept pending write goes once its run has been gone a while: recovery.py)
        assert store["pending"] == []
    assert set(_outputs(folder).values()) == {"recorded"}
    check = _targetrun(folder, "-m", "targetrun", "status", "--verify", "--check", *TASKS)
    assert check.returncode == 0, check.stdout + check.stderr


def _stop_at(folder: Path, function: str, line: str, jobs: int, signum: int = signal.SIGINT) -> \
        subprocess.CompletedProcess[str]:
    if signum != signal.SIGINT:
        (folder / "at.py").write_text(AT_FUNCTION_LINE.replace("signal.SIGINT", f"signal.{signal.Signals(signum).name}"))
    return _targetrun(folder, "at.py", function, line, "run", "-q", "-j", str(jobs))


@pytest.mark.parametrize("function, line, jobs, signum", [
    # the run's end, on its way in -- before it holds stops back (a run that made everything)
    ("_run", "if begun:", 1, signal.SIGINT),
    ("_end", "summary = self._summary(scope, progress, started)", 2, signal.SIGTERM),
    # a staging place kept by the store (its intent) but not yet known to the run
    ("stage", "self._staged[task] = (checkpoint.result, staging)", 1, signal.SIGINT),
    # the lease renewer made but not started
    ("_start_renewing", "self._thread.start()", 1, signal.SIGTERM),
    # an attempt that has ended, its end not yet taken in: it writes no more
    ("_wait", "self._keep_records(progress)", 1, signal.SIGINT),
    # an attempt handed to a worker thread, its future not yet kept: it may still write
    ("_hand_over", "progress.inflight[future] = name", 2, signal.SIGINT),
])
def test_a_stop_at_a_seam_of_the_write_path_leaves_nothing_half_done(tmp_path, function, line, jobs, signum):
    folder = _folder(tmp_path)
    done = _stop_at(folder, function, line, jobs, signum)
    _assert_stopped_cleanly(folder, done, signum, jobs)


@pytest.mark.parametrize("function, line", [
    ("release", "self.store.release_soon(name, self.owner)"),  # its lock let go of, not yet kept to release
    ("forget", "self._forget(storage_key, staging)"),  # its staging place forgotten, not yet removed
])
def test_a_stop_as_a_task_fails_leaves_nothing_half_done(tmp_path, function, line):
    """The first task fails (once: the next run makes it) and the stop lands while its
    lock and staging place are let go of."""
    folder = _folder(tmp_path, fail_once=True)
    done = _stop_at(folder, function, line, 1)
    assert not (folder / "fail-once").exists(), done.stderr  # it failed
    _assert_stopped_cleanly(folder, done, signal.SIGINT, 1)


SAMPLED = 3  # lines of the write path stopped at, per test run (each costs a few seconds)


def test_a_stop_at_sampled_lines_of_the_write_path_leaves_nothing_half_done(tmp_path):
    """A few lines drawn from all those the run reaches in its write path (each ~2.5 s).
    TARGETRUN_STOP_SEED picks another draw; a failure names the line to stop at again."""
    seed = int(os.environ.get("TARGETRUN_STOP_SEED", "20261202"))
    lines = tmp_path / "lines.json"
    recorded = _targetrun(_folder(tmp_path / "recorded"), "stop_at_line.py", "record", str(lines), "run", "-q")
    assert recorded.returncode == 0, recorded.stderr
    reached = json.loads(lines.read_text())
    assert len(reached) > 300, len(reached)  # the whole write path, not a corner of it
    drawn = random.Random(seed).sample(reached, SAMPLED + 3)
    stopped = 0
    for n, point in enumerate(drawn):
        file, _, line = point.rpartition(":")
        folder = _folder(tmp_path / f"stop{n}")
        done = _targetrun(folder, "stop_at_line.py", "stop", file, line, str(int(signal.SIGINT)), "run", "-q")
        if "SENT" not in done.stderr:  # a line this run did not reach (one only a slower machine takes): another
            continue
        try:
            _assert_stopped_cleanly(folder, done, signal.SIGINT, 1)
        except AssertionError as exc:
            raise AssertionError(f"a stop at {point} (seed {seed}): {exc}") from None
        stopped += 1
        if stopped == SAMPLED:
            return
    pytest.fail(f"only {stopped} of the lines drawn were reached again: {drawn}")
