"""Rows another process wrote into the state store are data, not orders (README): a row of
the wrong shape -- a BLOB where text belongs, a number where a name belongs, JSON nested
past Python's recursion limit -- is skipped with one warning line, as if never written;
no command ends in a traceback (exit 4), and no file outside the project is touched.

Every row here is written by a second, real sqlite3 connection (or a real Redis client)
after a real run, never by a mock.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sqlite3
import zlib

import pytest

PIPELINE = """
name: hostile
tasks:
  a: {run: steps:const, args: {value: [1, 2, 3], name: a}, target: out/a.json}
  b: {run: steps:total, needs: {x: a}, args: {name: b}, target: out/b.pkl}
  c: {run: steps:inc, needs: {x: b}, args: {name: c}, cache_for: 1h}
"""
TOTAL = '''
def total(name="total", **values):
    _log(name)
    return sum(sum(v) if isinstance(v, list) else v for v in values.values())
'''
# Every command that reads rows back, as a user would type it (report: see _report).
COMMANDS = [("status",), ("status", "--json"), ("history",), ("history", "--json"), ("logs", "b"), ("show", "b"),
            ("show", "c"), ("cache", "list"), ("cache", "list", "--json"), ("invalidate", "b"), ("gc",), ("run",),
            ("cache", "clear"), ("run",)]
NESTED = "[" * 100_000  # json.loads raises RecursionError, not ValueError, on this


@pytest.fixture(autouse=True)
def _warnings_anew():
    """A store's warning is printed once per process; each test's commands are a new one."""
    from targetrun.store import base

    base._warned.clear()


@pytest.fixture
def ran(project, steps):
    proj = project(PIPELINE, steps=steps + TOTAL)
    assert proj.cli("run").code == 0
    return proj


def _write(proj, statement: str, *args: object) -> None:
    """What another process does to the store: its own connection, committed."""
    db = sqlite3.connect(proj.root / ".targetrun/state.db", isolation_level=None)
    try:
        assert db.execute(statement, args).rowcount >= 1, statement
    finally:
        db.close()


def _every_command_holds(proj, outside) -> None:
    """No command crashes (exit 4, a traceback); the file outside the project stays."""
    for command in COMMANDS:
        result = proj.cli(*command)
        assert result.code in (0, 1, 2, 3), (command, result.text[-2000:])
        assert "Traceback" not in result.text, (command, result.text[-2000:])
    report = proj.cli("report", "-f", str(proj.file), "-o", str(proj.root / "report.html"))
    assert report.code in (0, 2) and "Traceback" not in report.text, report.text[-2000:]
    assert outside.read_text() == "not targetrun's"


@pytest.fixture
def outside(tmp_path):
    path = tmp_path / "outside.pkl"
    path.write_text("not targetrun's")
    return path


# A BLOB stays a BLOB in a TEXT column (SQLite's type affinity converts numbers, not
# BLOBs): Python reads bytes where every reader expects str.
BLOBS = {
    "task record error": "UPDATE task_runs SET error = x'ff00' WHERE task = 'b'",
    "task record target": "UPDATE task_runs SET target = x'00' WHERE task = 'b'",
    "task record name": "UPDATE task_runs SET task = x'ff00' WHERE task = 'b'",
    "task record run id": "UPDATE task_runs SET run_id = x'ff00' WHERE task = 'b'",
    "run id": "UPDATE runs SET run_id = x'ff'",
    "run owner and counts": "UPDATE runs SET owner = x'ff', counts = x'fe', requested = x'fd'",
    "cache entry task and key": "UPDATE cache SET task = x'ff', key = x'fe'",
    "checkpoint location": "UPDATE checkpoints SET location = x'ff' WHERE task = 'b'",
    "pending write": "INSERT INTO pending VALUES (x'ff', x'fe', x'fd', x'fc', NULL, NULL, x'01')",
}


@pytest.mark.parametrize("statement", BLOBS.values(), ids=BLOBS.keys())
def test_a_blob_where_text_belongs_is_skipped_by_every_command(ran, outside, statement):
    _write(ran, statement)
    _every_command_holds(ran, outside)


def test_a_blob_task_record_is_skipped_with_a_warning(ran):
    _write(ran, "UPDATE task_runs SET error = x'ff00' WHERE task = 'b'")
    result = ran.cli("status", "--json")
    assert result.code == 0, result.text
    assert "skipped an unreadable task record" in result.err
    json.loads(result.out)  # stdout stays JSON


# Values of the wrong JSON type in a checkpoint record: every one a name or a fingerprint.
WRONG_TYPES = {
    "serializer is a number": "json_set(record, '$.serializer', 7)",
    "location is a number": "json_set(record, '$.location', 5)",
    "task is a list": "json_set(record, '$.task', json('[1]'))",
    "hash is a number": "json_set(record, '$.hash', 7)",
    "run id is null": "json_set(record, '$.run_id', json('null'))",
    "storage is a number": "json_set(record, '$.storage', 7)",
    "made_for is a list": "json_set(record, '$.made_for', json('[1]'))",
    "an input fingerprint is a list": "json_set(record, '$.inputs', json('{\"x\": [1]}'))",
    "a parameter fingerprint is a number": "json_set(record, '$.params', json('{\"name\": 5}'))",
    "a code digest is null": "json_set(record, '$.code', json('{\"steps.py:total\": null}'))",
    "a dep hash is a number": "json_set(record, '$.deps', json('{\"x\": 1}'))",
    "a dep stat is a list": "json_set(record, '$.dep_stats', json('{\"x\": [1, 2]}'))",
    "a made_with value is an object": "json_set(record, '$.made_with', json('{\"n\": {}}'))",
    "size is true": "json_set(record, '$.size', json('true'))",
}


@pytest.mark.parametrize("change", WRONG_TYPES.values(), ids=WRONG_TYPES.keys())
def test_a_checkpoint_record_of_the_wrong_types_is_skipped(ran, outside, change):
    _write(ran, f"UPDATE checkpoints SET record = {change} WHERE task = 'b'")
    _write(ran, f"UPDATE cache SET record = {change}")
    _every_command_holds(ran, outside)


def test_a_checkpoint_record_of_the_wrong_type_is_unrecorded_for_run(ran):
    """The record says nothing: the target is one nobody recorded (run asks for --trust,
    as for any pickle it did not write), never one read with a serializer named 7."""
    _write(ran, "UPDATE checkpoints SET record = json_set(record, '$.serializer', 7) WHERE task = 'b'")
    status = ran.cli("status", "--json")
    assert status.code == 0 and "skipped an unreadable checkpoint record" in status.err, status.text
    assert ran.cli("show", "b").code == 2


NESTED_ROWS = {
    "checkpoint record": ("UPDATE checkpoints SET record = ? WHERE task = 'b'", NESTED),
    "cache entry": ("UPDATE cache SET record = ?", NESTED),
    "pending write": ("INSERT INTO pending VALUES ('s', 'r', '{root}/out/b.pkl', 'local', ?, NULL, 0)", NESTED),
    "run outcomes": ("UPDATE blobs SET data = ?", zlib.compress(NESTED.encode())),
}


@pytest.mark.parametrize("row", NESTED_ROWS.values(), ids=NESTED_ROWS.keys())
def test_json_nested_past_the_recursion_limit_is_skipped(ran, outside, row):
    statement, value = row
    _write(ran, statement, value)
    _every_command_holds(ran, outside)


def test_a_nested_record_warns_once_and_status_goes_on(ran):
    _write(ran, "UPDATE checkpoints SET record = ? WHERE task = 'b'", NESTED)
    result = ran.cli("status")
    assert result.code == 0 and "skipped an unreadable checkpoint record" in result.err, result.text


def test_redis_records_of_the_wrong_shape_are_skipped(project, steps, redis_url, outside):
    import redis

    proj = project(f"cache: {redis_url}\n" + PIPELINE.lstrip("\n"), steps=steps + TOTAL)
    assert proj.cli("run").code == 0
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        last = client.hgetall("targetrun:last:hostile")
        record = json.loads(last["b"])
        client.hset("targetrun:last:hostile", "b", json.dumps({**record, "error": 5, "target": ["x"]}))
        checkpoints = [key for key in client.scan_iter("targetrun:ckpt:*") if key.endswith("b.pkl")]
        assert checkpoints
        for key in checkpoints:
            client.set(key, NESTED)
        for key in client.scan_iter("targetrun:cache:*"):
            if client.type(key) == "hash":
                for variant, text in client.hgetall(key).items():
                    doc = json.loads(text)
                    doc["checkpoint"]["serializer"] = 7
                    client.hset(key, variant, json.dumps(doc))
    finally:
        client.close()
    _every_command_holds(proj, outside)


LOCKED = """
name: locky
tasks:
  a: {run: steps:const, args: {value: 1, name: a}, target: out/a.json}
