"""The no-op replay (targetrun/replay.py, targetrun/certify.py): a repeated `run -q` is
answered from the last identical no-op's certificate -- and only while everything its
decisions rested on still holds. The invariant under test: whichever path answers, the
command says and records what the full run says and records.

Commands run as real processes (`python -m targetrun`, the console script's path); one
answered by the replay never imports the CLI, which `-X importtime` shows.
"""

from __future__ import annotations

import io
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from targetrun.replay import Command, replay
from targetrun.store.base import PendingWrite
from targetrun.store.sqlite import SqliteStore

PLAIN = """
name: plain
tasks:
  a: {shell: 'echo a > {output}', target: out/a.txt}
  b: {shell: 'cat {needs.a} > {output}', needs: [a], target: 'out/b-{today}.txt'}
  c: {shell: 'echo c > {output}', target: out/c.txt}
  d: {shell: 'echo d', cache_for: 1h}
"""


class Answer:
    def __init__(self, proc: subprocess.CompletedProcess[str]) -> None:
        self.code = proc.returncode
        self.out = proc.stdout
        self.err = "\n".join(line for line in proc.stderr.splitlines() if not line.startswith("import time:"))
        self.replayed = "targetrun.cli" not in proc.stderr  # the replay answers before the CLI is imported

    @property
    def words(self) -> str:
        """The final line without its duration."""
        return self.out.strip().rpartition(" in ")[0]


def command(proj, *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> Answer:
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "targetrun", "run", "-q", "-f", str(proj.file), *args],
                          cwd=proj.root, capture_output=True, text=True, env=env or dict(os.environ), timeout=timeout)
    return Answer(proc)


def certified(proj, *args: str, env: dict[str, str] | None = None) -> Answer:
    """Run until the replay answers (the first run makes, the second certifies)."""
    for _ in range(3):
        answer = command(proj, *args, env=env)
        assert answer.code == 0, answer.err
        if answer.replayed:
            return answer
    raise AssertionError(f"never replayed: {answer.out} {answer.err}")


def runs(proj) -> list[tuple]:
    db = sqlite3.connect(proj.root / ".targetrun" / "state.db")
    try:
        return db.execute("SELECT r.run_id, pipeline, status, requested, counts, b.data FROM runs r "
                          "LEFT JOIN blobs b ON b.key = 'targetrun-run:' || r.run_id || ':outcomes' "
                          "ORDER BY started").fetchall()
    finally:
        db.close()


def test_a_repeated_no_op_is_replayed_and_recorded_as_the_full_run_records_it(project):
    proj = project(PLAIN)
    first = command(proj)
    assert (first.code, first.words, first.replayed) == (0, "4 ran", False)
    full = command(proj, "b", "c", "d")
    assert (full.code, full.words, full.replayed) == (0, "2 skipped, 1 cached", False)
    again = command(proj, "b", "c", "d")
    assert (again.code, again.words, again.replayed) == (0, "2 skipped, 1 cached", True), again.err
    assert again.err == ""
    *_, by_full, by_replay = runs(proj)
    assert by_full[0] != by_replay[0]  # a run of its own
    assert by_full[1:] == by_replay[1:]  # pipeline, status, requested tasks, counts, every outcome
    assert by_replay[5] is not None
    history = proj.cli("history", "--limit", "1")
    assert "2 skipped, 1 cached, 1 not needed" in history.out


MUTATIONS = {
    # what changes after a certified no-op -> what the command must then say
    "a target is deleted": (lambda p: (p.root / "out" / "c.txt").unlink(), "1 ran, 1 skipped, 1 cached"),
    "the Pipelinefile is edited": (lambda p: p.file.write_text(p.file.read_text() + "# edited\n"),
                                   "2 skipped, 1 cached"),
    "the cache is cleared": (lambda p: p.cli("cache", "clear"), "1 ran, 2 skipped"),
    "the cache entry is remade": (lambda p: p.cli("run", "-q", "--force", "d"), "2 skipped, 1 cached"),
    "the cached value is deleted": (lambda p: [f.unlink() for f in (p.root / ".targetrun" / "results").rglob("d.*")],
                                    None),
    "a target becomes a dangling link": (lambda p: ((p.root / "out" / "c.txt").unlink(),
                                                    (p.root / "out" / "c.txt").symlink_to(p.root / "nowhere")),
                                         None),
}


