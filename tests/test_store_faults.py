"""State store faults: damaged rows, wrong clocks, a held write lock, a lock in another
PID namespace. Rows are damaged with the sqlite3 module (or redis-py) in the real store
that real ``targetrun`` processes wrote; nothing is mocked."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from targetrun import liveness
from targetrun.store.sqlite import SqliteStore

TASKS = '''
import os, time

def ok(name="ok", **upstream):
    with open(os.path.join(os.path.dirname(__file__), "calls.log"), "a") as f:
        f.write(f"{name} {time.time()}\\n")
    return name

def maybe_fail(boom=False, **upstream):
    if str(boom).lower() == "true":
        raise RuntimeError("boom")
    return "fine"
'''

PIPELINE = """
params: {{boom: false}}
cache: {cache}
tasks:
  a: {{run: tasks:ok, args: {{name: a}}, target: out/a.txt}}
  c: {{run: tasks:ok, args: {{name: c}}, cache_for: 1h}}
  t: {{run: tasks:ok, args: {{name: t}}, target: out/t.txt, cache_for: 1h}}
  f: {{run: tasks:maybe_fail, needs: [a], args: {{boom: "{{params.boom}}"}}, target: out/f.txt}}
"""


def make(tmp_path: Path, cache: str = ".targetrun/state.db", pipeline: str = PIPELINE) -> Path:
    folder = tmp_path / "p"
    folder.mkdir(exist_ok=True)
    (folder / "tasks.py").write_text(TASKS)
    (folder / "Pipelinefile.yaml").write_text(textwrap.dedent(pipeline.format(cache=cache)).lstrip())
    return folder


def targetrun(folder: Path, *args: str, env: dict[str, str] | None = None,
              timeout: float = 120) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "targetrun", *args[:1], "-f", str(folder / "Pipelinefile.yaml"),
                             *args[1:]], capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, **(env or {})})
    assert "internal error" not in result.stderr and result.returncode != 4, result.stderr  # the task's own traceback is fine
    return result


def calls(folder: Path) -> list[str]:
    log = folder / "calls.log"
    return [line.split()[0] for line in log.read_text().splitlines()] if log.exists() else []


# -- damaged rows --------------------------------------------------------------------------

DAMAGE = {
    "unknown run status": "UPDATE runs SET status = 'exploded'",
    "malformed start time": "UPDATE runs SET started = 'yesterday-ish'",
    "non-finite finish": "UPDATE runs SET finished = 'inf'",
    "unknown task state": "UPDATE task_runs SET state = 'teleported'",
    "malformed task time": "UPDATE task_runs SET finished = 'nan'",
    "malformed attempts": "UPDATE task_runs SET attempts = 'many'",
    "unreadable checkpoint": "UPDATE checkpoints SET record = '{not json'",
    "checkpoint from nowhere": "UPDATE checkpoints SET record = json_set(record, '$.written_at', 'inf')",
    "cache expiry text": "UPDATE cache SET expires = 'soon'",
    "cache record size": "UPDATE cache SET record = json_set(record, '$.size', 'big')",
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_row_is_reported_and_skipped_never_a_crash(tmp_path, damage):
    folder = make(tmp_path)
    first = targetrun(folder, "run", "-p", "boom=true")
    assert first.returncode == 1, first.stderr  # a and c succeeded, f failed: every table has rows
    db = sqlite3.connect(folder / ".targetrun/state.db")
    with db:
        assert db.execute(DAMAGE[damage]).rowcount > 0
    db.close()
    for command in (("history",), ("history", "--json"), ("status",), ("status", "--json"), ("cache", "list"),
                    ("run", "--dry-run"), ("run", "--resume"), ("run",)):
        result = targetrun(folder, *command)
        assert result.returncode in (0, 1, 2), (command, result.stderr)
        if command[-1] == "--json":
            json.loads(result.stdout)  # the warning is on stderr, the document intact
    final = targetrun(folder, "run", "--force-all")
    assert final.returncode == 0, final.stderr  # the store still works: the next writes replace the bad rows


def test_one_warning_line_names_what_was_skipped(tmp_path):
    folder = make(tmp_path)
    assert targetrun(folder, "run", "-p", "boom=true").returncode == 1
    db = sqlite3.connect(folder / ".targetrun/state.db")
    with db:
        db.execute("UPDATE runs SET status = 'exploded'")
        db.execute("INSERT INTO runs (run_id, pipeline, started, finished, status, requested, counts) "
                   "VALUES ('r2', 'p', 'x', NULL, 'exploded', '', '')")
    db.close()
    result = targetrun(folder, "history")
    assert result.returncode == 0
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "skipped an unreadable run record" in warnings[0], result.stderr
    assert "state.db" in warnings[0]


def test_damaged_redis_records_are_skipped(tmp_path, redis_url):
    import redis

    folder = make(tmp_path, cache=redis_url)
    assert targetrun(folder, "run", "-p", "boom=true").returncode == 1
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        run_id = client.zrange("targetrun:runs:p", 0, -1)[0]
        client.hset(f"targetrun:run:{run_id}", "status", "exploded")
        client.hset("targetrun:last:p", "a", json.dumps({"run_id": run_id, "state": "teleported", "finished": 1,
                                                        "duration": 0, "attempts": 1}))
        client.hset("targetrun:last:p", "f", "{not json")
        for key in client.keys("targetrun:cache:*"):
            for variant in client.hkeys(key):
                client.hset(key, variant, json.dumps({"pipeline": "p", "task": "c", "expires": "NaN"}))
        for key in client.keys("targetrun:ckpt:*"):
            client.set(key, "[1, 2]")
    finally:
        client.close()
    for command in (("history",), ("status", "--json"), ("cache", "list"), ("run", "--resume"), ("run",)):
        result = targetrun(folder, *command)
        assert result.returncode in (0, 1, 2), (command, result.stderr)
    assert "skipped an unreadable" in targetrun(folder, "status").stderr


# -- clocks --------------------------------------------------------------------------------


@pytest.mark.parametrize("now", ["inf", "-inf", "nan", "1e300", "-5"])
def test_a_now_that_is_not_a_usable_time_is_refused(tmp_path, now):
    folder = make(tmp_path)
    result = targetrun(folder, "run", env={"TARGETRUN_NOW": now})
    assert result.returncode == 2 and "TARGETRUN_NOW" in result.stderr, result.stderr
    assert not (folder / "out").exists()  # nothing ran, nothing was recorded with that time
    assert not (folder / ".targetrun/state.db").exists()


def _cached_c(folder: Path, env: dict[str, str] | None = None) -> str:
    result = targetrun(folder, "status", "--json", env=env)
    assert result.returncode == 0, result.stderr
    return {t["task"]: t for t in json.loads(result.stdout)["tasks"]}["c"]["state"]


def test_a_record_from_the_future_does_not_poison_later_commands(tmp_path):
    folder = make(tmp_path)
    future = str(time.time() + 10 * 365 * 86400)  # a clock ten years ahead wrote the records
    assert targetrun(folder, "run", env={"TARGETRUN_NOW": future}).returncode == 0
    assert _cached_c(folder, {"TARGETRUN_NOW": future}).startswith("cache hit")
    now_state = _cached_c(folder)
    assert now_state.startswith("will run"), now_state  # not "cache hit (until 2036)"
    assert "future" in now_state
    again = targetrun(folder, "run")
    assert again.returncode == 0
    assert calls(folder).count("c") == 2  # recomputed once with today's clock
    assert _cached_c(folder).startswith("cache hit")  # and the new entry is a normal one


def test_expiry_is_clamped_to_cache_for_when_it_shrinks_or_the_clock_goes_back(tmp_path):
    pipeline = PIPELINE.replace("cache_for: 1h", "cache_for: 3d")
    folder = make(tmp_path, pipeline=pipeline)
    written = time.time()
    assert targetrun(folder, "run", env={"TARGETRUN_NOW": str(written)}).returncode == 0
    two_hours = {"TARGETRUN_NOW": str(written + 7200)}
    assert _cached_c(folder, two_hours).startswith("cache hit")
    (folder / "Pipelinefile.yaml").write_text(textwrap.dedent(PIPELINE.format(cache=".targetrun/state.db")).lstrip())
    assert _cached_c(folder, two_hours).startswith("will run: cache expired")  # 1h now: the 3d expiry is not kept
    assert _cached_c(folder, {"TARGETRUN_NOW": str(written + 1800)}).startswith("cache hit")
    back = {"TARGETRUN_NOW": str(written - 3 * 86400)}  # the clock went back three days
    assert _cached_c(folder, back).startswith("will run"), _cached_c(folder, back)


# -- a second process holding the SQLite write lock ------------------------------------------

HOLDER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("COMMIT")
"""


