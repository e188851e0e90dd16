"""Hostile review, round 9: a result URL's password in the state store, control characters
in every line a command prints, recovery's "a live run writes it" guard, and hostile input,
state and environment."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import fsspec
import pytest

from targetrun import liveness
from targetrun.resolve import LOCAL
from targetrun.storage.base import staging_sibling
from targetrun.store.base import PendingWrite, RunRecord
from targetrun.store.rooted import RootedStore
from targetrun.store.sqlite import SqliteStore
from tests.clirun import in_process, write_project
from tests import test_hosted_urls


servermem = test_hosted_urls.servermem  # fsspec's memory files, one store per server named in the URL


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


# -- a result URL's password is kept out of the state store ------------------------------------

STORED_PASSWORD = """\
name: hosted
{cache}tasks:
  one: {{shell: 'echo one > {{output}}', target: 'servermem://alice:s3cret@one.example:2121/out/a.txt'}}
  two: {{run: 'steps:two', target: 'servermem://alice:s3cret@two.example/out/b.pkl', cache_for: 1h}}
  three: {{run: 'steps:three', needs: [two], result: lake, target: c.pkl}}
results:
  lake: {{url: 'servermem://bob:s3cret@three.example/lake'}}
"""


def _everything_stored(root, redis_url: str | None) -> str:
    """Every text the state store holds (rows, JSON records, the compressed outcomes)."""
    import sqlite3
    import zlib

    if redis_url is not None:
        import redis

        client = redis.Redis.from_url(redis_url)
        said = []
        for key in client.scan_iter("*"):
            kind = client.type(key)
            value = (client.get(key) if kind == b"string" else client.hgetall(key) if kind == b"hash" else
                     client.zrange(key, 0, -1) if kind == b"zset" else client.smembers(key) if kind == b"set" else
                     client.lrange(key, 0, -1))
            said.append(repr((key, value)))
            for blob in value.values() if isinstance(value, dict) else [value]:
                if isinstance(blob, bytes):
                    with contextlib.suppress(zlib.error):
                        said.append(zlib.decompress(blob).decode("utf-8", "replace"))
        return "\n".join(said)
    db = sqlite3.connect(root / ".targetrun/state.db")
    said = []
    for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
        for row in db.execute(f"SELECT * FROM {table}"):
            said.append(repr(row))
            said += [zlib.decompress(cell).decode() for cell in row if isinstance(cell, bytes) and table == "blobs"]
    db.close()
    return "\n".join(said)


@pytest.mark.parametrize("store", ["sqlite", "redis"])
def test_a_result_urls_password_is_not_kept_in_the_state_store(tmp_path, servermem, store, request):
    """A target URL's password (``ftp://u:pw@host/``, a ``results:`` URL's) was stored as it
    was in every record of it: the checkpoint record and its key, the task record, the
    cache entry, the run's outcomes -- a user sharing state.db, or a Redis store many
    share, shared the password. The store now keeps each location without its password
    (the user and server stay: they tell one server's file from another's); the password
    comes from the Pipelinefile each time, and every command still reaches the files."""
    redis_url = request.getfixturevalue("redis_url") if store == "redis" else None
    cache = f"cache: {redis_url}\n" if redis_url else ""
    root = write_project(tmp_path, STORED_PASSWORD.format(cache=cache),
                         **{"steps.py": "def two():\n    return 2\n\ndef three(two):\n    return two + 1\n"})
    first = in_process(root, "run")
    assert first.returncode == 0, first.stdout + first.stderr
    del servermem[("three.example", 21)]["/lake/c.pkl"]
    again = in_process(root, "run")
    shown = in_process(root, "show", "three")
    status = in_process(root, "status", "--json")
    assert again.returncode == 0 and "skipped  two          target exists (until" in again.stdout \
        and "ran      three" in again.stdout, again.stdout
    assert shown.stdout == "3\n" and status.returncode == 0, shown.stdout + shown.stderr + status.stderr
    assert [t["recorded"] for t in json.loads(status.stdout)["tasks"]] == [True] * 3, status.stdout
    stored = _everything_stored(root, redis_url)
    assert "one.example" in stored and "three.example/lake/c.pkl" in stored  # (the place is kept)
    assert "s3cret" not in stored
    removed = in_process(root, "invalidate", "one")
    assert removed.returncode == 0 and "/out/a.txt" not in servermem[("one.example", 2121)], removed.stdout


def test_a_pending_write_kept_without_its_password_is_still_resolved(tmp_path, servermem):
    """What recovery reads back of a dead run's pending write on a server with a password
    is the location without it; the password the Pipelinefile gives is put back, so the
    staging file is found inside the result location and removed (not left as "another
    place's")."""
    root = write_project(tmp_path, STORED_PASSWORD.format(cache=""),
                         **{"steps.py": "def two():\n    return 2\n\ndef three(two):\n    return two + 1\n"})
    target = "servermem://bob:s3cret@three.example/lake/c.pkl"
    staging = staging_sibling(target, "20261201T000000-dead00-1-0a1b2c3d")
    fsspec.filesystem("servermem", host="three.example").pipe(staging, b"half")
    gone = subprocess.Popen(["true"])
    gone.wait()
    store = RootedStore(SqliteStore(str(root / ".targetrun/state.db")), str(root), "hosted")
    try:
        store.begin_run(RunRecord("20261201T000000-dead00", "hosted", time.time() - 60,
                                  owner=liveness.owner_id().rsplit("/", 1)[0] + f"/{gone.pid}", heartbeat=time.time() - 60))
        store.intend_write(PendingWrite("20261201T000000-dead00", target, staging, "servermem"))
    finally:
        store.close()
    assert "s3cret" not in _everything_stored(root, None)
    done = in_process(root, "status")
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(servermem[("three.example", 21)]) == [], "the staging file of a dead run was left"
    assert "c.pkl" not in _everything_stored(root, None), "the pending write of a dead run was kept"


# -- hostile environment: no file descriptor left ---------------------------------------------

HOARD = '''
import os
HELD = []

def hoard():
    """Open files until the process may open no more, then give one back."""
    try:
        while True:
            HELD.append(os.open(os.devnull, os.O_RDONLY))
    except OSError:
        pass
    os.close(HELD.pop())
    return {"b": 1}
'''


def test_no_file_descriptor_left_for_a_commands_pipe_is_said_without_a_traceback(tmp_path):
    """A Python task that leaves one file descriptor free (a leak, or ``ulimit -n`` reached):
    the next shell task's output pipe could not be made, and the failure was shown as the
    task's own exception with targetrun's traceback (``os.pipe()`` in engine/work.py). It
    is now said as a command that could not start, as when the shell itself cannot, with
    what to do."""
    from tests.clirun import targetrun

    root = write_project(tmp_path, "name: fds\ntasks:\n  b: {run: 'steps:hoard', target: out/b.json}\n"
                                   "  c: {shell: 'cat {needs.b} > {output}', needs: [b], target: out/c.txt}\n",
                         **{"steps.py": HOARD})
    done = targetrun(root, "run")
    said = done.stdout + done.stderr
    assert done.returncode == 1 and "Traceback" not in said and "work.py" not in said, said
    assert "FAILED   c            the command could not start: Too many open files" in said, said
    assert "ulimit -n" in said, said


# -- invalidate of a mapped task ----------------------------------------------------------------


def test_invalidate_of_a_mapped_task_removes_every_childs_target_and_cache_entries(tmp_path):
    """``invalidate a`` of a mapped task said "nothing to remove" and left every child's
    target and cache entry (its parent has no target of its own), though naming a child
    is refused with "Name 'a' (all its children)". Each child is now rendered and removed
    as a task's target is -- each checked first, before anything is touched; a task mapping
    over another's value (its children unknown until that is read) is refused, exit 2."""
    root = write_project(tmp_path, "name: mapped\nparams: {items: [x, y]}\ntasks:\n"
                                   "  a: {run: steps:f, foreach: '{params.items}', args: {i: '{item}'}, "
                                   "target: 'out/{item}.pkl', cache_for: 1h}\n"
                                   "  up: {run: steps:f, args: {i: [1, 2]}, target: out/up.pkl}\n"
                                   "  b: {run: steps:g, needs: {i: up}, foreach: {needs: up}, target: 'out/b{map_index}.pkl'}\n",
                         **{"steps.py": "def f(i):\n    return i\n\ndef g(i):\n    return i\n"})
    made = in_process(root, "run")
    assert made.returncode == 0 and (root / "out/x.pkl").exists() and (root / "out/b1.pkl").exists(), made.stdout
    (root / "out/mine.txt").write_text("not targetrun's")
    done = in_process(root, "invalidate", "a")
    assert done.returncode == 0, done.stdout + done.stderr
    assert not (root / "out/x.pkl").exists() and not (root / "out/y.pkl").exists(), done.stdout
    assert "target" in done.stdout and "cache entr" in done.stdout, done.stdout
    listed = in_process(root, "cache", "list", "--json")
    assert [e["task"] for e in json.loads(listed.stdout)] == [], listed.stdout
    refused = in_process(root, "invalidate", "b")
    said = refused.stdout + refused.stderr
    assert refused.returncode == 2 and "'up'" in said and "Traceback" not in said, said
    assert (root / "out/b0.pkl").exists() and (root / "out/b1.pkl").exists()


def test_show_reads_one_child_of_a_mapped_task(tmp_path):
    """``show a`` of a mapped task said each child has a value of its own; ``show 'a[1]'``
    then said "Name 'a' (all its children)": no child's value could be shown at all. A
    child is now shown as a task is (read under the same trust rule); an index beyond its
    items, or a task mapping over another's value, is one paragraph and exit 2."""
    root = write_project(tmp_path, "name: mapped\nparams: {items: [x, y]}\ntasks:\n"
                                   "  a: {run: steps:f, foreach: '{params.items}', args: {i: '{item}'}, "
                                   "target: 'out/{item}.pkl'}\n"
                                   "  up: {run: steps:f, args: {i: [1, 2]}, target: out/up.pkl}\n"
                                   "  b: {run: steps:f, needs: {i: up}, foreach: {needs: up}, target: 'out/b{map_index}.pkl'}\n",
                         **{"steps.py": "def f(i):\n    return i\n"})
    assert in_process(root, "run").returncode == 0
    one, where = in_process(root, "show", "a[1]"), in_process(root, "show", "--location", "a[0]")
    assert (one.returncode, one.stdout) == (0, "y\n"), one.stdout + one.stderr
    assert (where.returncode, where.stdout) == (0, f"{root}/out/x.pkl\n"), where.stdout + where.stderr
    (root / "out/y.pkl").write_bytes((root / "out/x.pkl").read_bytes() + b" ")
    for args, words in ((["show", "a[1]"], "not what targetrun wrote"), (["show", "a[2]"], "2 children"),
                        (["show", "b[0]"], "'up'"), (["show", "up[0]"], "not mapped"), (["show", "a[x]"], "a[x]")):
        done = in_process(root, *args)
        said = done.stdout + done.stderr
        assert done.returncode == 2 and words in said and "Traceback" not in said, (args, said)


def test_a_lock_on_a_target_url_is_kept_without_its_password(tmp_path):
    """A run's lock on a target is named by its location; a run killed while holding it
    left the password in the store's locks until the lease ran out (or for good in a row
    nobody took again). The name is kept without it; the caller still sees its own names."""
    import sqlite3

    store = RootedStore(SqliteStore(str(tmp_path / "state.db")), str(tmp_path), "p")
    name, other = "target:ftp://u:s3cret@h/x.txt", "target:ftp://u:s3cret@h/y.txt"
    try:
        assert store.acquire(name, "me", 60.0) and store.lock_owner(name) == "me"
        assert store.acquire_many([name, other], "me", 60.0) == {name, other}
        assert not store.acquire(other.replace("s3cret", "else"), "you", 60.0)  # the same file on the same server
        db = sqlite3.connect(tmp_path / "state.db")
        assert sorted(row[0] for row in db.execute("SELECT name FROM locks")) == [
            "target:ftp://u@h/x.txt", "target:ftp://u@h/y.txt"]
        store.release(name, "me")
        assert store.lock_owner(name) is None and store.lock_owner(other) == "me"
        db.close()
    finally:
        store.close()
