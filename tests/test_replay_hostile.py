"""A hostile review of the status replay (targetrun/status_replay.py) and of the stop
signals around the replays. The invariant: whenever the replay answers, it prints what the
full status prints at that moment, character for character -- whatever happened to the
targets, the store or the certificate meanwhile. Real files, real stores, real processes.
"""

from __future__ import annotations

import io
import os
import sqlite3
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
    db.execute("PRAGMA user_version = 6")
    db.commit()
    db.close()
    SqliteStore(str(path)).close()
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 7
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
