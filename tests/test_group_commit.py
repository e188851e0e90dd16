"""Group commit: a task's record and its lock's release wait for the store's next write.

The records a run writes after a target is in place are *kept* by the SQLite store and
committed with the coordinating thread's next write (see store/base.py). These tests use
real SQLite files, a second connection as another process would see them, and a real
SIGKILL in the window where a record is kept: the target it leaves is still trusted.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from targetrun.model import Checkpoint, TaskState
from targetrun.store.base import PendingWrite, TaskRecord
from targetrun.store.sqlite import SqliteStore


def _checkpoint(location: str) -> Checkpoint:
    return Checkpoint("a", location, "text", 2, "ab" * 32, "run-1", 1_800_000_000.0, 0.1, {}, {}, "local")


def _record(task: str) -> TaskRecord:
    return TaskRecord("run-1", "p", task, TaskState.SUCCEEDED, 1_800_000_000.0, 0.1, 1, None, "out/a.txt")


def _rows(db: str, sql: str) -> list[tuple[object, ...]]:
    """What another process reading the file sees now."""
    with sqlite3.connect(db) as other:
        return other.execute(sql).fetchall()


def test_kept_writes_commit_with_the_next_write_in_order(tmp_path: Path) -> None:
    db = str(tmp_path / "state.db")
    store = SqliteStore(db)
    store.intend_write(PendingWrite("run-1", "out/a.txt", "out/.a.stage", "local"))
    store.prepare_write("out/.a.stage", _checkpoint("out/a.txt"), None)
    assert store.acquire("target:out/a.txt", "me", 60.0)

    store.record_task_soon(_record("a"), _checkpoint("out/a.txt"), staging="out/.a.stage")
    store.release_soon("target:out/a.txt", "me")
    # Nothing of it is visible elsewhere yet: the prepared pending write still vouches for the target.
    assert _rows(db, "SELECT count(*) FROM checkpoints") == [(0,)]
    assert _rows(db, "SELECT record IS NOT NULL FROM pending") == [(1,)]
    assert _rows(db, "SELECT owner FROM locks") == [("me",)]

    assert store.acquire("target:out/b.txt", "me", 60.0)  # the next write carries them
    assert _rows(db, "SELECT location FROM checkpoints") == [("out/a.txt",)]
    assert _rows(db, "SELECT task FROM task_runs") == [("a",)]
    assert _rows(db, "SELECT count(*) FROM pending") == [(0,)]
    assert _rows(db, "SELECT name FROM locks") == [("target:out/b.txt",)]


def test_the_intent_of_a_write_commits_with_the_claim_of_its_lock(tmp_path: Path) -> None:
    """One transaction before an attempt starts: the previous task's kept record, this
    task's intent and its lock -- all or nothing."""
    db = str(tmp_path / "state.db")
    store = SqliteStore(db, timeout=0.05)
    store.record_task_soon(_record("a"), _checkpoint("out/a.txt"))
    store.intend_write_soon(PendingWrite("run-1", "out/b.txt", "out/.b.stage", "local"))
    assert _rows(db, "SELECT count(*) FROM pending") == [(0,)]
    with sqlite3.connect(db, isolation_level=None) as other:
        other.execute("BEGIN IMMEDIATE")  # another process writes meanwhile: the claim fails whole
        try:
            store.acquire("target:out/b.txt", "me", 60.0)
        except Exception as exc:
            assert "locked" in str(exc)
        else:
            raise AssertionError("the claim should have found the store locked")
        other.execute("ROLLBACK")
    assert _rows(db, "SELECT count(*) FROM pending") == [(0,)] and _rows(db, "SELECT count(*) FROM locks") == [(0,)]
    assert store.acquire("target:out/b.txt", "me", 60.0)
    assert _rows(db, "SELECT staging FROM pending") == [("out/.b.stage",)]
    assert _rows(db, "SELECT location FROM checkpoints") == [("out/a.txt",)]
    assert _rows(db, "SELECT name FROM locks") == [("target:out/b.txt",)]


