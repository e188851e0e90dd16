"""A hostile review of the status replay (targetrun/status_replay.py) and of the stop
signals around the replays. The invariant: whenever the replay answers, it prints what the
full status prints at that moment, character for character -- whatever happened to the
targets, the store or the certificate meanwhile. Real files, real stores, real processes.
"""

from __future__ import annotations

import io
import os
import sqlite3
import stat
import time

from targetrun import api, status_replay
from targetrun.report.status import render_status

from tests.test_status_replay import PLAIN, certified

STORE = os.path.join(".targetrun", "state.db")


def _replayed(proj, now: float) -> str | None:
    out = io.StringIO()
    code = status_replay.answer(["status", "-f", str(proj.file)], out, now=now)
    return None if code is None else out.getvalue()


def _full(proj, now: float) -> str:
    out = io.StringIO()
    render_status(api.status(str(proj.file)), out, colour=False, now=now)
    return out.getvalue()


def assert_replay_is_the_full_status(proj) -> bool:
    """The invariant; whether the replay answered."""
    now = time.time()
    answer = _replayed(proj, now)
    if answer is not None:
        assert answer == _full(proj, now)
    return answer is not None


def _generations(path) -> tuple[int, int]:
    db = sqlite3.connect(path)
    try:
        return tuple(db.execute(f"SELECT coalesce((SELECT value FROM generations WHERE name = '{name}'), 0)")
                     .fetchone()[0] for name in ("records", "cache"))  # type: ignore[return-value]
    finally:
        db.close()


def _swap_store(source, destination) -> None:
    """Put ``source``'s content into ``destination``'s file, page by page (no trigger fires)."""
    src, dst = sqlite3.connect(source), sqlite3.connect(destination)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


def test_a_store_swapped_for_another_of_the_same_generation_is_not_replayed(project):
    """Two stores of one pipeline that saw as many changes hold the same generations: a
    counter from 0 is not an identity. Another one put in place must not be vouched for."""
    proj = certified(project)
    other = project(PLAIN)
    time.sleep(1.1)  # its runs end later: the last-run column tells the stores apart
    assert other.cli("run").code == 0
    os.remove(other.root / "out" / "d.txt")
    assert other.cli("status").code == 0
    # (counted from 0, as schema 6 did, both stores' generations were equal here)
    _swap_store(other.root / STORE, proj.root / STORE)
    assert_replay_is_the_full_status(proj)


def test_a_store_restored_from_a_backup_and_run_again_is_not_replayed(project):
    """A backup restored, and as many changes made since as the certified store saw:
    the same count, other records."""
    proj = project(PLAIN)
    assert proj.cli("run").code == 0
    os.remove(proj.root / "out" / "d.txt")
    backup = proj.root / "backup.db"
    _swap_store(proj.root / STORE, backup)
    assert proj.cli("run", "d").code == 0  # d's records: the certified store
    os.remove(proj.root / "out" / "d.txt")
    assert proj.cli("status").code == 0
    assert _replay_answers(proj)
    _swap_store(backup, proj.root / STORE)
    time.sleep(1.1)
    assert proj.cli("run", "d").code == 0  # as many changes, later
    os.remove(proj.root / "out" / "d.txt")
    assert_replay_is_the_full_status(proj)


def _replay_answers(proj) -> bool:
    return _replayed(proj, time.time()) is not None


def test_a_schema_6_store_is_upgraded_to_tagged_generations(tmp_path):
    from targetrun.store.sqlite import SCHEMA_VERSION, SqliteStore

    path = tmp_path / "state.db"
    SqliteStore(str(path)).close()
    db = sqlite3.connect(path)  # schema 6's counting triggers, the generations counted from 0
    for table, generation in (("cache", "cache"), ("checkpoints", "records"), ("task_runs", "records")):
        for change in ("INSERT", "UPDATE", "DELETE"):
            db.execute(f"DROP TRIGGER {table}_{change.lower()}_counted")
            db.execute(f"CREATE TRIGGER {table}_{change.lower()}_counted AFTER {change} ON {table} BEGIN INSERT INTO "
                       f"generations VALUES ('{generation}', 1) ON CONFLICT (name) DO UPDATE SET value = value + 1; END")
    db.execute("DELETE FROM generations")
    db.execute("ALTER TABLE pending DROP COLUMN absent")
    db.execute("PRAGMA user_version = 6")
    db.commit()
    db.close()
    SqliteStore(str(path)).close()
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 9
        seeded = _generations(path)
        db.execute("INSERT INTO checkpoints VALUES ('x', 'r', 't', '{}')")
        db.commit()
        records, cache = _generations(path)
        assert cache == seeded[1] and records not in (seeded[0], seeded[0] + 1, 0, 1)
    finally:
        db.close()