@pytest.mark.parametrize("change", sorted(MUTATIONS))
def test_the_replay_steps_aside_once_anything_it_rested_on_changed(project, change):
    proj = project(PLAIN)
    command(proj)
    certified(proj, "b", "c", "d")
    mutate, says = MUTATIONS[change]
    mutate(proj)
    expected = proj_full_answer(proj, says)
    answer = command(proj, "b", "c", "d")
    assert answer.code == expected[0], answer.err
    assert not answer.replayed
    assert answer.words == expected[1]


def proj_full_answer(proj, says: str | None) -> tuple[int, str]:
    """What the full run says now, on a copy of the project (the run itself may change it)."""
    if says is not None:
        return 0, says
    import shutil

    copy = proj.root.parent / f"{proj.root.name}-copy"
    shutil.copytree(proj.root, copy, symlinks=True)
    shutil.rmtree(copy / ".targetrun" / "replay")
    proc = subprocess.run([sys.executable, "-m", "targetrun", "run", "-q", "b", "c", "d"], cwd=copy,
                          capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stdout.strip().rpartition(" in ")[0]


def test_another_environment_parameters_or_date_is_another_command(project):
    proj = project(PLAIN.replace("name: plain", "name: plain\nparams: {n: 1}"))
    command(proj)
    certified(proj)
    env = dict(os.environ, SOME_SETTING="changed")
    assert not command(proj, env=env).replayed
    assert not command(proj, "-p", "n=2").replayed
    assert not command(proj, "--date", "2026-01-02").replayed
    for args in ((), ("-p", "n=2"), ("--date", "2026-01-02")):  # each certifies itself in turn
        assert certified(proj, *args).words in ("3 skipped, 1 cached", "2 skipped, 1 cached")


def replay_in_child(proj, *, now: float | None = None, hold: float | None = None,
                    env: dict[str, str] | None = None) -> int | None:
    """``replay.replay`` called in a fresh interpreter started as the console script is
    (the key holds the import path and the environment): its answer. ``hold``: another
    connection holds the store's write lock when the replay starts, for that many seconds."""
    script = (
        "import sqlite3, sys, threading\n"
        "from targetrun import replay\n"
        f"hold = {hold!r}\n"
        "if hold is not None:\n"
        f"    db = sqlite3.connect({str(proj.root / '.targetrun' / 'state.db')!r}, isolation_level=None,"
        " check_same_thread=False)\n"
        "    db.execute('BEGIN IMMEDIATE')\n"
        "    threading.Timer(hold, lambda: db.execute('COMMIT')).start()\n"
        f"code = replay.replay(['run', '-q', '-f', {str(proj.file)!r}], sys.stdout, now={now!r})\n"
        "print('answer', code)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=proj.root, capture_output=True, text=True,
                          env=env or dict(os.environ), timeout=60)
    assert proc.returncode == 0, proc.stderr
    answer = proc.stdout.strip().splitlines()[-1].removeprefix("answer ")
    return None if answer == "None" else int(answer)


def test_a_certificate_of_another_day_or_outside_its_window_is_not_used(project):
    """Judged in a child whose key matches (in this process the import path differs): the
    certificate answers now, and not tomorrow or once the cache hit has expired."""
    proj = project(PLAIN)
    command(proj)
    certified(proj)
    before = len(runs(proj))
    assert replay_in_child(proj, now=time.time() + 86400) is None  # tomorrow: another run date
    assert replay_in_child(proj, now=time.time() + 7200) is None  # the cache hit expired
    assert len(runs(proj)) == before
    assert replay_in_child(proj) == 0
    assert len(runs(proj)) == before + 1


def test_a_pending_write_in_the_store_leaves_it_to_the_full_run(project):
    """The full run settles a dead run's half-done writes before it decides anything."""
    proj = project(PLAIN)
    command(proj)
    certified(proj)
    store = SqliteStore(str(proj.root / ".targetrun" / "state.db"))
    store.intend_write(PendingWrite("gone-run", str(proj.root / "out" / "x.txt"),
                                    str(proj.root / "out" / ".x.txt.tmp"), "local"))
    store.close()
    answer = command(proj)
    assert answer.code == 0 and not answer.replayed, answer.err


def test_another_process_holding_the_store_leaves_it_to_the_full_run(project):
    """A real second process holds the store's write lock: the replay does not wait for
    it, the full run does, and both end in the same answer."""
    proj = project(PLAIN)
    command(proj)
    certified(proj)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sqlite3, sys, time\n"
        f"db = sqlite3.connect({str(proj.root / '.targetrun' / 'state.db')!r}, isolation_level=None)\n"
        "db.execute('BEGIN IMMEDIATE'); print('held', flush=True); time.sleep(2); db.execute('COMMIT')\n")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        answer = command(proj)
    finally:
        holder.wait(timeout=30)
        holder.stdout.close()
    assert answer.code == 0 and not answer.replayed and answer.words == "2 skipped, 1 cached", answer.err