def test_a_thread_reads_what_it_kept_and_flush_commits_it(tmp_path: Path) -> None:
    db = str(tmp_path / "state.db")
    store = SqliteStore(db)
    store.record_task_soon(_record("a"), _checkpoint("out/a.txt"))
    assert _rows(db, "SELECT count(*) FROM checkpoints") == [(0,)]
    assert store.checkpoint("out/a.txt") == _checkpoint("out/a.txt")  # its own read commits first
    assert _rows(db, "SELECT count(*) FROM checkpoints") == [(1,)]

    store.record_task_soon(_record("b"), None)
    store.flush()
    assert _rows(db, "SELECT task FROM task_runs ORDER BY task") == [("a",), ("b",)]
    store.flush()  # nothing kept: no transaction, no error


def test_kept_writes_survive_a_failed_transaction(tmp_path: Path) -> None:
    """A transaction that fails rolls back what it carried; the kept writes wait for the next."""
    db = str(tmp_path / "state.db")
    store = SqliteStore(db, timeout=0.05)
    store.record_task_soon(_record("a"), _checkpoint("out/a.txt"))
    with sqlite3.connect(db, isolation_level=None) as other:
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        try:
            store.flush()
        except Exception as exc:
            assert "locked" in str(exc)
        else:
            raise AssertionError("the flush should have found the store locked")
        other.execute("ROLLBACK")
    assert _rows(db, "SELECT count(*) FROM checkpoints") == [(0,)]
    store.put_blob("k", b"v")
    assert _rows(db, "SELECT location FROM checkpoints") == [("out/a.txt",)]


KILLER = """
import json, os, signal, sqlite3, sys
from targetrun import api
from targetrun.store.sqlite import SqliteStore

root = sys.argv[1]
db = os.path.join(root, ".targetrun", "state.db")
keep = SqliteStore.record_task_soon

def kill_once_a_is_kept(self, record, checkpoint, entry=None, *, staging=None):
    keep(self, record, checkpoint, entry, staging=staging)
    if record is not None and record.task == "a":
        with sqlite3.connect(db) as other:  # what a crash right now leaves behind
            seen = {
                "target": os.path.exists(os.path.join(root, "out", "a.pkl")),
                "records": other.execute("SELECT count(*) FROM checkpoints").fetchone()[0],
                "prepared": other.execute("SELECT count(*) FROM pending WHERE record IS NOT NULL").fetchone()[0],
                "locks": other.execute("SELECT count(*) FROM locks").fetchone()[0],
            }
        with open(os.path.join(root, "seen.json"), "w") as f:
            json.dump(seen, f)
        os.kill(os.getpid(), signal.SIGKILL)

SqliteStore.record_task_soon = kill_once_a_is_kept  # the moment a's record is kept, before anything commits it
api.run(os.path.join(root, "Pipelinefile.yaml"))
"""


def pickle_pair(root: Path, name: str) -> dict[str, str]:
    """A pipeline ``name`` in ``root``: a writes a pickle, b reads it (b.json is 42); the
    environment that imports its module."""
    (root / f"{name}_jobs.py").write_text("def make():\n    return {'n': 21}\n\ndef double(a):\n    return a['n'] * 2\n")
    (root / "Pipelinefile.yaml").write_text(textwrap.dedent(f"""
        name: {name}
        tasks:
          a: {{run: {name}_jobs:make, target: out/a.pkl}}
          b: {{run: {name}_jobs:double, needs: [a], target: out/b.json}}
        """))
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))