def hold_write_lock(folder: Path, seconds: float) -> subprocess.Popen[str]:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder / ".targetrun/state.db"), str(seconds)],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    return holder


def test_a_write_lock_held_by_another_process_is_waited_for_then_a_clear_storage_error(tmp_path):
    folder = make(tmp_path)
    assert targetrun(folder, "run").returncode == 0  # creates the store
    holder = hold_write_lock(folder, 1.5)
    try:
        began = time.monotonic()
        result = targetrun(folder, "run", "--force-all")
        assert result.returncode == 0, result.stderr
        assert time.monotonic() - began >= 1.0  # it waited for the lock instead of failing
    finally:
        holder.communicate(timeout=30)
    holder = hold_write_lock(folder, 20)
    try:
        result = targetrun(folder, "run", "--force-all", env={"TARGETRUN_STORE_TIMEOUT": "0.5"})
        assert result.returncode == 3, result.stderr
        assert "stayed locked by another process" in result.stderr and "TARGETRUN_STORE_TIMEOUT" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1  # one paragraph
    finally:
        holder.kill()
        holder.communicate(timeout=30)
    assert targetrun(folder, "run", "--force-all").returncode == 0  # and fine once it is gone


def test_a_bad_store_timeout_is_a_usage_error(tmp_path):
    folder = make(tmp_path)
    result = targetrun(folder, "status", env={"TARGETRUN_STORE_TIMEOUT": "soon"})
    assert result.returncode == 2 and "TARGETRUN_STORE_TIMEOUT" in result.stderr


