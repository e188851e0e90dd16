"""More of the world breaking while a run goes on (tests/test_world_faults.py has the first):

* a worker process of the processes executor killed (the kernel's OOM killer, kill -9)
  while a task that may be retried runs in it;
* Redis refusing writes mid-run: out of memory (``maxmemory`` with ``noeviction``) or made
  a read-only replica;
* the disk under ``.targetrun/`` full while the spec cache is written.

Each: exit code from targetrun/errors.py with one paragraph that says what broke and what
to do, never a traceback, nothing half-written, and a plain re-run after the fault is
cleared finishes.
"""

from __future__ import annotations

import json

import pytest

KILLED = '''
import os, signal

def die_once(flag, started):
    """The kernel's OOM killer, the first time: the worker running this is SIGKILLed --
    once ``beside`` runs in the other worker (so it is surely running then)."""
    import time
    if not os.path.exists(flag):
        for _ in range(500):
            if os.path.exists(started):
                break
            time.sleep(0.01)
        open(flag, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    return "survived"

def after(**upstream):
    return sorted(upstream.values())

def beside(started, flag):
    """Runs while the other task's worker is killed: it tells it is running, then runs on
    until that worker is about to die and a moment more."""
    import time
    open(started, "w").close()
    for _ in range(500):
        if os.path.exists(flag):
            break
        time.sleep(0.01)
    time.sleep(0.5)
    return "beside"
'''


def test_a_worker_killed_under_a_task_with_retries_is_retried_in_a_new_pool(project, tmp_path):
    """A pool whose worker died is broken for good: the retry's submit raised
    BrokenProcessPool out of the engine -- "internal error", a traceback, exit 4. The
    executor now starts a new pool, the retry runs there, and the run succeeds; the
    lost attempt says which signal ended its worker. A task running beside it (or waiting
    for a worker), which the broken pool ended too, failed "the executor lost the task"
    (exit 3 without retries of its own): it is now run again, as make -j runs the jobs
    beside one that was killed to their end."""
    proj = project(f"""
    defaults: {{serializer: json}}
    tasks:
      k: {{run: killed:die_once, args: {{flag: "{tmp_path / 'flag'}", started: "{tmp_path / 'started'}"}},
          target: out/k.json, max_retries: 1}}
      then: {{run: killed:after, needs: [k], target: out/then.json}}
      beside: {{run: killed:beside, args: {{started: "{tmp_path / 'started'}", flag: "{tmp_path / 'flag'}"}},
               target: out/beside.json, max_retries: 1}}
    """, killed=KILLED)
    done = proj.cli("run", "--executor", "processes", "-j", "2", "then", "beside")
    assert "Traceback" not in done.text, done.text
    assert done.code == 0, done.text
    assert "a worker process of the pool was killed by signal 9 (SIGKILL" in done.out, done.out
    assert json.loads(proj.read("out/then.json")) == ["survived"]
    assert json.loads(proj.read("out/beside.json")) == "beside"
    assert "FAILED" not in done.out, done.out
    # (`beside`, running when the pool broke, lost an attempt: its own retry runs it again)


# -- Redis refusing writes mid-run ----------------------------------------------------------

REFUSER = '''
import redis

def make(name, **upstream):
    return name

def refuse(url, how, full="", **upstream):
    """Redis stops taking writes while this task runs: out of memory, made a replica, or
    its snapshot failing on a full disk (``full``)."""
    import time
    client = redis.Redis.from_url(url)
    if how == "oom":
        client.config_set("maxmemory", "1")  # with the default noeviction: every write refused
    elif how == "replica":
        client.replicaof("127.0.0.1", "1")  # a replica of nothing: read-only, its data kept
    else:
        client.config_set("dir", full)
        client.config_set("stop-writes-on-bgsave-error", "yes")
        client.config_set("save", "3600 1")  # writes stop only on a server that is to save
        client.bgsave()
        while client.info("persistence")["rdb_last_bgsave_status"] == "ok":
            time.sleep(0.01)
    client.close()
    return "b"
'''


