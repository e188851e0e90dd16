"""Hostile review, round 10: the HTML report under hostile values, and the trust
guarantees under faults (old state rows, killed writers, descriptor exhaustion)."""

from __future__ import annotations

import json
import os
import re

from tests import test_hosted_urls
from tests.clirun import in_process, write_project

servermem = test_hosted_urls.servermem  # fsspec memory files, one store per server named in the URL

BIDI = "\u202e\u2066"  # right-to-left override, left-to-right isolate: text shown other than it is


def test_a_huge_or_bidi_error_is_bounded_and_escaped_in_record_report_and_console(tmp_path):
    """A task whose exception text was 3 MB with a right-to-left override in it: the state
    store kept all 3 MB, the console's FAILED line printed all of it, and the HTML report held
    it three times (9 MB, no longer one bounded file) with the override as it was -- which
    turns ``gnp.exe`` round in a browser. An error is now kept and shown to a bounded length
    (its start, then how much was cut), and the report escapes format characters as the
    console does."""
    steps = ("def evil(**up):\n"
             f"    raise RuntimeError('boom {BIDI}gnp.exe <img src=x onerror=alert(1)> ' + 'B' * 3_000_000)\n")
    root = write_project(tmp_path / "p", "tasks:\n  bad: {run: 'steps:evil', target: out/b.pkl}\n",
                         **{"steps.py": steps})
    ran = in_process(root, "run", "-q", "--json")
    assert ran.returncode == 1
    assert len(ran.stdout) + len(ran.stderr) < 100_000, (len(ran.stdout), len(ran.stderr))
    assert "characters cut" in ran.stdout
    import sqlite3

    with sqlite3.connect(root / ".targetrun" / "state.db") as db:
        (kept,), = db.execute("SELECT max(length(error)) FROM task_runs").fetchall()
    assert 1000 < kept < 20_000
    assert in_process(root, "report", "-o", "r.html").returncode == 0
    page = (root / "r.html").read_text()
    assert len(page) < 200_000
    assert not any(c in page for c in BIDI)
    assert "\\u202e\\u2066gnp.exe" in page
    assert "<img" not in page and "&lt;img src=x" in page
    assert re.search(r"[0-9,]+ characters cut", page)


# -- local temporary files of a writer killed while writing to an object store ---------------


SLOW_STEPS = '''
import os, time

class Slow:
    def __reduce__(self):  # pickled into the local temporary file before the upload
        open("pickling", "w").close()
        time.sleep(60)
        return (int, (1,))

def slow():
    return Slow()
'''