NOT_REPLAYABLE = {
    "a target names the hour": "tasks:\n  a: {shell: 'echo > {output}', target: 'out/{date:%H}.txt'}\n",
    "a cache key names the run": "tasks:\n  a: {shell: 'echo', cache_for: 1h, cache_key: 'k-{run_id}'}\n",
    "cache_for on a target": "tasks:\n  a: {shell: 'echo > {output}', target: out/a.txt, cache_for: 1h}\n",
    "a code validator": "tasks:\n  a: {shell: 'echo > {output}', target: out/a.txt, cache_validator: code}\n",
    "a cache hit with needs": ("tasks:\n  a: {shell: 'echo 1', cache_for: 1h}\n"
                               "  b: {shell: 'echo 2', needs: [a], cache_for: 1h}\n"),
    "a mapped task": ("tasks:\n  items: {run: 'tasks:items', target: out/items.json}\n"
                      "  each: {run: 'tasks:each', needs: {item: items}, foreach: {needs: items}, target: 'out/e{map_index}.txt'}\n"),
}


@pytest.mark.parametrize("case", sorted(NOT_REPLAYABLE))
def test_no_certificate_when_a_decision_rests_on_what_the_replay_cannot_check(project, case):
    proj = project(NOT_REPLAYABLE[case], tasks="def items():\n    return [1, 2]\n\ndef each(item):\n    return str(item)\n")
    for _ in range(3):
        answer = command(proj)
        assert answer.code == 0 and not answer.replayed, answer.out + answer.err
    assert not list((proj.root / ".targetrun").glob("replay/*"))


@pytest.mark.parametrize("content", [
    b"", b"{", b"[]", b"null", b'{"format": 1}', b'{"format": 1, "key": 3}', "{\"format\": 1, \"key\": \"\u00e9\"}".encode(),
    bytes(range(256)), b'{"format": 1e999}',
])
def test_a_damaged_or_hostile_certificate_is_ignored(project, content):
    proj = project(PLAIN)
    command(proj)
    certified(proj)
    (certificate,) = (proj.root / ".targetrun" / "replay").iterdir()
    certificate.write_bytes(content)
    answer = command(proj)
    assert (answer.code, answer.words, answer.replayed) == (0, "2 skipped, 1 cached", False), answer.err
    assert "Traceback" not in answer.err


