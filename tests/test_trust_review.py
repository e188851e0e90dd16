"""Trust under a hostile review: store faults, signals and output at the worst moments.

Real processes and files only: a second process that holds the SQLite store's write lock
(``BEGIN EXCLUSIVE``) at a chosen moment, real SIGINT/SIGTERM, real ``targetrun`` runs.
What must hold (README "Security and failure"): a store fault ends a run as *broken*
with exit 3 and one paragraph, never as *interrupted* nor 130; a stop ends promptly with
130/143 whatever the store does; a no-op's final line is printed once.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

# Holds the project's store locked (every other writer waits) from when it says so in
# `locked` until it has held it for argv[2] seconds, or (argv[2] == "forever") until killed.
HOLDER = """
import os, sqlite3, sys, time
try:
    os.setsid()  # started by a task: not killed with the task's process group
except OSError:
    pass
db = sqlite3.connect(os.path.join(".targetrun", "state.db"), isolation_level=None, timeout=30)
db.execute("BEGIN EXCLUSIVE")
with open("locked.tmp", "w") as f:
    f.write(str(os.getpid()))
os.rename("locked.tmp", "locked")
if sys.argv[1] == "forever":
    while True:
        time.sleep(1)
time.sleep(float(sys.argv[1]))
db.execute("ROLLBACK")
"""


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TARGETRUN_")}
    env.update(extra)
    return env


def _lock_store_from_a_task(root: Path, hold: str) -> None:
    """A pipeline whose first task (no checkpoint: nothing to prepare) has the store locked
    by another process when it ends: the run's next commit -- the one carrying that task's
    kept record -- meets a store it cannot write."""
    (root / "holder.py").write_text(HOLDER)
    (root / "steps.py").write_text(textwrap.dedent(f"""
        import os, subprocess, sys, time

        def lock():
            subprocess.Popen([sys.executable, "holder.py", "{hold}"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
            while not os.path.exists("locked"):
                time.sleep(0.02)
        """))
    (root / "Pipelinefile.yaml").write_text(textwrap.dedent("""
        name: locked
        tasks:
          a: {run: "steps:lock", checkpoint: false}
          b: {shell: "echo b > {output}", target: out/b.txt}
        """))


def _runs(root: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(root / ".targetrun" / "state.db", timeout=30) as db:
        return db.execute("SELECT run_id, status FROM runs ORDER BY started").fetchall()


def _stop_and_time(run: subprocess.Popen[str], signum: int) -> tuple[str, str, float]:
    """Sends ``signum`` to the running command: what it printed, and the seconds it took to end."""
    stopped = time.monotonic()
    run.send_signal(signum)
    out, err = run.communicate(timeout=120)
    return out, err, time.monotonic() - stopped


def test_a_store_that_fails_a_group_commit_ends_the_run_broken_with_exit_3(tmp_path: Path) -> None:
    """The store stays locked past TARGETRUN_STORE_TIMEOUT exactly when the run commits a
    task's kept record: exit 3 with one paragraph naming the store, recorded as broken
    (the store is free again by then) -- not interrupted, not 130, no traceback."""
    _lock_store_from_a_task(tmp_path, "1.6")
    done = subprocess.run([sys.executable, "-m", "targetrun", "run"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env=_env(TARGETRUN_STORE_TIMEOUT="1"))
    assert done.returncode == 3, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "interrupted" not in done.stderr, done.stderr
    assert "targetrun: error: the state store" in done.stderr and "locked" in done.stderr, done.stderr
    assert [status for _, status in _runs(tmp_path)] == ["broken"]
    assert not (tmp_path / "out" / "b.txt").exists()


def _wait_for(path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def _kill_holder(root: Path) -> None:
    try:
        os.kill(int((root / "locked").read_text()), signal.SIGKILL)
    except (OSError, ValueError):
        pass


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stop_ends_promptly_while_another_process_holds_the_store(tmp_path: Path, signum: int, code: int) -> None:
    """Ctrl-C (SIGTERM) while a task runs and another process holds the store's write lock:
    the run does not wait the store's busy timeout (30 s) for each record it would still
    write -- it ends within seconds, exit 130 (143), quietly; once the lock is gone the
    project is as a stop leaves it: no staging file, nothing untrusted (`status` exit 0)."""
    (tmp_path / "holder.py").write_text(HOLDER)
    (tmp_path / "Pipelinefile.yaml").write_text(textwrap.dedent(f"""
        name: stop-locked
        tasks:
          a:
            shell: "{sys.executable} holder.py forever > /dev/null 2>&1 & while [ ! -e locked ]; do sleep 0.02; done; echo a > {{output}}; sleep 60"
            target: out/a.txt
        """))
    run = subprocess.Popen([sys.executable, "-m", "targetrun", "run"], cwd=tmp_path, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, env=_env())
    try:
        _wait_for(tmp_path / "locked")
        time.sleep(0.3)
        out, err, took = _stop_and_time(run, signum)
    finally:
        run.kill()
        _kill_holder(tmp_path)
    assert run.returncode == code, out + err
    assert took < 4.0, f"the stop took {took:.1f}s"
    assert "Traceback" not in err and "targetrun: error" not in err, err
    assert not (tmp_path / "out" / "a.txt").exists()
    status = subprocess.run([sys.executable, "-m", "targetrun", "status"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120, env=_env())
    assert status.returncode == 0, status.stdout + status.stderr
    assert not list((tmp_path / "out").glob("*")) if (tmp_path / "out").exists() else True  # no staging file


def test_ctrl_c_while_the_run_waits_for_a_locked_store_ends_it_promptly(tmp_path: Path) -> None:
    """The run is waiting (up to the default 30 s) for another process's lock to commit a
    task's kept record when Ctrl-C arrives: it ends within seconds, exit 130, quietly --
    the wait is not SQLite's own, which would hold the signal for the whole timeout."""
    _lock_store_from_a_task(tmp_path, "forever")
    run = subprocess.Popen([sys.executable, "-m", "targetrun", "run"], cwd=tmp_path, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, env=_env())
    try:
        _wait_for(tmp_path / "locked")
        time.sleep(0.5)  # the run meets the lock and waits
        out, err, took = _stop_and_time(run, signal.SIGINT)
    finally:
        run.kill()
        _kill_holder(tmp_path)
    assert run.returncode == 130, out + err
    assert took < 4.0, f"the stop took {took:.1f}s"
    assert "Traceback" not in err and "targetrun: error" not in err, err


# Runs the command line with a real SIGINT sent to itself at the moment its main thread is
# about to execute the line of targetrun/store/sqlite.py given as argv[1] (its text) inside a
# transaction that carries a task's kept record -- where a Ctrl-C may land.
AT_LINE = """
import linecache, os, signal, sys

line_text = sys.argv[1]
sent = False

def local(frame, event, arg):
    global sent
    if event == "line" and not sent and line_text in linecache.getline(frame.f_code.co_filename, frame.f_lineno):
        later = frame.f_locals.get("later") or []
        if any("task_runs" in statement for statement, _ in later):
            sent = True
            os.kill(os.getpid(), signal.SIGINT)
            [None for _ in range(3)]  # the interpreter handles it here, at this very line
    return local

def tracer(frame, event, arg):
    if frame.f_code.co_name == "_transaction" and frame.f_code.co_filename.endswith(os.path.join("store", "sqlite.py")):
        return local
    return None

sys.settrace(tracer)
sys.argv = ["targetrun", *sys.argv[2:]]
from targetrun.cli import main
main()
"""


def test_a_signal_as_a_transaction_commits_kept_records_leaves_the_run_interrupted(tmp_path: Path) -> None:
    """Ctrl-C lands just before the COMMIT of the transaction that carries a task's kept
    record: the transaction is not left open (which failed every later write: exit 3,
    'cannot start a transaction within a transaction', the run left 'running' and its
    records lost). Exit 130; the task's record is kept and the run recorded interrupted."""
    (tmp_path / "at_line.py").write_text(AT_LINE)
    (tmp_path / "Pipelinefile.yaml").write_text(textwrap.dedent("""
        name: at-commit
        tasks:
          a: {shell: "echo a > {output}", target: out/a.txt}
          b: {shell: "echo b > {output}", target: out/b.txt, needs: [a]}
        """))
    done = subprocess.run([sys.executable, "at_line.py", 'db.execute("COMMIT")', "run"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, env=_env())
    assert done.returncode == 130, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "targetrun: error" not in done.stderr, done.stderr
    assert [status for _, status in _runs(tmp_path)] == ["interrupted"]
    with sqlite3.connect(tmp_path / ".targetrun" / "state.db") as db:
        assert db.execute("SELECT task, state FROM task_runs").fetchall() == [("a", "succeeded")]
        assert db.execute("SELECT count(*) FROM pending").fetchone() == (0,)
    status = subprocess.run([sys.executable, "-m", "targetrun", "status", "--check"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120, env=_env())
    assert "trust" not in status.stdout + status.stderr


REPLAYED = """
name: plain
tasks:
  a: {shell: 'echo a > {output}', target: out/a.txt}
"""


def _no_op(root: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-X", "importtime", "-m", "targetrun", "run", "-q"], cwd=root,
                          capture_output=True, text=True, timeout=120, env=env or _env())


def _certified(root: Path) -> None:
    (root / "Pipelinefile.yaml").write_text(REPLAYED)
    for _ in range(3):
        done = _no_op(root)
        assert done.returncode == 0, done.stderr
        if "targetrun.cli" not in done.stderr:  # replayed: answered before the CLI was imported
            return
    raise AssertionError("never replayed")


def test_a_replay_whose_commit_must_wait_prints_its_final_line_once(tmp_path: Path) -> None:
    """The replay prints its final line, then commits the run's record. A store in
    rollback-journal mode (not WAL) that another process is reading makes that COMMIT wait:
    the replay must not then hand the command to the full run, which prints the line a
    second time. It waits as the full run would, commits, and answers: one line, exit 0,
    one more run recorded."""
    _certified(tmp_path)
    db_path = tmp_path / ".targetrun" / "state.db"
    with sqlite3.connect(db_path) as db:
        assert db.execute("PRAGMA journal_mode=DELETE").fetchone() == ("delete",)
        before = db.execute("SELECT count(*) FROM runs").fetchone()[0]
    reader = subprocess.Popen([sys.executable, "-c", (
        "import sqlite3, time\n"
        f"db = sqlite3.connect({str(db_path)!r}, isolation_level=None)\n"
        "db.execute('BEGIN'); db.execute('SELECT count(*) FROM runs').fetchall()\n"
        "print('reading', flush=True); time.sleep(2); db.execute('COMMIT')\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout is not None and reader.stdout.readline().strip() == "reading"
        done = _no_op(tmp_path)
    finally:
        reader.wait(timeout=30)
        assert reader.stdout is not None
        reader.stdout.close()
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(lines) == 1 and "skipped" in lines[0], done.stdout
    with sqlite3.connect(db_path) as db:
        assert db.execute("SELECT count(*) FROM runs").fetchone()[0] == before + 1


@pytest.fixture
def small_disk(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A 4 MB file system of its own (tmpfs; root only), to fill up."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot mount a small file system here (needs root)")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_a_replay_whose_commit_meets_a_full_disk_answers_once_with_exit_3(small_disk: Path) -> None:
    """The disk fills between the replay's checks and its COMMIT (after the final line is
    printed): one final line, exit 3, one paragraph saying the run was not recorded and
    why (a full disk: make room) -- no second line from a full run, no traceback."""
    _certified(small_disk)
    db = sqlite3.connect(small_disk / ".targetrun" / "state.db", isolation_level=None)
    try:  # kept open: the store's WAL index stays (the replay needs no room for it), its log empty
        db.execute("SELECT count(*) FROM runs").fetchall()
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        before = db.execute("SELECT count(*) FROM runs").fetchone()[0]
        with open(small_disk / "filler", "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"x" * 4096)
            except OSError:
                pass
        done = _no_op(small_disk)
        (small_disk / "filler").unlink()
        after = db.execute("SELECT count(*) FROM runs").fetchone()[0]
    finally:
        db.close()
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert done.returncode == 3, done.stdout + done.stderr
    assert len(lines) == 1 and "skipped" in lines[0], done.stdout
    errors = [line for line in done.stderr.splitlines() if line.startswith("targetrun:")]
    assert len(errors) == 1 and "not recorded" in errors[0] and "disk is full" in errors[0], done.stderr
    assert "Traceback" not in done.stderr
    assert after == before


def test_a_background_process_left_holding_a_tasks_stdout_does_not_hold_the_run(tmp_path: Path) -> None:
    """A shell task whose stdout is its value starts a server-like process that keeps that
    stdout: the task ends when its command does (not when the process does), its value is
    what the command printed, and the process lives on -- not killed by a broken pipe when
    it prints later. The next command trusts the target (exit 0)."""
    (tmp_path / "Pipelinefile.yaml").write_text(textwrap.dedent("""
        name: bg-stdout
        tasks:
          a:
            shell: "sh -c 'sleep 6; echo late; sleep 0.3; touch alive_after_printing' & echo value"
            target: out/a.txt
        """))
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "targetrun", "run"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env=_env())
    took = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    assert took < 4.5, f"the run took {took:.1f}s: it waited for the background process (6 s)"
    assert (tmp_path / "out" / "a.txt").read_text() == "value\n"
    _wait_for(tmp_path / "alive_after_printing", timeout=15)
    assert (tmp_path / "out" / "a.txt").read_text() == "value\n"
    check = subprocess.run([sys.executable, "-m", "targetrun", "status", "--check"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=120, env=_env())
    assert check.returncode == 0, check.stdout + check.stderr


def test_a_shell_task_with_checkpoint_false_runs_for_what_it_does(tmp_path: Path) -> None:
    """`checkpoint: false` on a shell task: it runs (exit 0) and what it prints is its log
    -- not an internal AssertionError with a traceback in the task's failure."""
    (tmp_path / "Pipelinefile.yaml").write_text(textwrap.dedent("""
        name: side-effect
        tasks:
          a: {shell: "echo said; echo warned >&2; touch did", checkpoint: false}
        """))
    done = subprocess.run([sys.executable, "-m", "targetrun", "run"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env=_env())
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert (tmp_path / "did").exists()
    logs = subprocess.run([sys.executable, "-m", "targetrun", "logs", "a"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env=_env())
    assert "said" in logs.stdout and "warned" in logs.stdout, logs.stdout + logs.stderr


@pytest.mark.parametrize("tasks", [
    'a: {shell: "echo x > {output}", checkpoint: false}',
    'a: {shell: "echo x", checkpoint: false}\n  b: {run: "m:use", needs: [a]}',
])
def test_a_shell_task_with_checkpoint_false_that_a_value_is_asked_of_is_refused(tmp_path: Path, tasks: str) -> None:
    """A shell task's value is its checkpoint: one with `checkpoint: false` that writes
    {output}, or that a Python task needs, is refused before anything runs (exit 2, one
    paragraph naming the line) -- not an internal error (exit 4) or a failed task."""
    (tmp_path / "m.py").write_text("def use(a):\n    return a\n")
    (tmp_path / "Pipelinefile.yaml").write_text(f"name: refused\ntasks:\n  {tasks}\n")
    done = subprocess.run([sys.executable, "-m", "targetrun", "run"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env=_env())
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert done.stderr.startswith("targetrun: error: Pipelinefile.yaml, line ") and "checkpoint: false" in done.stderr


@pytest.mark.parametrize("secret, where", [
    ("hunter1pass", 'a: {shell: "psql postgres://app:hunter1pass@db/x -c select"}'),
    ("hunter2pass", 'a: {run: "m:use", args: {a: "redis://:hunter2pass@cache:6379/0"}}'),
])
def test_a_credential_written_anywhere_in_the_pipelinefile_is_not_copied_into_the_spec_cache(
        tmp_path: Path, secret: str, where: str) -> None:
    """A password in a URL in a shell command or an argument (not only in `cache:` or a
    result's options) keeps the file out of `.targetrun/spec/`: nothing under `.targetrun/`
    (often a CI artifact) holds it after a run."""
    (tmp_path / "m.py").write_text("def use(a):\n    return 1\n")
    (tmp_path / "Pipelinefile.yaml").write_text(f"name: creds\ntasks:\n  {where}\n")
    subprocess.run([sys.executable, "-m", "targetrun", "run"], cwd=tmp_path, capture_output=True, text=True,
                   timeout=120, env=_env())
    assert (tmp_path / ".targetrun").exists()
    holding = [str(p) for p in (tmp_path / ".targetrun").rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
    assert holding == []


def test_a_credential_in_a_staleness_reason_reaches_neither_the_report_file_nor_the_store(tmp_path: Path) -> None:
    """A parameter holding a DSN changes: the decision reads "parameters changed (dsn: ...)".
    The HTML report (a file written straight to disk, often published by CI) and the run's
    recorded outcomes mask its password, as every message does."""
    (tmp_path / "Pipelinefile.yaml").write_text(textwrap.dedent("""
        name: dsn
        params:
          dsn: "postgres://app:hunter9old@db/x"
        tasks:
          a: {shell: "test -n {params.dsn} && echo made > {output}", target: out/a.txt,
              cache_validator: [all_parameters]}
        """))
    for args in ([], ["-p", "dsn=postgres://app:hunter9new@db/y"]):
        done = subprocess.run([sys.executable, "-m", "targetrun", "run", *args], cwd=tmp_path, capture_output=True,
                              text=True, timeout=120, env=_env())
        assert done.returncode == 0, done.stdout + done.stderr
    report = subprocess.run([sys.executable, "-m", "targetrun", "report", "-o", "report.html"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120, env=_env())
    assert report.returncode == 0, report.stdout + report.stderr
    page = (tmp_path / "report.html").read_text()
    assert "parameters changed" in page and "postgres://***@db" in page
    assert "hunter9" not in page
    import zlib
    with sqlite3.connect(tmp_path / ".targetrun" / "state.db") as db:
        outcomes = [zlib.decompress(data) for (data,) in db.execute("SELECT data FROM blobs")]
    assert any(b"parameters changed" in text for text in outcomes)
    assert not any(b"hunter9" in text for text in outcomes)


def test_a_state_store_on_a_full_disk_says_to_make_room_not_to_move_it_aside(small_disk: Path) -> None:
    """The disk holding the store is full: exit 3, one paragraph that says so and what to
    do (make room) -- not the hint for a damaged file (move it aside, losing its records)."""
    (small_disk / "Pipelinefile.yaml").write_text(REPLAYED)
    with open(small_disk / "filler", "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"x" * 4096)
        except OSError:
            pass
    done = subprocess.run([sys.executable, "-m", "targetrun", "run"], cwd=small_disk, capture_output=True, text=True,
                          timeout=120, env=_env())
    assert done.returncode == 3, done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("targetrun:")]
    assert len(errors) == 1 and "make room" in errors[0] and "move it aside" not in errors[0], done.stderr
    assert "Traceback" not in done.stderr


# Runs the command line with a real SIGINT sent to itself when its main thread is about to
# run the line holding argv[2] (its text) in the function argv[1] (or one of several, comma
# separated) -- a chosen moment.
AT_FUNCTION_LINE = """
import linecache, os, signal, sys

function, line_text = sys.argv[1], sys.argv[2]
sent = False

def local(frame, event, arg):
    global sent
    if event == "line" and not sent and line_text in linecache.getline(frame.f_code.co_filename, frame.f_lineno):
        sent = True
        print("SENT", file=sys.stderr, flush=True)  # (a caller can tell the line ran)
        os.kill(os.getpid(), signal.SIGINT)
        [None for _ in range(3)]  # the interpreter handles it here, at this very line
    return local

def tracer(frame, event, arg):
    return local if frame.f_code.co_name in function.split(",") else None

sys.settrace(tracer)
sys.argv = ["targetrun", *sys.argv[3:]]
from targetrun.cli import main
main()
"""


def test_a_stop_just_before_the_report_is_renamed_into_place_leaves_no_temporary_file(tmp_path: Path) -> None:
    """Ctrl-C between writing the report's temporary sibling and renaming it: exit 130,
    no report and no `report.html.PID.tmp` left beside it."""
    (tmp_path / "Pipelinefile.yaml").write_text(REPLAYED)
    assert subprocess.run([sys.executable, "-m", "targetrun", "run"], cwd=tmp_path, capture_output=True,
                          timeout=120, env=_env()).returncode == 0
    (tmp_path / "at.py").write_text(AT_FUNCTION_LINE)
    done = subprocess.run([sys.executable, "at.py", "_write_output_file", "os.replace(temporary, path)", "report", "-o",
                           "report.html"], cwd=tmp_path, capture_output=True, text=True, timeout=120, env=_env())
    assert done.returncode == 130, done.stdout + done.stderr
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("report")) == []


def test_a_run_broken_by_a_locked_store_ends_without_waiting_again_for_each_record(tmp_path: Path) -> None:
    """The store stays locked by another process: the run's commit gives up after
    TARGETRUN_STORE_TIMEOUT (exit 3), and what it would still record on its way out (the
    run's end, its outcomes, the release of what it staged) waits a short grace in all --
    not the whole timeout again for each of them."""
    _lock_store_from_a_task(tmp_path, "forever")
    started = time.monotonic()
    try:
        done = subprocess.run([sys.executable, "-m", "targetrun", "run"], cwd=tmp_path, capture_output=True,
                              text=True, timeout=300, env=_env(TARGETRUN_STORE_TIMEOUT="5"))
        took = time.monotonic() - started
    finally:
        _kill_holder(tmp_path)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "targetrun: error: the state store" in done.stderr and "Traceback" not in done.stderr, done.stderr
    # 5 s for the commit that gives up, then a grace of 1 s in all; waiting the whole timeout
    # again for each of the three writes on its way out would take 20 s (a loaded machine adds a few)
    assert took < 12, f"the run took {took:.1f}s to end"


def test_a_stop_ends_promptly_while_a_redis_store_does_not_answer(tmp_path: Path) -> None:
    """A Redis state store that stops answering (its process paused: a network that drops
    packets) while a task runs, then Ctrl-C: the run does not wait the client's timeout
    for each record it would still write -- it ends within a few seconds, exit 130."""
    from tests.backends import RedisServer

    server = RedisServer(str(tmp_path))
    server.start()
    assert server.process is not None
    (tmp_path / "Pipelinefile.yaml").write_text(textwrap.dedent(f"""
        name: stop-redis
        cache: {server.url}
        tasks:
          a: {{shell: "touch started; sleep 60; echo a > {{output}}", target: out/a.txt}}
        """))
    run = subprocess.Popen([sys.executable, "-m", "targetrun", "run"], cwd=tmp_path, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, env=_env())
    try:
        _wait_for(tmp_path / "started")
        server.process.send_signal(signal.SIGSTOP)
        time.sleep(0.3)
        out, err, took = _stop_and_time(run, signal.SIGINT)
    finally:
        run.kill()
        server.process.send_signal(signal.SIGCONT)
        server.stop()
    assert run.returncode == 130, out + err
    assert "Traceback" not in err, err
    assert took < 8.0, f"the stop took {took:.1f}s"


@pytest.mark.parametrize("line", ["self.locks.release_all()", "self.store.record_outcomes("])
def test_a_stop_while_a_finished_run_is_being_recorded_still_records_it(tmp_path: Path, line: str) -> None:
    """Every task is done and Ctrl-C lands while the run writes its own end: exit 130, but
    the run is recorded (succeeded: all it did is done and kept) -- not left 'running',
    to show as 'died' -- and the next command finds everything in place (exit 0)."""
    (tmp_path / "Pipelinefile.yaml").write_text(REPLAYED)
    (tmp_path / "at.py").write_text(AT_FUNCTION_LINE)
    done = subprocess.run([sys.executable, "at.py", "_run,_end", line, "run"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env=_env())
    assert done.returncode == 130, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert [status for _, status in _runs(tmp_path)] == ["succeeded"]
    check = subprocess.run([sys.executable, "-m", "targetrun", "status", "--check"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=120, env=_env())
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.parametrize("function, line", [
    ("_run", "self._tell(RunStarted("),
    ("_report_skips", "handle(TaskSkipped("),
    ("_run,_end", "self.locks.start()"),
])
def test_a_stop_just_after_a_run_began_records_it_interrupted(tmp_path: Path, function: str, line: str) -> None:
    """Ctrl-C right after the run's record was written -- while the run says it started,
    lists what it skips (10,000 lines for a large no-op), or starts renewing its lease:
    exit 130 and the run is recorded interrupted, not left 'running' to show as 'died'."""
    (tmp_path / "Pipelinefile.yaml").write_text(textwrap.dedent("""
        name: begun
        tasks:
          a: {shell: "echo a > {output}", target: out/a.txt}
          b: {shell: "echo b > {output}", target: out/b.txt, needs: [a]}
        """))
    subprocess.run([sys.executable, "-m", "targetrun", "run", "a"], cwd=tmp_path, capture_output=True, timeout=120,
                   env=_env())
    (tmp_path / "at.py").write_text(AT_FUNCTION_LINE)
    done = subprocess.run([sys.executable, "at.py", function, line, "run"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env=_env())
    assert done.returncode == 130, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert [status for _, status in _runs(tmp_path)] == ["succeeded", "interrupted"]
    again = subprocess.run([sys.executable, "-m", "targetrun", "run"], cwd=tmp_path, capture_output=True, text=True,
                           timeout=120, env=_env())
    assert again.returncode == 0, again.stdout + again.stderr


def _moto_process(port: int) -> subprocess.Popen[bytes]:
    """An S3 server in a process of its own (moto's), so that it can be paused (SIGSTOP):
    connections are then accepted by the kernel and never answered -- a bucket that hangs."""
    import urllib.request

    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1).close()
            return server
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError("moto's server did not start")


def test_a_stop_ends_promptly_while_the_bucket_of_a_running_tasks_target_does_not_answer(tmp_path: Path) -> None:
    """Ctrl-C while a task writing to S3 runs and the S3 server has stopped answering: the
    staged object cannot be removed, but the stop ends within seconds (exit 130), not after
    the client's retries (minutes); its pending record stays, and the next run, with the
    server back, finishes cleanly and leaves no staging object."""
    import fsspec

    from tests.backends import free_port

    port = free_port()
    server = _moto_process(port)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        fs = fsspec.filesystem("s3", key="testing", secret="testing", client_kwargs={"endpoint_url": endpoint},
                               skip_instance_cache=True, use_listings_cache=False)
        fs.mkdir("hang-bucket")
        (tmp_path / "Pipelinefile.yaml").write_text(textwrap.dedent(f"""
            name: hang
            results:
              lake: {{url: 's3://hang-bucket/lake', options: {{key: testing, secret: testing,
                      client_kwargs: {{endpoint_url: '{endpoint}'}}}}}}
            defaults: {{result: lake}}
            tasks:
              a: {{shell: "if test ! -e go; then touch started; sleep 60; fi; echo a > {{output}}", target: out/a.txt}}
            """))
        run = subprocess.Popen([sys.executable, "-m", "targetrun", "run"], cwd=tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=_env())
        try:
            _wait_for(tmp_path / "started")
            server.send_signal(signal.SIGSTOP)
            time.sleep(0.3)
            out, err, took = _stop_and_time(run, signal.SIGINT)
        finally:
            run.kill()
            server.send_signal(signal.SIGCONT)
        assert run.returncode == 130, out + err
        assert "Traceback" not in err, err
        assert took < 8.0, f"the stop took {took:.1f}s"

        (tmp_path / "go").touch()  # the task ends at once from now on
        again = subprocess.run([sys.executable, "-m", "targetrun", "run", "-q"], cwd=tmp_path, capture_output=True,
                               text=True, env=_env(), timeout=300)
        assert again.returncode == 0, again.stdout + again.stderr
        left = [name for name in fs.find("hang-bucket") if ".targetrun-" in name.rsplit("/", 1)[-1]]
        assert left == [] and fs.cat("hang-bucket/lake/out/a.txt") == b"a\n"
    finally:
        server.send_signal(signal.SIGCONT)
        server.terminate()
        server.wait(30)


# At the first line of the run's end (`_end`), another process takes the store's write lock
# for argv[1] seconds and a real SIGINT reaches this process 0.2 s later: while the end's
# first write waits for the lock, inside the end's own deferred step.
LOCKED_AT_THE_END = """
import os, signal, subprocess, sys, threading, time

hold = sys.argv[1]
started = False

def local(frame, event, arg):
    global started
    if event == "line" and not started:
        started = True
        subprocess.Popen([sys.executable, "holder.py", hold], start_new_session=True)
        while not os.path.exists("locked"):
            time.sleep(0.01)
        threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
    return local

def tracer(frame, event, arg):
    return local if frame.f_code.co_name == "_end" else None

sys.settrace(tracer)
sys.argv = ["targetrun", *sys.argv[2:]]
from targetrun.cli import main
main()
"""


def test_a_stop_while_the_end_of_a_run_waits_for_a_locked_store_still_records_the_run(tmp_path: Path) -> None:
    """Every task is done; the run's end (release the locks, record the run: one deferred
    step) meets a store another process holds for 0.6 s, and Ctrl-C arrives during that
    wait. The wait inside the end's first transaction must not raise the held-back stop
    (it cut the end in two: the run was left 'running', to show as 'died'): the end waits
    out the grace, records the run, and only then exits 130."""
    (tmp_path / "Pipelinefile.yaml").write_text(REPLAYED)
    (tmp_path / "holder.py").write_text(HOLDER)
    (tmp_path / "at.py").write_text(LOCKED_AT_THE_END)
    done = subprocess.run([sys.executable, "at.py", "0.6", "run"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env=_env())
    assert done.returncode == 130, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert [status for _, status in _runs(tmp_path)] == ["succeeded"]


@pytest.mark.parametrize("function, line", [
    ("_execute_child", "os.read(errpipe_read"),  # in the start: the program runs, Popen waits for its exec
    ("_call_shell", "stopping.track("),
    ("_call_shell", "os.close(err_end)"),
])
def test_a_stop_as_a_command_starts_kills_it(tmp_path: Path, function: str, line: str) -> None:
    """Ctrl-C lands while the command starts, or just after, before the run tracks it (the
    commands a stopping run kills): exit 130, and the command does not run on after the
    run ended (it went on and wrote its file a second later)."""
    (tmp_path / "slow").write_text("#!/bin/sh\nsleep 1\necho late > late\n")
    (tmp_path / "slow").chmod(0o755)
    (tmp_path / "Pipelinefile.yaml").write_text(textwrap.dedent("""
        name: starting
        tasks:
          slow: {shell: "./slow > {output}", target: out/slow.txt}
        """))
    (tmp_path / "at.py").write_text(AT_FUNCTION_LINE)
    done = subprocess.run([sys.executable, "at.py", function, line, "run"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env=_env())
    assert done.returncode == 130, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    time.sleep(1.5)
    assert not (tmp_path / "late").exists(), "the command ran on after the stopped run"
    assert not (tmp_path / "out" / "slow.txt").exists()


def test_a_second_stop_before_the_commands_are_killed_still_kills_them(tmp_path: Path) -> None:
    """Two tasks run in threads (-j 2); Ctrl-C, and a second Ctrl-C as the run's end begins,
    before it kills the commands: the second one exits at once (130), as documented -- and
    kills the commands on its way (they ran on after the run had ended, and wrote files)."""
    (tmp_path / "slow").write_text('#!/bin/sh\necho $$ > "started-$1"\nsleep 1.5\necho late > "late-$1"\n')
    (tmp_path / "slow").chmod(0o755)
    (tmp_path / "Pipelinefile.yaml").write_text(textwrap.dedent("""
        name: twice
        tasks:
          a: {shell: "./slow a > {output}", target: out/a.txt}
          b: {shell: "./slow b > {output}", target: out/b.txt}
        """))
    (tmp_path / "at.py").write_text(AT_FUNCTION_LINE)
    run = subprocess.Popen([sys.executable, "at.py", "_end", "summary = self._summary(", "run", "-j", "2", "--executor",
                            "threads"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env=_env())
    try:
        deadline = time.monotonic() + 60
        while not all((tmp_path / f"started-{name}").exists() for name in "ab"):
            assert time.monotonic() < deadline and run.poll() is None, run.communicate()
            time.sleep(0.02)
        run.send_signal(signal.SIGINT)
        out, err = run.communicate(timeout=60)
    finally:
        run.kill()
    assert run.returncode == 130, out + err
    time.sleep(2.0)
    assert not list(tmp_path.glob("late-*")), "a command ran on after the stopped run"


def test_a_run_ending_on_an_error_does_not_hurry_another_run_of_the_same_process(tmp_path: Path) -> None:
    """Two API runs in two threads of one process: while one ends on an error (its waits
    for the store are cut to the short grace), the other waits for a store another process
    holds for 2 s as long as its timeout allows, and writes (it failed after 1 s:
    'stayed locked ... for 10s')."""
    import threading

    from targetrun import stopping
    from targetrun.store.sqlite import SqliteStore

    path = tmp_path / ".targetrun" / "state.db"
    store = SqliteStore(str(path), timeout=10)
    (tmp_path / "holder.py").write_text(HOLDER)
    holder = subprocess.Popen([sys.executable, "holder.py", "2"], cwd=tmp_path)
    ending = threading.Event()

    def other_run_ends_on_an_error() -> None:
        with stopping.hurried():
            ending.set()
            time.sleep(3)

    try:
        _wait_for(tmp_path / "locked")
        thread = threading.Thread(target=other_run_ends_on_an_error)
        thread.start()
        ending.wait(10)
        began = time.monotonic()
        store.release_soon("a-lock", "an-owner")
        store.flush()  # waits for the holder, then writes
        assert time.monotonic() - began > 1.5
        thread.join()
    finally:
        holder.kill()
        holder.wait()
        store.close()


# A worker thread that is about to track the command it started (line argv[1] of
# `_call_shell`) sends this process a real SIGINT and lets the main thread stop the run
# (kill the commands it tracks) before it goes on.
LATE_TRACKING = """
import linecache, os, signal, sys, threading, time

line_text = sys.argv[1]
sent = False

def local(frame, event, arg):
    global sent
    if event == "line" and not sent and line_text in linecache.getline(frame.f_code.co_filename, frame.f_lineno):
        sent = True
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1.0)  # the main thread stops the run meanwhile
    return local

def tracer(frame, event, arg):
    return local if frame.f_code.co_name == "_call_shell" else None

threading.settrace(tracer)
sys.argv = ["targetrun", *sys.argv[2:]]
from targetrun.cli import main
main()
"""


def test_a_command_a_worker_thread_tracks_after_the_stop_is_killed(tmp_path: Path) -> None:
    """A worker thread (-j 2, threads) starts a command as the run stops and tracks it only
    after the run killed the commands it tracked: exit 130, and the command is killed
    anyway (it ran on after the run had ended, and wrote its file)."""
    (tmp_path / "slow").write_text("#!/bin/sh\nsleep 1.5\necho late > late\n")
    (tmp_path / "slow").chmod(0o755)
    (tmp_path / "Pipelinefile.yaml").write_text(textwrap.dedent("""
        name: late-tracking
        tasks:
          slow: {shell: "./slow > {output}", target: out/slow.txt}
        """))
    (tmp_path / "at.py").write_text(LATE_TRACKING)
    done = subprocess.run([sys.executable, "at.py", "stopping.track(", "run", "-j", "2", "--executor", "threads"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, env=_env())
    assert done.returncode == 130, done.stdout + done.stderr
    time.sleep(2.0)
    assert not (tmp_path / "late").exists(), "the command ran on after the stopped run"