def test_temporary_files_of_a_killed_writer_are_removed_by_a_later_run_never_a_live_ones(
        tmp_path, s3, s3_server, monkeypatch):
    """``kill -9`` of a run while it pickled a value into ``$TMPDIR/targetrun-out-*`` (the
    upload's local copy) and while a shell command wrote its ``{output}`` into
    ``$TMPDIR/targetrun-stage-*``: both stayed forever, and a later run could not tell them
    from a live run's. They now carry their process (``targetrun-out-TAG-PID-*``), and a later
    run removes those whose process is gone -- never one a live process still writes."""
    import signal
    import subprocess
    import sys
    import tempfile
    import time

    from targetrun import scratch

    temp = tmp_path / "tmp"
    temp.mkdir()
    options = (f"{{url: 's3://test-bucket/lake', options: {{key: testing, secret: testing, "
               f"client_kwargs: {{endpoint_url: '{s3_server.endpoint}'}}}}}}")
    root = write_project(tmp_path / "p", f"results: {{lake: {options}}}\ndefaults: {{result: lake}}\ntasks:\n"
                         "  py: {run: 'steps:slow', target: v.pkl}\n"
                         "  sh: {shell: 'echo hi > {output}; touch shelling; sleep 60', target: s.txt}\n",
                         **{"steps.py": SLOW_STEPS})
    with open(tmp_path / "said", "w") as said:
        run = subprocess.Popen([sys.executable, "-m", "targetrun", "run", "-q", "-j", "2"], cwd=root,
                               env={**os.environ, "TMPDIR": str(temp)}, stdout=said, stderr=said, start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while not ((root / "pickling").exists() and (root / "shelling").exists()) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert (root / "shelling").exists() and (root / "pickling").exists(), (tmp_path / "said").read_text()
    finally:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()
    left = sorted(p.name for p in temp.iterdir())
    assert any(n.startswith("targetrun-out-") for n in left) and any(n.startswith("targetrun-stage-") for n in left), left
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    monkeypatch.setattr(scratch, "_swept", True)
    fd, live = scratch.mkstemp("out")  # this process's: alive, so it stays
    os.close(fd)
    monkeypatch.setattr(scratch, "_swept", False)
    (root / "Pipelinefile.yaml").write_text("tasks:\n  py: {run: 'steps:one', target: v.pkl}\n")  # any later run
    (root / "steps.py").write_text("def one():\n    return 1\n")
    assert in_process(root, "run", "-q").returncode == 0
    assert sorted(p.name for p in temp.iterdir()) == [os.path.basename(live)]


# -- descriptor exhaustion (EMFILE) ----------------------------------------------------------


LEAKS = '''
import os
KEEP = []

def leak_all():
    try:
        while True:
            KEEP.append(open(os.devnull))
    except OSError:
        pass
'''


def test_no_descriptor_left_at_a_checkpoint_write_or_an_import_says_ulimit_n(tmp_path):
    """With every descriptor taken (a task leaking files under a low ``ulimit -n``), the
    checkpoint's first write said "Too many open files (Too many open files) ... Check that
    path", and an import that needed one more file was "importing 'leaky' failed: OSError:
    [Errno 24]": a shell command's start said what it is and what to do. Both now say it
    as that does (one paragraph, ``ulimit -n``)."""
    import resource
    import subprocess
    import sys

    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

    root = write_project(tmp_path / "p", "tasks:\n  t: {run: 'steps:leaky', target: out/a.pkl}\n",
                         **{"steps.py": LEAKS + "\ndef leaky():\n    leak_all()\n    return 1\n",
                            "importer.py": "import steps\nsteps.leak_all()\nimport other\n\ndef f():\n    return 1\n",
                            "other.py": "X = 1\n"})
    said = []
    for pipeline in ("tasks:\n  t: {run: 'steps:leaky', target: out/a.pkl}\n",
                     "tasks:\n  t: {run: 'importer:f', target: out/b.pkl}\n"):
        (root / "Pipelinefile.yaml").write_text(pipeline)
        done = subprocess.run([sys.executable, "-m", "targetrun", "run", "-q"], cwd=root, capture_output=True,
                              text=True, timeout=60, stdin=subprocess.DEVNULL, preexec_fn=low_limit)
        said.append(done)
    for done in said:
        assert done.returncode in (1, 2, 3), done
        assert "Traceback" not in done.stderr + done.stdout and "Errno" not in done.stderr + done.stdout, done
        assert "may open no more files" in done.stderr + done.stdout and "`ulimit -n`" in done.stderr + done.stdout, done
        assert "Check that path" not in done.stderr + done.stdout, done


# -- rows an older targetrun wrote with a result URL's password ------------------------------


def _as_an_older_targetrun_wrote_it(db_path) -> None:
    """The rows of a store as targetrun wrote them before locations were kept without their
    URL's password: every ``alice@``/``bob@`` of a location written ``alice:s3cret@``."""
    import sqlite3
    import zlib

    db = sqlite3.connect(db_path)
    with db:
        for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
            for column, kind in [(r[1], r[2]) for r in db.execute(f"PRAGMA table_info({table})")]:
                if kind == "TEXT":
                    db.execute(f"UPDATE {table} SET {column} = replace(replace({column}, '//alice@', '//alice:s3cret@'), "
                               "'//bob@', '//bob:s3cret@')")
        for key, data in db.execute("SELECT key, data FROM blobs").fetchall():
            text = zlib.decompress(data).decode().replace("//alice@", "//alice:s3cret@").replace("//bob@", "//bob:s3cret@")
            db.execute("UPDATE blobs SET data = ? WHERE key = ?", (zlib.compress(text.encode()), key))
        db.execute("INSERT INTO locks VALUES ('target:servermem://alice:s3cret@one.example:2121/out/a.txt', 'x/1/1', 0)")
    db.close()


def test_rows_an_older_targetrun_kept_with_a_urls_password_lose_it_when_the_store_is_opened(tmp_path, servermem):
    """Since locations are kept without their URL's password, new rows hold none -- but the
    rows an older targetrun wrote (checkpoint keys and records, task records, cache entries,
    outcomes, locks) kept it in state.db, and kept it there for good: nothing rewrote them. Opening
    the store now rewrites them once (schema 9), in one transaction, with SQLite's
    secure delete and the WAL truncated, so the password is in none of its files; every
    record is still found (the password comes from the Pipelinefile)."""
    from tests.test_hostile_review9 import STORED_PASSWORD, _everything_stored

    root = write_project(tmp_path, STORED_PASSWORD.format(cache=""),
                         **{"steps.py": "def two():\n    return 2\n\ndef three(two):\n    return two + 1\n"})
    assert in_process(root, "run").returncode == 0
    state = root / ".targetrun" / "state.db"
    import sqlite3

    with sqlite3.connect(state) as db:
        db.execute("PRAGMA user_version = 8")  # (the schema before this rewrite)
    _as_an_older_targetrun_wrote_it(state)
    assert "s3cret" in _everything_stored(root, None)
    again = in_process(root, "run")
    assert again.returncode == 0 and "ran" not in again.stdout, again.stdout + again.stderr
    status = in_process(root, "status", "--json")
    assert [t["recorded"] for t in json.loads(status.stdout)["tasks"]] == [True] * 3, status.stdout
    assert "s3cret" not in _everything_stored(root, None)
    for name in ("state.db", "state.db-wal"):
        if (root / ".targetrun" / name).exists():
            assert b"s3cret" not in (root / ".targetrun" / name).read_bytes(), name


def _as_an_older_targetrun_wrote_it_in(redis_url: str) -> None:
    """The keys of a Redis store as targetrun wrote them before locations were kept without
    their URL's password (names, hash fields and values, records, outcomes)."""
    import zlib

    import redis

    def old(raw: bytes) -> bytes:
        return raw.replace(b"//alice@", b"//alice:s3cret@").replace(b"//bob@", b"//bob:s3cret@")

    client = redis.Redis.from_url(redis_url)
    client.delete("targetrun:schema:bare-locations")
    for key in list(client.scan_iter("targetrun:*")):
        kind = client.type(key)
        if kind == b"hash":
            fields = client.hgetall(key)
            client.delete(key)
            client.hset(key, mapping={old(f): old(v) for f, v in fields.items()})
        elif kind == b"string":
            value = client.get(key)
            if key.endswith(b":outcomes"):
                client.set(key, zlib.compress(old(zlib.decompress(value))))
            else:
                client.set(key, old(value))
        if old(key) != key:
            client.rename(key, old(key))
    client.set("targetrun:lock:target:servermem://alice:s3cret@one.example:2121/out/a.txt", "x/1/1", px=600_000)


def test_keys_an_older_targetrun_kept_with_a_urls_password_in_redis_lose_it_when_the_store_is_opened(
        tmp_path, servermem, redis_url):
    """As for SQLite: a Redis store's keys an older targetrun wrote kept the password for
    good. Opening it now rewrites them once, key by key, and marks it done."""
    from tests.test_hostile_review9 import STORED_PASSWORD, _everything_stored

    root = write_project(tmp_path, STORED_PASSWORD.format(cache=f"cache: {redis_url}\n"),
                         **{"steps.py": "def two():\n    return 2\n\ndef three(two):\n    return two + 1\n"})
    assert in_process(root, "run").returncode == 0
    _as_an_older_targetrun_wrote_it_in(redis_url)
    assert "s3cret" in _everything_stored(root, redis_url)
    again = in_process(root, "run")
    assert again.returncode == 0 and "ran" not in again.stdout, again.stdout + again.stderr
    status = in_process(root, "status", "--json")
    assert [t["recorded"] for t in json.loads(status.stdout)["tasks"]] == [True] * 3, status.stdout
    assert "s3cret" not in _everything_stored(root, redis_url)


# -- a Redis store holding bytes that are not UTF-8 -------------------------------------------


def test_bytes_that_are_not_utf8_in_redis_keys_are_read_around_not_a_traceback(tmp_path, redis_url):
    """A field or value that is not UTF-8 text under ``targetrun:`` (another program's
    bytes, a truncated write) made every command end with redis-py's UnicodeDecodeError and
    targetrun's traceback (exit 4): ``run``, ``status``, ``show``, ``gc``. Such a row is now
    read as unreadable text -- skipped as a damaged record is -- and the commands go on."""
    import redis

    root = write_project(tmp_path, f"name: u\ncache: {redis_url}\n"
                                   "tasks:\n  a: {shell: 'echo a > {output}', target: out/a.txt}\n")
    assert in_process(root, "run", "-q").returncode == 0
    client = redis.Redis.from_url(redis_url)
    client.hset("targetrun:pending", b"\xff\xfe/tmp/x", b"\xff")
    client.hset("targetrun:last:u", b"\xffa", b"\xff{")
    for key in client.keys("targetrun:ckpt:*"):
        client.set(key, b"\xff\xfe")
    client.close()
    said = [in_process(root, *args) for args in (["run", "-q"], ["status", "--json"], ["history"], ["gc", "--dry-run"])]
    for done in said:
        assert done.returncode in (0, 1), done
        assert "Traceback" not in done.stdout + done.stderr and "UnicodeDecodeError" not in done.stdout + done.stderr, done


# -- show of a pickle target that is gone ------------------------------------------------------


def test_show_of_a_pickle_target_that_is_gone_says_so_instead_of_asking_for_trust(tmp_path):
    """``show`` of a task whose pickle target was removed (``invalidate``, by hand) said it
    "is a pickle checkpoint that no targetrun run recorded ... Pass --trust" -- of a file
    that does not exist, sending the user to ``--trust`` (which then said it does not exist).
    A missing file is now said to be missing, whatever the trust."""
    root = write_project(tmp_path, "tasks:\n  a: {run: 'steps:a', target: out/a.pkl}\n",
                         **{"steps.py": "def a():\n    return 1\n"})
    assert in_process(root, "run", "-q").returncode == 0
    assert in_process(root, "invalidate", "a").returncode == 0
    shown = in_process(root, "show", "a")
    assert shown.returncode == 2, shown
    assert "does not exist" in shown.stderr and "--trust" not in shown.stderr, shown.stderr


# -- a value holding text that is not Unicode --------------------------------------------------


def test_a_value_with_a_lone_surrogate_is_a_one_paragraph_failure_not_targetruns_traceback(tmp_path):
    """A task returning text with a lone surrogate (``os.fsdecode`` of a file name's
    undecodable bytes gives them: ``'a\\udcffb'``) to a JSON, text or bytes target failed
    with ``UnicodeEncodeError`` and targetrun's own serializer frames as its traceback. It
    is now said as a value the format cannot write (where, and what to do), as a value of
    the wrong type is, and not retried."""
    steps = ("def s():\n    return 'a\\udcffb'\n\ndef k():\n    return {'\\udcff': 1}\n\n"
             "def b():\n    return 'x\\udcff'\n")
    root = write_project(tmp_path, "tasks:\n  t: {run: 'steps:s', target: out/t.txt}\n"
                                   "  j: {run: 'steps:k', target: out/j.json}\n"
                                   "  b: {run: 'steps:b', target: out/b.bin, serializer: bytes}\n",
                         **{"steps.py": steps})
    done = in_process(root, "run", "-k")
    assert done.returncode in (1, 2), done
    said = done.stdout + done.stderr
    assert "Traceback" not in said and "builtin.py" not in said, said
    assert said.count("not Unicode text") == 3, said
    logs = "".join(p.read_text() for p in (root / ".targetrun" / "logs").rglob("*.txt"))
    assert "builtin.py" not in logs, logs


# -- a live run whose run record is gone -------------------------------------------------------


def test_a_live_runs_half_written_output_is_left_when_its_run_record_is_gone(tmp_path):
    """A run's row deleted from the store while it runs (a hand's ``DELETE``, a Redis key
    expired or removed): the next command's recovery took the run for dead, removed the
    staging file its command was writing, and the command went on writing a new one -- the
    run then committed ``done`` where it wrote ``halfdone``, a half-written target, recorded.
    A pending write whose run has no record is now left while a live holder of its target's
    lock names that run."""
    import signal
    import sqlite3
    import subprocess
    import sys
    import time

    root = write_project(tmp_path, "name: gone\ntasks:\n  s: {shell: 'printf half > {output}; touch started; "
                                   "while [ ! -e go ]; do sleep 0.02; done; printf done >> {output}', target: out/s.txt}\n")
    run = subprocess.Popen([sys.executable, "-m", "targetrun", "run", "-q"], cwd=root, start_new_session=True,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not (root / "started").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        with sqlite3.connect(root / ".targetrun" / "state.db") as db:
            assert db.execute("DELETE FROM runs").rowcount == 1
        assert in_process(root, "status").returncode == 0  # its recovery looks at the pending write
        (root / "go").touch()
        out, _ = run.communicate(timeout=30)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.communicate()
    assert run.returncode == 0, out
    assert (root / "out" / "s.txt").read_text() == "halfdone"


def test_no_name_planted_in_tmpdir_makes_the_sweep_fail_a_run(tmp_path, monkeypatch):
    """Anyone can name a file in a shared ``$TMPDIR`` like a temporary file of targetrun's:
    one with a process number no process can have (``targetrun-out-TAG-99999999999999999999-x``)
    made ``os.kill`` raise OverflowError -- every later run of every project ended with an
    internal error (exit 4) before it began. Such a name is no process of ours: left alone."""
    import tempfile

    from targetrun import scratch

    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    planted = [temp / f"targetrun-out-{scratch._tag()}-{pid}-x" for pid in ("99999999999999999999", "0", "00")]
    for path in planted:
        path.write_text("not ours")
    assert scratch.sweep() == 0
    assert all(path.exists() for path in planted)


def test_a_credential_the_cut_of_a_long_error_crosses_is_never_shown_in_part():
    """A long error whose earlier credentials masking shrank: the kept start reached the
    end of the window masked with it, where a URL cut by that window had lost its '@' and
    was not masked -- 'ftp://deploy:Hunter2...' was recorded and printed (review)."""
    from targetrun.redact import bounded

    secret = "Hunter2SuperSecretPassw0rd"
    crowd = ("password=" + "s" * 1000 + " ") * 74
    url = f"ftp://deploy:{secret}@db.internal/x more"
    for pad in (758, 775):  # (about 770: the URL crosses the masked window's end)
        text = crowd + "x" * pad + url + " tail " * 20_000
        for kept in (bounded(text, 10_000), bounded(text, 10_000, tail=20_000), bounded(url + text, 10, tail=10)):
            assert "Hunter2" not in kept and "Sup" + "erSecret" not in kept, pad


def test_ctrl_c_during_the_store_upgrade_is_an_interruption_not_a_damaged_store(tmp_path):
    """A stop that lands in the schema 9 rewrite's own SQL function came out as "user-defined
    function raised exception" -- exit 3 with the hint to move state.db aside (its records
    and history forgotten) for a store that was whole: it is exit 130, and the store is
    still the old one, rows and all, for the next command to upgrade (review)."""
    import signal
    import sqlite3
    import subprocess
    import sys
    import time

    root = write_project(tmp_path, "tasks:\n  a: {shell: \"echo 1 > {output}\", target: out/a.txt}\n")
    assert in_process(root, "run").returncode == 0
    with sqlite3.connect(root / ".targetrun" / "state.db") as db:
        row = db.execute("SELECT * FROM task_runs").fetchone()
        db.executemany(f"INSERT INTO task_runs VALUES ({', '.join('?' * len(row))})",
                       [(f"run{i:07d}", *row[1:7], f"ftp://u:s3cret@h/x{i}", f"ftp://u:s3cret@h/t{i}.txt", *row[9:])
                        for i in range(60_000)])
        db.execute("PRAGMA user_version = 8")
    status = subprocess.Popen([sys.executable, "-m", "targetrun", "status"], cwd=root, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)  # the upgrade of 60,000 rows takes several seconds
    status.send_signal(signal.SIGINT)
    err = status.communicate(timeout=60)[1]
    assert status.returncode == 130, err
    assert "move it aside" not in err and "Traceback" not in err, err
    with sqlite3.connect(root / ".targetrun" / "state.db") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 8
        assert db.execute("SELECT count(*) FROM task_runs").fetchone()[0] == 60_001