def test_a_certificate_with_the_right_key_and_wrong_contents_is_ignored(project, monkeypatch):
    """Every field the replay reads, of the wrong type or shape: never an error, never a
    record. The replay itself is called in this process (as the console script's first
    step calls it: ~70 cases, a second each as processes); then a real command on a
    certificate that is wrong answers as the full run does."""
    proj = project(PLAIN)
    command(proj)
    certified(proj)
    (path,) = (proj.root / ".targetrun" / "replay").iterdir()
    good = json.loads(path.read_text())
    before = runs(proj)
    monkeypatch.chdir(proj.root)
    argv = ["run", "-q", "-f", str(proj.file)]
    assert replay(argv, io.StringIO()) == 0  # the good certificate answers in this process
    assert len(runs(proj)) == len(before) + 1
    for field in sorted(set(good) - {"format", "key"}):
        for wrong in (None, 3, "x", [], {"a": 1}, 1e308):
            path.write_text(json.dumps(dict(good, **{field: wrong})))
            said = io.StringIO()
            code = replay(argv, said)  # None: the full run answers (a field it cannot use)
            assert code in (None, 0), (field, wrong, code)
            assert said.getvalue().rpartition(" in ")[0] == ("2 skipped, 1 cached" if code == 0 else ""), \
                (field, wrong, said.getvalue())
    assert all(row[5] is not None for row in runs(proj)[len(before):])  # every answer recorded whole
    answer = command(proj)  # the last wrong certificate, in a real process
    assert answer.code == 0 and "Traceback" not in answer.err, answer.err
    assert answer.words == "2 skipped, 1 cached", answer.out