@pytest.mark.parametrize("how, says, hint", [
    ("oom", "is out of memory (maxmemory) and refuses writes", "raise its maxmemory"),
    ("replica", "is a read-only replica and refuses writes", "Point `cache:` at the primary"),
    ("misconf", "cannot save its data to its disk and refuses writes", "Make room on the Redis server's disk"),
])
def test_redis_refusing_writes_mid_run_says_why(project, redis_url, tmp_path, tmpfs, how, says, hint):
    """Redis refusing writes (OutOfMemoryError, ReadOnlyError) was "the state store ...
    failed: OutOfMemoryError: Command # 1 (HSET targetrun:last:... {"run_id": ...) of
    pipeline caused error: ...", with the hint "Check that Redis is running and the URL in
    `cache:` is right" -- it is running and the URL is right, and the failed command's
    arguments (records, values) were printed. Now: what Redis refuses and what to do."""
    import redis

    full = tmp_path / "full"
    full.mkdir()
    if how == "misconf":
        tmpfs(full, "size=16k")
        (full / "filler").write_bytes(b"\0" * 16384)
    proj = project(f"""
    cache: {redis_url}
    defaults: {{serializer: json}}
    tasks:
      a: {{run: refuser:make, args: {{name: a}}, target: out/a.json}}
      b: {{run: refuser:refuse, args: {{url: "{redis_url}", how: {how}, full: "{full}"}}, needs: [a],
          target: out/b.json}}
    """, refuser=REFUSER)
    client = redis.Redis.from_url(redis_url)
    folder = client.config_get("dir")["dir"]
    try:
        done = proj.cli("run")
        assert done.code == 3, done.text
        assert "Traceback" not in done.text and "Command #" not in done.text and "HSET" not in done.text, done.text
        assert f"the state store {redis_url} {says}" in done.err and hint in done.err, done.err
        assert not proj.exists("out/b.json")
    finally:
        client.config_set("maxmemory", "0")
        client.replicaof("NO", "ONE")
        client.config_set("dir", folder)
        client.config_set("save", "")  # as tests/backends.py starts it
        # b's lock could not be released by a read-only replica, and its holder is this very
        # process, alive: the next run would wait out its lease (a run in a process of its
        # own takes over a dead holder's lock at once: tests/test_store_faults.py)
        for key in client.scan_iter("targetrun:lock:*"):
            client.delete(key)
        client.close()
    (proj.root / "refuser.py").write_text(REFUSER.replace("client = redis.Redis.from_url(url)", "return 'b'"))
    again = proj.cli("run", "--json")
    assert again.code == 0, again.text
    assert {t["task"]: t["state"] for t in json.loads(again.out)["tasks"]} == {"a": "skipped", "b": "succeeded"}


# -- the disk under .targetrun/ full ---------------------------------------------------------

CHATTY = '''
def chatty():
    print("a line the task printed " * 2000)
    return "made"
'''


def test_a_full_disk_under_the_logs_is_said_and_leaves_nothing_half_written(project, tmpfs):
    """The state store elsewhere, ``.targetrun/`` on a full disk: the run succeeds (a log is
    no target), but what the task printed was lost without a word -- and `targetrun logs`
    then said "attempt None printed nothing" from the empty file left behind. The spec
    cache left a ``.tmp-`` file per command. Now: one warning naming the log and why, no
    empty or half-written log, no temporary file."""
    proj = project("""
    cache: state.db
    tasks:
      a: {run: chatty:chatty, target: out/a.txt, serializer: text}
    """, chatty=CHATTY)
    folder = proj.root / ".targetrun"
    folder.mkdir()
    tmpfs(folder, "size=64k")
    (folder / "filler").write_bytes(b"\0" * 65536)  # every block taken (this write itself stops short)
    done = proj.cli("run")
    assert done.code == 0, done.text
    assert "targetrun: warning: " in done.err and "the disk is full" in done.err, done.err
    assert "a.log" in done.err and "what the task printed is not kept" in done.err, done.err
    assert proj.read("out/a.txt") == "made"
    left = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert left == ["filler"], left
    shown = proj.cli("logs", "a")
    assert "attempt None" not in shown.text, shown.text