"""
# Lock rows no run could have written: a lease longer than its owner declares, an expiry
# that is not a number (SQLite orders text above every number: "held" forever), an owner
# that is not text. Each one stopped every later run of the target, for ever.
BOGUS_LOCKS = {
    "a lease far beyond its owner's": ("{owner}", 1e308),
    "an owner of another form, held for ever": ("someone", 1e308),
    "an expiry that is text": ("{owner}", "abc"),
    "an expiry of nan": ("\x1b[31m", "nan"),
    "an owner that is a blob": (b"\xff", 1e308),
}


@pytest.mark.parametrize("lock", BOGUS_LOCKS.values(), ids=BOGUS_LOCKS.keys())
def test_a_bogus_lock_row_neither_hangs_nor_crashes_a_run(project, steps, lock):
    proj = project(LOCKED, steps=steps)
    assert proj.cli("run").code == 0
    db = sqlite3.connect(proj.root / ".targetrun/state.db", isolation_level=None)
    try:  # the names the run's locks take, as the store sees them
        db.execute("CREATE TABLE seen (name TEXT)")
        db.execute("CREATE TRIGGER seen_lock AFTER INSERT ON locks BEGIN INSERT INTO seen VALUES (new.name); END")
        (proj.root / "out/a.json").unlink()
        assert proj.cli("run").code == 0
        names = [name for (name,) in db.execute("SELECT name FROM seen")]
        assert names
        (proj.root / "out/a.json").unlink()
        owner, expires = lock
        if isinstance(owner, str):  # a well-formed owner: this host, a live process (pytest's), lease 5 s
            from targetrun import liveness
            owner = owner.format(owner=f"{liveness.owner_id()}/someone-else/lease=5")
        db.executemany("INSERT OR REPLACE INTO locks VALUES (?, ?, ?)", [(name, owner, expires) for name in names])
    finally:
        db.close()
    result = subprocess.run([sys.executable, "-m", "targetrun", "run", "-f", str(proj.file)], capture_output=True,
                            text=True, timeout=30, env=dict(os.environ, TARGETRUN_LOCK_LEASE="2s"))
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stdout + result.stderr
    assert json.loads(proj.read("out/a.json")) == 1


def test_a_redis_lock_without_an_expiry_neither_hangs_nor_crashes_a_run(project, steps, redis_url):
    """Every run sets its lock with an expiry; a key without one is another client's data."""
    import redis

    proj = project(f"cache: {redis_url}\n" + LOCKED.lstrip("\n"), steps=steps)
    client = redis.Redis.from_url(redis_url)
    try:
        client.set(f"targetrun:lock:target:{proj.root / 'out/a.json'}", "someone")  # no PX: held for ever
        result = subprocess.run([sys.executable, "-m", "targetrun", "run", "-f", str(proj.file)], capture_output=True,
                                text=True, timeout=30, env=dict(os.environ, TARGETRUN_LOCK_LEASE="2s"))
    finally:
        client.close()
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stdout + result.stderr
    assert json.loads(proj.read("out/a.json")) == 1


# Text that is not UTF-8 (CAST of any bytes AS TEXT): Python's sqlite3 fails the whole
# query on it, so one such row made every command say "the store cannot be used".
NOT_UTF8 = {
    "task record error": "UPDATE task_runs SET error = CAST(x'eda080ff' AS TEXT) WHERE task = 'b'",
    "checkpoint record": "UPDATE checkpoints SET record = CAST(x'7b22eda080227d' AS TEXT) WHERE task = 'b'",
    "cache entry key": "UPDATE cache SET key = CAST(x'ff' AS TEXT)",
    "run counts": "UPDATE runs SET counts = CAST(x'ff' AS TEXT)",
}


@pytest.mark.parametrize("statement", NOT_UTF8.values(), ids=NOT_UTF8.keys())
def test_text_that_is_not_utf8_is_one_skipped_row(ran, outside, statement):
    _write(ran, statement)
    for command in [("status", "--json"), ("cache", "list", "--json"), ("history", "--json")]:
        result = ran.cli(*command)
        assert result.code == 0 and "cannot be used" not in result.err, (command, result.text)
        json.loads(result.out)
    _every_command_holds(ran, outside)