@pytest.mark.skipif(not hasattr(signal, "pthread_sigmask"), reason="POSIX signal masks")
def test_a_signal_at_any_moment_of_a_replay_leaves_whole_records(project):
    """SIGINT or SIGTERM anywhere in a replayed command: it exits 0 (done) or 130/143, and
    every run it recorded has its outcomes -- the row and the blob commit together."""
    proj = project(PLAIN)
    command(proj)
    certified(proj)
    rng = random.Random(13)
    codes = set()
    for _ in range(24):
        # started with both signals blocked, as a launcher closes the interpreter's own
        # start-up gap (tests/test_startup_signals.py): targetrun's first statement takes them
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            proc = subprocess.Popen([sys.executable, "-m", "targetrun", "run", "-q", "-f", str(proj.file)],
                                    cwd=proj.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
        time.sleep(rng.uniform(0.0, 0.12))
        proc.send_signal(rng.choice((signal.SIGINT, signal.SIGTERM)))
        out, err = proc.communicate(timeout=60)
        codes.add(proc.returncode)
        assert proc.returncode in (0, 130, 143), err
        assert "Traceback" not in err
    assert codes & {130, 143}, codes  # signals landed in targetrun
    assert all(row[2] == "succeeded" and row[5] is not None for row in runs(proj)[3:])
    assert command(proj).replayed  # and the project is as it was


@pytest.mark.parametrize("argv, file, dated", [
    (["run", "-q"], None, False),
    (["run", "--quiet", "-f", "x.yaml", "t1", "t2"], "x.yaml", False),
    (["run", "-q", "--file=x.yaml", "--date", "2026-01-01", "-p", "a=1", "-j", "2", "--executor", "threads"],
     "x.yaml", True),
])
def test_the_command_lines_a_replay_may_answer(argv, file, dated):
    command_ = Command.parse(argv)
    assert command_ is not None and (command_.file, command_.dated) == (file, dated)


@pytest.mark.parametrize("argv", [
    [], ["run"], ["status", "-q"], ["run", "-q", "--force", "a"], ["run", "-q", "--json"], ["run", "-qv"],
    ["run", "-q", "-n"], ["run", "-q", "--resume"], ["run", "-q", "--report", "r.html"], ["run", "-q", "-f"],
    ["run", "-q", "--params-file", "p.yaml"], ["run", "-q", "--rebuild-stale"], ["run", "-q", "--quiet=1"],
    ["--verbose", "run", "-q"], ["run", "-q", "--verify"], ["run", "-q", "--trust"],
    ["run", "-q", "--executor", "dask"], ["run", "-q", "--executor=someplugin"],
])
def test_every_other_command_line_takes_the_full_run(argv):
    assert Command.parse(argv) is None


def test_the_replay_never_creates_a_store(project, tmp_path: Path):
    proj = project(PLAIN)
    command(proj)
    certified(proj)
    (proj.root / ".targetrun" / "state.db").rename(tmp_path / "aside.db")
    for suffix in ("-wal", "-shm"):
        (proj.root / ".targetrun" / f"state.db{suffix}").unlink(missing_ok=True)
    answer = command(proj)
    assert answer.code == 0 and not answer.replayed, answer.err


def test_gc_removes_the_certificates_and_the_next_no_op_certifies_again(project):
    proj = project(PLAIN)
    command(proj)
    certified(proj)
    swept = proj.cli("gc", "-f", str(proj.file))
    assert swept.code == 0 and "1 no-op certificate" in swept.out, swept.out + swept.err
    assert not list((proj.root / ".targetrun" / "replay").iterdir())
    assert not command(proj).replayed
    assert command(proj).replayed


def test_an_entry_from_the_future_ends_the_window_when_it_would_come_alive(project):
    """An entry written by a clock that was ahead is not used until its time comes; then it
    is the newest live entry and hits instead -- so the certificate made before then ends
    when it would come alive, and the full run answers from then on."""
    from dataclasses import replace

    proj = project("name: f\ntasks:\n  d: {shell: 'echo d', cache_for: 1h}\n")
    command(proj)
    store = SqliteStore(str(proj.root / ".targetrun" / "state.db"))
    try:
        (entry,) = store.list_cache()
        ahead = entry.checkpoint.written_at + 60.0 + 3.0  # "from the future" for three more seconds
        store.record_task(None, None, replace(entry, variant="written-ahead", expires=entry.expires + 63.0,
                                              checkpoint=replace(entry.checkpoint, written_at=ahead)))
    finally:
        store.close()
    assert certified(proj).words == "1 cached"  # the older entry hits, while the other is ahead
    time.sleep(max(0.0, ahead - 60.0 - time.time()) + 0.2)
    answer = command(proj)
    assert (answer.code, answer.words, answer.replayed) == (0, "1 cached", False), answer.err
    store = SqliteStore(str(proj.root / ".targetrun" / "state.db"))
    try:
        *_, before, after = [store.run_outcomes(row[0]) for row in runs(proj)]
    finally:
        store.close()
    assert before.marks[0].reason != after.marks[0].reason  # another entry hits now: "cache hit (until ...)"


def test_the_sqlite_cache_generation_changes_on_every_change_and_survives_an_upgrade(tmp_path: Path):
    from dataclasses import replace

    from targetrun.model import CacheEntry, Checkpoint
    from targetrun.store import sqlite as sqlite_store

    path = tmp_path / "state.db"
    store = SqliteStore(str(path))
    try:
        seen = [store.cache_generation()]
        entry = CacheEntry("k", "v", "p", "t", Checkpoint("t", str(tmp_path / "x"), "json", 1, "h", "r", 1.0), 9e9)
        store.record_task(None, None, entry)
        seen.append(store.cache_generation())
        store.record_task(None, None, replace(entry, expires=9.5e9))  # replaced
        seen.append(store.cache_generation())
        store.delete_cache()
        seen.append(store.cache_generation())
    finally:
        store.close()
    assert len(set(seen)) == 4 and all(0 <= tag < 2**63 for tag in seen), seen  # every change a new tag
    db = sqlite3.connect(path)  # an older store (schema 4): the upgrade adds the tagging
    db.executescript("ALTER TABLE pending DROP COLUMN absent; DROP TRIGGER cache_insert_counted; "
                     "DROP TRIGGER cache_update_counted; DROP TRIGGER cache_delete_counted; DROP TABLE generations; "
                     "PRAGMA user_version = 4;")
    db.close()
    store = SqliteStore(str(path))
    try:
        before = store.cache_generation()
        store.record_task(None, None, entry)
        assert store.cache_generation() not in (before, 0)
    finally:
        store.close()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == sqlite_store.SCHEMA_VERSION == 9


def test_a_run_that_warned_about_its_store_is_not_replayed_silently(project):
    """A damaged cache row is skipped with a warning on stderr: every later run says it
    again, so none of them is answered from a certificate."""
    proj = project(PLAIN)
    command(proj)
    certified(proj)
    db = sqlite3.connect(proj.root / ".targetrun" / "state.db")
    db.execute("INSERT INTO cache VALUES ('plain/d', 'damaged', 'plain', 'd', 9e9, 1.0, 'not a record')")
    db.commit()
    db.close()
    for _ in range(2):
        answer = command(proj)
        assert answer.code == 0 and not answer.replayed, answer.err
        assert "warning: skipped an unreadable cache entry" in answer.err
        assert answer.words == "2 skipped, 1 cached"