def _wide_project(root, rows: int = 800):
    """A pipeline whose status table is larger than a pipe holds (~64 KB), its targets there."""
    (root / "out").mkdir(parents=True)
    lines = ["name: wide", "tasks:"]
    for i in range(rows):
        name = f"task_{i:04d}_with_a_name_long_enough_to_fill_the_pipe"
        lines.append(f"  {name}: {{shell: 'echo > {{output}}', target: out/{name}.txt}}")
        (root / "out" / f"{name}.txt").write_text("x\n")
    (root / "Pipelinefile.yaml").write_text("\n".join(lines) + "\n")


def test_a_replayed_status_whose_reader_goes_away_mid_table_exits_141(tmp_path):
    """``targetrun status | head -1``: the reader goes away while the table is being
    written. The full status exits 141 (its final line's write fails); a write the kernel
    cut short is no error to Python, so the replay must see the reader gone as the full
    status does -- not exit 0 with half a table."""
    import subprocess
    import sys

    _wide_project(tmp_path)
    command = [sys.executable, "-m", "targetrun", "status"]
    first = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0 and len(first.stdout) > 100_000, first.stderr
    assert os.listdir(tmp_path / ".targetrun" / "replay")  # certified
    for _ in range(3):
        proc = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.read(10) == b"task      "
        time.sleep(0.3)  # the replay is blocked writing the table into the full pipe
        proc.stdout.close()
        with proc.stderr:
            said = proc.stderr.read()
        assert (proc.wait(timeout=60), said) == (141, b"")


# -- the invariant over random sequences of edits ------------------------------------------

def _target(proj, name: str):
    return proj.root / "out" / f"{name}.txt"


def _remove(path) -> None:
    """Whatever is there -- a file, a link, a FIFO (the next edit writing a file there would
    wait for a reader of it forever), an empty folder -- removed."""
    if path.is_dir() and not path.is_symlink():
        os.rmdir(path)
    elif os.path.lexists(path):
        os.remove(path)


def _rewrite_keeping_stat(path) -> None:
    if path.is_file() and not path.is_symlink():
        before = os.stat(path)
        path.write_bytes(bytes(reversed(path.read_bytes())))
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def _symlink_to_a_copy(proj, path) -> None:
    elsewhere = proj.root / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    copy = elsewhere / path.name
    copy.write_text("linked\n")
    _remove(path)
    os.symlink(copy, path)


def _run_without_fifos(proj, name: str) -> None:
    """A run (a FIFO target would hold its shell command forever: removed first)."""
    for path in (proj.root / "out").iterdir():
        if stat.S_ISFIFO(path.lstat().st_mode):
            os.remove(path)
    proj.cli("run", name)


def _sql_edit(proj, statement: str) -> None:
    db = sqlite3.connect(proj.root / STORE)
    try:
        db.execute(statement)
        db.commit()
    finally:
        db.close()


EDITS = {
    "delete": lambda proj, name: _remove(_target(proj, name)),
    "create": lambda proj, name: (_remove(_target(proj, name)), _target(proj, name).write_text(f"{name}\n")),
    "rewrite, stat kept": lambda proj, name: _rewrite_keeping_stat(_target(proj, name)),
    "touch": lambda proj, name: os.utime(_target(proj, name)) if _target(proj, name).exists() else None,
    "folder": lambda proj, name: (_remove(_target(proj, name)), os.mkdir(_target(proj, name))),
    "symlink": lambda proj, name: _symlink_to_a_copy(proj, _target(proj, name)),
    "fifo": lambda proj, name: (_remove(_target(proj, name)), os.mkfifo(_target(proj, name))),
    "run": lambda proj, name: _run_without_fifos(proj, name),
    "status": lambda proj, name: proj.cli("status"),
    "record removed": lambda proj, name: _sql_edit(proj, f"DELETE FROM checkpoints WHERE task = '{name}'"),
    "task record": lambda proj, name: _sql_edit(
        proj, "INSERT INTO task_runs VALUES (hex(randomblob(8)), 'plain', "
              f"'{name}', 'failed', 1e9, 1.0, 1, 'boom', NULL, 1e9, '')"),
    "Pipelinefile": lambda proj, name: proj.write(
        "Pipelinefile.yaml", PLAIN.replace(f"echo {name}", f"echo {name}{name}")
        if f"echo {name}{name}" not in proj.file.read_text() else PLAIN),
}