def test_a_report_on_a_full_disk_is_the_disks_error_not_a_wrong_path(project, tmpfs):
    """`report -o` (and `run --report`) on a full disk was exit 2 with "Give -o a writable
    file path" -- the path is fine, and `run` has no -o. Now: exit 3, the disk is full, make
    room; `run --report` keeps its own exit code; no temporary file is left."""
    proj = project("tasks:\n  a: {run: chatty:chatty, target: out/a.txt, serializer: text}\n", chatty=CHATTY)
    full = proj.root / "reports"
    full.mkdir()
    tmpfs(full, "size=16k")
    (full / "filler").write_bytes(b"\0" * 16384)
    done = proj.cli("run", "--report", str(full / "r.html"))
    assert done.code == 0, done.text
    assert "the report was not written" in done.err and "the disk is full" in done.err, done.err
    assert "Give -o" not in done.err, done.err
    shown = proj.cli("report", "-f", str(proj.file), "-o", str(full / "r.html"))
    assert shown.code == 3, shown.text
    assert f"cannot write the report to {full / 'r.html'}: the disk is full" in shown.err, shown.err
    assert "Make room on that disk" in shown.err and "Traceback" not in shown.text, shown.err
    assert sorted(p.name for p in full.iterdir()) == ["filler"]


def test_a_state_store_stopped_by_the_file_size_limit_is_not_called_damaged(project):
    """``ulimit -f`` stopping the SQLite store from growing: SQLite says "disk I/O error",
    and the hint was that of a damaged store -- move it aside, losing its cache entries and
    history for nothing. Now: the limit is named, and to raise it; the store is kept."""
    import resource

    proj = project("""
    cache: state.db
    tasks:
      a: {run: chatty:chatty, target: out/a.txt, serializer: text}
    """, chatty=CHATTY)
    assert proj.cli("run").code == 0
    size = (proj.root / "state.db").stat().st_size
    before = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, before[1]))  # (Python ignores SIGXFSZ: EFBIG instead)
    try:
        done = proj.cli("run", "--force-all")
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, before)
    assert done.code == 3, done.text
    assert f"it may not grow past {size} bytes" in done.err and "`ulimit -f`" in done.err, done.err
    assert "move it aside" not in done.err and "Traceback" not in done.text, done.err
    again = proj.cli("run", "--force-all")
    assert again.code == 0, again.text


TERMED = '''
import os, signal, time

def term_own_worker(log):
    """A task whose worker gets SIGTERM from outside (an admin's `kill`, a supervisor): it
    did its work (the log line) before it was ended."""
    with open(log, "a") as f:
        f.write(f"{os.getpid()}\\n")
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(5)

def beside():
    time.sleep(0.3)
    return "beside"
'''


def test_a_task_whose_own_worker_was_ended_runs_no_more_often_than_its_retries_allow(project, tmp_path):
    """The exit code of a worker ended by SIGTERM cannot tell the pool's from anyone's: a
    task without retries whose own worker got SIGTERM was 'spared' and ran twice (review)."""
    log = tmp_path / "attempts.log"
    proj = project(f"""
    defaults: {{serializer: json}}
    tasks:
      t: {{run: termed:term_own_worker, args: {{log: "{log}"}}, target: out/t.json}}
      beside: {{run: termed:beside, target: out/beside.json, max_retries: 1}}
    """, termed=TERMED)
    done = proj.cli("run", "--executor", "processes", "-j", "2", "--keep-going")
    assert "Traceback" not in done.text, done.text
    assert done.code == 3, done.text  # the executor lost t's only attempt
    assert len(log.read_text().splitlines()) == 1, done.text
    assert json.loads(proj.read("out/beside.json")) == "beside"