def test_sigkill_while_a_record_is_kept_leaves_a_trusted_target(tmp_path: Path) -> None:
    """Killed after a's pickle is in place and before its record is committed: the next run
    commits the prepared record, skips a, and b reads the pickle without --trust."""
    env = pickle_pair(tmp_path, "gc")
    (tmp_path / "killer.py").write_text(KILLER)
    killed = subprocess.run([sys.executable, str(tmp_path / "killer.py"), str(tmp_path)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9, killed.stderr
    seen = json.loads((tmp_path / "seen.json").read_text())
    # The window group commit opens: the target is in place, its record only prepared, its lock held.
    assert seen == {"target": True, "records": 0, "prepared": 1, "locks": 1}

    started = time.monotonic()
    again = subprocess.run([sys.executable, "-m", "targetrun", "run"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "trust" not in again.stdout + again.stderr
    assert (tmp_path / "out" / "b.json").read_text().strip() == "42"
    assert time.monotonic() - started < 60  # a's abandoned lock is not waited for: a is not run again
    db = str(tmp_path / ".targetrun" / "state.db")
    assert _rows(db, "SELECT task FROM checkpoints ORDER BY task") == [("a",), ("b",)]
    assert _rows(db, "SELECT count(*) FROM pending") == [(0,)]
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]  # no staging file left


PEEK = """
import json, os, sqlite3, sys
from targetrun import api
from targetrun.events import Broadcast, TaskSucceeded
from targetrun.report.logs import LogFileReporter

root = sys.argv[1]
seen = {}

class Peek:
    # Told of every success but does nothing with one (as -q's console): it looks at
    # what another process sees of the task's record at that moment.
    def wants(self, kind):
        return kind is TaskSucceeded
    def acts_on(self, event):
        return False
    def handle(self, event):
        with sqlite3.connect(os.path.join(root, ".targetrun", "state.db")) as other:
            seen[event.task] = other.execute("SELECT count(*) FROM task_runs WHERE task = ?", (event.task,)).fetchone()[0]

api.run(os.path.join(root, "Pipelinefile.yaml"), reporter=Broadcast(Peek(), LogFileReporter(root)))
print(json.dumps(seen))
"""


def test_a_success_nobody_acts_on_costs_no_commit(tmp_path: Path) -> None:
    """A quiet task's success that no reporter acts on (the log writer ignores a task that
    printed nothing) leaves its record kept for the next write; one the log writer writes
    down commits first, as any reporter that acts."""
    (tmp_path / "Pipelinefile.yaml").write_text(textwrap.dedent("""\
        name: gc
        tasks:
          quiet: {shell: "printf q > {output}", target: out/quiet.txt}
          loud: {shell: "echo hello; printf l > {output}", target: out/loud.txt, needs: [quiet]}
        """))
    (tmp_path / "peek.py").write_text(PEEK)
    done = subprocess.run([sys.executable, str(tmp_path / "peek.py"), str(tmp_path)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == {"quiet": 0, "loud": 1}
    assert _rows(str(tmp_path / ".targetrun" / "state.db"), "SELECT task FROM task_runs ORDER BY task") == \
        [("loud",), ("quiet",)]  # the kept one committed with the next write


STOP_WHEN_QUEUED = """
import os, signal, sys
from targetrun import api
from targetrun.events import Broadcast, TaskQueued
from targetrun.report.logs import LogFileReporter

class StopAtB:
    # Told that b is queued -- after a succeeded, before b's command starts -- and does
    # nothing with it (no commit first): it stops the run right then, as a Ctrl-C would.
    def wants(self, kind):
        return kind is TaskQueued
    def acts_on(self, event):
        return False
    def handle(self, event):
        if event.task == "b":
            os.kill(os.getpid(), signal.SIGINT)

try:
    api.run(os.path.join(sys.argv[1], "Pipelinefile.yaml"), reporter=Broadcast(StopAtB(), LogFileReporter(sys.argv[1])))
except KeyboardInterrupt:
    print("stopped")
"""


def test_a_stop_before_the_next_command_starts_records_the_success_before_it(tmp_path: Path) -> None:
    """a's record waits for b's command to start (it commits while that runs); a stop
    before b's command starts still finds a recorded, its lock released, nothing pending."""
    (tmp_path / "Pipelinefile.yaml").write_text(textwrap.dedent("""\
        name: gc
        tasks:
          a: {shell: "printf a > {output}", target: out/a.txt}
          b: {shell: "cat {needs.a} > {output}", target: out/b.txt, needs: [a]}
        """))
    (tmp_path / "stop.py").write_text(STOP_WHEN_QUEUED)
    done = subprocess.run([sys.executable, str(tmp_path / "stop.py"), str(tmp_path)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.stdout.strip().splitlines()[-1:] == ["stopped"], done.stdout + done.stderr
    db = str(tmp_path / ".targetrun" / "state.db")
    assert _rows(db, "SELECT task, state FROM task_runs") == [("a", "succeeded")]
    assert _rows(db, "SELECT task FROM checkpoints") == [("a",)]
    assert _rows(db, "SELECT count(*) FROM pending") == [(0,)]
    assert _rows(db, "SELECT count(*) FROM locks") == [(0,)]
    assert _rows(db, "SELECT status FROM runs") == [("interrupted",)]
    assert not (tmp_path / "out" / "b.txt").exists()


WAIT_FOR_A = """
import sqlite3, sys, time
deadline = time.monotonic() + 20
while time.monotonic() < deadline:
    with sqlite3.connect(sys.argv[1]) as other:
        if other.execute("SELECT count(*) FROM task_runs WHERE task = 'a'").fetchone()[0]:
            print("recorded")
            break
    time.sleep(0.01)
else:
    print("not recorded")
"""


def test_a_success_is_committed_while_the_next_command_runs(tmp_path: Path) -> None:
    """The inline executor commits a's record while b's command runs (the loop would only
    wait for it): b, another process, sees a recorded before it ends -- a record is never
    held back for a whole command."""
    (tmp_path / "wait_for_a.py").write_text(WAIT_FOR_A)
    (tmp_path / "Pipelinefile.yaml").write_text(textwrap.dedent(f"""\
        name: gc
        tasks:
          a: {{shell: "printf a > {{output}}", target: out/a.txt}}
          b: {{shell: "{sys.executable} wait_for_a.py .targetrun/state.db > {{output}}", target: out/b.txt, needs: [a]}}
        """))
    done = subprocess.run([sys.executable, "-m", "targetrun", "run", "-q"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "out" / "b.txt").read_text().strip() == "recorded"


STOP_RIGHT_AFTER_THE_MOVE = """
import os, runpy, signal, sys

def stop_once_moved(frame, event, arg):
    # A Ctrl-C the moment os.replace put b's target in place -- before the engine took
    # note of its record: the worst moment for the record to be lost.
    if event == "c_return" and arg is os.replace and os.path.exists(os.path.join(root, "out", "b.txt")):
        sys.setprofile(None)
        os.kill(os.getpid(), signal.SIGINT)

root = sys.argv[1]
sys.argv = ["targetrun", "run", "-q", "-f", os.path.join(root, "Pipelinefile.yaml")]
sys.setprofile(stop_once_moved)
runpy.run_module("targetrun", run_name="__main__")
"""


@pytest.mark.parametrize("kind", ["shell", "python"])
def test_a_stop_right_after_a_target_is_moved_in_place_still_records_it(tmp_path: Path, kind: str) -> None:
    """The move of a staged target and the keeping of its record are one step: a stop
    that lands between them leaves the target recorded (not only vouched for by its
    pending write until the next run), so nothing in place is ever without a record."""
    b = ('{shell: "cat {needs.a} > {output}", target: out/b.txt, needs: [a]}' if kind == "shell"
         else "{run: steps:copy, target: out/b.txt, needs: {text: a}, serializer: text}")
    (tmp_path / "steps.py").write_text("def copy(text):\n    return text\n")
    (tmp_path / "Pipelinefile.yaml").write_text(textwrap.dedent(f"""\
        name: gc
        tasks:
          a: {{shell: "printf a > {{output}}", target: out/a.txt}}
          b: {b}
          c: {{shell: "cat {{needs.b}} > {{output}}", target: out/c.txt, needs: [b]}}
        """))
    (tmp_path / "stop.py").write_text(STOP_RIGHT_AFTER_THE_MOVE)
    done = subprocess.run([sys.executable, str(tmp_path / "stop.py"), str(tmp_path)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 130, done.stdout + done.stderr
    db = str(tmp_path / ".targetrun" / "state.db")
    assert (tmp_path / "out" / "b.txt").exists()
    assert _rows(db, "SELECT task FROM checkpoints ORDER BY task") == [("a",), ("b",)]
    assert _rows(db, "SELECT count(*) FROM pending") == [(0,)]
    assert _rows(db, "SELECT status FROM runs") == [("interrupted",)]
    assert not (tmp_path / "out" / "c.txt").exists()


def _stores(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> object:
    if backend == "redis":
        from targetrun.store.redis import RedisStore

        return RedisStore(request.getfixturevalue("redis_url"))
    return SqliteStore(str(tmp_path / "state.db"))


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_acquire_many_takes_the_free_locks_and_only_those(tmp_path: Path, backend: str,
                                                         request: pytest.FixtureRequest) -> None:
    """The batch claim means what one claim after another means: free, expired and our own
    locks are taken; one another owner holds is not."""
    store = _stores(tmp_path, backend, request)
    assert store.acquire("held", "other", 60.0)  # type: ignore[attr-defined]
    assert store.acquire("expired", "other", 0.001)  # type: ignore[attr-defined]
    assert store.acquire("ours", "me", 60.0)  # type: ignore[attr-defined]
    time.sleep(0.05)
    taken = store.acquire_many(["free", "held", "expired", "ours"], "me", 60.0)  # type: ignore[attr-defined]
    assert taken == {"free", "expired", "ours"}
    assert [store.lock_owner(n) for n in ("free", "held", "expired", "ours")] == ["me", "other", "me", "me"]  # type: ignore[attr-defined]
    assert store.acquire_many([], "me", 60.0) == set()  # type: ignore[attr-defined]


def test_acquire_many_is_one_transaction_with_the_kept_writes(tmp_path: Path) -> None:
    """The claims of several tasks and their intents commit together, or (the store busy
    with another process's write) none of them does."""
    db = str(tmp_path / "state.db")
    store = SqliteStore(db, timeout=0.05)
    store.record_task_soon(_record("a"), _checkpoint("out/a.txt"))
    for name in "bc":
        store.intend_write_soon(PendingWrite("run-1", f"out/{name}.txt", f"out/.{name}.stage", "local"))
    with sqlite3.connect(db, isolation_level=None) as other:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(Exception, match="locked"):
            store.acquire_many(["target:out/b.txt", "target:out/c.txt"], "me", 60.0)
        other.execute("ROLLBACK")
    assert _rows(db, "SELECT count(*) FROM pending") == [(0,)] and _rows(db, "SELECT count(*) FROM locks") == [(0,)]
    assert store.acquire_many(["target:out/b.txt", "target:out/c.txt"], "me", 60.0) == {"target:out/b.txt",
                                                                                       "target:out/c.txt"}
    assert _rows(db, "SELECT staging FROM pending ORDER BY staging") == [("out/.b.stage",), ("out/.c.stage",)]
    assert _rows(db, "SELECT location FROM checkpoints") == [("out/a.txt",)]
    assert _rows(db, "SELECT name FROM locks ORDER BY name") == [("target:out/b.txt",), ("target:out/c.txt",)]


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_prepare_writes_prepares_each_record(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> None:
    store = _stores(tmp_path, backend, request)
    names = ["a", "b", "c"]
    for name in names:
        store.intend_write(PendingWrite("run-1", f"out/{name}.txt", f"out/.{name}.stage", "local"))  # type: ignore[attr-defined]
    store.prepare_writes([(f"out/.{n}.stage", _checkpoint(f"out/{n}.txt"), None) for n in names[:2]])  # type: ignore[attr-defined]
    found = {p.staging: p.checkpoint for p in store.pending_writes()}  # type: ignore[attr-defined]
    assert found == {"out/.a.stage": _checkpoint("out/a.txt"), "out/.b.stage": _checkpoint("out/b.txt"),
                     "out/.c.stage": None}


def test_prepare_writes_commit_together_or_not_at_all(tmp_path: Path) -> None:
    db = str(tmp_path / "state.db")
    store = SqliteStore(db, timeout=0.05)
    for name in "ab":
        store.intend_write(PendingWrite("run-1", f"out/{name}.txt", f"out/.{name}.stage", "local"))
    prepared = [(f"out/.{n}.stage", _checkpoint(f"out/{n}.txt"), None) for n in "ab"]
    with sqlite3.connect(db, isolation_level=None) as other:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(Exception, match="locked"):
            store.prepare_writes(prepared)
        other.execute("ROLLBACK")
    assert _rows(db, "SELECT count(*) FROM pending WHERE record IS NOT NULL") == [(0,)]
    store.prepare_writes(prepared)
    assert _rows(db, "SELECT count(*) FROM pending WHERE record IS NOT NULL") == [(2,)]


def test_locks_taken_one_by_one_are_let_go_when_the_store_fails_part_way(tmp_path: Path) -> None:
    """A store that takes locks one by one (the default acquire_many, as Redis uses) and
    fails on the third: the two it took are released before the error goes on up, so no
    lock is left that this run does not know it holds."""
    from targetrun.errors import CacheError
    from targetrun.store.base import StateStore

    class FailsOnTheThird(SqliteStore):
        def acquire(self, name: str, owner: str, lease: float) -> bool:
            if name == "c":
                raise CacheError("the store went away")
            return super().acquire(name, owner, lease)

    db = str(tmp_path / "state.db")
    store = FailsOnTheThird(db)
    with pytest.raises(CacheError):
        StateStore.acquire_many(store, ["a", "b", "c", "d"], "me", 60.0)
    assert _rows(db, "SELECT count(*) FROM locks") == [(0,)]
    assert StateStore.acquire_many(store, ["a", "b"], "me", 60.0) == {"a", "b"}