def test_whatever_happens_a_replayed_status_is_the_full_status(project):
    """Random sequences of edits of the targets, the store and the Pipelinefile, a status
    (certifying again) and a run among them: after each, at any moment, the replay is
    silent or prints what the full status prints."""
    from hypothesis import HealthCheck, example, given, settings, strategies as st

    names = st.sampled_from(["a", "b", "c", "d"])
    steps = st.lists(st.tuples(st.sampled_from(sorted(EDITS)), names), min_size=1, max_size=5)

    @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
    @given(steps=steps, later=st.sampled_from([0.0, 5.0, 75.0]))
    # a file written where a FIFO is: the edit must put it in the FIFO's place, not wait for a reader of it
    @example(steps=[("fifo", "a"), ("status", "a"), ("create", "a"), ("rewrite, stat kept", "a")], later=0.0)
    def check(steps, later):
        proj = certified(project)
        for edit, name in steps:
            try:
                EDITS[edit](proj, name)
            except OSError:  # a FIFO read by a run, a folder written: the edit, not the replay
                pass
            now = time.time() + later
            answer = _replayed(proj, now)
            if answer is not None:
                assert answer == _full(proj, now), (steps, edit, name)

    check()


def test_a_certificate_larger_than_any_real_one_is_not_read(tmp_path):
    """10,000 targets' certificate is ~1 MB: a file of 64 MB planted there (sparse: no disk
    spent) is left unread, not parsed into memory."""
    from targetrun import replay

    path = tmp_path / "certificate"
    with open(path, "wb") as f:
        f.truncate(64 << 20)
    began = time.monotonic()
    assert replay.read(str(path)) is None
    assert time.monotonic() - began < 1.0


# -- stop signals at any moment of a replay --------------------------------------------------

STOPS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")


def test_a_stop_at_any_moment_of_a_replay_is_quiet_and_leaves_the_store_whole(tmp_path):
    """`run -q` and `status` answered from their certificates, stopped by one or two signals
    at random moments: exit 0 or 128 + a signal's number, nothing on stderr, the store
    whole with no pending write, no certificate's temporary file left, and the next
    `run -q` a no-op. (Started with the signals blocked, as a launcher closes the gap of
    the interpreter's own start-up: targetrun unblocks them first thing.)"""
    import random
    import signal
    import subprocess
    import sys

    _wide_project(tmp_path, rows=200)
    command = [sys.executable, "-m", "targetrun"]
    for args in (["run", "-q"], ["run", "-q"], ["status"]):  # the first records the targets' runs
        assert subprocess.run([*command, *args], cwd=tmp_path, capture_output=True, timeout=60).returncode == 0
    stops = [getattr(signal, name) for name in STOPS]
    chance = random.Random(7)
    codes = set()
    for _ in range(16):
        args = chance.choice([["run", "-q"], ["status"]])
        proc = subprocess.Popen([*command, *args], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                preexec_fn=lambda: signal.pthread_sigmask(signal.SIG_BLOCK, stops))
        time.sleep(chance.uniform(0.0, 0.3))
        for signum in chance.sample(stops, chance.choice([1, 2])):
            proc.send_signal(signum)
            time.sleep(chance.uniform(0.0, 0.01))
        assert proc.stderr is not None
        with proc.stderr:
            said = proc.stderr.read()
        code = proc.wait(timeout=60)
        assert code in {0, *(128 + signum for signum in stops)} and said == b"", (args, code, said)
        codes.add(code)
    assert len(codes) > 1  # some were stopped
    db = sqlite3.connect(tmp_path / STORE)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("SELECT count(*) FROM pending").fetchone()[0] == 0
    finally:
        db.close()
    assert not [name for name in os.listdir(tmp_path / ".targetrun" / "replay") if name.endswith(".tmp")]
    last = subprocess.run([*command, "run", "-q"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert last.returncode == 0 and last.stdout.startswith("200 skipped"), last.stdout + last.stderr