# -- a lock held in another PID namespace ---------------------------------------------------


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.mark.parametrize("namespace", ["ours", "another"])
@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_a_lock_of_a_dead_looking_pid_with_a_fresh_lease_is_not_broken(tmp_path, backend, namespace, request):
    """A holder on this host name whose PID is not alive *here* keeps its lock while it
    renews the lease: one in another PID namespace (a container with the same host name)
    is never judged by its PID, and one whose PID looks gone in ours still renews."""
    cache = request.getfixturevalue("redis_url") if backend == "redis" else ".targetrun/state.db"
    folder = make(tmp_path, cache=cache)
    if backend == "redis":
        from targetrun.store.redis import RedisStore

        store: object = RedisStore(cache)
    else:
        store = SqliteStore(str(folder / ".targetrun/state.db"))
    name = f"target:{folder / 'out/a.txt'}"
    here = liveness.owner_id().rsplit("/", 1)[0]  # host/pidns
    process = here if namespace == "ours" else f"{socket.gethostname()}/another-pid-namespace"
    owner = f"{process}/{_dead_pid()}/other-run/lease=2"
    assert store.acquire(name, owner, 2.0)  # type: ignore[attr-defined]
    stop = threading.Event()

    def heartbeat() -> None:  # the other namespace's holder, alive and renewing
        while not stop.wait(0.3):
            store.renew([name], owner, 2.0)  # type: ignore[attr-defined]

    beating = threading.Thread(target=heartbeat)
    beating.start()
    run = subprocess.Popen([sys.executable, "-m", "targetrun", "run", "a", "-f", str(folder / "Pipelinefile.yaml")],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(4)  # several of our heartbeats: a PID check alone would have broken the lock at once
        assert calls(folder) == [], "the lock of a live holder was broken"
    finally:
        stopped = time.time()
        stop.set()
        beating.join()
    out, err = run.communicate(timeout=60)
    assert run.returncode == 0, err
    started = float((folder / "calls.log").read_text().split()[1])
    assert started >= stopped  # taken over only after the holder stopped renewing
    store.close()  # type: ignore[attr-defined]


def test_a_lock_whose_holder_died_here_is_taken_over_in_seconds_not_at_its_lease(tmp_path):
    """A holder of this host and PID namespace that is gone (kill -9) and stopped renewing:
    the next run takes its lock after a few missed heartbeats, long before its lease ends."""
    folder = make(tmp_path)
    store = SqliteStore(str(folder / ".targetrun/state.db"))
    here = liveness.owner_id().rsplit("/", 1)[0]
    assert store.acquire(f"target:{folder / 'out/a.txt'}", f"{here}/{_dead_pid()}/dead-run/lease=60", 60.0)
    store.close()
    started = time.monotonic()
    result = targetrun(folder, "run", "a", timeout=60)
    assert result.returncode == 0, result.stderr
    assert calls(folder) == ["a"]
    assert time.monotonic() - started < 30  # the lease had 60 s to run


def test_invalidate_whose_store_stays_locked_says_the_target_is_already_gone(tmp_path):
    """The target goes first (a record without its target only makes the next run rewrite
    it); when the store then stays locked, the error says the file is gone and what to do
    -- not only "stayed locked", which reads as if nothing had happened."""
    folder = make(tmp_path)
    assert targetrun(folder, "run").returncode == 0
    assert (folder / "out/a.txt").exists()
    holder = hold_write_lock(folder, 20)
    try:
        result = targetrun(folder, "invalidate", "a", env={"TARGETRUN_STORE_TIMEOUT": "0.5"})
    finally:
        holder.kill()
        holder.communicate(timeout=30)
    assert result.returncode == 3, result.stderr
    assert "stayed locked" in result.stderr and "already removed" in result.stderr and "invalidate" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (folder / "out/a.txt").exists()
    again = targetrun(folder, "invalidate", "a")
    assert again.returncode == 0, again.stderr
